/**
 * The uncompressed eStargz TOC member is a tiny tar: one regular file `stargz.index.json`, then the
 * end-of-archive zero blocks. This reads exactly that shape from bytes already in memory; a general tar
 * reader (and its streaming machinery) would only widen what a hostile TOC can reach.
 */
import { FormatError } from '../../errors.js';

export const TOC_TAR_NAME = 'stargz.index.json';

const BLOCK = 512;
/** PAX or GNU long-name records before the TOC header are small; anything bigger is not a TOC. */
const MAX_EXTENDED_HEADER = 64 << 10;

function fail(reason: string): never {
  throw new FormatError(`TOC tar: ${reason}`);
}

function cString(block: Uint8Array, at: number, length: number): string {
  let end = at;
  while (end < at + length && block[end] !== 0) end++;
  return Buffer.from(block.buffer, block.byteOffset + at, end - at).toString('utf8');
}

/** ustar numeric field: octal text padded with spaces/NULs, or GNU base-256 when the top bit is set. */
function numeric(block: Uint8Array, at: number, length: number, field: string): number {
  if ((block[at]! & 0x80) !== 0) {
    if (block[at] !== 0x80) fail(`${field} is a negative or oversized base-256 number`);
    let value = 0;
    for (let i = at + 1; i < at + length; i++) value = value * 256 + block[i]!;
    if (!Number.isSafeInteger(value)) fail(`${field} is beyond 2^53`);
    return value;
  }
  const text = cString(block, at, length).trim();
  if (!/^[0-7]*$/.test(text)) fail(`${field} ${JSON.stringify(text)} is not octal`);
  return text === '' ? 0 : parseInt(text, 8);
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

function checksumMatches(block: Uint8Array): boolean {
  const stored = numeric(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some historic writers summed signed chars; readers (GNU tar, Go) accept either.
  return stored === unsigned || stored === signed;
}

/** PAX records `"%d %s=%s\n"`; only `path` and `size` matter for this one entry. */
function paxRecords(body: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let at = 0;
  while (at < text.length && text.charCodeAt(at) !== 0) {
    const space = text.indexOf(' ', at);
    const length = Number(text.slice(at, space));
    if (space < 0 || !Number.isSafeInteger(length) || length <= space - at || at + length > text.length) fail('malformed PAX record');
    const record = text.slice(space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq < 0) fail('malformed PAX record');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/** Returns the TOC JSON bytes (a view into `tar`). Throws FormatError for anything but one TOC entry. */
export function tocJsonFromTar(tar: Uint8Array): Uint8Array {
  let at = 0;
  let longName: string | undefined;
  let paxSize: number | undefined;
  for (;;) {
    if (at + BLOCK > tar.length) fail(`truncated: no header at offset ${at}`);
    const block = tar.subarray(at, at + BLOCK);
    if (isZero(block)) fail('no stargz.index.json entry before the end of the archive');
    if (!checksumMatches(block)) fail(`header checksum mismatch at offset ${at}`);
    const typeflag = String.fromCharCode(block[156]!);
    const size = numeric(block, 124, 12, 'size');
    at += BLOCK;
    if (typeflag === 'x' || typeflag === 'L') {
      if (size > MAX_EXTENDED_HEADER || at + size > tar.length) fail(`extended header of ${size} bytes`);
      const body = tar.subarray(at, at + size);
      if (typeflag === 'L') longName = cString(body, 0, body.length);
      else {
        const records = paxRecords(body);
        longName = records.get('path') ?? longName;
        const s = records.get('size');
        if (s !== undefined) {
          if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) fail(`PAX size ${JSON.stringify(s.slice(0, 40))}`);
          paxSize = Number(s);
        }
      }
      at += Math.ceil(size / BLOCK) * BLOCK;
      continue;
    }
    const magic = cString(block, 257, 6);
    const prefix = magic === 'ustar' ? cString(block, 345, 155) : '';
    const name = longName ?? (prefix === '' ? cString(block, 0, 100) : `${prefix}/${cString(block, 0, 100)}`);
    // The reference reader compares the header name exactly, with no path cleaning.
    if (name !== TOC_TAR_NAME) fail(`entry is named ${JSON.stringify(name.slice(0, 100))}, not ${TOC_TAR_NAME}`);
    if (typeflag !== '0' && typeflag !== '\0') fail(`${TOC_TAR_NAME} has type ${JSON.stringify(typeflag)}, not a regular file`);
    const length = paxSize ?? size;
    if (at + length > tar.length) fail(`${TOC_TAR_NAME} is truncated: ${length} bytes announced, ${tar.length - at} present`);
    const json = tar.subarray(at, at + length);
    const rest = tar.subarray(at + Math.ceil(length / BLOCK) * BLOCK);
    // Only padding and the end-of-archive blocks may follow: the TOC member holds exactly one entry.
    if (!isZero(rest)) fail(`another entry follows ${TOC_TAR_NAME}`);
    return json;
  }
}
