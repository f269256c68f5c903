import t from 'tap';
import { InvalidOptionError, TocfsError } from '../../src/errors.js';
import {
  hostPlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../../src/registry/platform.js';
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from '../../src/registry/manifest.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/registry/types.js';

let n = 0;
function entry(platform: Platform | undefined, extra: Partial<Descriptor> = {}): Descriptor {
  n++;
  return {
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    digest: `sha256:${n.toString(16).padStart(64, '0')}`,
    size: 500,
    ...(platform && { platform }),
    ...extra,
  };
}
const index = (...manifests: Descriptor[]): ImageIndex => ({
  kind: 'index',
  mediaType: MEDIA_TYPE_OCI_INDEX,
  schemaVersion: 2,
  manifests,
});
const p = (os: string, architecture: string, variant?: string): Platform => ({
  os,
  architecture,
  ...(variant !== undefined && { variant }),
});

t.test('parsePlatform reads OS/ARCH[/VARIANT] and folds aliases', async (t) => {
  t.same(parsePlatform('linux/amd64'), p('linux', 'amd64'));
  t.same(parsePlatform('linux/arm64/v8'), p('linux', 'arm64', 'v8'));
  t.same(parsePlatform('linux/arm/7'), p('linux', 'arm', 'v7'));
  t.same(parsePlatform('Linux/X86_64'), p('linux', 'amd64'));
  t.same(parsePlatform('linux/aarch64'), p('linux', 'arm64'));
  t.same(parsePlatform('linux/armhf'), p('linux', 'arm', 'v7'));
  t.same(parsePlatform('linux/armel'), p('linux', 'arm', 'v6'));
  t.same(parsePlatform('linux/i386'), p('linux', '386'));
  t.same(parsePlatform('linux/ppc64le'), p('linux', 'ppc64le'));
});

t.test('parsePlatform rejects malformed --platform values naming the option', async (t) => {
  for (const bad of ['', 'linux', 'linux/', '/amd64', 'linux/amd64/', 'linux/arm/v7/x', 'linux/am d64', 'linux//v7']) {
    t.throws(() => parsePlatform(bad), InvalidOptionError, JSON.stringify(bad));
    t.throws(() => parsePlatform(bad), { code: 'INVALID_OPTION', message: /--platform/ }, JSON.stringify(bad));
  }
});

t.test("hostPlatform maps Node's arch names to OCI", async (t) => {
  t.same(hostPlatform({ arch: 'x64', platform: 'linux' }), p('linux', 'amd64'));
  t.same(hostPlatform({ arch: 'arm64', platform: 'linux' }), p('linux', 'arm64', 'v8'));
  t.same(hostPlatform({ arch: 'arm', platform: 'linux', armVersion: '6' }), p('linux', 'arm', 'v6'));
  t.same(hostPlatform({ arch: 'arm', platform: 'linux', armVersion: 7 }), p('linux', 'arm', 'v7'));
  t.same(hostPlatform({ arch: 'arm', platform: 'linux', armVersion: undefined }), p('linux', 'arm', 'v7'));
  t.same(hostPlatform({ arch: 'ia32', platform: 'linux' }), p('linux', '386'));
  t.same(hostPlatform({ arch: 'ppc64', platform: 'linux', endianness: 'LE' }), p('linux', 'ppc64le'));
  t.same(hostPlatform({ arch: 'ppc64', platform: 'aix', endianness: 'BE' }), p('aix', 'ppc64'));
  t.same(hostPlatform({ arch: 's390x', platform: 'linux' }), p('linux', 's390x'));
  t.same(hostPlatform({ arch: 'riscv64', platform: 'linux' }), p('linux', 'riscv64'));
  t.same(hostPlatform({ arch: 'x64', platform: 'win32' }), p('windows', 'amd64'));
  const here = hostPlatform();
  t.equal(here.os, process.platform === 'win32' ? 'windows' : process.platform, 'this machine');
});

t.test('platformMatches: variant rules', async (t) => {
  const yes: Array<[Platform, Platform, string]> = [
    [p('linux', 'amd64'), p('linux', 'amd64'), 'same'],
    [p('linux', 'amd64'), p('linux', 'amd64', 'v3'), 'amd64: variant ignored unless both given'],
    [p('linux', 'amd64', 'v3'), p('linux', 'amd64'), 'amd64: a candidate without variant is v1'],
    [p('linux', 'amd64', 'v3'), p('linux', 'amd64', 'v2'), 'amd64 v3 runs v2'],
    [p('linux', 'arm64', 'v8'), p('linux', 'arm64'), 'arm64 without variant is v8'],
    [p('linux', 'arm64'), p('linux', 'arm64', 'v8'), 'arm64 without variant is v8 (other side)'],
    [p('linux', 'arm64', 'v8.2'), p('linux', 'arm64', 'v8'), 'arm64 v8.2 runs v8'],
    [p('linux', 'arm64', 'v9'), p('linux', 'arm64', 'v8.5'), 'arm64 v9 runs v8.5'],
    [p('linux', 'arm', 'v7'), p('linux', 'arm', 'v6'), 'arm v7 runs v6'],
    [p('linux', 'arm', 'v7'), p('linux', 'arm'), 'arm without variant is v7'],
    [p('linux', 'arm'), p('linux', 'arm', 'v5'), 'no wanted variant matches any'],
    [p('linux', 'arm'), p('linux', 'arm', 'v8'), 'no wanted variant matches any, even newer'],
    [p('linux', 'riscv64'), p('linux', 'riscv64', 'rva22'), 'unordered arch: any variant when none wanted'],
    [p('linux', 'riscv64', 'rva22'), p('linux', 'riscv64'), 'unordered arch: baseline candidate'],
    [p('Linux', 'x86_64'), p('linux', 'amd64'), 'aliases and case'],
  ];
  const no: Array<[Platform, Platform, string]> = [
    [p('linux', 'amd64'), p('linux', 'arm64'), 'other arch'],
    [p('linux', 'amd64'), p('windows', 'amd64'), 'other os'],
    [p('linux', 'amd64', 'v2'), p('linux', 'amd64', 'v3'), 'amd64 v2 cannot run v3'],
    [p('linux', 'arm', 'v6'), p('linux', 'arm', 'v7'), 'arm v6 cannot run v7'],
    [p('linux', 'arm', 'v6'), p('linux', 'arm'), 'arm v6 cannot run the v7 default'],
    [p('linux', 'arm64', 'v8'), p('linux', 'arm64', 'v8.2'), 'arm64 v8 cannot run v8.2'],
    [p('linux', 'arm64', 'v9'), p('linux', 'arm64', 'v8.9'), 'arm64 v9.0 is only v8.5'],
    [p('linux', 'riscv64', 'rva22'), p('linux', 'riscv64', 'rva20'), 'unordered arch: different variants'],
  ];
  for (const [w, c, why] of yes) t.ok(platformMatches(w, c), why);
  for (const [w, c, why] of no) t.notOk(platformMatches(w, c), why);
});

t.test('selectManifest picks the exact platform from a multi-arch index', async (t) => {
  const amd = entry(p('linux', 'amd64'));
  const arm64 = entry(p('linux', 'arm64', 'v8'));
  const armv7 = entry(p('linux', 'arm', 'v7'));
  const idx = index(armv7, amd, arm64);
  t.equal(selectManifest(idx, p('linux', 'amd64')), amd);
  t.equal(selectManifest(idx, p('linux', 'arm64', 'v8')), arm64);
  t.equal(selectManifest(idx, p('linux', 'arm64')), arm64);
  t.equal(selectManifest(idx, p('linux', 'arm', 'v7')), armv7);
});

t.test('selectManifest prefers the newest variant the CPU runs', async (t) => {
  const v5 = entry(p('linux', 'arm', 'v5'));
  const v6 = entry(p('linux', 'arm', 'v6'));
  const v8 = entry(p('linux', 'arm', 'v8'));
  t.equal(selectManifest(index(v5, v6, v8), p('linux', 'arm', 'v7')), v6);
  const a1 = entry(p('linux', 'amd64'));
  const a2 = entry(p('linux', 'amd64', 'v2'));
  const a4 = entry(p('linux', 'amd64', 'v4'));
  t.equal(selectManifest(index(a1, a2, a4), p('linux', 'amd64', 'v3')), a2);
});

t.test('selectManifest without a wanted variant prefers the default, then the oldest', async (t) => {
  const a3 = entry(p('linux', 'amd64', 'v3'));
  const a1 = entry(p('linux', 'amd64'));
  t.equal(selectManifest(index(a3, a1), p('linux', 'amd64')), a1, 'plain amd64 over v3');
  t.equal(selectManifest(index(a3), p('linux', 'amd64')), a3, 'v3 when it is all there is');
  const v6 = entry(p('linux', 'arm', 'v6'));
  const v7 = entry(p('linux', 'arm', 'v7'));
  t.equal(selectManifest(index(v6, v7), p('linux', 'arm')), v7, 'arm means v7');
  const v82 = entry(p('linux', 'arm64', 'v8.2'));
  const v8 = entry(p('linux', 'arm64'));
  t.equal(selectManifest(index(v82, v8), p('linux', 'arm64')), v8, 'arm64 means v8');
});

t.test('selectManifest breaks ties by index order', async (t) => {
  const first = entry(p('linux', 'amd64'));
  const second = entry(p('linux', 'amd64'));
  t.equal(selectManifest(index(first, second), p('linux', 'amd64')), first);
});

t.test('selectManifest skips attestation manifests and artifacts', async (t) => {
  const att = entry(p('linux', 'amd64'), {
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': 'sha256:x' },
  });
  const unknown = entry(p('unknown', 'unknown'));
  const soci = entry(p('linux', 'amd64'), { artifactType: 'application/vnd.amazon.soci.index.v2+json' });
  const image = entry(p('linux', 'amd64'));
  t.equal(selectManifest(index(att, unknown, soci, image), p('linux', 'amd64')), image);
  t.throws(() => selectManifest(index(att, unknown), p('linux', 'amd64')), { code: 'NO_PLATFORM', message: /available: none/ });
});

t.test('selectManifest takes an entry without platform only when nothing matches', async (t) => {
  const bare = entry(undefined);
  const amd = entry(p('linux', 'amd64'));
  t.equal(selectManifest(index(bare, amd), p('linux', 'amd64')), amd);
  t.equal(selectManifest(index(bare, amd), p('linux', 'arm64')), bare);
});

t.test('NO_PLATFORM names the wanted platform and lists those available', async (t) => {
  const idx = index(
    entry(p('linux', 'amd64')),
    entry(p('linux', 'arm', 'v7')),
    entry(p('linux', 'amd64')),
    entry(p('unknown', 'unknown'), { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
  );
  let caught: unknown;
  try {
    selectManifest(idx, p('linux', 's390x'));
  } catch (err) {
    caught = err;
  }
  t.type(caught, TocfsError);
  const err = caught as TocfsError;
  t.equal(err.code, 'NO_PLATFORM');
  t.equal(err.message, 'no manifest for platform linux/s390x; available: linux/amd64, linux/arm/v7');
});
