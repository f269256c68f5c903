// zstd:chunked and eStargz-zstd layers on Debian's docker-registry, read through the layer service as
// the daemon does (openAny), with the fault proxy counting what moves: both footers (64-byte GNUlInUx,
// 40-byte GnUlInUx), both annotation generations (io.github.containers.*, io.containers.*), the stargz
// toc.digest, no annotation at all (whole-layer fallback), and each kind of bad layer with its error.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { compress } from 'zstd-napi';
import { TocfsError } from '../../src/errors.js';
import { createLayerService } from '../../src/layers/layer-service.js';
import { VerifiedLayer } from '../../src/layers/toc/toc-layer.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { contentBytes, dir, file, hardlink, symlink, chardev, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { buildZstd, type ZstdBuildOptions } from '../support/zstd-build.js';
import { readPath } from '../support/layers.js';

const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';
const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';

const ENTRIES: TarEntry[] = [
  dir('usr'),
  dir('usr/lib'),
  file('usr/lib/big.so', { size: 300_000 }),
  file('usr/lib/zeros', { size: 200_000, sparse: true }),
  file('usr/lib/small.txt', 'small file\n', { xattrs: { 'user.k': Buffer.from([0x80, 1]) } }),
  hardlink('usr/lib/small-link.txt', 'usr/lib/small.txt'),
  symlink('usr/lib/link', 'big.so'),
  chardev('usr/null', 1, 3),
];

interface Env {
  readonly reg: Awaited<ReturnType<typeof startRegistry>>;
  readonly proxy: FaultProxy;
  readonly client: RegistryClient;
}

async function env(t: Test): Promise<Env> {
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const client = new RegistryClient();
  t.teardown(() => client.close());
  return { reg, proxy, client };
}

/** Pushes a one-layer image of `blob` with `annotations`; returns the layer descriptor as the registry serves it. */
async function push(t: Test, e: Env, name: string, blob: Buffer, diffId: string, annotations: Record<string, string>) {
  const dirPath = tempDir(t, name);
  const blobPath = join(dirPath, 'layer.blob');
  writeFileSync(blobPath, blob);
  const image = await buildImage(join(dirPath, 'image'), { layers: [{ blobPath, mediaType: ZSTD_LAYER, diffId, annotations }] });
  await pushImage(e.reg.seedUrl, `zstd/${name}`, 'v1', image);
  const ref = parseReference(`${e.proxy.host}/zstd/${name}:v1`);
  const { manifest } = await e.client.resolve(ref);
  return { ref, descriptor: manifest.document.layers[0]! };
}

async function service(t: Test, e: Env) {
  const s = await createLayerService({ client: e.client, cacheDir: tempDir(t, 'cache'), cacheSize: 1 << 30, memoryCacheBytes: 64 << 20, prefetch: false });
  t.teardown(() => s.close());
  return s;
}

const CASES: { name: string; build: ZstdBuildOptions; keep: (a: Record<string, string>) => Record<string, string>; format: string; oneRequest: boolean }[] = [
  { name: 'current-footer-current-annotations', build: { footer: 'current', chunkSize: 65536, zeros: true }, keep: (a) => a, format: 'zstd-chunked', oneRequest: true },
  {
    name: 'current-footer-checksum-only',
    build: { footer: 'current', chunkSize: 65536 },
    keep: (a) => ({ 'io.github.containers.zstd-chunked.manifest-checksum': a['io.github.containers.zstd-chunked.manifest-checksum']! }),
    format: 'zstd-chunked',
    oneRequest: false,
  },
  { name: 'legacy-footer-legacy-annotations', build: { footer: 'legacy', chunkSize: 65536 }, keep: (a) => a, format: 'estargz-zstd', oneRequest: true },
  {
    name: 'estargz-zstd-toc-digest-only',
    build: { footer: 'legacy', style: 'stargz', chunkSize: 65536 },
    keep: (a) => ({ [TOC_DIGEST]: a[TOC_DIGEST]! }),
    format: 'estargz-zstd',
    oneRequest: false,
  },
];

t.test('both footers and both annotation generations: found, verified and read lazily', async (t) => {
  const e = await env(t);
  for (const c of CASES) {
    await t.test(c.name, async (t) => {
      const built = buildZstd(ENTRIES, c.build);
      const { ref, descriptor } = await push(t, e, c.name, built.blob, built.diffId, c.keep(built.annotations));
      const s = await service(t, e);
      e.proxy.resetCounters();
      const layer = await s.open(ref, descriptor);
      t.ok(layer instanceof VerifiedLayer, 'served lazily, not pulled whole');
      if (!(layer instanceof VerifiedLayer)) return;
      t.equal(layer.index.format, c.format);
      // The client first resolves the blob's location (a 2-byte GET, DESIGN.md §2); count the reads after it.
      const reads = e.proxy.counters.requests.filter((r) => r.path.includes('/blobs/') && r.range !== 'bytes=0-1');
      if (c.oneRequest) {
        t.equal(reads.length, 1, 'manifest-position: one read, no tail read');
        t.equal(reads[0]?.range, `bytes=${built.tocOffset}-${built.tocOffset + built.tocLength - 1}`, 'of exactly the TOC');
      } else t.ok(reads.length >= 1 && reads.length <= 2, 'footer: the tail (and the TOC when it is not in it)');
      for (const f of ENTRIES.filter((x) => x.type === 'file')) {
        t.ok(Buffer.from(await layer.read(f.path, 0, f.size + 1)).equals(contentBytes(f)), `${f.path} reads back`);
      }
      t.equal(layer.index.lookup('usr/lib/small-link.txt'), layer.index.lookup('usr/lib/small.txt'), 'hardlink shares the entry');
      t.same(Buffer.from(layer.index.lookup('usr/lib/small.txt')!.xattrs!['user.k']!), Buffer.from([0x80, 1]), 'xattr bytes');
      t.equal(layer.index.lookup('usr/null')!.devMajor, 1);
    });
  }
});

