/**
 * The zran checkpoint blob of a gzip zTOC (`CompressionInfo.checkpoints`, soci's `gzip_zinfo.c`
 * `zinfo_to_blob`/`blob_to_zinfo`) and the span table built from it. Pure.
 *
 * Byte table, all little-endian, tightly packed (no alignment):
 *   offset  size   field
 *   0       4      count      int32, number of checkpoints (= max_span_id + 1)
 *   4       8      span size  int64, the span the builder aimed at (informative)
 *   12      32785  checkpoint × count (v2) or × (count - 1) (v1), each:
 *                    +0  8      in     int64, compressed offset of the first full byte
 *                    +8  8      out    int64, uncompressed offset the checkpoint resumes at
 *                    +16 1      bits   uint8, 0..7 bits of the byte at in-1 still to be read
 *                    +17 32768  window the 32 KiB of uncompressed bytes before `out`
 * v1 blobs leave checkpoint 0 out (soci assumed it was fixed: in 10, out 0, bits 0, a zero window);
 * v2 stores it, because a gzip header with optional fields moves it. Which one a blob is follows from its
 * length alone, exactly as soci decides.
 *
 * Span i is the compressed bytes [in_i - (bits_i ? 1 : 0), in_{i+1}) (the last one to the end of the
 * blob) and inflates to the tar bytes [out_i, out_{i+1}) (the last one to uncompressed_archive_size);
 * `span_digests[i]` is the sha256 of exactly those compressed bytes, checked before inflating.
 */
import { FormatError, InvalidOptionError } from '../../errors.js';

export const ZINFO_HEADER_SIZE = 4 + 8;
export const ZINFO_WINDOW_SIZE = 32768;
export const ZINFO_CHECKPOINT_SIZE = 8 + 8 + 1 + ZINFO_WINDOW_SIZE;

/** Checkpoint 0 of a v1 blob, which the blob does not store. */
const V1_FIRST_IN = 10;

export interface Checkpoint {
  /** Compressed offset of the first full byte to feed the inflater. */
  readonly in: number;
  /** Uncompressed (tar stream) offset the inflater resumes at. */
  readonly out: number;
  /** Bits (0..7) of the byte at `in - 1` still to be fed first (inflatePrime); 0 = none. */
  readonly bits: number;
  /** The 32 KiB of uncompressed bytes before `out`: the inflater's dictionary. A view, not a copy. */
  readonly window: Uint8Array;
}

export interface Zinfo {
  /** 1: checkpoint 0 was implied; 2: every checkpoint stored. `encodeZinfo` always writes 2. */
  readonly version: 1 | 2;
  readonly spanSize: number;
  readonly checkpoints: readonly Checkpoint[];
}

const ZERO_WINDOW = new Uint8Array(ZINFO_WINDOW_SIZE);

function int64At(view: DataView, at: number, field: string): number {
  const value = view.getBigInt64(at, true);
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`zinfo ${field}: ${value} is not a non-negative safe integer`);
  return Number(value);
}

/**
 * Decodes a checkpoint blob and checks what it can alone: its length (v1 or v2), bits 0..7, `in` and
 * `out` strictly increasing, checkpoint 0 at out 0. Sizes and digests are checked by `sociSpans`.
 */
