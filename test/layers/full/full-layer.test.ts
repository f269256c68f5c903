// src/layers/full-layer end to end: plain, gzip and zstd layers without a TOC on Debian's
// docker-registry, read through the fault proxy so blob requests can be counted and corrupted.
import t, { type Test } from 'tap';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DigestMismatchError, FormatError, TocfsError } from '../../../src/errors.js';
import { indexToc } from '../../../src/formats/toc-index.js';
import type { TocEntry } from '../../../src/formats/toc.js';
import { FullLayer, openFullLayer } from '../../../src/layers/full/full-layer.js';
import { layerCompression } from '../../../src/registry/manifest.js';
import { lastCopies, rfc3339 } from '../../../src/layers/full/full-layer-index.js';
import { createLayerService, type LayerService } from '../../../src/layers/layer-service.js';
import { RegistryClient } from '../../../src/registry/client.js';
import type { Descriptor, RepositoryRef } from '../../../src/registry/types.js';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { buildImage, type Compression } from '../../support/image-builder.js';
import { pushImage } from '../../support/push.js';
import { startRegistry } from '../../support/registry.js';
import {
  blockdev,
  chardev,
  contentBytes,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  symlink,
  whiteout,
  type TarEntry,
} from '../../support/tar-dsl.js';
import { tempDir } from '../../support/tmp.js';

const REPO = 'tocfs/full-layers';
const COMPRESSIONS: readonly Compression[] = ['gzip', 'zstd', 'none'];

const CAP_SETUID = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
const longName = `deep/${'d'.repeat(120)}/${'f'.repeat(140)}.txt`;
const big = file('data/big.bin', { size: 3_500_000 });

const ENTRIES: TarEntry[] = [
  dir('etc', { mode: 0o750, uid: 1000, gid: 1001 }),
  file('etc/hosts', '127.0.0.1 localhost\n', { mtime: new Date('2021-06-01T12:34:56.789Z'), uname: 'root', gname: 'wheel' }),
  hardlink('etc/hosts.link', 'etc/hosts'),
  symlink('etc/link', '../etc/hosts'),
  file('bin/ping', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff, 0x80]), { mode: 0o4755, xattrs: { 'security.capability': CAP_SETUID, 'user.note': 'hé' } }),
  dir('deep'),
  file(longName, 'long\n'),
  file('données/日本語.txt', 'unicode ✓\n', { uid: 3_000_000, gid: 70_000 }),
  chardev('dev/null', 1, 3),
  blockdev('dev/sda', 8, 0),
  fifo('run/fifo'),
  whiteout('etc/gone'),
  opaque('var'),
  file('empty', ''),
  big,
];

const typeOf: Record<TarEntry['type'], TocEntry['type'] | 'hardlink'> = {
  file: 'reg',
  dir: 'dir',
  symlink: 'symlink',
  hardlink: 'hardlink',
  chardev: 'char',
  blockdev: 'block',
  fifo: 'fifo',
};

const norm = (p: string): string => p.replace(/\/+$/, '');

let reg: Awaited<ReturnType<typeof startRegistry>>;
let proxy: FaultProxy;
let repo: RepositoryRef;
const layers = new Map<Compression, Descriptor>();

t.before(async () => {
  reg = await startRegistry(t);
  proxy = await startFaultProxy(t, { target: reg.url });
  repo = { registry: proxy.host, repository: REPO };
  const work = tempDir(t, 'full-layer');
  for (const compression of COMPRESSIONS) {
    const image = await buildImage(join(work, compression), { layers: [{ entries: ENTRIES, compression }] });
    await pushImage(reg.seedUrl, REPO, compression, image);
    const l = image.layers[0]!;
    layers.set(compression, { mediaType: l.mediaType, digest: l.digest, size: l.size });
  }
});

async function service(t: Test, cacheDir: string): Promise<LayerService> {
  const client = new RegistryClient({ retry: { minDelayMs: 1, maxDelayMs: 50 } });
  const svc = await createLayerService({ client, cacheDir, cacheSize: 1 << 30, memoryCacheBytes: 64 << 20, prefetch: false });
  t.teardown(async () => {
    await svc.close();
    await client.close();
  });
  return svc;
}

const blobPath = (d: Descriptor): string => `/v2/${REPO}/blobs/${d.digest}`;
// Whole-blob GETs: the client's 2-byte location probe (`Range: bytes=0-1`) is not a download.
const blobRequests = (d: Descriptor): number => proxy.counters.requests.filter((r) => r.path === blobPath(d) && r.range === undefined).length;
const blobBytes = (d: Descriptor): number => proxy.counters.byPath[blobPath(d)]?.bytes ?? 0;

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let names;
    try {
      names = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const n of names) {
      if (n.isDirectory()) await walk(join(d, n.name));
      else out.push(n.name);
    }
  };
  await walk(root);
  return out;
}

async function openFull(svc: LayerService, d: Descriptor): Promise<FullLayer> {
  const layer = await svc.open(repo, d);
  if (!(layer instanceof FullLayer)) throw new Error('expected a FullLayer');
  return layer;
}

