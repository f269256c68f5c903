// The fetch policy of DESIGN.md §2, asserted on a recording source that fails the test whenever a byte
// range is fetched twice.
import t, { type Test } from 'tap';
import { DigestMismatchError, TocfsError } from '../../../src/errors.js';
import type { TocEntry } from '../../../src/formats/toc.js';
import { deferred } from '../../../src/util/abort.js';
import { openDiskStore } from '../../../src/layers/store/disk-store.js';
import { ChunkFetcher, type ChunkLayer, type ChunkRef, type FetcherOptions } from '../../../src/layers/fetch/fetcher.js';
import type { VerifiedLayer } from '../../../src/layers/toc/toc-layer.js';
import { MemoryChunkStore } from '../../../src/layers/store/memory-store.js';
import { recordChannels } from '../../support/channels.js';
import { recordingSource, type RecordingSource } from '../../support/recording-source.js';
import { tempDir } from '../../support/tmp.js';
import { buildFakeBlob, fakeCodec, fakeLayer, noise, type FakeBlob, type FakeFile } from '../fake-blob.js';

interface Rig {
  fb: FakeBlob;
  src: RecordingSource;
  memory: MemoryChunkStore;
  disk: Awaited<ReturnType<typeof openDiskStore>>;
  fetcher: ChunkFetcher;
  layer: ChunkLayer;
  cacheDir: string;
  entry(path: string): TocEntry;
  refs(path: string, indexes?: number[]): ChunkRef[];
  verified(): VerifiedLayer;
}

async function rig(t: Test, files: FakeFile[], opts: Partial<FetcherOptions> = {}, cacheDir = tempDir(t, 'fetcher')): Promise<Rig> {
  const fb = buildFakeBlob(files);
  const src = recordingSource(t, fb.blob);
  const memory = new MemoryChunkStore({ maxBytes: 64 << 20 });
  const disk = await openDiskStore({ dir: cacheDir, maxBytes: 1 << 30 });
  const fetcher = new ChunkFetcher({ memory, disk, ...opts });
  t.teardown(async () => {
    await fetcher.close();
    await disk.close();
  });
  const layer: ChunkLayer = { digest: src.id, source: src, codec: fakeCodec };
  const entry = (path: string): TocEntry => fb.index.lookup(path)!;
  return {
    fb,
    src,
    memory,
    disk,
    fetcher,
    layer,
    cacheDir,
    entry,
    refs: (path, indexes) => {
      const e = entry(path);
      return (indexes ?? e.chunks.map((_, i) => i)).map((index) => ({ entry: e, index }));
    },
    verified: () => fakeLayer(fb, src, fetcher),
  };
}

const chunksOf = (content: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let off = 0; off < content.length; off += size) out.push(content.subarray(off, off + size));
  return out;
};

t.test('single-flight: 64 concurrent readers', async (t) => {
  const content = noise(8 * 1000, 1);
  const want = chunksOf(content, 1000);

  t.test('of the same chunks: one request', async (t) => {
    const r = await rig(t, [{ path: 'f', content, chunkSize: 1000 }]);
    let release!: () => void;
    r.src.inject({ fault: { gate: new Promise<void>((resolve) => (release = resolve)) } });
    const readers = Array.from({ length: 64 }, () => r.fetcher.getChunks(r.layer, r.refs('f', [2, 3])));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    for (const parts of await Promise.all(readers)) t.same(parts.map((p) => Buffer.from(p)), [want[2], want[3]]);
    t.equal(r.src.requests, 1, 'the first reader fetched; the 63 others joined');
    t.equal(r.fetcher.stats().joins, 63 * 2);
  });

  t.test('of overlapping chunks: every byte fetched once', async (t) => {
    const r = await rig(t, [{ path: 'f', content, chunkSize: 1000 }]);
    let release!: () => void;
    r.src.inject({ fault: { gate: new Promise<void>((resolve) => (release = resolve)) } });
    const readers = Array.from({ length: 64 }, (_, i) => {
      const indexes = [i % 7, (i % 7) + 1];
      return r.fetcher.getChunks(r.layer, r.refs('f', indexes)).then((parts) => ({ indexes, parts }));
    });
    await new Promise((resolve) => setImmediate(resolve));
    release();
    for (const { indexes, parts } of await Promise.all(readers)) {
      t.same(parts.map((p) => Buffer.from(p)), indexes.map((i) => want[i]));
    }
    // The recording source fails the test on any byte read twice; what remains is how many requests.
    t.ok(r.src.requests <= 8, `${r.src.requests} requests for 8 chunks`);
    t.equal(r.src.bytes, r.entry('f').chunks.at(-1)!.compressedEnd - r.entry('f').chunks[0]!.compressedOffset);
  });
});

