// zstd spans off the JS thread: the worker pool's bounded decompression equals the inline one byte for
// byte (both run zstdDecompressBounded; this pins the worker's wiring), bad spans are BAD_DATA with the
// same reasons, small spans never leave the thread, and a closed pool refuses work.
import t from 'tap';
import { compress } from 'zstd-napi';
import { zstdChunkedCodec } from '../../../src/formats/zstd/codec.js';
import { zstdDecompressBounded } from '../../../src/formats/zstd/decompress.js';
import { offloadLargeSpans, ZstdWorkerPool } from '../../../src/layers/fetch/zstd-offload.js';
import { estargzCodec } from '../../../src/formats/estargz/codec.js';

function data(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x >>> 24) % 17; // compressible, not trivial
  }
  return out;
}

t.test('worker output equals inline output, for whole spans and for bounded prefixes', async (t) => {
  const pool = new ZstdWorkerPool({ size: 2 });
  t.teardown(() => pool.close());
  const big = Buffer.concat([compress(data(3 << 20, 1)), compress(data(1 << 20, 2))]);
  for (const max of [1, 4096, 1 << 20, 4 << 20, 80 << 20]) {
    const viaWorker = Buffer.from(await pool.decompress(big, max));
    t.ok(viaWorker.equals(zstdDecompressBounded(big, max)), `max ${max}: same ${viaWorker.length} bytes`);
  }
  const parallel = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.decompress(compress(data(200_000, i + 10)), 1 << 30)));
  parallel.forEach((out, i) => t.ok(Buffer.from(out).equals(data(200_000, i + 10)), `concurrent job ${i}`));
});

t.test('bad spans: BAD_DATA naming the reason', async (t) => {
  const pool = new ZstdWorkerPool({ size: 1 });
  t.teardown(() => pool.close());
  const frame = compress(data(1 << 20, 3));
  await t.rejects(pool.decompress(frame.subarray(0, frame.length - 10), 2 << 20), { code: 'BAD_DATA', message: /truncated zstd frame/ });
  await t.rejects(pool.decompress(Buffer.alloc(100_000, 0x41), 1 << 20), { code: 'BAD_DATA', message: /does not decompress/ });
  t.ok(Buffer.from(await pool.decompress(frame, 2 << 20)).equals(data(1 << 20, 3)), 'the worker still serves after errors');
});

t.test('offloadLargeSpans: small spans inline, large ones in the pool, gzip codecs untouched', async (t) => {
  const pool = new ZstdWorkerPool({ size: 1 });
  t.teardown(() => pool.close());
  t.equal(offloadLargeSpans(estargzCodec, pool), estargzCodec);
  const codec = offloadLargeSpans(zstdChunkedCodec, pool);
  t.equal(codec.format, 'zstd-chunked');
  let posted = 0;
  const original = pool.decompress.bind(pool);
  pool.decompress = (span, max) => {
    posted++;
    return original(span, max);
  };
  t.ok(Buffer.from(await codec.decompressSpan(compress(Buffer.from('small')), 1 << 30)).equals(Buffer.from('small')));
  t.equal(posted, 0, 'a small span stays on the thread');
  const zeros = compress(Buffer.alloc(8 << 20)); // tiny span, large output
  t.equal((await codec.decompressSpan(zeros, 80 << 20)).length, 8 << 20);
  t.equal(posted, 1, 'a span that inflates past the inline cap goes to a worker');
  await t.rejects(codec.decompressSpan(Buffer.from('junk that is not zstd'), 100), { code: 'BAD_DATA' });
});

t.test('a closed pool refuses work', async (t) => {
  const pool = new ZstdWorkerPool({ size: 1 });
  await pool.close();
  await t.rejects(pool.decompress(compress(Buffer.from('x')), 10), { code: 'ABORTED' });
});
