// Read-ahead (src/layers/read-ahead.ts) through VerifiedLayer.read on a recording source that fails the
// test when bytes are fetched twice: adjacent small files ride in the read's own request, a sequential
// read of a large file fetches its next chunks in parallel requests, a file read at 0 comes whole, a
// directory read from twice is warmed, budgets hold, and read-ahead never turns into an error for the
// reader. Each test turns on only the policies it is about.
import t, { type Test } from 'tap';
import type { TocEntry } from '../../../src/formats/toc.js';
import { ChunkFetcher } from '../../../src/layers/fetch/fetcher.js';
import type { VerifiedLayer } from '../../../src/layers/toc/toc-layer.js';
import { MemoryChunkStore } from '../../../src/layers/store/memory-store.js';
import { blobOrder, ReadAhead, type ReadAheadPolicy } from '../../../src/layers/fetch/read-ahead.js';
import { recordingSource, type RecordingSource } from '../../support/recording-source.js';
import { buildFakeBlob, fakeLayer, noise, type FakeBlob, type FakeFile } from '../fake-blob.js';

const SMALL: FakeFile[] = Array.from({ length: 12 }, (_, i) => ({ path: `pkg/mod${String(i).padStart(2, '0')}.pyc`, content: noise(3000 + i * 10, i + 1) }));
const BIG: FakeFile = { path: 'lib/big.so', content: noise(10 * 4096, 99), chunkSize: 4096 };