t.test('adjacent chunks merge into one request; holes above the gap split it; the cap splits it', async (t) => {
  t.test('adjacent', async (t) => {
    const r = await rig(t, [{ path: 'f', content: noise(20_000, 2), chunkSize: 1000 }]);
    const parts = await r.fetcher.getChunks(r.layer, r.refs('f'));
    t.equal(parts.length, 20);
    t.equal(r.src.requests, 1);
    const chunks = r.entry('f').chunks;
    t.same(r.src.reads[0], { start: chunks[0]!.compressedOffset, end: chunks.at(-1)!.compressedEnd });
  });
  t.test('several files, small holes', async (t) => {
    const files = [0, 1, 2, 3].map((i) => ({ path: `d/f${i}`, content: noise(3000, 10 + i), junkAfter: 100 }));
    const r = await rig(t, files, { mergeGapBytes: 4096 });
    await r.fetcher.getChunks(r.layer, files.flatMap((f) => r.refs(f.path)));
    t.equal(r.src.requests, 1, 'holes below mergeGapBytes are read through');
  });
  t.test('large holes', async (t) => {
    const files = [0, 1, 2].map((i) => ({ path: `d/f${i}`, content: noise(3000, 20 + i), junkAfter: 10_000 }));
    const r = await rig(t, files, { mergeGapBytes: 4096 });
    await r.fetcher.getChunks(r.layer, files.flatMap((f) => r.refs(f.path)));
    t.equal(r.src.requests, 3, 'one request per file');
  });
  t.test('cap', async (t) => {
    const r = await rig(t, [{ path: 'f', content: noise(40_000, 3), chunkSize: 1000 }], { maxRequestBytes: 10_100 });
    await r.fetcher.getChunks(r.layer, r.refs('f'));
    t.ok(r.src.requests >= 4, `${r.src.requests} requests`);
    for (const read of r.src.reads) t.ok(read.end - read.start <= 10_100);
  });
});

t.test('refetches nothing after a verified fill: memory, then disk after a restart', async (t) => {
  const content = noise(5000, 4);
  const cacheDir = tempDir(t, 'refill');
  const r = await rig(t, [{ path: 'f', content, chunkSize: 2000 }], {}, cacheDir);
  const first = await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.equal(r.src.requests, 1);
  const again = await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.same(Buffer.concat(again), content);
  t.equal(r.src.requests, 1, 'served from memory');
  t.equal(r.fetcher.stats().bytesFromMemory, 5000);
  t.same(Buffer.concat(first), content);
  await r.fetcher.close(); // waits for the disk writes

  const memory = new MemoryChunkStore({ maxBytes: 1 << 20 });
  const disk = await openDiskStore({ dir: cacheDir, maxBytes: 1 << 30 });
  t.teardown(() => disk.close());
  const fetcher = new ChunkFetcher({ memory, disk });
  const parts = await fetcher.getChunks(r.layer, r.refs('f'));
  t.same(Buffer.concat(parts), content);
  t.equal(r.src.requests, 1, 'served from disk');
  t.equal(fetcher.stats().bytesFromDisk, 5000);
  await fetcher.getChunks(r.layer, r.refs('f'));
  t.equal(fetcher.stats().bytesFromMemory, 5000, 'disk hits were copied to memory');

  // A reader that uses part of each chunk is counted for that part only.
  await fetcher.getChunks(r.layer, r.refs('f').map((ref) => ({ ...ref, used: 10 })));
  t.equal(fetcher.stats().bytesFromMemory, 5000 + 3 * 10, 'partial reads count the bytes they use');
});

t.test('disk writes wait for a pause in the fetches (write-behind.ts); what waits is served without a request', async (t) => {
  const content = noise(5000, 5);
  const r = await rig(t, [{ path: 'f', content, chunkSize: 2000 }], { diskWrites: { quietMs: 60_000 } });
  await r.fetcher.getChunks(r.layer, r.refs('f'));
  const digests = r.entry('f').chunks.map((c) => c.digest);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(r.fetcher.pendingDiskWrites(), { chunks: 3, bytes: 5000 }, 'a fetch just went to the source: nothing written yet');
  for (const d of digests) t.equal(await r.disk.has(d), false);

  // Evicted from memory before its write: the queue still has it, and no byte is fetched again.
  for (const d of digests) await r.memory.delete(d);
  const again = await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.same(Buffer.concat(again), content);
  t.equal(r.src.requests, 1, 'served from the write queue');
  t.equal(await r.memory.has(digests[0]!), true, 'and back in memory');

  await r.fetcher.flushDiskWrites();
  t.same(r.fetcher.pendingDiskWrites(), { chunks: 0, bytes: 0 });
  for (const d of digests) t.equal(await r.disk.has(d), true, 'on disk after the flush');
});