async function checkLayer(t: Test, layer: FullLayer): Promise<void> {
  const index = layer.index;
  t.equal(index.format, 'tar');
  const expected = new Set<string>(['']);
  for (const e of ENTRIES) {
    const path = norm(e.path);
    for (let cut = path.indexOf('/'); cut > 0; cut = path.indexOf('/', cut + 1)) expected.add(path.slice(0, cut));
    expected.add(path);
    const got = index.lookup(path);
    if (!got) {
      t.fail(`missing ${path}`);
      continue;
    }
    if (e.type === 'hardlink') {
      t.equal(got, index.lookup(e.linkpath!), `${path} is the same entry as ${e.linkpath}`);
      t.equal(got.nlink, 2);
      continue;
    }
    t.equal(got.type, typeOf[e.type], `${path} type`);
    t.equal(got.mode, e.mode, `${path} mode`);
    t.equal(got.uid, e.uid, `${path} uid`);
    t.equal(got.gid, e.gid, `${path} gid`);
    t.equal(got.mtimeMs, e.mtime.getTime(), `${path} mtime`);
    t.equal(got.size, e.type === 'symlink' ? Buffer.byteLength(e.linkpath!) : e.size, `${path} size`);
    if (e.linkpath !== undefined) t.equal(got.linkName, e.linkpath);
    if (e.devmajor !== undefined) t.same([got.devMajor, got.devMinor], [e.devmajor, e.devminor], `${path} device`);
    const xattrs = Object.fromEntries(Object.entries(got.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
    t.same(xattrs, Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, v.toString('hex')])), `${path} xattrs`);
    if (e.type === 'file') {
      const want = contentBytes(e);
      t.ok(Buffer.from(await layer.read(path, 0, e.size + 100)).equals(want), `${path} bytes`);
      t.equal((await layer.read(got, e.size, 10)).length, 0, `${path}: a read at EOF is empty`);
    }
  }
  t.same(new Set([...index.walk()].map(([p]) => p)), expected, 'the index has exactly the entries (and their parents)');
  const want = contentBytes(big);
  const entry = index.lookup(norm(big.path))!;
  let seed = 7;
  const rand = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  for (let i = 0; i < 40; i++) {
    const offset = rand(big.size);
    const length = rand(300_000);
    const got = await layer.read(entry, offset, length);
    if (!Buffer.from(got).equals(want.subarray(offset, offset + length))) t.fail(`big.bin [${offset}, +${length})`);
  }
  t.pass('40 random ranges of big.bin');
}

for (const compression of COMPRESSIONS) {
  t.test(`${compression}: index, reads, then a restart reopens without the network`, async (t) => {
    const d = layers.get(compression)!;
    const cacheDir = tempDir(t, `cache-${compression}`);
    proxy.resetCounters();
    const svc = await service(t, cacheDir);
    const layer = await openFull(svc, d);
    t.equal(layer.tocSource, 'blob');
    t.equal(blobRequests(d), 1, 'one blob request');
    t.ok(blobBytes(d) <= d.size + 16, 'the blob moved once');
    await checkLayer(t, layer);
    await svc.close();

    proxy.resetCounters();
    const again = await service(t, cacheDir);
    const reopened = await openFull(again, d);
    t.equal(reopened.tocSource, 'cache');
    t.equal(proxy.counters.byPath[blobPath(d)]?.requests ?? 0, 0, 'zero blob requests with a fresh service on the same cache dir');
    await checkLayer(t, reopened);
  });
}

for (const [compression, at] of [
  ['gzip', 'middle'],
  ['none', 'header'],
  ['zstd', 'middle'],
] as const) {
  t.test(`${compression}: a flipped byte (${at}) fails the open with BAD_DATA and leaves nothing final`, async (t) => {
    const d = layers.get(compression)!;
    const cacheDir = tempDir(t, `cache-flip-${compression}`);
    const svc = await service(t, cacheDir);
    proxy.resetCounters();
    // 'header': inside the first tar header, so the tar reader fails first and the digest must still win.
    proxy.addRule({ path: blobPath(d), action: { flipByteAt: at === 'header' ? 100 : Math.floor(d.size / 2) } });
    t.teardown(() => proxy.clearRules());
    const err = await svc.open(repo, d).catch((e: unknown) => e);
    t.ok(err instanceof DigestMismatchError && err.code === 'BAD_DATA', String(err));
    t.same(await files(join(cacheDir, 'layers')), [], 'no file left in layers/');
    // A failure is not remembered: the next open fetches again and succeeds.
    proxy.clearRules();
    const layer = await openFull(svc, d);
    t.equal(blobRequests(d), 2);
    t.ok(Buffer.from(await layer.read('etc/hosts', 0, 100)).equals(contentBytes(ENTRIES[1]!)));
    t.same((await files(join(cacheDir, 'layers'))).map((n) => n.replace(/^[0-9a-f]{64}/, 'HEX')).sort(), ['HEX.index.json', 'HEX.tar']);
  });
}

