// ZranIndexer (src/layers/zran/zran.ts over native/src/indexer.cc): the bytes it inflates equal gunzip's, its
// checkpoints sit where zran puts them (the first right after the gzip header, then past every span), the
// totals run on across gzip members, and broken input gives a FormatError, never a crash.
import t from 'tap';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FormatError } from '../../../src/errors.js';
import { ZRAN_WINDOW_SIZE, ZranIndexer } from '../../../src/layers/zran/zran.js';
import { corpus, indexBlob, textBytes } from './blobs.js';

const blobs = corpus();

for (const span of [1024, 64 << 10]) {
  t.test(`span ${span}: output, checkpoints and totals of every blob`, async (t) => {
    for (const blob of blobs) {
      const index = await indexBlob(blob.gz, span, 100_000);
      t.ok(index.out.equals(gunzipSync(blob.gz)), `${blob.name}: output equals gunzip`);
      t.ok(index.out.equals(blob.plain), `${blob.name}: output equals the data`);
      t.equal(index.totalIn, blob.gz.length, `${blob.name}: every compressed byte read`);
      t.equal(index.totalOut, blob.plain.length, `${blob.name}: totals across members`);
      t.equal(index.members, blob.boundaries.length + 1, `${blob.name}: members counted`);
      const [first] = index.checkpoints;
      t.equal(first?.out, 0, `${blob.name}: the first checkpoint is at out 0`);
      t.equal(first?.bits, 0, `${blob.name}: ... on a byte boundary`);
      t.ok(first && first.in >= 10 && first.in < 100, `${blob.name}: ... right after the gzip header (${first?.in})`);
      let ok = true;
      for (let i = 1; i < index.checkpoints.length; i++) {
        const [a, b] = [index.checkpoints[i - 1]!, index.checkpoints[i]!];
        if (!(b.in > a.in && b.out - a.out > span && b.bits >= 0 && b.bits <= 7)) ok = false;
      }
      t.ok(ok, `${blob.name}: checkpoints ascend, more than a span apart`);
      const windowsRight = index.checkpoints.every((cp) => {
        const before = blob.plain.subarray(Math.max(0, cp.out - ZRAN_WINDOW_SIZE), cp.out);
        const w = Buffer.from(cp.window);
        return w.length === ZRAN_WINDOW_SIZE && w.subarray(ZRAN_WINDOW_SIZE - before.length).equals(before);
      });
      t.ok(windowsRight, `${blob.name}: every window is the 32 KiB before its out`);
    }
  });
}

t.test('checkpoints with leftover bits (bits != 0) occur, and spans cross member boundaries', async (t) => {
  let withBits = 0;
  let crossing = 0;
  for (const blob of blobs) {
    const { checkpoints } = await indexBlob(blob.gz, 1024);
    withBits += checkpoints.filter((cp) => cp.bits !== 0).length;
    for (const boundary of blob.boundaries) {
      const i = checkpoints.findIndex((cp, k) => cp.in < boundary && (checkpoints[k + 1]?.in ?? Infinity) > boundary);
      if (i >= 0) crossing++;
    }
  }
  t.ok(withBits > 20, `${withBits} checkpoints with bits != 0`);
  t.ok(crossing > 10, `${crossing} member boundaries inside a span`);
});

