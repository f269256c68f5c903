/**
 * The footers at the end of an eStargz (51 bytes) or legacy CRFS stargz (47 bytes) blob. Each is an empty
 * gzip member whose header's Extra field carries the TOC offset, so the blob stays a valid tar.gz.
 * Pure byte work: no I/O, no zlib (the layout is fixed, so every byte is checked by position).
 */
import { FormatError } from '../../errors.js';

/**
 * eStargz footer, 51 bytes (stargz-snapshotter estargz/types.go `FooterSize`):
 * ```
 *  off len  bytes                  field
 *    0   2  1f 8b                  gzip ID1 ID2
 *    2   1  08                     CM = deflate
 *    3   1  04                     FLG = FEXTRA only
 *    4   4  00 00 00 00            MTIME        (any value accepted: Go's reader ignores it)
 *    8   1  00                     XFL          (any value accepted)
 *    9   1  ff                     OS = unknown (any value accepted)
 *   10   2  1a 00                  XLEN = 26, little-endian
 *   12   2  53 47                  SI1 SI2 = 'S' 'G'
 *   14   2  16 00                  subfield LEN = 22
 *   16  16  "%016x"                TOC offset, 16 hex digits (the writer prints lowercase)
 *   32   6  "STARGZ"               magic
 *   38   5  01 00 00 ff ff         final stored deflate block, empty
 *   43   4  00 00 00 00            CRC32 of nothing
 *   47   4  00 00 00 00            ISIZE = 0
 * ```
 */
export const ESTARGZ_FOOTER_LENGTH = 51;

/**
 * Legacy CRFS stargz footer, 47 bytes (estargz/types.go `legacyFooterSize`): the same member with the
 * offset and magic as the whole Extra field, without the `SG` subfield header.
 * ```
 *  off len  bytes                  field
 *    0  10  1f 8b 08 04 .. .. .. .. .. ..   gzip header as above (MTIME, XFL, OS not checked)
 *   10   2  16 00                  XLEN = 22
 *   12  16  "%016x"                TOC offset
 *   28   6  "STARGZ"               magic
 *   34   5  01 00 00 ff ff         empty stored block
 *   39   8  00 x 8                 CRC32, ISIZE
 * ```
 */
export const LEGACY_FOOTER_LENGTH = 47;

export type FooterKind = 'estargz' | 'legacy';

const MAGIC = 'STARGZ';
const HEX_DIGITS = 16;
/** Bytes after the Extra field: an empty final stored block, then CRC32 = 0 and ISIZE = 0. */
const EMPTY_DEFLATE_AND_TRAILER = [0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0] as const;
const FLG_FEXTRA = 0x04;

function lengthOf(kind: FooterKind): number {
  return kind === 'estargz' ? ESTARGZ_FOOTER_LENGTH : LEGACY_FOOTER_LENGTH;
}

/** Builds a footer; the writer in src/convert and the test builder both use it. */
export function encodeFooter(tocOffset: number, kind: FooterKind): Uint8Array {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) {
    throw new RangeError(`eStargz footer: TOC offset ${tocOffset} is not a non-negative safe integer`);
  }
  const length = lengthOf(kind);
  const out = new Uint8Array(length);
  out.set([0x1f, 0x8b, 0x08, FLG_FEXTRA, 0, 0, 0, 0, 0x00, 0xff], 0);
  let at = 10;
  const payload = tocOffset.toString(16).padStart(HEX_DIGITS, '0') + MAGIC;
  if (kind === 'estargz') {
    out.set([4 + payload.length, 0, 0x53, 0x47, payload.length, 0], at);
    at += 6;
  } else {
    out.set([payload.length, 0], at);
    at += 2;
  }
  for (let i = 0; i < payload.length; i++) out[at + i] = payload.charCodeAt(i);
  at += payload.length;
  out.set(EMPTY_DEFLATE_AND_TRAILER, at);
  at += EMPTY_DEFLATE_AND_TRAILER.length;
  if (at !== length) throw new Error(`eStargz footer: encoded ${at} bytes, expected ${length}`);
  return out;
}

/**
 * Hex digit value, or -1. Upper case is accepted because the reference reader parses with Go's
 * `strconv.ParseInt(s, 16, 64)`, which takes both cases; a sign, which ParseInt would also take, is not.
 */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function fail(kind: FooterKind, reason: string): never {
  throw new FormatError(`${kind === 'estargz' ? 'eStargz' : 'legacy stargz'} footer: ${reason}`);
}