t.test('close writes what waits for the disk', async (t) => {
  const content = noise(3000, 6);
  const r = await rig(t, [{ path: 'f', content, chunkSize: 1000 }], { diskWrites: { quietMs: 60_000 } });
  await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.equal(r.fetcher.pendingDiskWrites().chunks, 3);
  await r.fetcher.close();
  for (const c of r.entry('f').chunks) t.equal(await r.disk.has(c.digest), true);
});

t.test('a failed verification fills no cache; retried once uncached, then BAD_DATA naming layer, file and chunk', async (t) => {
  const content = noise(3000, 5);
  const r = await rig(t, [{ path: 'dir/file', content, chunkSize: 1000 }]);
  const target = r.entry('dir/file').chunks[1]!;
  r.src.allowRefetch = true;
  r.src.inject({ fault: { corruptAt: target.compressedOffset + 20 } });
  const fails = recordChannels(t, 'tocfs:verify:fail');
  const err = await r.fetcher.getChunks(r.layer, r.refs('dir/file', [1])).catch((e: unknown) => e);
  t.ok(err instanceof TocfsError && err.code === 'BAD_DATA', `BAD_DATA: ${String(err)}`);
  const msg = (err as Error).message;
  t.match(msg, r.src.id);
  t.match(msg, 'dir/file');
  t.match(msg, 'chunk 1');
  t.match(msg, `file offset ${target.fileOffset}`);
  t.equal(r.src.requests, 2, 'fetched twice: once, then once more bypassing everything');
  t.equal(fails.length, 2);
  t.match(fails[0], { layer: r.src.id, path: 'dir/file', chunk: 1, attempt: 1 });
  t.equal(await r.memory.has(target.digest), false, 'nothing in memory');
  await r.fetcher.close();
  t.equal(await r.disk.has(target.digest), false, 'nothing on disk');
  t.equal(r.fetcher.stats().verifyFailures, 2);
});

t.test('a corruption that does not repeat is cured by the retry', async (t) => {
  const content = noise(3000, 6);
  const r = await rig(t, [{ path: 'f', content }]);
  const c = r.entry('f').chunks[0]!;
  r.src.allowRefetch = true;
  r.src.inject({ fault: { corruptAt: c.compressedEnd - 3 }, times: 1 });
  const [bytes] = await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.same(Buffer.from(bytes!), content);
  t.equal(r.src.requests, 2);
  t.equal(r.fetcher.stats().retries, 1);
  t.equal(await r.memory.has(c.digest), true, 'the verified retry is cached');
});

t.test('a digest mismatch (bytes decode, but wrong) is BAD_DATA too', async (t) => {
  const content = noise(1000, 7);
  const r = await rig(t, [{ path: 'f', content }]);
  const e = r.entry('f');
  // A TOC whose digest disagrees with the bytes: decoding succeeds, verification must catch it.
  const lying: TocEntry = { ...e, chunks: [{ ...e.chunks[0]!, digest: `sha256:${'0'.repeat(64)}` }] };
  r.src.allowRefetch = true;
  const err = await r.fetcher.getChunks(r.layer, [{ entry: lying, index: 0 }]).catch((x: unknown) => x);
  t.ok(err instanceof DigestMismatchError, String(err));
  t.equal(r.src.requests, 2);
  t.equal(r.memory.stats().entries, 0);
});

t.test('a source error is not memoised', async (t) => {
  const content = noise(2000, 8);
  const r = await rig(t, [{ path: 'f', content }]);
  r.src.allowRefetch = true;
  r.src.inject({ fault: { error: new TocfsError('SOURCE_UNAVAILABLE', 'registry down') }, times: 1 });
  await t.rejects(r.fetcher.getChunks(r.layer, r.refs('f')), { code: 'SOURCE_UNAVAILABLE' });
  t.equal(r.src.requests, 1, 'no retry of a source error here (the client retries)');
  const [bytes] = await r.fetcher.getChunks(r.layer, r.refs('f'));
  t.same(Buffer.from(bytes!), content, 'the next read fetches again');
});

