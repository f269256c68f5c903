// Gzip blobs for the zran tests, and the reads that go with an index: data (random, compressible text, runs),
// compressed by Node's zlib and by the gzip command, single- and multi-member, and members with every optional
// header field (FEXTRA, FNAME, FCOMMENT, FHCRC).
import { execFileSync } from 'node:child_process';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { extract, ZranIndexer, type ZranCheckpoint } from '../../../src/layers/zran/zran.js';
import { xorshift32 } from '../../support/prng.js';

export function randomBytes(seed: number, length: number): Buffer {
  const next = xorshift32(seed);
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = next() & 0xff;
  return out;
}

const WORDS = ['layer', 'tar', 'usr', 'lib', 'bin', 'python3', 'site-packages', '\n', 'so.1', '0644', 'root', ' '];

/** Text from a small vocabulary with random numbers in it: compresses about 3x, in Huffman blocks. */
export function textBytes(seed: number, length: number): Buffer {
  const next = xorshift32(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const word = next() % 5 === 0 ? String(next() % 100000) : WORDS[next() % WORDS.length]!;
    parts.push(word);
    size += word.length;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

/** Compressible data mixed with incompressible stretches and long runs, like a tar of an image layer. */
export function mixedBytes(seed: number, length: number): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const part = i % 3 === 0 ? textBytes(seed + i, 50_000) : i % 3 === 1 ? randomBytes(seed + i, 20_000) : Buffer.alloc(30_000, i);
    parts.push(part);
    size += part.length;
  }
  return Buffer.concat(parts).subarray(0, length);
}

export function gzipWithCommand(data: Uint8Array, level: number): Buffer {
  return execFileSync('gzip', [`-${level}`, '-c', '-n'], { input: data, maxBuffer: 1 << 30 });
}

/** One gzip member with FEXTRA, FNAME, FCOMMENT and FHCRC set, written by hand (zlib checks each on read). */
export function gzipWithAllHeaderFields(data: Uint8Array, level: number): Buffer {
  const extra = Buffer.from('SG\x04\x00abcd', 'latin1');
  const head = Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3]),
    Buffer.from([extra.length & 0xff, extra.length >> 8]),
    extra,
    Buffer.from('layer.tar\0comment of the member\0', 'latin1'),
  ]);
  const hcrc = crc32(head) & 0xffff;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([head, Buffer.from([hcrc & 0xff, hcrc >> 8]), deflateRawSync(data, { level }), trailer]);
}

export interface Member {
  readonly data: Buffer;
  readonly gz: Buffer;
}

export interface Blob {
  readonly name: string;
  readonly plain: Buffer;
  readonly gz: Buffer;
  /** Compressed offsets where a member after the first starts. */
  readonly boundaries: number[];
}

export function blobOf(name: string, members: Member[]): Blob {
  const boundaries: number[] = [];
  let at = 0;
  for (const m of members) {
    if (at > 0) boundaries.push(at);
    at += m.gz.length;
  }
  return { name, plain: Buffer.concat(members.map((m) => m.data)), gz: Buffer.concat(members.map((m) => m.gz)), boundaries };
}

export const nodeGzip = (data: Buffer, level: number): Member => ({ data, gz: gzipSync(data, { level }) });
export const commandGzip = (data: Buffer, level: number): Member => ({ data, gz: gzipWithCommand(data, level) });

export interface Index {
  readonly checkpoints: ZranCheckpoint[];
  readonly out: Buffer;
  readonly members: number;
  readonly totalIn: number;
  readonly totalOut: number;
}

/** Indexes a blob pushed in chunks of `chunk` bytes. */
export async function indexBlob(gz: Buffer, span: number, chunk = 256 << 10): Promise<Index> {
  const indexer = new ZranIndexer(span);
  const checkpoints: ZranCheckpoint[] = [];
  const out: Buffer[] = [];
  for (let at = 0; at < gz.length; at += chunk) {
    const r = await indexer.push(gz.subarray(at, at + chunk));
    checkpoints.push(...r.checkpoints);
    out.push(...r.out);
  }
  const totals = indexer.end();
  return { checkpoints, out: Buffer.concat(out), members: totals.members, totalIn: totals.totalIn, totalOut: totals.totalOut };
}

/** Span i's compressed bytes: [in_i - (bits_i ? 1 : 0), in_{i+1}), the last to the blob's end. */
export function spanBytes(gz: Buffer, checkpoints: readonly ZranCheckpoint[], i: number): Buffer {
  const cp = checkpoints[i]!;
  const next = checkpoints[i + 1];
  return gz.subarray(cp.in - (cp.bits ? 1 : 0), next ? next.in : gz.length);
}

/** Reads [offset, offset + length) of the uncompressed blob through the index, as a zran layer would. */
export async function readRange(gz: Buffer, checkpoints: readonly ZranCheckpoint[], offset: number, length: number): Promise<Buffer> {
  let i = 0;
  while (i + 1 < checkpoints.length && checkpoints[i + 1]!.out <= offset) i++;
  let j = i + 1;
  while (j < checkpoints.length && checkpoints[j]!.out < offset + length) j++;
  const cp = checkpoints[i]!;
  const end = j < checkpoints.length ? checkpoints[j]!.in : gz.length;
  return extract(gz.subarray(cp.in - (cp.bits ? 1 : 0), end), cp, offset - cp.out, length);
}

/** The blobs every zran test runs over: each compressor and level, single- and multi-member. */
export function corpus(): Blob[] {
  const text = (seed: number, n: number): Buffer => textBytes(seed, n);
  return [
    blobOf('node -1, text', [nodeGzip(text(1, 400_000), 1)]),
    blobOf('node -6, mixed', [nodeGzip(mixedBytes(2, 500_000), 6)]),
    blobOf('node -9, text', [nodeGzip(text(3, 400_000), 9)]),
    blobOf('node -6, random', [nodeGzip(randomBytes(4, 300_000), 6)]),
    blobOf('gzip -1, mixed', [commandGzip(mixedBytes(5, 500_000), 1)]),
    blobOf('gzip -6, text', [commandGzip(text(6, 400_000), 6)]),
    blobOf('gzip -9, mixed', [commandGzip(mixedBytes(7, 500_000), 9)]),
    blobOf('members: node, gzip, all header fields, random, empty, node', [
      nodeGzip(text(8, 100_000), 6),
      commandGzip(mixedBytes(9, 150_000), 9),
      { data: text(10, 80_000), gz: gzipWithAllHeaderFields(text(10, 80_000), 6) },
      nodeGzip(randomBytes(11, 50_000), 1),
      nodeGzip(Buffer.alloc(0), 6),
      nodeGzip(text(12, 30_000), 6),
    ]),
    blobOf('40 small members (eStargz-like)', Array.from({ length: 40 }, (_, i) => nodeGzip(text(100 + i, 3_000 + 700 * i), 6))),
  ];
}