/** Reads the 16 hex digits at `at`; numbers above 2^53 cannot be a real offset and are rejected. */
function readOffset(tail: Uint8Array, at: number, kind: FooterKind): number {
  let value = 0;
  for (let i = 0; i < HEX_DIGITS; i++) {
    const digit = hexValue(tail[at + i]!);
    if (digit < 0) fail(kind, `TOC offset ${JSON.stringify(ascii(tail, at, HEX_DIGITS))} is not 16 hex digits`);
    value = value * 16 + digit;
  }
  if (!Number.isSafeInteger(value)) fail(kind, `TOC offset 0x${ascii(tail, at, HEX_DIGITS)} is beyond 2^53`);
  return value;
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = at; i < at + length && i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function checkGzipHeader(tail: Uint8Array, kind: FooterKind): void {
  if (tail[0] !== 0x1f || tail[1] !== 0x8b) fail(kind, 'no gzip magic 1f 8b');
  if (tail[2] !== 0x08) fail(kind, `compression method ${tail[2]} is not deflate (8)`);
  if (tail[3] !== FLG_FEXTRA) fail(kind, `gzip flags 0x${tail[3]!.toString(16)} are not FEXTRA alone (0x04)`);
}

function checkMagicAndTrailer(tail: Uint8Array, at: number, kind: FooterKind): void {
  if (ascii(tail, at, MAGIC.length) !== MAGIC) fail(kind, `magic ${JSON.stringify(ascii(tail, at, 6))} is not "STARGZ"`);
  at += MAGIC.length;
  for (let i = 0; i < EMPTY_DEFLATE_AND_TRAILER.length; i++) {
    if (tail[at + i] !== EMPTY_DEFLATE_AND_TRAILER[i]) fail(kind, 'the member after the Extra field is not empty');
  }
}

function checkOffset(tocOffset: number, blobSize: number, footerLength: number, kind: FooterKind): void {
  if (!Number.isSafeInteger(blobSize) || blobSize < footerLength) {
    fail(kind, `blob size ${blobSize} cannot hold a ${footerLength}-byte footer`);
  }
  // The TOC member needs at least one byte between its offset and the footer.
  if (tocOffset >= blobSize - footerLength) {
    fail(kind, `TOC offset ${tocOffset} is not before the footer at ${blobSize - footerLength}`);
  }
}

export interface ParsedFooter {
  readonly tocOffset: number;
  readonly footerLength: number;
}

/** Parses the 51-byte eStargz footer; `tail` must be exactly the blob's last 51 bytes. */
export function parseEstargzFooter(tail: Uint8Array, blobSize: number): ParsedFooter {
  if (tail.length !== ESTARGZ_FOOTER_LENGTH) fail('estargz', `${tail.length} bytes, expected ${ESTARGZ_FOOTER_LENGTH}`);
  checkGzipHeader(tail, 'estargz');
  if (tail[10] !== 26 || tail[11] !== 0) fail('estargz', `XLEN ${tail[10]! | (tail[11]! << 8)} is not 26`);
  if (tail[12] !== 0x53 || tail[13] !== 0x47) fail('estargz', `subfield ID ${JSON.stringify(ascii(tail, 12, 2))} is not "SG"`);
  if (tail[14] !== 22 || tail[15] !== 0) fail('estargz', `subfield length ${tail[14]! | (tail[15]! << 8)} is not 22`);
  checkMagicAndTrailer(tail, 32, 'estargz');
  const tocOffset = readOffset(tail, 16, 'estargz');
  checkOffset(tocOffset, blobSize, ESTARGZ_FOOTER_LENGTH, 'estargz');
  return { tocOffset, footerLength: ESTARGZ_FOOTER_LENGTH };
}

/** Parses the 47-byte legacy CRFS footer; `tail` must be exactly the blob's last 47 bytes. */
export function parseLegacyFooter(tail: Uint8Array, blobSize: number): ParsedFooter {
  if (tail.length !== LEGACY_FOOTER_LENGTH) fail('legacy', `${tail.length} bytes, expected ${LEGACY_FOOTER_LENGTH}`);
  checkGzipHeader(tail, 'legacy');
  if (tail[10] !== 22 || tail[11] !== 0) fail('legacy', `XLEN ${tail[10]! | (tail[11]! << 8)} is not 22`);
  checkMagicAndTrailer(tail, 28, 'legacy');
  const tocOffset = readOffset(tail, 12, 'legacy');
  checkOffset(tocOffset, blobSize, LEGACY_FOOTER_LENGTH, 'legacy');
  return { tocOffset, footerLength: LEGACY_FOOTER_LENGTH };
}
