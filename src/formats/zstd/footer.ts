/**
 * The footers at the end of a zstd:chunked / eStargz-zstd blob. Each sits in a zstd skippable frame, so
 * `zstd -dc` of the blob ignores it (as it ignores the TOC and tar-split frames before it). Pure byte
 * work: every byte is checked by position.
 */
import { FormatError } from '../../errors.js';

/** zstd skippable frame header: magic 0x184D2A50 (little-endian `50 2a 4d 18`) + LE32 payload length. */
export const SKIPPABLE_MAGIC = 0x184d2a50;
export const SKIPPABLE_HEADER_LENGTH = 8;

/**
 * Current zstd:chunked footer (containers/storage `FooterSizeSupported` = 64), behind its frame header:
 * ```
 *  off len  field (all LE64 unless noted)
 *    0   4  50 2a 4d 18            skippable frame magic
 *    4   4  40 00 00 00            LE32 frame length = 64
 *    8   8  TOC offset             (of the compressed TOC, past its own frame header)
 *   16   8  TOC compressed length
 *   24   8  TOC uncompressed length
 *   32   8  manifest type = 1      (CRFS-style JSON TOC)
 *   40   8  tar-split offset
 *   48   8  tar-split compressed length
 *   56   8  tar-split uncompressed length
 *   64   8  "GNUlInUx"             magic
 * ```
 */
export const ZSTD_CHUNKED_FOOTER_LENGTH = 72;

/**
 * Older footer, 40 bytes (stargz-snapshotter estargz/zstdchunked `FooterSize`, and containers/storage
 * before the tar-split was added — skopeo 1.9 writes it), behind its frame header:
 * ```
 *  off len  field
 *    0   8  50 2a 4d 18 28 00 00 00   skippable frame header, length 40
 *    8   8  TOC offset
 *   16   8  TOC compressed length
 *   24   8  TOC uncompressed length
 *   32   8  manifest type = 1
 *   40   8  "GnUlInUx"             magic (note the case: n, not N)
 * ```
 */
export const ZSTD_LEGACY_FOOTER_LENGTH = 48;

const MAGIC_CURRENT = Buffer.from('GNUlInUx', 'latin1');
const MAGIC_LEGACY = Buffer.from('GnUlInUx', 'latin1');
const MANIFEST_TYPE_CRFS = 1;

export type ZstdFooterKind = 'current' | 'legacy';

export interface ZstdFooter {
  readonly kind: ZstdFooterKind;
  readonly tocOffset: number;
  readonly tocLength: number;
  readonly tocUncompressedLength: number;
  /** Current footer only. */
  readonly tarSplit?: { readonly offset: number; readonly length: number; readonly uncompressedLength: number };
  readonly footerLength: number;
}

function u64(view: DataView, at: number, field: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`zstd footer: ${field} ${v} is not a safe integer`);
  return Number(v);
}

/** Parses a footer with its frame header; `tail.length` must be exactly the footer's length. */
export function parseZstdFooter(tail: Uint8Array, blobSize: number, kind: ZstdFooterKind): ZstdFooter {
  const length = kind === 'current' ? ZSTD_CHUNKED_FOOTER_LENGTH : ZSTD_LEGACY_FOOTER_LENGTH;
  const name = kind === 'current' ? 'zstd:chunked 64-byte footer' : 'zstd 40-byte footer';
  if (tail.length !== length) throw new FormatError(`${name}: got ${tail.length} bytes, need ${length}`);
  const bytes = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  const magic = kind === 'current' ? MAGIC_CURRENT : MAGIC_LEGACY;
  if (!bytes.subarray(length - 8).equals(magic)) {
    throw new FormatError(`${name}: bad magic ${JSON.stringify(bytes.subarray(length - 8).toString('latin1'))}, want ${JSON.stringify(magic.toString('latin1'))}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== SKIPPABLE_MAGIC || view.getUint32(4, true) !== length - SKIPPABLE_HEADER_LENGTH) {
    throw new FormatError(`${name}: not inside a zstd skippable frame of ${length - SKIPPABLE_HEADER_LENGTH} bytes`);
  }
  const tocOffset = u64(view, 8, 'TOC offset');
  const tocLength = u64(view, 16, 'TOC length');
  const tocUncompressedLength = u64(view, 24, 'TOC uncompressed length');
  const type = u64(view, 32, 'manifest type');
  if (type !== MANIFEST_TYPE_CRFS) throw new FormatError(`${name}: manifest type ${type} is not 1 (CRFS JSON TOC)`);
  const footerStart = blobSize - length;
  // The TOC's own skippable frame header precedes it, and it ends before the footer.
  if (tocOffset < SKIPPABLE_HEADER_LENGTH || tocLength === 0 || tocOffset + tocLength > footerStart) {
    throw new FormatError(`${name}: TOC at [${tocOffset}, ${tocOffset + tocLength}) does not fit before the footer at ${footerStart}`);
  }
  if (kind === 'legacy') return { kind, tocOffset, tocLength, tocUncompressedLength, footerLength: length };
  const tarSplit = { offset: u64(view, 40, 'tar-split offset'), length: u64(view, 48, 'tar-split length'), uncompressedLength: u64(view, 56, 'tar-split uncompressed length') };
  if (tarSplit.offset !== 0 && tarSplit.offset + tarSplit.length > footerStart) {
    throw new FormatError(`${name}: tar-split at [${tarSplit.offset}, ${tarSplit.offset + tarSplit.length}) does not fit before the footer`);
  }
  return { kind, tocOffset, tocLength, tocUncompressedLength, tarSplit, footerLength: length };
}

/** A skippable frame around `payload` (zstd `ZSTD_writeSkippableFrame`, magic variant 0). */
export function skippableFrame(payload: Uint8Array): Buffer {
  const header = Buffer.alloc(SKIPPABLE_HEADER_LENGTH);
  header.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

export interface ZstdFooterFields {
  readonly tocOffset: number;
  readonly tocLength: number;
  readonly tocUncompressedLength: number;
  readonly tarSplitOffset: number;
  readonly tarSplitLength: number;
  readonly tarSplitUncompressedLength: number;
}

/** The current 64-byte footer in its skippable frame (72 bytes), as `tocfs convert` writes it. */
export function encodeZstdChunkedFooter(f: ZstdFooterFields): Buffer {
  const body = Buffer.alloc(ZSTD_CHUNKED_FOOTER_LENGTH - SKIPPABLE_HEADER_LENGTH);
  const fields = [f.tocOffset, f.tocLength, f.tocUncompressedLength, MANIFEST_TYPE_CRFS, f.tarSplitOffset, f.tarSplitLength, f.tarSplitUncompressedLength];
  fields.forEach((v, i) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`zstd:chunked footer: field ${i} = ${v} is not a non-negative safe integer`);
    body.writeBigUInt64LE(BigInt(v), 8 * i);
  });
  MAGIC_CURRENT.copy(body, 56);
  const out = skippableFrame(body);
  if (out.length !== ZSTD_CHUNKED_FOOTER_LENGTH) throw new Error(`zstd:chunked footer is ${out.length} bytes`);
  return out;
}