t.test('zeros chunks are never fetched', async (t) => {
  const content = Buffer.concat([noise(1000, 9), Buffer.alloc(2000), noise(1000, 10)]);
  const r = await rig(t, [{ path: 'sparse', content, chunkSize: 1000, zeroChunks: [1, 2] }]);
  const zeros = await r.fetcher.getChunks(r.layer, r.refs('sparse', [1, 2]));
  t.same(Buffer.concat(zeros), Buffer.alloc(2000));
  t.equal(r.src.requests, 0);
  const layer = r.verified();
  t.same(Buffer.from(await layer.read('sparse', 500, 3000)), content.subarray(500, 3500));
});

t.test('chunks without a digest: the whole file is read and verified by the file digest', async (t) => {
  const content = noise(5000, 11);
  const r = await rig(t, [
    { path: 'nodigest', content, chunkSize: 1000, noChunkDigest: true },
    { path: 'unverifiable', content: noise(3000, 12), chunkSize: 1000, noChunkDigest: true, noDigest: true },
  ]);
  const layer = r.verified();
  t.same(Buffer.from(await layer.read('nodigest', 2500, 100)), content.subarray(2500, 2600));
  t.equal(r.src.requests, 1, 'one request for the whole file');
  t.same(Buffer.from(await layer.read('nodigest', 0, 5000)), content, 'then cached under the file digest');
  t.equal(r.src.requests, 1);
  await t.rejects(layer.read('unverifiable', 0, 10), { code: 'BAD_DATA', message: /cannot be verified/ });
  t.equal(r.src.requests, 1, 'an unverifiable read fetches nothing');
});

t.test('an aborted reader stops waiting; the fetch it shared goes on for the others', async (t) => {
  const content = noise(2000, 13);
  const r = await rig(t, [{ path: 'f', content }]);
  let release!: () => void;
  r.src.inject({ fault: { gate: new Promise<void>((resolve) => (release = resolve)) } });
  const ac = new AbortController();
  const quitter = r.fetcher.getChunks(r.layer, r.refs('f'), ac.signal);
  const stayer = r.fetcher.getChunks(r.layer, r.refs('f'));
  ac.abort();
  await t.rejects(quitter, { code: 'ABORTED' });
  release();
  t.same(Buffer.from((await stayer)[0]!), content);
  t.equal(r.src.requests, 1);
});

t.test('VerifiedLayer.read returns exactly the bytes asked for, for a grid of (offset, length)', async (t) => {
  const cs = 64;
  const files = [
    { path: 'big', content: noise(cs * 5 + 17, 14), chunkSize: cs },
    { path: 'exact', content: noise(cs * 3, 15), chunkSize: cs },
    { path: 'small', content: noise(10, 16) },
    { path: 'empty', content: Buffer.alloc(0) },
  ];
  const r = await rig(t, files);
  r.src.allowRefetch = false;
  const layer = r.verified();
  for (const f of files) {
    const size = f.content.length;
    const offsets = [...new Set([0, 1, cs - 1, cs, cs + 1, 2 * cs, size - 1, size, size + 1, size + 1000].filter((o) => o >= 0))];
    const lengths = [0, 1, cs - 1, cs, cs + 1, 3 * cs, size, size + 100];
    for (const off of offsets) {
      for (const len of lengths) {
        const got = await layer.read(f.path, off, len);
        const want = f.content.subarray(Math.min(off, size), Math.min(size, off + len));
        if (!Buffer.from(got).equals(want)) t.fail(`${f.path} [${off}, +${len}): ${got.length} bytes, want ${want.length}`);
      }
    }
    t.pass(`${f.path}: ${offsets.length * lengths.length} reads exact`);
  }
  t.same(Buffer.from(await layer.read('/big', 0, 5)), files[0]!.content.subarray(0, 5), 'leading slash accepted');
  await t.rejects(layer.read('nope', 0, 1), { code: 'NOT_FOUND' });
  await t.rejects(layer.read('', 0, 1), { code: 'FORMAT' }, 'the root is not a file');
  await t.rejects(layer.read('big', -1, 1), { code: 'INVALID_OPTION' });
});

t.test('a read inside one chunk is a view of the cached chunk; across chunks, a fresh copy', async (t) => {
  const cs = 4096;
  const content = noise(cs * 3, 17);
  const r = await rig(t, [{ path: 'f', content, chunkSize: cs }]);
  const layer = r.verified();
  await layer.read('f', 0, 1); // fills the memory cache
  const a = await layer.read('f', 10, 100);
  const b = await layer.read('f', 200, 100);
  t.equal(a.buffer, b.buffer, 'two reads of one chunk share the cached bytes (no copy per read)');
  t.same(Buffer.from(a), content.subarray(10, 110));
  const across = await layer.read('f', cs - 10, 20);
  t.not(across.buffer, a.buffer, 'a read across two chunks is assembled in its own buffer');
  t.same(Buffer.from(across), content.subarray(cs - 10, cs + 10));
});

