/**
 * Tar headers -> `RawTocEntry`s for a layer without a TOC (format `tar`), and their on-disk JSON form.
 * Pure functions: no I/O.
 */
import { FormatError } from '../../errors.js';
import type { RawTocEntry, TocEntryType } from '../../formats/toc.js';
import type { TarEntryType, TarHeader, TarTime } from '../../formats/tar/reader.js';

const TYPES: Record<TarEntryType, TocEntryType> = {
  file: 'reg',
  dir: 'dir',
  symlink: 'symlink',
  hardlink: 'hardlink',
  char: 'char',
  block: 'block',
  fifo: 'fifo',
};

/** RFC 3339 with nanoseconds, as `parseModtime` reads it; undefined (= the epoch) for the epoch or a year outside 0..9999. */
export function rfc3339(time: TarTime): string | undefined {
  if (time.seconds === 0 && time.nanos === 0) return undefined;
  const date = new Date(time.seconds * 1000);
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 0 || year > 9999) return undefined;
  const base = date.toISOString().slice(0, 19);
  return time.nanos === 0 ? `${base}Z` : `${base}.${String(time.nanos).padStart(9, '0')}Z`;
}

/**
 * One tar header as a raw TOC entry. A regular file with data gets ONE chunk whose span is its data in
 * the uncompressed tar: [dataOffset, dataOffset + size). Whiteouts stay plain entries (the merged tree
 * interprets them); path checks (`..`, depth, length) are indexToc's.
 */
export function rawEntryOf(h: TarHeader): RawTocEntry {
  const type = TYPES[h.type];
  const modtime = rfc3339(h.mtime);
  const common = {
    name: h.path,
    type,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    ...(h.uname ? { userName: h.uname } : {}),
    ...(h.gname ? { groupName: h.gname } : {}),
    ...(modtime !== undefined ? { modtime } : {}),
    ...(h.xattrs.size > 0 ? { xattrs: Object.fromEntries(h.xattrs) } : {}),
  };
  switch (type) {
    case 'reg':
      return h.size > 0
        ? { ...common, size: h.size, offset: h.dataOffset, endOffset: h.dataOffset + h.size, chunkOffset: 0, chunkSize: h.size }
        : { ...common, size: 0 };
    case 'symlink':
    case 'hardlink':
      return { ...common, linkName: h.linkpath };
    case 'char':
    case 'block':
      return { ...common, devMajor: h.devmajor, devMinor: h.devminor };
    default:
      return common;
  }
}

const nameKey = (name: string): string =>
  name
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');

/**
 * A tar may repeat a name; the last copy wins, as extraction and stargz's Build do. indexToc refuses
 * repeats (a TOC never has them), so earlier copies are dropped here, keeping TOC order otherwise.
 */
export function lastCopies(entries: readonly RawTocEntry[]): RawTocEntry[] {
  const last = new Map<string, number>();
  entries.forEach((e, i) => last.set(nameKey(e.name), i));
  if (last.size === entries.length) return entries.slice();
  return entries.filter((e, i) => last.get(nameKey(e.name)) === i);
}

/** The persisted index: `HEX.index.json` next to `HEX.tar`. Version bumps invalidate old files. */
export const INDEX_VERSION = 1;

export interface StoredIndex {
  readonly version: number;
  readonly digest: string;
  /** Bytes of the uncompressed tar file (= the index's tocOffset). */
  readonly tarSize: number;
  /** Raw entries; xattr values as base64. */
  readonly entries: readonly unknown[];
}

export function encodeIndex(digest: string, tarSize: number, entries: readonly RawTocEntry[]): string {
  const out = entries.map((e) =>
    e.xattrs === undefined
      ? e
      : { ...e, xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) },
  );
  const stored: StoredIndex = { version: INDEX_VERSION, digest, tarSize, entries: out };
  return JSON.stringify(stored);
}

/** Parses a persisted index; FormatError when it is not one of ours for `digest` (the caller refetches). */
export function decodeIndex(text: string, digest: string): { tarSize: number; entries: RawTocEntry[] } {
  let stored: StoredIndex;
  try {
    stored = JSON.parse(text) as StoredIndex;
  } catch (err) {
    throw new FormatError(`full-layer index for ${digest} is not JSON`, { cause: err });
  }
  if (
    stored === null ||
    typeof stored !== 'object' ||
    stored.version !== INDEX_VERSION ||
    stored.digest !== digest ||
    !Number.isSafeInteger(stored.tarSize) ||
    !Array.isArray(stored.entries)
  ) {
    throw new FormatError(`full-layer index for ${digest} is stale or malformed`);
  }
  const entries = stored.entries.map((raw) => {
    const e = raw as RawTocEntry & { xattrs?: Record<string, unknown> };
    if (e === null || typeof e !== 'object') throw new FormatError(`full-layer index for ${digest} has a malformed entry`);
    if (e.xattrs === undefined) return e as RawTocEntry;
    const xattrs: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(e.xattrs)) {
      if (typeof v !== 'string') throw new FormatError(`full-layer index for ${digest} has a malformed xattr`);
      xattrs[k] = new Uint8Array(Buffer.from(v, 'base64'));
    }
    return { ...e, xattrs } as RawTocEntry;
  });
  return { tarSize: stored.tarSize, entries };
}