t.test('the checkpoints do not depend on how the blob is cut into chunks', async (t) => {
  const blob = blobs[7]!;
  const whole = await indexBlob(blob.gz, 4096, blob.gz.length);
  for (const chunk of [1, 7, 511, 65536]) {
    const gz = chunk === 1 ? blob.gz.subarray(0, 40_000) : blob.gz;
    const cut = await indexBlob(gz, 4096, chunk).catch((err: unknown) => err);
    if (chunk === 1) {
      t.type(cut, FormatError, 'a prefix of the blob ends inside a member');
      continue;
    }
    const c = cut as Awaited<ReturnType<typeof indexBlob>>;
    t.same(
      c.checkpoints.map((cp) => [cp.in, cp.out, cp.bits, Buffer.from(cp.window).toString('base64')]),
      whole.checkpoints.map((cp) => [cp.in, cp.out, cp.bits, Buffer.from(cp.window).toString('base64')]),
      `chunks of ${chunk} bytes`,
    );
  }
  // One-byte pushes of a whole small blob.
  const small = gzipSync(textBytes(50, 60_000), { level: 6 });
  const bytewise = await indexBlob(small, 1024, 1);
  const at = await indexBlob(small, 1024);
  t.same(bytewise.checkpoints.map((cp) => [cp.in, cp.out, cp.bits]), at.checkpoints.map((cp) => [cp.in, cp.out, cp.bits]), '1-byte chunks');
  t.ok(bytewise.out.equals(textBytes(50, 60_000)));
});

t.test('truncated, corrupt, empty and trailing-garbage blobs fail with a FormatError', async (t) => {
  const gz = gzipSync(textBytes(60, 200_000), { level: 6 });
  await t.rejects(indexBlob(gz.subarray(0, gz.length - 1), 4096), FormatError, 'one byte short (inside the trailer)');
  await t.rejects(indexBlob(gz.subarray(0, gz.length >> 1), 4096), /truncated inside member 1/, 'half a blob');
  await t.rejects(indexBlob(Buffer.alloc(0), 4096), /no gzip data/, 'nothing');
  await t.rejects(indexBlob(Buffer.concat([gz, Buffer.from('garbage!')]), 4096), /bad gzip data in member 2/, 'trailing garbage');
  const flipped = Buffer.from(gz);
  flipped[gz.length >> 1] = flipped[gz.length >> 1]! ^ 0x55;
  await t.rejects(indexBlob(flipped, 4096), FormatError, 'a flipped byte (structure or CRC-32)');
  await t.rejects(indexBlob(Buffer.from('not gzip at all'), 4096), /incorrect header check/, 'no gzip magic');

  const indexer = new ZranIndexer(4096);
  await t.rejects(indexer.push(flipped), FormatError);
  await t.rejects(indexer.push(gz), FormatError, 'a failed indexer stays failed');
  t.throws(() => indexer.end(), FormatError);
});

t.test('one push at a time; bad arguments are refused', async (t) => {
  const gz = gzipSync(textBytes(70, 100_000));
  const indexer = new ZranIndexer(4096);
  const first = indexer.push(gz);
  await t.rejects(indexer.push(gz), /has not settled/);
  await first;
  t.same(indexer.end(), { totalIn: gz.length, totalOut: 100_000, members: 1, checkpoints: indexer.checkpoints });
  await t.rejects(indexer.push(gz), /ended/, 'no push after end');
  t.throws(() => new ZranIndexer(0), RangeError);
  t.throws(() => new ZranIndexer(1.5), RangeError);
  await t.rejects(new ZranIndexer(4096).push('gz' as unknown as Uint8Array), /Uint8Array/);
});

t.test('seeded mutations never crash: each resolves or fails with a FormatError', async (t) => {
  const gz = gzipSync(textBytes(80, 30_000), { level: 9 });
  let failures = 0;
  let seed = 12345;
  for (let k = 0; k < 150; k++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const mutated = Buffer.from(gz);
    for (let m = 0; m < 1 + (seed % 4); m++) {
      const at = (seed >>> (m * 3)) % gz.length;
      mutated[at] = mutated[at]! ^ (1 + (seed % 255));
    }
    const result = await indexBlob(mutated, 1024, 4096).catch((err: unknown) => err);
    if (result instanceof Error) {
      failures++;
      if (!(result instanceof FormatError)) t.fail(`mutation ${k}: ${String(result)}`);
    }
  }
  t.ok(failures > 100, `${failures} of 150 mutations detected`);
});
