/**
 * A zTOC as tocfs's TOC model: `ztocToToc` turns the zTOC's entries into `RawTocEntry`s and hands them
 * to `indexToc`, so names are normalised and checked exactly as for every other format (no `..`, implicit
 * parents, hardlinks resolved, limits). Each regular file's data, the tar bytes
 * [uncompressed_offset, +uncompressed_size), is cut at span boundaries into chunks that carry the span id
 * and the span digest (`TocChunk.span`). Pure.
 */
import { FormatError } from '../../errors.js';
import { resolveTocLimits } from '../toc-fields.js';
import { indexToc } from '../toc-index.js';
import type { RawTocEntry, TocEntry, TocEntryType, TocIndex, TocLimits } from '../toc.js';
import { sociSpans, type SociSpan, type SociSpans, type Zinfo } from './zinfo.js';
import type { Ztoc, ZtocEntry } from './ztoc.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Go's archive/tar writes an entry's xattrs as PAX records with this prefix; soci keeps every PAX record. */
const SCHILY_XATTR = 'SCHILY.xattr.';
const BLOCK = 512;

export interface SociToc {
  readonly index: TocIndex;
  readonly spans: SociSpans;
  readonly zinfo: Zinfo;
}

/** Where a regular file's bytes sit in the tar stream: [start, end). */
export function tarRangeOf(toc: SociToc, entry: TocEntry): { readonly start: number; readonly end: number } | undefined {
  const first = entry.chunks[0];
  if (first?.span === undefined) return undefined;
  const start = toc.spans.spanOf(first.span).uncompressedStart + first.innerOffset;
  return { start, end: start + entry.size };
}

function describe(e: ZtocEntry, i: number): string {
  return `zTOC entry #${i} ${JSON.stringify(e.name.length > 200 ? `${e.name.slice(0, 200)}…` : e.name)}`;
}

function xattrsOf(e: ZtocEntry): Readonly<Record<string, Uint8Array>> | undefined {
  const found: [string, Uint8Array][] = [];
  for (const { key, value } of e.xattrs) if (key.startsWith(SCHILY_XATTR) && key.length > SCHILY_XATTR.length) found.push([key.slice(SCHILY_XATTR.length), value]);
  // fromEntries defines own properties, so an xattr named "__proto__" stays an ordinary name.
  return found.length === 0 ? undefined : Object.freeze(Object.fromEntries(found));
}

/** The raw entries of one zTOC entry: the entry, then one `chunk` entry per further span its data crosses. */
function rawEntries(e: ZtocEntry, spans: SociSpans, out: RawTocEntry[]): void {
  const raw: Mutable<RawTocEntry> = {
    name: e.name,
    type: e.type as TocEntryType,
    modtime: e.modTime,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
  };
  if (e.uname !== '') raw.userName = e.uname;
  if (e.gname !== '') raw.groupName = e.gname;
  if (e.linkname !== '') raw.linkName = e.linkname;
  if (e.type === 'char' || e.type === 'block') {
    raw.devMajor = e.devmajor;
    raw.devMinor = e.devminor;
  }
  const xattrs = xattrsOf(e);
  if (xattrs !== undefined) raw.xattrs = xattrs;
  if (e.type !== 'reg') {
    out.push(raw);
    return;
  }
  raw.size = e.uncompressedSize;
  if (e.uncompressedSize === 0) {
    out.push(raw);
    return;
  }
  const end = e.uncompressedOffset + e.uncompressedSize;
  let at = e.uncompressedOffset;
  let span: SociSpan | undefined = spans.spanAt(at);
  let piece: Mutable<RawTocEntry> = raw;
  while (at < end) {
    // Ranges were checked against uncompressed_archive_size and spans cover [0, that size) without gaps.
    const s = span!;
    const size = Math.min(end, s.uncompressedEnd) - at;
    Object.assign(piece, {
      offset: s.compressedStart,
      endOffset: s.compressedEnd,
      innerOffset: at - s.uncompressedStart,
      chunkOffset: at - e.uncompressedOffset,
      chunkSize: size,
      chunkDigest: s.digest,
      span: s.index,
    });
    out.push(piece);
    at += size;
    span = spans.spans[s.index + 1];
    piece = { name: e.name, type: 'chunk' };
  }
}

/**
 * Builds the TOC index of a SOCI-indexed gzip layer from its decoded zTOC and checkpoints. Entries are
 * taken in tar order (soci's reader sorts by uncompressed offset too). Throws FormatError when a file's
 * tar range overlaps the previous entry's (soci `ErrInvalidTOCEntry`) or runs past
 * uncompressed_archive_size, when checkpoints disagree with the zTOC (`sociSpans`), and for everything
 * `indexToc` refuses (names escaping the root, bad hardlinks, limits), each naming the entry.
 */
export function ztocToToc(ztoc: Ztoc, zinfo: Zinfo, limits?: Partial<TocLimits>): SociToc {
  const lim = resolveTocLimits(limits);
  if (ztoc.entries.length > lim.maxEntries) throw new FormatError(`zTOC has ${ztoc.entries.length} entries, above maxEntries ${lim.maxEntries}`);
  const spans = sociSpans(ztoc, zinfo);
  // Stable sort by data offset: a soci-written zTOC is already in tar order, so this is a no-op there.
  const order = ztoc.entries.map((_, i) => i).sort((a, b) => ztoc.entries[a]!.uncompressedOffset - ztoc.entries[b]!.uncompressedOffset || a - b);
  const raw: RawTocEntry[] = [];
  let nextHeader = 0;
  let previous = -1;
  for (const i of order) {
    const e = ztoc.entries[i]!;
    // A Ztoc may come from elsewhere than decodeZtoc (`tocfs index` builds one), so its numbers are checked again.
    for (const field of ['uncompressedOffset', 'uncompressedSize'] as const) {
      if (!Number.isSafeInteger(e[field]) || e[field] < 0) throw new FormatError(`${describe(e, i)}: ${field} ${e[field]} is not a non-negative safe integer`);
    }
    // Each entry's data follows at least its own header; a range starting before the previous entry's
    // data (rounded up to its 512-byte block) ends would make two files share bytes.
    if (e.uncompressedOffset < nextHeader) {
      const prev = ztoc.entries[previous]!;
      throw new FormatError(`${describe(e, i)}: uncompressed_offset ${e.uncompressedOffset} overlaps ${describe(prev, previous)}, whose data ends at ${prev.uncompressedOffset + prev.uncompressedSize}`);
    }
    const end = e.uncompressedOffset + e.uncompressedSize;
    if (!Number.isSafeInteger(end) || end > ztoc.uncompressedArchiveSize) {
      throw new FormatError(`${describe(e, i)}: uncompressed range [${e.uncompressedOffset}, ${end}) is past uncompressed_archive_size ${ztoc.uncompressedArchiveSize}`);
    }
    if (e.type === 'reg' && e.uncompressedSize > lim.maxFileBytes) {
      throw new FormatError(`${describe(e, i)}: uncompressed_size ${e.uncompressedSize} is above maxFileBytes ${lim.maxFileBytes}`);
    }
    nextHeader = Math.ceil(end / BLOCK) * BLOCK;
    previous = i;
    rawEntries(e, spans, raw);
  }
  const index = indexToc(raw, { format: 'soci', tocOffset: ztoc.compressedArchiveSize, limits: lim });
  return { index, spans, zinfo };
}