t.test('concurrent opens share one blob request and one layer', async (t) => {
  const d = layers.get('gzip')!;
  const svc = await service(t, tempDir(t, 'cache-concurrent'));
  proxy.resetCounters();
  const all = await Promise.all(Array.from({ length: 6 }, () => svc.open(repo, d)));
  t.ok(all.every((l) => l === all[0]));
  t.equal(blobRequests(d), 1);
  t.equal(await svc.open(repo, d), all[0], 'an opened layer is kept');
});

t.test('a valid blob that is not a tar is a FormatError, and nothing is cached', async (t) => {
  const cacheDir = tempDir(t, 'cache-format');
  const svc = await service(t, cacheDir);
  // The plain-tar blob announced as gzip: the digest verifies, gunzip fails.
  const d = { ...layers.get('none')!, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const err = await svc.open(repo, d).catch((e: unknown) => e);
  t.ok(err instanceof FormatError, String(err));
  t.same(await files(join(cacheDir, 'layers')), []);
});

t.test('a layer inflating past the uncompressed limit (a decompression bomb) is refused before it fills the disk', async (t) => {
  const cacheDir = tempDir(t, 'cache-bomb');
  const client = new RegistryClient();
  t.teardown(() => client.close());
  const err = await openFullLayer({ client, repo, descriptor: layers.get('gzip')!, cacheDir, maxUncompressedBytes: 1 << 20 }).catch((e: unknown) => e);
  t.ok(err instanceof FormatError, String(err));
  t.match(String(err), /inflates to more than 1048576 bytes/, String(err));
  t.same(await files(join(cacheDir, 'layers')), [], 'nothing left on disk');
});

t.test('a read of an entry from another index is refused', async (t) => {
  const svc = await service(t, tempDir(t, 'cache-foreign'));
  const a = await openFull(svc, layers.get('gzip')!);
  const b = await openFull(svc, layers.get('none')!);
  const err = await a.read(b.index.lookup('etc/hosts')!, 0, 10).catch((e: unknown) => e);
  t.ok(err instanceof TocfsError && err.code === 'NOT_FOUND', String(err));
});

t.test('unit: repeated tar names keep the last copy; path escapes are FormatErrors; big files are one chunk', async (t) => {
  const raw = lastCopies([
    { name: 'a', type: 'reg', size: 1, offset: 512, endOffset: 513, chunkOffset: 0, chunkSize: 1 },
    { name: './a', type: 'reg', size: 2, offset: 1536, endOffset: 1538, chunkOffset: 0, chunkSize: 2 },
  ]);
  t.equal(raw.length, 1);
  t.equal(indexToc(raw, { format: 'tar', tocOffset: 4096 }).lookup('a')!.size, 2);
  t.throws(() => indexToc([{ name: '../etc/passwd', type: 'reg', size: 0 }], { format: 'tar', tocOffset: 1024 }), FormatError);
  const size = 100 << 20; // above maxChunkBytes: fine for uncompressed local spans, not for eStargz
  const huge = [{ name: 'huge', type: 'reg' as const, size, offset: 512, endOffset: 512 + size, chunkOffset: 0, chunkSize: size }];
  const chunk = indexToc(huge, { format: 'tar', tocOffset: size + 1024 }).lookup('huge')!.chunks;
  t.same(chunk, [{ fileOffset: 0, size, compressedOffset: 512, compressedEnd: 512 + size, innerOffset: 0, digest: '', zeros: false }]);
  t.throws(() => indexToc(huge, { format: 'estargz-gzip', tocOffset: size + 1024 }), FormatError);
  t.equal(rfc3339({ seconds: 1, nanos: 5 }), '1970-01-01T00:00:01.000000005Z');
  t.equal(rfc3339({ seconds: 0, nanos: 0 }), undefined);
  t.same(
    [
      'application/vnd.oci.image.layer.v1.tar',
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      'application/vnd.docker.image.rootfs.diff.tar',
      'application/vnd.docker.image.rootfs.diff.tar.gzip',
      'application/vnd.oci.image.config.v1+json',
    ].map(layerCompression),
    ['none', 'gzip', 'zstd', 'gzip', 'none', 'gzip', undefined],
  );
});

// full-layer.ts guessed compression with its own regexes (`[.+]gzip$`, `[.+]zstd$`, `.tar$`) while
// registry/manifest.ts kept a table; on these media types the two disagreed. One table now decides.
t.test('a full layer takes its compression from the one media type table', async (t) => {
  t.same(
    [
      'application/vnd.cncf.helm.chart.content.v1.tar+gzip', // not a layer: the regex said gzip
      'application/vnd.docker.image.rootfs.foreign.diff.tar.zstd', // no such Docker type: the regex said zstd
      'application/vnd.cncf.helm.chart.content.v1.tar', // not a layer: the regex said none
      'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
    ].map(layerCompression),
    [undefined, undefined, undefined, 'gzip', 'zstd'],
  );
  // Refused before any byte is fetched: the client is never called.
  const client = new Proxy({}, { get: () => () => t.fail('fetched a blob that is not a layer') }) as never;
  const descriptor = { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 1 };
  await t.rejects(openFullLayer({ client, repo: { registry: 'r.invalid', repository: 'x' }, descriptor, cacheDir: '/nonexistent' }), {
    code: 'FORMAT',
    message: /is not a tar layer/,
  });
});