t.test('a chunk whose bytes are in is served before the rest of its request arrives', async (t) => {
  const a = noise(3000, 21);
  const b = noise(3000, 22);
  const fb = buildFakeBlob([{ path: 'a', content: a }, { path: 'b', content: b }]);
  const entryA = fb.index.lookup('a')!;
  const entryB = fb.index.lookup('b')!;
  const gate = deferred<void>();
  const src = recordingSource(t, fb.blob);
  src.inject({ fault: { headEnd: entryA.chunks[0]!.compressedEnd, gate: gate.promise } });
  const fetcher = new ChunkFetcher({ memory: new MemoryChunkStore({ maxBytes: 1 << 20 }) });
  t.teardown(() => fetcher.close());
  const layer: ChunkLayer = { digest: src.id, source: src, codec: fakeCodec, fetched: { requests: 0, bytesFetched: 0, bytesFromMemory: 0, bytesFromDisk: 0 } };
  // b rides along as read-ahead: one request for both.
  const [got] = await fetcher.getChunks(layer, [{ entry: entryA, index: 0 }], undefined, { readAhead: [{ entry: entryB, index: 0 }] });
  t.equal(src.reads.length, 1, 'one request for a and b');
  t.same(Buffer.from(got!), a, 'a served while the request is still open');
  t.equal(layer.fetched!.requests, 1, 'the request counts as soon as bytes come');
  gate.resolve();
  const [gotB] = await fetcher.getChunks(layer, [{ entry: entryB, index: 0 }]);
  t.same(Buffer.from(gotB!), b);
  t.equal(src.reads.length, 1, 'b came with the same request');
  t.equal(layer.fetched!.bytesFetched, src.reads[0]!.end - src.reads[0]!.start, 'every byte counted once');
});

t.test('a large read sends its on-miss fetches once it has its own bytes; a small one at once', async (t) => {
  const big = noise(1 << 20, 23);
  const small = noise(2000, 24);
  const rest = noise(3000, 25);
  const fb = buildFakeBlob([{ path: 'big', content: big }, { path: 'small', content: small }, { path: 'rest', content: rest }]);
  for (const [path, waits] of [['big', true], ['small', false]] as const) {
    const gate = deferred<void>();
    const src = recordingSource(t, fb.blob);
    src.inject({ fault: { gate: gate.promise } });
    const fetcher = new ChunkFetcher({ memory: new MemoryChunkStore({ maxBytes: 8 << 20 }), mergeGapBytes: 0 });
    t.teardown(() => fetcher.close());
    const layer: ChunkLayer = { digest: src.id, source: src, codec: fakeCodec };
    const reading = fetcher.getChunks(layer, [{ entry: fb.index.lookup(path)!, index: 0 }], undefined, { onMiss: [{ entry: fb.index.lookup('rest')!, index: 0 }] });
    await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(src.reads.length, waits ? 1 : 2, `${path}: ${waits ? 'only its own request while it waits' : 'the on-miss request goes out with it'}`);
    gate.resolve();
    await reading;
    await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(src.reads.length, 2, `${path}: the on-miss request was sent`);
  }
});

t.test('background reads made together share requests; a guess reads no large hole through, nor waits for a large unit', async (t) => {
  const near = [0, 1, 2, 3].map((i) => ({ path: `d/f${i}`, content: noise(3000, 30 + i), junkAfter: 100 }));
  const gathered = async (files: FakeFile[], gather: boolean): Promise<RecordingSource> => {
    const r = await rig(t, files);
    await Promise.all(files.map((f) => r.fetcher.getChunks(r.layer, r.refs(f.path), undefined, { gather })));
    return r.src;
  };
  t.equal((await gathered(near, true)).requests, 1, 'four prefetched files a few bytes apart: one request');
  t.equal((await gathered(near, false)).requests, 4, 'four reads of a workload: each sent at once, on its own');
  const far = [0, 1, 2].map((i) => ({ path: `e/f${i}`, content: noise(3000, 40 + i), junkAfter: 10_000 }));
  t.equal((await gathered(far, true)).requests, 3, '10 kB holes are not read through for a guess (the workload\'s gap is 64 KiB)');
  const withLarge = [...near, { path: 'd/large', content: noise(300 << 10, 50), chunkSize: 300 << 10 }];
  const src = await gathered(withLarge, true);
  t.equal(src.requests, 2, 'a unit over 256 KiB goes on its own; the small ones together');
});
