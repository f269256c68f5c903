/**
 * The SOCI zTOC (awslabs/soci-snapshotter `ztoc/fbs/ztoc.fbs`, namespace `ztoc`, root `Ztoc`): a
 * flatbuffer listing a plain gzip layer's tar entries with their offsets in the UNCOMPRESSED tar stream,
 * plus the zran checkpoints (`zinfo.ts`) that let a reader inflate from the middle. The model below keeps
 * the wire field names in camelCase; `decodeZtoc` checks every field, `encodeZtoc` (ztoc-encode.ts)
 * writes it back. Pure: bytes in, values out.
 *
 * Table layouts (vtable slot = field number, in schema order):
 *   Ztoc            0 version: string ("0.9")        1 build_tool_identifier: string
 *                   2 compressed_archive_size: long  3 uncompressed_archive_size: long
 *                   4 toc: TOC                       5 compression_info: CompressionInfo
 *   TOC             0 metadata: [FileMetadata]
 *   FileMetadata    0 name  1 type  2 uncompressed_offset: long  3 uncompressed_size: long  4 linkname
 *                   5 mode: long  6 uid: uint  7 gid: uint  8 uname  9 gname  10 mod_time (RFC 3339, ns)
 *                   11 devmajor: long  12 devminor: long  13 xattrs: [Xattr]
 *   Xattr           0 key: string  1 value: string (raw bytes: a PAX record of the entry)
 *   CompressionInfo 0 compression_algorithm: byte (Gzip = 1, default; Uncompressed = 2)
 *                   1 max_span_id: int  2 span_digests: [string]  3 checkpoints: [ubyte]
 */
import { FormatError } from '../../errors.js';
import { FieldError, checkDigest, parseModtime, resolveTocLimits } from '../toc-fields.js';
import type { TocLimits } from '../toc.js';
import { FbTable } from './flatbuffer-view.js';

/** The only zTOC version soci-snapshotter writes (`ztoc.Version09`) and reads. */
export const ZTOC_VERSION = '0.9';

