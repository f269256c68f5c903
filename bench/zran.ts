// zran on a layer-shaped plain gzip blob, variants interleaved in one run (shared, noisy machine: only the
// ratios count):
// - indexing: the ZranIndexer addon fed 256 KiB chunks (checkpoints every 4 MiB, windows copied, output
//   handed back as Buffers) vs Node's zlib.gunzip of the whole blob and vs a Gunzip stream fed the same
//   chunks, in MB/s of uncompressed output; plus the JS thread's longest stall while the indexer runs;
// - extraction of one 4 MiB span (a checkpoint with leftover bits): the addon (inflatePrime, AsyncWorker)
//   vs pure JS with Node's zlib, which has no inflatePrime: shift the span's bits into byte alignment, then
//   inflateRaw with `dictionary: window`, synchronously and asynchronously.
//
//   npx tsx bench/zran.ts            (prints markdown rows for bench/RESULTS.md)
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { extract, ZranIndexer, zranAddon, type ZranCheckpoint } from '../src/layers/zran/zran.js';
import { indexBlob, mixedBytes } from '../test/layers/zran/blobs.js';
import { median, spread } from './lib/micro.js';

const RUNS = 7;
const CHUNK = 256 << 10;
const SPAN = 4 << 20;
const MB = 1e6;

const gunzip = (gz: Buffer): Promise<Buffer> => promisify(zlib.gunzip)(gz, { chunkSize: 1 << 20 });
const inflateRaw = promisify<zlib.InputType, zlib.ZlibOptions, Buffer>(zlib.inflateRaw);

/** Shifts the span's bit stream to a byte boundary (the naive way). Wrong in general: a stored block pads to
 *  the original stream's byte boundary, which the shift moves ("invalid stored block lengths"). */
function shiftBits(span: Uint8Array, bits: number): Uint8Array {
  if (bits === 0) return span;
  const shift = 8 - bits;
  const out = Buffer.allocUnsafe(span.length);
  const last = span.length - 1;
  for (let k = 0; k < last; k++) out[k] = ((span[k]! >>> shift) | (span[k + 1]! << bits)) & 0xff;
  out[last] = span[last]! >>> shift;
  return out;
}

/** LSB-first bit writer, as deflate packs its fields. */
class BitWriter {
  readonly bytes: number[] = [];
  bitCount = 0;
  write(value: number, n: number): void {
    for (let i = 0; i < n; i++) {
      if (this.bitCount % 8 === 0) this.bytes.push(0);
      this.bytes[this.bytes.length - 1]! |= ((value >>> i) & 1) << this.bitCount % 8;
      this.bitCount++;
    }
  }
  /** A Huffman code: its most significant bit first. */
  code(code: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.write((code >>> i) & 1, 1);
  }
}

/** An empty fixed-Huffman block, not the last: 10 bits. */
function emptyFixed(w: BitWriter): void {
  w.write(0, 1);
  w.write(1, 2);
  w.code(0, 7); // end of block: fixed code 256 is 0000000
}

/** An empty dynamic block, not the last: 99 bits, an odd count. Its literal/length code has only the end of
 *  block (length 1; zlib accepts a single incomplete code), no distance codes; the code lengths are sent with
 *  the code-length code {0: 00, 1: 01, 17: 10, 18: 11}. */
function emptyDynamic(w: BitWriter): void {
  w.write(0, 1);
  w.write(2, 2);
  w.write(0, 5); // HLIT: 257 codes
  w.write(0, 5); // HDIST: 1 code
  w.write(14, 4); // HCLEN: 18 code-length code lengths, in the order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1
  for (const len of [0, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]) w.write(len, 3);
  w.code(3, 2); w.write(138 - 11, 7); // 18: 138 zeros
  w.code(3, 2); w.write(115 - 11, 7); // 18: 115 zeros
  w.code(2, 2); w.write(0, 3); // 17: 3 zeros (256 in all)
  w.code(1, 2); // length 1 for the end of block (256)
  w.code(0, 2); // length 0 for the only distance code
  w.code(0, 1); // end of block
}

/**
 * zran.c's way without inflatePrime: empty blocks in front, 10a + 99b bits long so that the span's `bits`
 * leftover bits end on a byte boundary, which keeps the rest of the span as it is (stored blocks included).
 */