async function layerOf(t: Test, files: FakeFile[], policy?: ReadAheadPolicy): Promise<{ layer: VerifiedLayer; src: RecordingSource; fb: FakeBlob; fetcher: ChunkFetcher }> {
  const fb = buildFakeBlob(files);
  const src = recordingSource(t, fb.blob);
  const fetcher = new ChunkFetcher({ memory: new MemoryChunkStore({ maxBytes: 64 << 20 }) });
  t.teardown(() => fetcher.close());
  const layer = fakeLayer(fb, src, fetcher, { wholeFileBytes: 0, directoryBytes: 0, directoryFirstBytes: 0, ...policy });
  return { layer, src, fb, fetcher };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

t.test('the files after a small file come in the same request, and are then read without one', async (t) => {
  const { layer, src, fb } = await layerOf(t, SMALL, { adjacentBytes: 5 * 1024 * 1024 });
  t.same(Buffer.from(await layer.read('pkg/mod00.pyc', 0, 1 << 20)), fb.contents.get('pkg/mod00.pyc'));
  t.equal(src.requests, 1, 'one request');
  await settle();
  for (const f of SMALL.slice(1)) t.same(Buffer.from(await layer.read(f.path, 0, 1 << 20)), fb.contents.get(f.path), f.path);
  t.equal(src.requests, 1, 'the neighbours came with it: no further request');
  const stats = (layer as unknown as { stats(): { bytesFetched: number } }).stats();
  t.ok(stats.bytesFetched > 0);
});

t.test('the byte budget bounds what rides along', async (t) => {
  const { layer, src } = await layerOf(t, SMALL, { adjacentBytes: 7000 });
  await layer.read('pkg/mod00.pyc', 0, 1 << 20);
  const first = src.reads[0]!;
  await settle();
  await layer.read('pkg/mod01.pyc', 0, 1 << 20);
  await layer.read('pkg/mod02.pyc', 0, 1 << 20);
  t.equal(src.requests, 1, 'two ~3 KB neighbours fit in 7000 bytes (noise does not compress)');
  await layer.read('pkg/mod03.pyc', 0, 1 << 20);
  t.equal(src.requests, 2, 'the third did not');
  t.ok(src.reads[1]!.start >= first.end, 'and nothing was fetched twice');
});

t.test('adjacentBytes 0 reads exactly the file', async (t) => {
  const { layer, src } = await layerOf(t, SMALL, { adjacentBytes: 0, sequentialChunks: 0 });
  await layer.read('pkg/mod05.pyc', 0, 1 << 20);
  await layer.read('pkg/mod06.pyc', 0, 1 << 20);
  t.equal(src.requests, 2);
});

t.test('a sequential read of a large file fetches the next chunks in parallel requests of their own', async (t) => {
  const { layer, src, fb } = await layerOf(t, [BIG, ...SMALL], { adjacentBytes: 0, sequentialChunks: 2 });
  const want = fb.contents.get('lib/big.so')!;
  t.same(Buffer.from(await layer.read('lib/big.so', 0, 2048)), want.subarray(0, 2048));
  await settle();
  t.equal(src.requests, 1, 'a first read at 0 is not yet a sequential read');
  t.same(Buffer.from(await layer.read('lib/big.so', 2048, 2048)), want.subarray(2048, 4096));
  await settle();
  t.equal(src.requests, 3, 'the next read continues it: chunks 1 and 2 ahead, each its own request');
  t.same(Buffer.from(await layer.read('lib/big.so', 4096, 4096)), want.subarray(4096, 8192));
  await settle();
  t.equal(src.requests, 4, 'reading chunk 1 (already here) fetches chunk 3 only');
  const out: Buffer[] = [];
  for (let off = 8192; off < want.length; off += 4096) out.push(Buffer.from(await layer.read('lib/big.so', off, 4096)));
  t.same(Buffer.concat(out), want.subarray(8192));
  t.equal(src.requests, 10, 'every chunk fetched once');
});

t.test('a random read into a large file does not read ahead in it', async (t) => {
  const { layer, src } = await layerOf(t, [BIG], { adjacentBytes: 0, sequentialChunks: 2 });
  await layer.read('lib/big.so', 0, 64);
  await layer.read('lib/big.so', 5 * 4096 + 100, 10);
  await layer.read('lib/big.so', 2 * 4096, 10);
  await settle();
  t.equal(src.requests, 3, 'header, then two pages elsewhere: nothing ahead');
});

t.test('a read-ahead that fails is no error for anyone, and the file is fetched again when read', async (t) => {
  const { layer, src, fb } = await layerOf(t, SMALL, { adjacentBytes: 5 * 1024 * 1024 });
  src.allowRefetch = true;
  // Corrupt mod03's bytes in the first request only: the reader of mod00 must not notice.
  const mod3 = fb.index.lookup('pkg/mod03.pyc')!.chunks[0]!;
  src.inject({ fault: { corruptAt: mod3.compressedOffset + 20 }, times: 2 });
  t.same(Buffer.from(await layer.read('pkg/mod00.pyc', 0, 1 << 20)), fb.contents.get('pkg/mod00.pyc'));
  await settle();
  t.same(Buffer.from(await layer.read('pkg/mod03.pyc', 0, 1 << 20)), fb.contents.get('pkg/mod03.pyc'), 'verified bytes after a clean fetch');
});

t.test('blobOrder lists every data chunk once, by compressed offset', async (t) => {
  const fb = buildFakeBlob([BIG, ...SMALL]);
  const order = blobOrder(fb.index);
  t.equal(order.length, 10 + SMALL.length);
  const offsets = order.map((r) => r.entry.chunks[r.index]!.compressedOffset);
  t.same(offsets, [...offsets].sort((a, b) => a - b));
  const ra = new ReadAhead(fb.index, { adjacentBytes: 1 << 20, sequentialChunks: 1 });
  const big = fb.index.lookup('lib/big.so') as TocEntry;
  const plan = ra.plan(big, [{ entry: big, index: 9 }], 9 * 4096, 10 * 4096);
  t.same(plan.sequential, [], 'nothing after the last chunk');
  t.ok(plan.adjacent.length > 0 && plan.adjacent.every((r) => r.entry !== big), 'the next files follow');
});

const PKG: FakeFile[] = [
  ...Array.from({ length: 6 }, (_, i) => ({ path: `pkg/a/m${i}.pyc`, content: noise(2000 + i, 10 + i) })),
  { path: 'pkg/a/huge.dat', content: noise(40_000, 30) },
  { path: 'pkg/b/other.pyc', content: noise(2500, 40) },
  ...Array.from({ length: 3 }, (_, i) => ({ path: `pkg/a/n${i}.pyc`, content: noise(2100 + i, 50 + i) })),
];

t.test('a directory whose second file misses is warmed: its small files, in requests of their own', async (t) => {
  const { layer, src, fb } = await layerOf(t, PKG, { adjacentBytes: 0, sequentialChunks: 0, directoryBytes: 1 << 20, directoryFileBytes: 10_000 });
  // The warm's request bridges holes under 64 KiB (the fetcher's merge gap), so it carries the bytes of
  // the file being read and of pkg/a/huge.dat without using them.
  src.allowRefetch = true;
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20);
  await settle();
  t.equal(src.requests, 1, 'one file of a directory warms nothing');
  await layer.read('pkg/a/m3.pyc', 0, 1 << 20);
  await settle();
  const afterWarm = src.requests;
  t.equal(afterWarm, 3, 'the second file, then the directory in a request of its own');
  for (const f of PKG.filter((f) => f.path.startsWith('pkg/a/') && !f.path.endsWith('huge.dat'))) {
    t.same(Buffer.from(await layer.read(f.path, 0, 1 << 20)), fb.contents.get(f.path), f.path);
  }
  t.equal(src.requests, afterWarm, 'every small file of pkg/a came with the warm');
  await layer.read('pkg/a/huge.dat', 0, 10);
  t.equal(src.requests, afterWarm + 1, 'a file over directoryFileBytes was left out');
  await layer.read('pkg/b/other.pyc', 0, 10);
  t.equal(src.requests, afterWarm + 2, 'and the warm stayed inside its directory');
});