/** `FileMetadata.type`: Go tar type names as soci's `getType` (ztoc/toc_builder.go) writes them. */
export type ZtocEntryType = 'reg' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
const ENTRY_TYPES: ReadonlySet<string> = new Set<ZtocEntryType>(['reg', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo']);

/** One raw PAX record of the entry (soci stores `hdr.PAXRecords`, so not only `SCHILY.xattr.*`). */
export interface ZtocXattr {
  /** `key`: the PAX keyword, e.g. `SCHILY.xattr.security.capability` or `path`. */
  readonly key: string;
  /** `value`: the record's bytes verbatim; may be any bytes (a capability is not UTF-8). */
  readonly value: Uint8Array;
}

export interface ZtocEntry {
  /** `name`: the tar header name as written (may start with `./`); normalised by indexToc later. */
  readonly name: string;
  readonly type: ZtocEntryType;
  /** `uncompressed_offset`: offset of the entry's DATA (after its headers) in the uncompressed tar. */
  readonly uncompressedOffset: number;
  /** `uncompressed_size`: bytes of data (0 for everything but regular files). */
  readonly uncompressedSize: number;
  /** `linkname`: symlink target or hardlink source, verbatim; '' when none. */
  readonly linkname: string;
  /** `mode`: the tar mode field (permission bits incl. setuid/setgid/sticky). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  /** `mod_time`: Go `time.Time.MarshalText` (RFC 3339 with nanoseconds); Go's zero time is `0001-01-01T00:00:00Z`. */
  readonly modTime: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** `xattrs`: the entry's PAX records; empty when it had none. */
  readonly xattrs: readonly ZtocXattr[];
}

export interface ZtocCompressionInfo {
  /** `compression_algorithm`: only gzip is served (an `Uncompressed` zTOC carries a different checkpoint format). */
  readonly algorithm: 'gzip';
  /** `max_span_id`: number of spans - 1. */
  readonly maxSpanId: number;
  /** `span_digests[i]`: `sha256:…` of span i's compressed bytes. */
  readonly spanDigests: readonly string[];
  /** `checkpoints`: the zinfo blob (zinfo.ts), a view into the zTOC bytes. */
  readonly checkpoints: Uint8Array;
}

export interface Ztoc {
  readonly version: typeof ZTOC_VERSION;
  readonly buildToolIdentifier: string;
  /** `compressed_archive_size`: bytes of the gzip layer blob. */
  readonly compressedArchiveSize: number;
  /** `uncompressed_archive_size`: bytes of the tar stream, up to the end of the archive as Go's tar reader saw it. */
  readonly uncompressedArchiveSize: number;
  /** `toc.metadata`, in the order the zTOC lists them (tar order, as soci writes). */
  readonly entries: readonly ZtocEntry[];
  readonly compression: ZtocCompressionInfo;
}

/** zTOC decoding bounds: `maxTocBytes` caps the zTOC blob, `maxEntries` its metadata vector. */
export type ZtocLimits = Pick<TocLimits, 'maxEntries' | 'maxTocBytes'>;

const GZIP = 1;
const UNCOMPRESSED = 2;

function decodeEntry(table: FbTable, index: number): ZtocEntry {
  const name = table.string(0, 'name');
  const type = table.string(1, 'type');
  const where = `zTOC entry #${index} ${JSON.stringify(name.slice(0, 200))}`;
  if (!ENTRY_TYPES.has(type)) throw new FormatError(`${where}: type ${JSON.stringify(type.slice(0, 40))} is not one of ${[...ENTRY_TYPES].join(', ')}`);
  const modTime = table.string(10, 'mod_time');
  try {
    parseModtime(modTime);
  } catch (err) {
    if (err instanceof FieldError) throw new FormatError(`${where}: mod_time: ${err.message}`);
    throw err;
  }
  const xattrCount = table.length(13, 'xattrs');
  const xattrs: ZtocXattr[] = [];
  const keys = new Set<string>();
  for (let i = 0; i < xattrCount; i++) {
    const record = table.tableAt(13, 'xattrs', i);
    const key = record.string(0, 'key');
    // Go keeps PAX records in a map: a repeated key cannot come from soci, and two values would disagree.
    if (keys.has(key)) throw new FormatError(`${where}: xattrs: duplicate key ${JSON.stringify(key.slice(0, 80))}`);
    keys.add(key);
    xattrs.push({ key, value: record.bytes(1, 'value') });
  }
  return {
    name,
    type: type as ZtocEntryType,
    uncompressedOffset: table.count64(2, 'uncompressed_offset'),
    uncompressedSize: table.count64(3, 'uncompressed_size'),
    linkname: table.string(4, 'linkname'),
    mode: table.count64(5, 'mode'),
    uid: table.uint32(6, 'uid'),
    gid: table.uint32(7, 'gid'),
    uname: table.string(8, 'uname'),
    gname: table.string(9, 'gname'),
    modTime,
    devmajor: table.count64(11, 'devmajor'),
    devminor: table.count64(12, 'devminor'),
    xattrs,
  };
}

function decodeCompressionInfo(info: FbTable | undefined): ZtocCompressionInfo {
  if (info === undefined) throw new FormatError('zTOC: compression_info is missing');
  const algorithm = info.int8(0, 'compression_algorithm', GZIP);
  if (algorithm === UNCOMPRESSED) throw new FormatError('zTOC.compression_info.compression_algorithm: Uncompressed (a zTOC of an uncompressed tar layer) is not supported');
  if (algorithm !== GZIP) throw new FormatError(`zTOC.compression_info.compression_algorithm: ${algorithm} is not Gzip (1)`);
  const maxSpanId = info.int32(1, 'max_span_id');
  if (maxSpanId < 0) throw new FormatError(`zTOC.compression_info.max_span_id: ${maxSpanId} is negative`);
  const count = info.length(2, 'span_digests');
  if (count !== maxSpanId + 1) throw new FormatError(`zTOC.compression_info.span_digests: ${count} digests, max_span_id ${maxSpanId} needs ${maxSpanId + 1}`);
  const spanDigests: string[] = [];
  for (let i = 0; i < count; i++) {
    const digest = info.stringAt(2, 'span_digests', i);
    try {
      if (checkDigest(digest, 'digest') === undefined) throw new FieldError('digest is empty');
    } catch (err) {
      if (err instanceof FieldError) throw new FormatError(`zTOC.compression_info.span_digests[${i}]: ${err.message}`);
      throw err;
    }
    spanDigests.push(digest);
  }
  return { algorithm: 'gzip', maxSpanId, spanDigests, checkpoints: info.ubytes(3, 'checkpoints') };
}

/**
 * Decodes and checks a zTOC flatbuffer. Throws FormatError naming the field (and entry) that is wrong:
 * a truncated or garbage buffer, an unknown version or type, a negative or unsafe size, a string that is
 * not UTF-8, more entries than `maxEntries`, a span digest that is not sha256. The checkpoints are only
 * sliced here; `decodeZinfo` reads them and `ztocToToc` checks offsets against sizes.
 */
export function decodeZtoc(bytes: Uint8Array, limits?: Partial<ZtocLimits>): Ztoc {
  const lim = resolveTocLimits(limits);
  if (bytes.length > lim.maxTocBytes) throw new FormatError(`zTOC of ${bytes.length} bytes is above maxTocBytes ${lim.maxTocBytes}`);
  const root = FbTable.root(bytes, 'zTOC');
  const version = root.string(0, 'version');
  if (version !== ZTOC_VERSION) throw new FormatError(`zTOC.version: ${JSON.stringify(version.slice(0, 40))} is not ${JSON.stringify(ZTOC_VERSION)}`);
  const buildToolIdentifier = root.string(1, 'build_tool_identifier');
  const compressedArchiveSize = root.count64(2, 'compressed_archive_size');
  const uncompressedArchiveSize = root.count64(3, 'uncompressed_archive_size');
  const toc = root.table(4, 'toc');
  const count = toc?.length(0, 'metadata') ?? 0;
  // Checked before any entry is decoded, so a claimed 10^9 entries costs nothing.
  if (count > lim.maxEntries) throw new FormatError(`zTOC.toc.metadata: ${count} entries, above maxEntries ${lim.maxEntries}`);
  const entries: ZtocEntry[] = [];
  for (let i = 0; i < count; i++) entries.push(decodeEntry(toc!.tableAt(0, 'metadata', i), i));
  const compression = decodeCompressionInfo(root.table(5, 'compression_info'));
  return { version: ZTOC_VERSION, buildToolIdentifier, compressedArchiveSize, uncompressedArchiveSize, entries, compression };
}