function preface(span: Uint8Array, bits: number): Uint8Array {
  if (bits === 0) return span;
  const w = new BitWriter();
  const need = 8 - bits; // prefix bits modulo 8
  if (need % 2 === 1) emptyDynamic(w);
  while (w.bitCount % 8 !== need) emptyFixed(w);
  w.write(span[0]! >>> (8 - bits), bits);
  return Buffer.concat([Buffer.from(w.bytes), span.subarray(1)]);
}

function extractJsSync(span: Uint8Array, cp: ZranCheckpoint, align = preface): Buffer {
  return zlib.inflateRawSync(align(span, cp.bits), { dictionary: cp.window, finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: 1 << 20 });
}

function extractJsAsync(span: Uint8Array, cp: ZranCheckpoint): Promise<Buffer> {
  return inflateRaw(preface(span, cp.bits), { dictionary: cp.window, finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: 1 << 20 });
}

async function indexWithAddon(gz: Buffer): Promise<{ ms: number; out: number; checkpoints: ZranCheckpoint[]; stallMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = performance.now();
  const indexer = new ZranIndexer(SPAN);
  const checkpoints: ZranCheckpoint[] = [];
  let out = 0;
  for (let at = 0; at < gz.length; at += CHUNK) {
    const r = await indexer.push(gz.subarray(at, at + CHUNK));
    checkpoints.push(...r.checkpoints);
    for (const b of r.out) out += b.length;
  }
  indexer.end();
  const ms = performance.now() - start;
  delay.disable();
  return { ms, out, checkpoints, stallMs: delay.max / 1e6 };
}

