/**
 * One 512-byte tar header block: ustar (POSIX.1-1988), GNU and v7 layouts, read and (ustar only) written.
 * Numbers are octal text or GNU base-256; every field is checked, and a bad one is a FormatError that
 * names the field, the entry and the stream offset.
 *
 *   offset  size  field
 *        0   100  name            NUL-terminated unless full
 *      100     8  mode            octal
 *      108     8  uid             octal or base-256
 *      116     8  gid             octal or base-256
 *      124    12  size            octal or base-256
 *      136    12  mtime           octal or base-256 (may be negative: before 1970)
 *      148     8  chksum          octal; computed with these 8 bytes as spaces
 *      156     1  typeflag
 *      157   100  linkname
 *      257     6  magic           "ustar\0" (POSIX) or "ustar " (GNU); anything else: v7
 *      263     2  version         "00" (POSIX) or " \0" (GNU)
 *      265    32  uname
 *      297    32  gname
 *      329     8  devmajor
 *      337     8  devminor
 *      345   155  prefix          POSIX only (GNU keeps atime/ctime here); star: 131 bytes, "tar\0" at 508
 */
import { FormatError } from '../../errors.js';

export const BLOCK_SIZE = 512;

/** What an entry is, from its typeflag. '0', '\0' and '7' (contiguous) are all regular files. */
export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** The fields of one header block as stored, before PAX records or GNU long names override them. */
export interface HeaderBlock {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: string;
  readonly linkname: string;
  readonly uname: string;
  readonly gname: string;
  readonly devmajor: number;
  readonly devminor: number;
}

const utf8 = new TextDecoder('utf-8');

/** Bytes up to the first NUL (or the whole field), as UTF-8; invalid sequences become U+FFFD. */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

/** Describes where a problem is, for error messages: `entry "a/b" at offset 1536`. */
export function where(name: string | undefined, offset: number): string {
  return name === undefined || name === '' ? `tar header at offset ${offset}` : `tar entry ${JSON.stringify(name)} at offset ${offset}`;
}

/**
 * A numeric field. Octal text may be padded with leading spaces or NULs and end in spaces or NULs
 * (writers disagree); GNU base-256 sets the top bit of the first byte, 0xff-first being negative.
 * Negative values are refused unless `signed`, and every value must be a safe integer.
 */
function numeric(field: Uint8Array, what: string, ctx: () => string, signed = false): number {
  const first = field[0]!;
  if (first & 0x80) {
    let value = BigInt(first & 0x7f);
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]!);
    if (first & 0x40) value -= 1n << BigInt(field.length * 8 - 1); // two's complement over the field
    if (value < 0n && !signed) throw new FormatError(`${ctx()}: negative ${what} (${value})`);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError(`${ctx()}: ${what} ${value} is too large`);
    }
    return Number(value);
  }
  let start = 0;
  let end = field.length;
  while (start < end && (field[start] === 0x20 || field[start] === 0)) start++;
  while (end > start && (field[end - 1] === 0x20 || field[end - 1] === 0)) end--;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = field[i]!;
    if (c < 0x30 || c > 0x37) {
      throw new FormatError(`${ctx()}: ${what} field is not octal: ${JSON.stringify(utf8.decode(field))}`);
    }
    value = value * 8 + (c - 0x30);
  }
  // 12 octal digits stay below 2^36, far under 2^53: octal text cannot overflow.
  return value;
}

function checksumOk(block: Uint8Array, stored: number): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  // Old Sun and some historic writers summed signed chars; GNU tar and Go accept both.
  return stored === unsigned || stored === signed;
}

function magicOf(block: Uint8Array): 'ustar' | 'gnu' | 'v7' {
  const m = block.subarray(257, 265);
  const ustar = m[0] === 0x75 && m[1] === 0x73 && m[2] === 0x74 && m[3] === 0x61 && m[4] === 0x72;
  if (!ustar) return 'v7';
  if (m[5] === 0 && m[6] === 0x30 && m[7] === 0x30) return 'ustar';
  if (m[5] === 0x20 && m[6] === 0x20 && m[7] === 0) return 'gnu';
  // "ustar\0" with another version: treat as POSIX ustar, as Go does.
  return m[5] === 0 ? 'ustar' : 'v7';
}

