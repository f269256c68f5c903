// src/layers end to end: eStargz images on Debian's docker-registry, read through the fault proxy so
// that the bytes the registry moved can be counted and corrupted.
import t, { type Test } from 'tap';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TocfsError } from '../../../src/errors.js';
import { createLayerService, type LayerService } from '../../../src/layers/layer-service.js';
import { TOC_DIGEST_ANNOTATION } from '../../../src/layers/toc/open-layer.js';
import { RegistryClient } from '../../../src/registry/client.js';
import type { Descriptor, RepositoryRef } from '../../../src/registry/types.js';
import { buildEstargz } from '../../support/estargz-build.js';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { buildImage } from '../../support/image-builder.js';
import { pushImage } from '../../support/push.js';
import { startRegistry } from '../../support/registry.js';
import { contentBytes, dir, file, type TarEntry } from '../../support/tar-dsl.js';
import { tempDir } from '../../support/tmp.js';

const REPO = 'tocfs/layers';
const MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

const small = file('data/small.txt', { size: 1024 });
// Generated content is pseudo-random: incompressible, so bytes moved measure what was read.
const big = file('data/big.bin', { size: 200_000_000 });
const hot = [file('etc/a.conf', { size: 100_000 }), file('etc/b.conf', { size: 50_000 })];
const cold = [file('usr/lib/x.so', { size: 300_000 }), file('usr/lib/y.so', { size: 1000 })];

interface Pushed {
  readonly descriptor: Descriptor;
}

let proxy: FaultProxy;
let repo: RepositoryRef;
let bigLayer: Pushed;
let prefetchLayer: Pushed;

async function pushLayer(work: string, name: string, entries: TarEntry[], prioritized?: string[]): Promise<Pushed> {
  // gzip level 0: building stays fast, and the data is incompressible anyway.
  const built = await buildEstargz(entries, { gzipLevel: 0, ...(prioritized ? { prioritized } : {}) });
  const blobPath = join(work, `${name}.estargz`);
  await writeFile(blobPath, built.blob);
  const image = await buildImage(join(work, name), {
    layers: [{ blobPath, mediaType: MEDIA_TYPE, diffId: built.diffId, annotations: { [TOC_DIGEST_ANNOTATION]: built.tocDigest } }],
  });
  await pushImage(reg.seedUrl, REPO, name, image);
  const l = image.layers[0]!;
  return { descriptor: { mediaType: l.mediaType, digest: l.digest, size: l.size, annotations: l.annotations! } };
}

let reg: Awaited<ReturnType<typeof startRegistry>>;

t.before(async () => {
  reg = await startRegistry(t);
  proxy = await startFaultProxy(t, { target: reg.url });
  repo = { registry: proxy.host, repository: REPO };
  const work = tempDir(t, 'layer-real');
  bigLayer = await pushLayer(work, 'big', [dir('data'), small, big]);
  prefetchLayer = await pushLayer(work, 'prefetch', [dir('etc'), ...hot, dir('usr/lib'), ...cold], hot.map((e) => e.path));
});

async function service(t: Test, cacheDir: string, prefetch = false): Promise<LayerService> {
  const client = new RegistryClient({ retry: { minDelayMs: 1, maxDelayMs: 50 } });
  const svc = await createLayerService({ client, cacheDir, cacheSize: 1 << 30, memoryCacheBytes: 64 << 20, prefetch });
  t.teardown(async () => {
    await svc.close();
    await client.close();
  });
  return svc;
}

const blobPath = (d: Descriptor): string => `/v2/${REPO}/blobs/${d.digest}`;
const blobTally = (d: Descriptor) => proxy.counters.byPath[blobPath(d)] ?? { requests: 0, bytes: 0 };

async function chunkFiles(cacheDir: string): Promise<string[]> {
  const root = join(cacheDir, 'chunks');
  const out: string[] = [];
  for (const sub of await readdir(root)) if (sub !== '.tmp') out.push(...(await readdir(join(root, sub))));
  return out;
}

t.test('a 1 KiB file of a 200 MB layer: footer + TOC + one chunk; then nothing at all after a restart', async (t) => {
  const cacheDir = tempDir(t, 'cache-1k');
  proxy.resetCounters();
  const svc = await service(t, cacheDir);
  const layer = await svc.openToc(repo, bigLayer.descriptor);
  const bytes = await layer.read('data/small.txt', 0, 4096);
  t.same(Buffer.from(bytes), contentBytes(small));
  const moved = blobTally(bigLayer.descriptor);
  t.comment(`blob bytes moved: ${moved.bytes} in ${moved.requests} requests (blob is ${bigLayer.descriptor.size} bytes)`);
  t.ok(moved.bytes < 300_000, `${moved.bytes} bytes moved < 300 KB`);
  t.equal(layer.stats().requests, 1, 'one chunk request');
  await svc.close();

  proxy.resetCounters();
  const again = await service(t, cacheDir);
  const layer2 = await again.openToc(repo, bigLayer.descriptor);
  t.equal(layer2.tocSource, 'cache');
  t.same(Buffer.from(await layer2.read('data/small.txt', 0, 4096)), contentBytes(small));
  t.equal(blobTally(bigLayer.descriptor).requests, 0, 'zero blob requests with a fresh service on the same cache dir');
  t.equal(again.stats().fetch.bytesFromDisk, 1024);
});