async function gunzipStream(gz: Buffer, stalls: number[]): Promise<number> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = performance.now();
  const stream = zlib.createGunzip({ chunkSize: 1 << 20 });
  let out = 0;
  stream.on('data', (b: Buffer) => (out += b.length));
  const done = new Promise<void>((resolve, reject) => stream.on('end', resolve).on('error', reject));
  for (let at = 0; at < gz.length; at += CHUNK) {
    if (!stream.write(gz.subarray(at, at + CHUNK))) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
  await done;
  if (out === 0) throw new Error('no output');
  const ms = performance.now() - start;
  delay.disable();
  stalls.push(delay.max / 1e6);
  return ms;
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const row = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;

async function main(): Promise<void> {
  const plain = mixedBytes(1, 48 << 20);
  const gz = zlib.gzipSync(plain, { level: 6 });
  console.log(`blob: ${(plain.length / MB).toFixed(1)} MB of tar-like data (text, random, zero runs), gzip -6 → ${(gz.length / MB).toFixed(1)} MB; addon zlib ${zranAddon().zlibVersion}, Node zlib ${process.versions.zlib}`);

  // Indexing, interleaved.
  const rates = { addon: [] as number[], gunzip: [] as number[], stream: [] as number[] };
  const stalls: number[] = [];
  const streamStalls: number[] = [];
  let checkpoints: ZranCheckpoint[] = [];
  for (let run = 0; run < RUNS; run++) {
    const a = await indexWithAddon(gz);
    if (a.out !== plain.length) throw new Error('indexer output length differs');
    checkpoints = a.checkpoints;
    rates.addon.push(plain.length / MB / (a.ms / 1000));
    stalls.push(a.stallMs);
    rates.gunzip.push(plain.length / MB / ((await timed(() => gunzip(gz))) / 1000));
    rates.stream.push(plain.length / MB / ((await gunzipStream(gz, streamStalls)) / 1000));
  }
  const base = median(rates.gunzip);
  console.log('\n' + row(['indexing (MB/s of output, median of ' + RUNS + ')', 'MB/s', 'range', 'vs zlib.gunzip']));
  console.log(row(['---', '---', '---', '---']));
  console.log(row(['zlib.gunzip, whole blob in one call (1 MiB chunkSize)', base.toFixed(0), spread(rates.gunzip), '1.00']));
  console.log(row(['zlib Gunzip stream, 256 KiB writes', median(rates.stream).toFixed(0), spread(rates.stream), (median(rates.stream) / base).toFixed(2)]));
  console.log(row([`ZranIndexer, 256 KiB pushes, span 4 MiB (${checkpoints.length} checkpoints)`, median(rates.addon).toFixed(0), spread(rates.addon), (median(rates.addon) / base).toFixed(2)]));
  console.log(`JS thread's longest stall: ZranIndexer median ${median(stalls).toFixed(1)} ms (${spread(stalls)}), Gunzip stream ${median(streamStalls).toFixed(1)} ms (${spread(streamStalls)})`);

  // The JS preface is right wherever the addon is: every 64 KiB span of the blob, every bits value.
  const small = (await indexBlob(gz, 64 << 10)).checkpoints;
  const bitsSeen = new Set<number>();
  for (let k = 0; k < small.length; k++) {
    const c = small[k]!;
    const bytes = gz.subarray(c.in - (c.bits ? 1 : 0), small[k + 1]?.in ?? gz.length);
    const end = small[k + 1]?.out ?? plain.length;
    if (!extractJsSync(bytes, c).subarray(0, end - c.out).equals(plain.subarray(c.out, end))) throw new Error(`JS preface wrong at span ${k}`);
    bitsSeen.add(c.bits);
  }
  console.log(`\nJS preface checked on all ${small.length} spans of 64 KiB (bits seen: ${[...bitsSeen].sort().join(' ')})`);

  // Extraction of one whole 4 MiB span that starts with leftover bits.
  const i = checkpoints.findIndex((cp, k) => k > 0 && cp.bits !== 0 && k + 1 < checkpoints.length);
  const at = i >= 0 ? i : 1;
  const cp = checkpoints[at]!;
  const next = checkpoints[at + 1]!;
  const span = gz.subarray(cp.in - (cp.bits ? 1 : 0), next.in);
  const want = plain.subarray(cp.out, next.out);
  const check = (b: Buffer, what: string): void => {
    if (!b.subarray(0, want.length).equals(want)) throw new Error(`${what} inflated other bytes`);
  };
  check(await extract(span, cp, 0, want.length), 'addon');
  check(extractJsSync(span, cp), 'JS sync');
  check(await extractJsAsync(span, cp), 'JS async');
  let naive: string;
  try {
    check(extractJsSync(span, cp, shiftBits), 'JS, bits shifted');
    naive = 'right on this span';
  } catch (err) {
    naive = `fails on this span: ${(err as Error).message}`;
  }
  const ex = { addon: [] as number[], sync: [] as number[], async: [] as number[], preface: [] as number[], head: [] as number[] };
  for (let run = 0; run < RUNS * 3; run++) {
    ex.addon.push(await timed(() => extract(span, cp, 0, want.length)));
    ex.sync.push(await timed(() => extractJsSync(span, cp)));
    ex.async.push(await timed(() => extractJsAsync(span, cp)));
    ex.preface.push(await timed(() => preface(span, cp.bits)));
    ex.head.push(await timed(() => extract(span, cp, 0, 64 << 10)));
  }
  const ms = (xs: number[]): string => median(xs).toFixed(2);
  const vs = (xs: number[]): string => (median(xs) / median(ex.addon)).toFixed(2);
  console.log(`\nspan ${at}: bits ${cp.bits}, ${(span.length / MB).toFixed(2)} MB compressed → ${(want.length / MB).toFixed(2)} MB`);
  console.log(row(['extraction of one span (median of ' + RUNS * 3 + ')', 'ms', 'MB/s of output', 'vs addon']));
  console.log(row(['---', '---', '---', '---']));
  console.log(row(['addon: inflatePrime + dictionary, AsyncWorker', ms(ex.addon), (want.length / MB / (median(ex.addon) / 1000)).toFixed(0), '1.00']));
  console.log(row(['JS: empty-block preface + zlib.inflateRawSync, 1 MiB chunkSize (JS thread)', ms(ex.sync), (want.length / MB / (median(ex.sync) / 1000)).toFixed(0), vs(ex.sync)]));
  console.log(row(['JS: empty-block preface + zlib.inflateRaw, 1 MiB chunkSize (thread pool)', ms(ex.async), (want.length / MB / (median(ex.async) / 1000)).toFixed(0), vs(ex.async)]));
  console.log(row(['  of which the preface and its copy of the span (JS thread)', ms(ex.preface), '', vs(ex.preface)]));
  console.log(row(['addon, first 64 KiB of the span only (stops early)', ms(ex.head), '', vs(ex.head)]));
  console.log(`JS with the span's bits shifted instead of a preface: ${naive}`);
}

await main();