/** Parses a header block that is not all zeros; `offset` is its position in the stream (for errors). */
export function parseHeaderBlock(block: Uint8Array, offset: number): HeaderBlock {
  if (block.length !== BLOCK_SIZE) throw new Error(`parseHeaderBlock: ${block.length} bytes, not ${BLOCK_SIZE}`);
  let name = cString(block.subarray(0, 100));
  const ctx = (): string => where(name, offset);
  let stored: number;
  try {
    stored = numeric(block.subarray(148, 156), 'checksum', ctx);
  } catch (err) {
    // Garbage where the checksum goes: not a tar header at all, so its "name" means nothing.
    throw new FormatError(`${where(undefined, offset)}: not a tar header (its checksum field is not a number)`, { cause: err });
  }
  if (!checksumOk(block, stored)) throw new FormatError(`${ctx()}: bad header checksum (not a tar stream, or corrupt)`);
  const magic = magicOf(block);
  if (magic === 'ustar') {
    const star = block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0;
    const prefix = cString(block.subarray(345, star ? 476 : 500));
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const hasIds = magic !== 'v7';
  return {
    name,
    mode: numeric(block.subarray(100, 108), 'mode', ctx),
    uid: numeric(block.subarray(108, 116), 'uid', ctx),
    gid: numeric(block.subarray(116, 124), 'gid', ctx),
    size: numeric(block.subarray(124, 136), 'size', ctx),
    mtime: numeric(block.subarray(136, 148), 'mtime', ctx, true),
    typeflag: String.fromCharCode(block[156]!),
    linkname: cString(block.subarray(157, 257)),
    uname: hasIds ? cString(block.subarray(265, 297)) : '',
    gname: hasIds ? cString(block.subarray(297, 329)) : '',
    devmajor: hasIds ? numeric(block.subarray(329, 337), 'devmajor', ctx) : 0,
    devminor: hasIds ? numeric(block.subarray(337, 345), 'devminor', ctx) : 0,
  };
}

const TYPES: Readonly<Record<string, TarEntryType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** The entry type of a typeflag; undefined for metadata and unsupported types. */
export function entryTypeOf(typeflag: string, name: string): TarEntryType | undefined {
  // V7 archives mark directories only by a trailing slash on a '\0' entry (Go and GNU tar agree).
  if (typeflag === '\0' && name.endsWith('/')) return 'dir';
  return Object.hasOwn(TYPES, typeflag) ? TYPES[typeflag] : undefined;
}

/** Types whose size field says nothing about data: no data blocks follow them (as Go's archive/tar reads). */
export function isHeaderOnly(type: TarEntryType): boolean {
  return type !== 'file';
}

export interface UstarFields {
  readonly name: string;
  readonly size: number;
  readonly mode?: number;
  readonly mtime?: number;
  readonly typeflag?: string;
}

function writeOctal(block: Uint8Array, start: number, length: number, value: number, what: string): void {
  const digits = value.toString(8);
  if (!Number.isSafeInteger(value) || value < 0 || digits.length > length - 1) {
    throw new FormatError(`ustar ${what} ${value} does not fit in ${length - 1} octal digits`);
  }
  const text = digits.padStart(length - 1, '0');
  for (let i = 0; i < text.length; i++) block[start + i] = text.charCodeAt(i);
  block[start + length - 1] = 0;
}

/**
 * A plain ustar header for files tocfs itself adds (landmarks, the TOC): ASCII name of at most 100
 * bytes, uid/gid 0, no names. Anything that needs PAX is refused rather than written wrong.
 */
export function encodeUstarHeader(fields: UstarFields): Uint8Array {
  const name = new TextEncoder().encode(fields.name);
  if (name.length === 0 || name.length > 100 || /[^\x20-\x7e]/.test(fields.name)) {
    throw new FormatError(`ustar name ${JSON.stringify(fields.name)} must be 1..100 printable ASCII bytes`);
  }
  const block = new Uint8Array(BLOCK_SIZE);
  block.set(name, 0);
  writeOctal(block, 100, 8, fields.mode ?? 0o644, 'mode');
  writeOctal(block, 108, 8, 0, 'uid');
  writeOctal(block, 116, 8, 0, 'gid');
  writeOctal(block, 124, 12, fields.size, 'size');
  writeOctal(block, 136, 12, fields.mtime ?? 0, 'mtime');
  block[156] = (fields.typeflag ?? '0').charCodeAt(0);
  block.set([0x75, 0x73, 0x74, 0x61, 0x72, 0, 0x30, 0x30], 257); // "ustar\0" "00"
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  writeOctal(block, 148, 7, sum, 'checksum');
  block[155] = 0x20;
  return block;
}
