// extract (src/layers/zran/zran.ts over native/src/extract.cc): from every checkpoint the indexer takes,
// the span's bytes inflate to exactly the blob's bytes there, across gzip member boundaries; random ranges
// read through the index equal gunzip's; corrupt and truncated spans fail with a FormatError, never a crash.
import t from 'tap';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FormatError } from '../../../src/errors.js';
import { extract, ZRAN_WINDOW_SIZE, zranAddon } from '../../../src/layers/zran/zran.js';
import { xorshift32 } from '../../support/prng.js';
import { blobOf, commandGzip, corpus, indexBlob, nodeGzip, readRange, spanBytes, textBytes } from './blobs.js';

const blobs = corpus();

for (const span of [1024, 64 << 10]) {
  t.test(`span ${span}: every span extracts to the blob's bytes`, async (t) => {
    let withBits = 0;
    for (const blob of blobs) {
      const plain = gunzipSync(blob.gz);
      const { checkpoints } = await indexBlob(blob.gz, span);
      let wrong = 0;
      for (let i = 0; i < checkpoints.length; i++) {
        const cp = checkpoints[i]!;
        const end = checkpoints[i + 1]?.out ?? plain.length;
        // Ask for more than the span holds: the span's end is a clean end, so the result is just shorter.
        const got = await extract(spanBytes(blob.gz, checkpoints, i), cp, 0, end - cp.out + 1000);
        if (!got.equals(plain.subarray(cp.out, end))) wrong++;
        if (cp.bits !== 0) withBits++;
      }
      t.equal(wrong, 0, `${blob.name}: ${checkpoints.length} spans`);
    }
    t.ok(withBits > 0, `${withBits} of the spans started with leftover bits (inflatePrime)`);
  });
}

t.test('random ranges read through the index equal gunzip', async (t) => {
  const next = xorshift32(99);
  for (const blob of blobs) {
    const plain = gunzipSync(blob.gz);
    const { checkpoints } = await indexBlob(blob.gz, 8192);
    let wrong = 0;
    for (let k = 0; k < 60; k++) {
      const offset = next() % (plain.length + 100);
      const length = [0, 1, 100, 4096, 40_000, 200_000][k % 6]!;
      const got = await readRange(blob.gz, checkpoints, offset, length);
      if (!got.equals(plain.subarray(offset, offset + length))) wrong++;
    }
    t.equal(wrong, 0, `${blob.name}: 60 ranges, past the end included`);
  }
});

t.test('exactly length bytes; fewer only at the end of the data', async (t) => {
  const blob = blobs[7]!; // multi-member
  const plain = gunzipSync(blob.gz);
  const { checkpoints } = await indexBlob(blob.gz, 16384);
  const last = checkpoints.length - 1;
  const cp = checkpoints[3]!;
  const from = cp.in - (cp.bits ? 1 : 0);
  const got = await extract(blob.gz.subarray(from), cp, 5, 10_000);
  t.equal(got.length, 10_000, 'the length asked');
  t.ok(got.equals(plain.subarray(cp.out + 5, cp.out + 5 + 10_000)));
  const rest = await extract(blob.gz.subarray(from), cp, 0, plain.length);
  t.ok(rest.equals(plain.subarray(cp.out)), 'from a checkpoint to the end of the last member, across members');
  const tail = await extract(spanBytes(blob.gz, checkpoints, last), checkpoints[last]!, 0, 2 ** 32);
  t.equal(tail.length, plain.length - checkpoints[last]!.out, 'the last span: shorter at the true end');
  t.equal((await extract(spanBytes(blob.gz, checkpoints, 0), checkpoints[0]!, 0, 0)).length, 0, 'length 0');
  const past = await extract(spanBytes(blob.gz, checkpoints, 1), checkpoints[1]!, 10 ** 9, 10);
  t.equal(past.length, 0, 'a skip past the span gives nothing');
});