t.test('zeros chunks are served with no fetch', async (t) => {
  const e = await env(t);
  const built = buildZstd([file('z', { size: 256 << 10, sparse: true }), file('after', 'x')], { footer: 'current', chunkSize: 65536, zeros: true });
  const { ref, descriptor } = await push(t, e, 'zeros', built.blob, built.diffId, built.annotations);
  const s = await service(t, e);
  const layer = await s.openToc(ref, descriptor);
  t.ok(layer.index.lookup('z')!.chunks.every((c) => c.zeros));
  e.proxy.resetCounters();
  t.ok(Buffer.from(await readPath(layer, 'z', 0, 256 << 10)).equals(Buffer.alloc(256 << 10)), 'zeros');
  t.equal(e.proxy.counters.byKind.blobs.requests, 0, 'no blob request');
});

t.test('tar+zstd with a footer but no annotation: nothing to verify a TOC against, so pulled whole', async (t) => {
  const e = await env(t);
  const built = buildZstd(ENTRIES, { footer: 'current' });
  const { ref, descriptor } = await push(t, e, 'bare', built.blob, built.diffId, {});
  const s = await service(t, e);
  const layer = await s.open(ref, descriptor);
  t.notOk(layer instanceof VerifiedLayer, 'full-layer fallback');
  const big = ENTRIES[2]!;
  t.ok(Buffer.from(await readPath(layer, big.path, 0, big.size)).equals(contentBytes(big)), 'and still readable');
});

async function rejection(p: Promise<unknown>): Promise<TocfsError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TocfsError) return err;
    throw err;
  }
  throw new Error('accepted');
}

t.test('bad layers: each gets its own clear error', async (t) => {
  const e = await env(t);
  const s = await service(t, e);

  const good = buildZstd(ENTRIES, { footer: 'current' });
  const wrong = { ...good.annotations, 'io.github.containers.zstd-chunked.manifest-checksum': `sha256:${'0'.repeat(64)}` };
  const a = await push(t, e, 'wrong-checksum', good.blob, good.diffId, wrong);
  const wrongErr = await rejection(s.open(a.ref, a.descriptor));
  t.equal(wrongErr.code, 'BAD_DATA');
  t.match(wrongErr.message, /TOC \(zstd:chunked manifest-checksum\): digest mismatch: expected sha256:0{64}/);

  const notJson = buildZstd(ENTRIES, { footer: 'current', replaceCompressedToc: () => compress(Buffer.from('{"version":1,"entries":[ nope')) });
  const b = await push(t, e, 'corrupt-toc', notJson.blob, notJson.diffId, notJson.annotations);
  const tocErr = await rejection(s.open(b.ref, b.descriptor));
  t.equal(tocErr.code, 'FORMAT');
  t.match(tocErr.message, /TOC at \d+ decompresses to \d+ bytes, the footer says \d+|TOC is not JSON/);

  const notZstd = buildZstd(ENTRIES, { footer: 'current', replaceCompressedToc: (c) => Buffer.alloc(c.length, 0x41) });
  const b2 = await push(t, e, 'toc-not-zstd', notZstd.blob, notZstd.diffId, notZstd.annotations);
  const zErr = await rejection(s.open(b2.ref, b2.descriptor));
  t.equal(zErr.code, 'FORMAT');
  t.match(zErr.message, /TOC at \d+ is not a zstd frame/);

  // The TOC says a file's frame ends one byte early: the span is a truncated frame.
  const short = buildZstd(ENTRIES, {
    footer: 'current',
    mutateToc: (toc) => {
      const reg = toc.entries.find((x) => x['name'] === 'usr/lib/small.txt')!;
      reg['endOffset'] = (reg['endOffset'] as number) - 1;
      return toc;
    },
  });
  const c = await push(t, e, 'truncated-frame', short.blob, short.diffId, short.annotations);
  const layer = await s.open(c.ref, c.descriptor);
  const truncErr = await rejection(readPath(layer, 'usr/lib/small.txt', 0, 100));
  t.equal(truncErr.code, 'BAD_DATA');
  t.match(truncErr.message, /usr\/lib\/small\.txt/, 'names the file');
  t.match(String((truncErr.cause as Error | undefined)?.message ?? truncErr.message) + truncErr.message, /truncated zstd frame|do not decompress/);

  const magic = Buffer.from(good.blob);
  magic.write('GNUlInUX', magic.length - 8, 'latin1');
  const checksumOnly = { 'io.github.containers.zstd-chunked.manifest-checksum': good.compressedTocDigest };
  const d = await push(t, e, 'bad-magic', magic, good.diffId, checksumOnly);
  const magicErr = await rejection(s.open(d.ref, d.descriptor));
  t.equal(magicErr.code, 'FORMAT');
  t.match(magicErr.message, /no TOC footer tocfs understands/);
  const reasons = ((magicErr.cause as AggregateError).errors as Error[]).map((r) => r.message).join('\n');
  t.match(reasons, /zstd:chunked 64-byte footer: bad magic "GNUlInUX", want "GNUlInUx"/);
});