t.test('a flipped byte inside the chunk: BAD_DATA, never wrong bytes, nothing cached', async (t) => {
  const cacheDir = tempDir(t, 'cache-flip');
  const svc = await service(t, cacheDir);
  const layer = await svc.openToc(repo, bigLayer.descriptor);
  const chunk = layer.index.lookup('data/small.txt')!.chunks[0]!;
  proxy.resetCounters();
  // The chunk's request starts at its span: body offset 100 is inside the member, past its header.
  proxy.addRule({ path: blobPath(bigLayer.descriptor), action: { flipByteAt: 100 } });
  t.teardown(() => proxy.clearRules());
  const err = await layer.read('data/small.txt', 0, 1024).catch((e: unknown) => e);
  t.ok(err instanceof TocfsError && err.code === 'BAD_DATA', String(err));
  t.match((err as Error).message, bigLayer.descriptor.digest);
  t.match((err as Error).message, 'data/small.txt');
  t.equal(blobTally(bigLayer.descriptor).requests, 2, 'fetched, then retried once uncached');
  t.same(proxy.counters.requests.map((r) => r.range), Array(2).fill(`bytes=${chunk.compressedOffset}-${chunk.compressedEnd - 1}`));
  await svc.close();
  t.same(await chunkFiles(cacheDir), [], 'nothing in the disk cache');

  proxy.clearRules();
  const again = await service(t, cacheDir);
  const layer2 = await again.openToc(repo, bigLayer.descriptor);
  t.same(Buffer.from(await layer2.read('data/small.txt', 0, 1024)), contentBytes(small), 'right bytes once the fault is gone');
});

t.test('prefetch fetches everything before the landmark in one request, verified and cached', async (t) => {
  const cacheDir = tempDir(t, 'cache-prefetch');
  proxy.resetCounters();
  const svc = await service(t, cacheDir, true);
  const [layer, same] = await Promise.all([svc.openToc(repo, prefetchLayer.descriptor), svc.openToc(repo, prefetchLayer.descriptor)]);
  t.equal(same, layer, 'concurrent opens of one layer share one open');
  t.equal(layer.stats().prefetch, 'running', 'open did not wait for the prefetch it started');
  const region = layer.index.prefetch!;
  t.ok(region, 'the layer has a prefetch region');
  await layer.prefetch();
  t.equal(layer.stats().prefetch, 'done');
  const size = prefetchLayer.descriptor.size;
  const ranges = proxy.counters.requests.filter((r) => r.path === blobPath(prefetchLayer.descriptor)).map((r) => r.range);
  const data = ranges.filter((r) => r !== 'bytes=0-1' && !r?.endsWith(`-${size - 1}`));
  t.equal(ranges.filter((r) => r?.endsWith(`-${size - 1}`)).length, 1, 'one tail request for two opens');
  t.equal(data.length, 1, `one prefetch request (all: ${ranges.join(', ')})`);
  const [from, to] = data[0]!.slice('bytes='.length).split('-').map(Number);
  t.ok(from! >= region.start && to! < region.end, `prefetch range [${from}, ${to}] inside [${region.start}, ${region.end})`);

  const before = blobTally(prefetchLayer.descriptor).requests;
  for (const e of hot) t.same(Buffer.from(await layer.read(e.path, 0, e.size)), contentBytes(e));
  t.equal(blobTally(prefetchLayer.descriptor).requests, before, 'prefetched files need no request');
  t.same(Buffer.from(await layer.read(cold[0]!.path, 0, cold[0]!.size)), contentBytes(cold[0]!));
  t.equal(blobTally(prefetchLayer.descriptor).requests, before + 1, 'a file after the landmark is fetched on demand');
});

t.test("tocfs's prefetch-end hint: the prioritised files are requested with the TOC, once, and not after a restart", async (t) => {
  const { ESTARGZ_PREFETCH_END_ANNOTATION } = await import('../../../src/formats/estargz/annotations.js');
  // Where the landmark is: the layer opened without the hint.
  const plain = await (await service(t, tempDir(t, 'cache-index'))).openToc(repo, prefetchLayer.descriptor);
  const end = plain.index.prefetch!.end;
  const hinted: Descriptor = { ...prefetchLayer.descriptor, annotations: { ...prefetchLayer.descriptor.annotations, [ESTARGZ_PREFETCH_END_ANNOTATION]: String(end) } };
  const cacheDir = tempDir(t, 'cache-hint');
  proxy.resetCounters();
  const svc = await service(t, cacheDir, true);
  const layer = await svc.openToc(repo, hinted);
  const size = hinted.size;
  const rangesNow = (): (string | undefined)[] => proxy.counters.requests.filter((r) => r.path === blobPath(hinted)).map((r) => r.range);
  t.ok(rangesNow().includes(`bytes=0-${end - 1}`), `the head was asked for before the open returned (${rangesNow().join(', ')})`);
  await layer.prefetch();
  const data = rangesNow().filter((r) => r !== 'bytes=0-1' && !r?.endsWith(`-${size - 1}`));
  t.same(data, [`bytes=0-${end - 1}`], 'the prefetch took the bytes read ahead: no request of its own');
  const before = blobTally(hinted).requests;
  for (const e of hot) t.same(Buffer.from(await layer.read(e.path, 0, e.size)), contentBytes(e));
  t.equal(blobTally(hinted).requests, before, 'prefetched files need no request');
  await svc.close();

  proxy.resetCounters();
  const again = await service(t, cacheDir, true);
  const layer2 = await again.openToc(repo, hinted);
  await layer2.prefetch();
  t.same(rangesNow(), [], 'after a restart: TOC and chunks from the disk cache, nothing read ahead');

  const bad: Descriptor = { ...hinted, annotations: { ...hinted.annotations, [ESTARGZ_PREFETCH_END_ANNOTATION]: String(size) } };
  const fresh = await service(t, tempDir(t, 'cache-bad-hint'), true);
  await t.rejects(fresh.openToc(repo, bad), { code: 'FORMAT', message: new RegExp(ESTARGZ_PREFETCH_END_ANNOTATION.replace(/\./g, '\\.')) });
});