t.test('a directory whose small files weigh little is warmed on its first miss', async (t) => {
  const { layer, src, fb } = await layerOf(t, PKG, { adjacentBytes: 0, sequentialChunks: 0, directoryBytes: 1 << 20, directoryFileBytes: 10_000, directoryFirstBytes: 64 << 10 });
  src.allowRefetch = true; // the warm bridges the hole where pkg/a/huge.dat sits (see above)
  await layer.read('pkg/b/other.pyc', 0, 1 << 20);
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20);
  await settle();
  t.equal(src.requests, 3, 'pkg/b has nothing else; pkg/a (about 20 KB of small files) came with its first file');
  for (const f of PKG.filter((f) => f.path.startsWith('pkg/a/') && !f.path.endsWith('huge.dat'))) {
    t.same(Buffer.from(await layer.read(f.path, 0, 1 << 20)), fb.contents.get(f.path), f.path);
  }
  t.equal(src.requests, 3);

  const heavier = await layerOf(t, PKG, { adjacentBytes: 0, sequentialChunks: 0, directoryBytes: 1 << 20, directoryFileBytes: 10_000, directoryFirstBytes: 4096 });
  await heavier.layer.read('pkg/a/m0.pyc', 0, 1 << 20);
  await settle();
  t.equal(heavier.src.requests, 1, 'over directoryFirstBytes: the first miss warms nothing');
});

t.test('the directory budget bounds a warm', async (t) => {
  const { layer, src } = await layerOf(t, PKG, { adjacentBytes: 0, sequentialChunks: 0, directoryBytes: 4500, directoryFileBytes: 10_000 });
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20);
  await layer.read('pkg/a/m1.pyc', 0, 1 << 20);
  await settle();
  const warmed = src.reads.slice(2).reduce((sum, r) => sum + r.end - r.start, 0);
  t.ok(warmed > 0 && warmed <= 4500, `warmed ${warmed} compressed bytes within 4500`);
});

t.test('reads served from the caches warm nothing (a prioritised layer moves no more bytes)', async (t) => {
  const { layer, src } = await layerOf(t, PKG, { adjacentBytes: 1 << 20, sequentialChunks: 0, directoryBytes: 1 << 20, directoryFileBytes: 10_000 });
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20); // brings every following file along in its own request
  await settle();
  t.equal(src.requests, 1);
  await layer.read('pkg/a/m1.pyc', 0, 1 << 20);
  await layer.read('pkg/a/m2.pyc', 0, 1 << 20);
  await settle();
  t.equal(src.requests, 1, 'the second and third files were cached: no warm');
});

t.test('a file read at 0 is fetched whole, its other chunks after the one read in the same request; a large one is not', async (t) => {
  const { layer, src, fb } = await layerOf(t, [BIG], { adjacentBytes: 0, sequentialChunks: 0, wholeFileBytes: 64 << 10 });
  await layer.read('lib/big.so', 0, 64);
  await settle();
  t.equal(src.requests, 1, 'the header and the other 9 chunks: one request');
  t.same(src.reads[0], { start: fb.index.lookup('lib/big.so')!.chunks[0]!.compressedOffset, end: fb.index.lookup('lib/big.so')!.chunks.at(-1)!.compressedEnd }, 'the file, from its first chunk');
  t.same(Buffer.from(await layer.read('lib/big.so', 0, 1 << 20)), fb.contents.get('lib/big.so'));
  t.equal(src.requests, 1, 'all of it was here');

  const small = await layerOf(t, [BIG], { adjacentBytes: 0, sequentialChunks: 0, wholeFileBytes: 4096 });
  await small.layer.read('lib/big.so', 0, 64);
  await settle();
  t.equal(small.src.requests, 1, 'over wholeFileBytes: only the chunk read');
});

t.test('a background read (a prefetch) plans no read-ahead and counts nothing as served from a cache', async (t) => {
  const { layer, src } = await layerOf(t, PKG, { adjacentBytes: 1 << 20, sequentialChunks: 2, directoryBytes: 1 << 20, directoryFileBytes: 10_000, directoryFirstBytes: 64 << 10, wholeFileBytes: 1 << 20 });
  const stats = (): { bytesFromMemory: number; bytesFetched: number } => (layer as unknown as { stats(): { bytesFromMemory: number; bytesFetched: number } }).stats();
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20, undefined, { background: true });
  await layer.read('pkg/a/m1.pyc', 0, 1 << 20, undefined, { background: true });
  await settle();
  t.equal(src.requests, 2, 'each file alone: no neighbours, no directory warm');
  t.ok(stats().bytesFetched > 0, 'what it fetched counts as fetched');
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20, undefined, { background: true });
  t.equal(stats().bytesFromMemory, 0, 'a cache hit of a background read is no byte served');
  await layer.read('pkg/a/m0.pyc', 0, 1 << 20);
  t.equal(stats().bytesFromMemory, 2000, 'a reader\'s hit is');
});