export function decodeZinfo(blob: Uint8Array): Zinfo {
  if (blob.length < ZINFO_HEADER_SIZE) throw new FormatError(`zinfo: ${blob.length} bytes is shorter than its ${ZINFO_HEADER_SIZE}-byte header`);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const count = view.getInt32(0, true);
  if (count < 1) throw new FormatError(`zinfo count: ${count} checkpoints; a gzip stream has at least one`);
  const spanSize = int64At(view, 4, 'span size');
  const v2Length = ZINFO_HEADER_SIZE + count * ZINFO_CHECKPOINT_SIZE;
  let version: 1 | 2;
  if (blob.length === v2Length) version = 2;
  else if (blob.length === v2Length - ZINFO_CHECKPOINT_SIZE) version = 1;
  else {
    const stored = (blob.length - ZINFO_HEADER_SIZE) / ZINFO_CHECKPOINT_SIZE;
    const why = Number.isInteger(stored) ? `${stored} checkpoints` : `not a whole number of ${ZINFO_CHECKPOINT_SIZE}-byte checkpoints (in, out, bits and a ${ZINFO_WINDOW_SIZE}-byte window)`;
    throw new FormatError(`zinfo: ${blob.length} bytes hold ${why}; count ${count} needs ${v2Length} bytes (v2) or ${v2Length - ZINFO_CHECKPOINT_SIZE} (v1)`);
  }
  const checkpoints: Checkpoint[] = version === 1 ? [{ in: V1_FIRST_IN, out: 0, bits: 0, window: ZERO_WINDOW }] : [];
  for (let at = ZINFO_HEADER_SIZE; at < blob.length; at += ZINFO_CHECKPOINT_SIZE) {
    const i = checkpoints.length;
    const cp: Checkpoint = {
      in: int64At(view, at, `checkpoint ${i} in`),
      out: int64At(view, at + 8, `checkpoint ${i} out`),
      bits: blob[at + 16]!,
      window: blob.subarray(at + 17, at + ZINFO_CHECKPOINT_SIZE),
    };
    if (cp.bits > 7) throw new FormatError(`zinfo checkpoint ${i} bits: ${cp.bits} is not 0..7`);
    if (cp.bits > 0 && cp.in < 1) throw new FormatError(`zinfo checkpoint ${i} in: ${cp.in} leaves no byte before it for its ${cp.bits} bits`);
    const prev = checkpoints[i - 1];
    if (prev === undefined && cp.out !== 0) throw new FormatError(`zinfo checkpoint 0 out: ${cp.out}, not 0 (the bytes before it would be in no span)`);
    if (prev !== undefined && cp.in <= prev.in) throw new FormatError(`zinfo checkpoint ${i} in: ${cp.in} is not after checkpoint ${i - 1}'s ${prev.in}`);
    if (prev !== undefined && cp.out <= prev.out) throw new FormatError(`zinfo checkpoint ${i} out: ${cp.out} is not after checkpoint ${i - 1}'s ${prev.out}`);
    checkpoints.push(cp);
  }
  return { version, spanSize, checkpoints };
}

/** Writes the current (v2) blob: every checkpoint stored. */
export function encodeZinfo(zinfo: Pick<Zinfo, 'spanSize' | 'checkpoints'>): Uint8Array {
  const n = zinfo.checkpoints.length;
  if (n < 1 || n > 0x7fff_ffff) throw new InvalidOptionError('zinfo.checkpoints', `${n} checkpoints is not 1..2^31-1`);
  if (!Number.isSafeInteger(zinfo.spanSize) || zinfo.spanSize < 0) throw new InvalidOptionError('zinfo.spanSize', `${zinfo.spanSize} is not a non-negative safe integer`);
  const blob = new Uint8Array(ZINFO_HEADER_SIZE + n * ZINFO_CHECKPOINT_SIZE);
  const view = new DataView(blob.buffer);
  view.setInt32(0, n, true);
  view.setBigInt64(4, BigInt(zinfo.spanSize), true);
  let at = ZINFO_HEADER_SIZE;
  zinfo.checkpoints.forEach((cp, i) => {
    for (const key of ['in', 'out'] as const) {
      if (!Number.isSafeInteger(cp[key]) || cp[key] < 0) throw new InvalidOptionError(`zinfo.checkpoints[${i}].${key}`, `${cp[key]} is not a non-negative safe integer`);
      view.setBigInt64(at + (key === 'in' ? 0 : 8), BigInt(cp[key]), true);
    }
    if (!Number.isInteger(cp.bits) || cp.bits < 0 || cp.bits > 7) throw new InvalidOptionError(`zinfo.checkpoints[${i}].bits`, `${cp.bits} is not 0..7`);
    if (cp.window.length !== ZINFO_WINDOW_SIZE) throw new InvalidOptionError(`zinfo.checkpoints[${i}].window`, `${cp.window.length} bytes, not ${ZINFO_WINDOW_SIZE}`);
    blob[at + 16] = cp.bits;
    blob.set(cp.window, at + 17);
    at += ZINFO_CHECKPOINT_SIZE;
  });
  return blob;
}