t.test('a member boundary inside a span: trailer and next header skipped, window emptied', async (t) => {
  // One span over three members: the first read raw from the checkpoint, the others in gzip mode.
  const text = textBytes(7, 60_000);
  const blob = blobOf('boundary', [commandGzip(textBytes(8, 50_000), 6), nodeGzip(text, 9), nodeGzip(text, 1)]);
  const { checkpoints } = await indexBlob(blob.gz, 1 << 20);
  t.equal(checkpoints.length, 1, 'one span over three members');
  t.ok((await extract(blob.gz.subarray(checkpoints[0]!.in), checkpoints[0]!, 0, 1 << 20)).equals(blob.plain));
  const cut = blob.gz.subarray(checkpoints[0]!.in, blob.boundaries[0]! - 4);
  await t.rejects(extract(cut, checkpoints[0]!, 0, 1 << 20), /inside a gzip trailer/);
  for (const end of [6, 12]) {
    const cutAt = blob.gz.subarray(checkpoints[0]!.in, blob.boundaries[0]! + end);
    await t.rejects(extract(cutAt, checkpoints[0]!, 0, 1 << 20), /truncated/, `bytes that end ${end} bytes into the next member`);
  }
  const garbage = Buffer.concat([blob.gz.subarray(checkpoints[0]!.in, blob.boundaries[0]!), Buffer.from('not a gzip header')]);
  await t.rejects(extract(garbage, checkpoints[0]!, 0, 1 << 20), /incorrect header check/);
});

t.test('corrupt and truncated spans fail with a FormatError', async (t) => {
  const gz = gzipSync(textBytes(20, 300_000), { level: 6 });
  const { checkpoints } = await indexBlob(gz, 16384);
  const i = checkpoints.findIndex((cp) => cp.bits !== 0);
  t.ok(i > 0, 'a span with leftover bits');
  const span = spanBytes(gz, checkpoints, i);
  const cp = checkpoints[i]!;
  await t.rejects(extract(Buffer.alloc(span.length, 0xff), cp, 0, 1 << 20), /invalid block type/, 'all ones: block type 3');
  await t.rejects(extract(span.subarray(0, span.length - 1), cp, 0, 1 << 20), FormatError, 'one byte short');
  await t.rejects(extract(span.subarray(0, span.length >> 1), cp, 0, 1 << 20), /truncated/, 'half a span');
  const wrongWindow = { bits: cp.bits, window: Buffer.alloc(ZRAN_WINDOW_SIZE, 0x41) };
  const got = await extract(span, wrongWindow, 0, 1 << 20).catch((err: unknown) => err);
  t.ok(got instanceof FormatError || (Buffer.isBuffer(got) && !got.equals(gunzipSync(gz).subarray(cp.out, checkpoints[i + 1]!.out))), 'a wrong window never gives the right bytes');

  let failures = 0;
  const next = xorshift32(7);
  for (let k = 0; k < 200; k++) {
    const mutated = Buffer.from(span);
    for (let m = 0; m < 1 + (k % 3); m++) {
      const at = next() % mutated.length;
      mutated[at] = mutated[at]! ^ (1 + (next() % 255));
    }
    const result = await extract(mutated, cp, 0, 1 << 20).catch((err: unknown) => err);
    if (result instanceof Error) {
      failures++;
      if (!(result instanceof FormatError)) t.fail(`mutation ${k}: ${String(result)}`);
    }
  }
  t.ok(failures > 0, `${failures} of 200 mutated spans rejected, the others inflated to something`);
});

t.test('bad arguments are refused: window size, bits, counts', async (t) => {
  const span = Buffer.from([0x02, 0x00]); // an empty fixed-Huffman block, not the last
  const window = Buffer.alloc(ZRAN_WINDOW_SIZE);
  await t.rejects(extract(span, { bits: 0, window: Buffer.alloc(ZRAN_WINDOW_SIZE - 1) }, 0, 10), RangeError, 'a short window');
  await t.rejects(extract(span, { bits: 0, window: Buffer.alloc(ZRAN_WINDOW_SIZE + 1) }, 0, 10), RangeError, 'a long window');
  await t.rejects(extract(span, { bits: 8, window }, 0, 10), RangeError);
  await t.rejects(extract(span, { bits: 0, window }, -1, 10), RangeError);
  await t.rejects(extract(span, { bits: 0, window }, 0, 2 ** 32 + 1), RangeError);
  await t.rejects(extract(Buffer.alloc(0), { bits: 3, window }, 0, 10), RangeError, 'bits without the byte before in');
  t.same(await extract(span, { bits: 0, window }, 0, 10), Buffer.alloc(0), 'an empty final block');
  // The addon checks too, synchronously, whoever calls it.
  const addon = zranAddon();
  t.throws(() => addon.extract(span, 0, Buffer.alloc(100), 0, 10), /32768/);
  t.throws(() => addon.extract(span, 9, window, 0, 10), /bits/);
  t.throws(() => addon.extract('x' as unknown as Uint8Array, 0, window, 0, 10), /Uint8Array/);
});