/** One span: what to fetch, what it hashes to, and which tar bytes it inflates to. */
export interface SociSpan {
  /** Span id (= checkpoint index). */
  readonly index: number;
  /** First compressed byte to fetch: `in`, or `in - 1` when the checkpoint starts mid-byte. */
  readonly compressedStart: number;
  /** End of the compressed bytes (exclusive): the next checkpoint's `in`, or the blob size. */
  readonly compressedEnd: number;
  /** First tar byte the span inflates to (checkpoint `out`). */
  readonly uncompressedStart: number;
  /** End of the span's tar bytes (exclusive): the next `out`, or uncompressed_archive_size. */
  readonly uncompressedEnd: number;
  /** `sha256:…` of the compressed bytes [compressedStart, compressedEnd). */
  readonly digest: string;
  readonly checkpoint: Checkpoint;
}

export interface SociSpans {
  readonly spans: readonly SociSpan[];
  /** Span `i`; throws RangeError past the table (a caller's bug, not the data's). */
  spanOf(i: number): SociSpan;
  /** The span whose tar bytes hold `uncompressedOffset` (binary search); undefined past the end. */
  spanAt(uncompressedOffset: number): SociSpan | undefined;
}

export interface SpanSource {
  readonly compressedArchiveSize: number;
  readonly uncompressedArchiveSize: number;
  readonly compression: { readonly maxSpanId: number; readonly spanDigests: readonly string[] };
}

const SHA256 = /^sha256:[0-9a-f]{64}$/;

/**
 * Cross-checks a decoded zinfo against its zTOC and builds the span table: count = max_span_id + 1 =
 * number of span digests, each digest `sha256:…`, every `in` inside the compressed blob, every `out`
 * inside the tar stream. Throws FormatError naming the field.
 */
export function sociSpans(ztoc: SpanSource, zinfo: Zinfo): SociSpans {
  const { checkpoints } = zinfo;
  const { maxSpanId, spanDigests } = ztoc.compression;
  if (checkpoints.length !== maxSpanId + 1) throw new FormatError(`zinfo count: ${checkpoints.length} checkpoints, max_span_id ${maxSpanId} needs ${maxSpanId + 1}`);
  if (spanDigests.length !== checkpoints.length) throw new FormatError(`zTOC span_digests: ${spanDigests.length} digests for ${checkpoints.length} checkpoints`);
  const spans: SociSpan[] = checkpoints.map((cp, i) => {
    const digest = spanDigests[i]!;
    if (!SHA256.test(digest)) throw new FormatError(`zTOC span_digests[${i}]: ${JSON.stringify(digest.slice(0, 80))} is not sha256:<64 hex>`);
    if (cp.in >= ztoc.compressedArchiveSize) throw new FormatError(`zinfo checkpoint ${i} in: ${cp.in} is not inside the ${ztoc.compressedArchiveSize}-byte compressed archive`);
    if (cp.out > ztoc.uncompressedArchiveSize || (i > 0 && cp.out === ztoc.uncompressedArchiveSize)) {
      throw new FormatError(`zinfo checkpoint ${i} out: ${cp.out} is not inside the ${ztoc.uncompressedArchiveSize}-byte uncompressed archive`);
    }
    const next = checkpoints[i + 1];
    return {
      index: i,
      compressedStart: cp.in - (cp.bits > 0 ? 1 : 0),
      compressedEnd: next?.in ?? ztoc.compressedArchiveSize,
      uncompressedStart: cp.out,
      uncompressedEnd: next?.out ?? ztoc.uncompressedArchiveSize,
      digest,
      checkpoint: cp,
    };
  });
  return {
    spans,
    spanOf(i: number): SociSpan {
      const span = spans[i];
      if (span === undefined) throw new RangeError(`span ${i} is not in 0..${spans.length - 1}`);
      return span;
    },
    spanAt(offset: number): SociSpan | undefined {
      if (!(offset >= 0 && offset < ztoc.uncompressedArchiveSize)) return undefined;
      let lo = 0;
      let hi = spans.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (spans[mid]!.uncompressedStart <= offset) lo = mid;
        else hi = mid - 1;
      }
      return spans[lo];
    },
  };
}
