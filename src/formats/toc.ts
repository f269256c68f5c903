/**
 * The one TOC model every lazy format maps into (eStargz now; zstd:chunked, SOCI and CVMFS later).
 * A format codec decodes its wire TOC into `RawTocEntry`s; `indexToc()` validates and normalises them
 * once into a read-only `TocIndex`. Nothing here does I/O.
 */

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/**
 * `tar`: a layer without a TOC (DESIGN.md §2, source 5), indexed from its own tar headers. Its "blob"
 * is the uncompressed tar kept in the disk cache: a chunk's span is [offset, endOffset) of that tar
 * file, read as is (no decompression, so the decompression-bomb guard `maxChunkBytes` does not apply).
 *
 * `soci`: a plain gzip layer indexed by a SOCI zTOC (DESIGN.md §3.3). The blob is cut into zran spans,
 * not members, and the format gives no per-file digest: each chunk is the piece of one file inside one
 * span, carries `TocChunk.span`, and its `digest` is the span digest (see there). `tocOffset` is the
 * blob size (the zTOC is a separate blob).
 */
export type TocFormat = 'estargz-gzip' | 'stargz-legacy' | 'estargz-zstd' | 'zstd-chunked' | 'tar' | 'soci';

/**
 * One TOC entry as a format decodes it, before validation. Field names follow the eStargz JSON
 * (`stargz.index.json`); zstd:chunked uses the same names plus `endOffset` and `chunkType`.
 */
export interface RawTocEntry {
  /** `name`: path inside the layer as written (may start with `./` or `/`; normalised by indexToc). */
  readonly name: string;
  /** `type`; `chunk` continues the previous `reg` entry with its next chunk. */
  readonly type: TocEntryType | 'chunk';
  /** `size`: whole-file uncompressed size in bytes (reg only; absent on chunk entries). */
  readonly size?: number;
  /** `modtime`: RFC 3339 text; absent = the Unix epoch. */
  readonly modtime?: string;
  /** `linkName`: symlink target verbatim, or the path a hardlink points to. */
  readonly linkName?: string;
  /** `mode`: permission bits including setuid/setgid/sticky; file-type bits (S_IFMT) are ignored. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly userName?: string;
  readonly groupName?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** `xattrs`: name -> raw value bytes (the JSON holds base64; the codec decodes it). */
  readonly xattrs?: Readonly<Record<string, Uint8Array>>;
  /** `digest`: `sha256:…` of the whole file's uncompressed content (reg). */
  readonly digest?: string;
  /** `offset`: blob offset of the compressed span (gzip member header / zstd frame) holding this chunk. */
  readonly offset?: number;
  /** `endOffset` (zstd:chunked): end of the compressed span; absent = the next greater offset, or the TOC offset. */
  readonly endOffset?: number;
  /** `innerOffset` (eStargz): bytes to skip in the decompressed span before this chunk's data. */
  readonly innerOffset?: number;
  /** `chunkOffset`: offset of this chunk within the file's content. */
  readonly chunkOffset?: number;
  /** `chunkSize`: uncompressed bytes of this chunk; 0 or absent = up to the end of the file. */
  readonly chunkSize?: number;
  /** `chunkDigest`: `sha256:…` of this chunk's uncompressed bytes. */
  readonly chunkDigest?: string;
  /** `chunkType` (zstd:chunked): `zeros` = a run of zero bytes with no data in the blob. */
  readonly chunkType?: 'data' | 'zeros';
  /** (soci, no JSON name) the zran span holding this chunk; copied to `TocChunk.span`. */
  readonly span?: number;
}

/** One chunk of a regular file, with everything a read needs. All numbers are safe integers. */
export interface TocChunk {
  /** Offset of this chunk in the file's uncompressed content. */
  readonly fileOffset: number;
  /** Uncompressed bytes of this chunk (> 0). */
  readonly size: number;
  /** Blob offset where the compressed span starts (gzip member / zstd frame). */
  readonly compressedOffset: number;
  /** Blob offset where the compressed span ends (exclusive). */
  readonly compressedEnd: number;
  /** Bytes to skip in the decompressed span before this chunk's bytes. */
  readonly innerOffset: number;
  /** `sha256:…` the chunk's uncompressed bytes must hash to; '' when the format gives none (then `fileDigest` guards it). */
  readonly digest: string;
  /** A run of zeros stored nowhere (zstd:chunked `chunkType: "zeros"`): no fetch. */
  readonly zeros: boolean;
  /**
   * Format `soci` only: the span id (zran checkpoint index) whose compressed bytes
   * [compressedOffset, compressedEnd) hold this chunk; absent for every other format. When set, the
   * meaning of two fields changes: `digest` is the span digest, sha256 of those COMPRESSED bytes, checked
   * before inflating and shared by every chunk of the span (so it keys the span as one cache unit), and
   * `innerOffset` counts from the span's first uncompressed byte (its checkpoint's `out`), after resuming
   * the inflater at that checkpoint. SOCI has no per-file or per-chunk uncompressed digest.
   */
  readonly span?: number;
}

/** A normalised entry. Hardlinks are resolved: every name of a file maps to the same TocEntry object. */
export interface TocEntry {
  /** Normalised path: no leading `/` or `./`, no `.`/`..` components; `''` is the root directory. */
  readonly path: string;
  readonly type: Exclude<TocEntryType, 'hardlink'>;
  /** Permission bits incl. setuid/setgid/sticky (0..0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Modification time, ms since the epoch. */
  readonly mtimeMs: number;
  /** Uncompressed size (reg), target length (symlink), 0 otherwise. */
  readonly size: number;
  /** Symlink target, verbatim. */
  readonly linkName?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
  readonly xattrs?: Readonly<Record<string, Uint8Array>>;
  /** `sha256:…` of the whole file (reg), when the format gives it. */
  readonly digest?: string;
  /** reg: chunks ordered by fileOffset, covering [0, size) without gaps or overlaps; [] for empty files. */
  readonly chunks: readonly TocChunk[];
  /** Number of names this entry has (hardlinks + 1); dirs count as in POSIX (2 + subdirectories). */
  readonly nlink: number;
  /** True when the entry was not in the TOC but implied by a descendant (mode 0755, root, epoch). */
  readonly implicit: boolean;
}

/** Limits enforced while indexing; absurd values in a TOC are a FormatError, never an OOM. */
export interface TocLimits {
  readonly maxEntries: number;
  readonly maxPathLength: number;
  readonly maxPathDepth: number;
  /** Largest uncompressed chunk (decompression-bomb guard). */
  readonly maxChunkBytes: number;
  /** Largest file size accepted. */
  readonly maxFileBytes: number;
  /** Largest TOC, compressed or uncompressed (the JSON must fit in one string to be parsed). */
  readonly maxTocBytes?: number;
}

export const DEFAULT_TOC_LIMITS: TocLimits = {
  maxEntries: 4_000_000,
  maxPathLength: 4096,
  maxPathDepth: 1000,
  maxChunkBytes: 64 << 20,
  maxFileBytes: 2 ** 50,
  maxTocBytes: 256 << 20,
};

/** A validated, read-only index of one layer's TOC. */
export interface TocIndex {
  readonly format: TocFormat;
  /** Blob offset where the TOC (or, for zstd, the TOC frame) starts: the end of the last data span. */
  readonly tocOffset: number;
  /** The root directory entry (path ''). */
  readonly root: TocEntry;
  /** Number of distinct entries (hardlinks not counted twice; implicit dirs counted). */
  readonly size: number;
  /** O(1): the entry at a normalised path (any of a hardlinked file's names), or undefined. */
  lookup(path: string): TocEntry | undefined;
  /** The names in a directory, in TOC order, each with its entry; undefined when `path` is not a dir. */
  children(path: string): ReadonlyMap<string, TocEntry> | undefined;
  /** Every name of the layer with its entry, in TOC order (parents before children). */
  walk(): Iterable<[path: string, entry: TocEntry]>;
  /**
   * Hardlinks whose target is not an earlier entry of this layer: link path -> normalised target path.
   * Such a link names a file of a LOWER layer (umoci unpack links it to whatever the rootfs holds at that
   * path when the layer applies), so only the merged image view can resolve it; it is kept out of
   * `lookup`/`children`/`walk` so every `TocEntry` there stays a real file of this layer and
   * `TocEntry.type` never needs a 'hardlink' case. The target went through the same normalisation as every
   * name (no `..`, leading `/` stripped), so it can never point outside the image root. The link's parent
   * directories are in the index (implied like any entry's). Empty for almost every layer.
   */
  externalLinks(): ReadonlyMap<string, string>;
  /**
   * Blob span [0, end) holding every chunk before `.prefetch.landmark`, when the layer has that landmark;
   * undefined otherwise (also when it has `.no.prefetch.landmark`).
   */
  readonly prefetch?: { readonly start: number; readonly end: number };
}

/** What a codec finds in a layer's tail. */
export interface TocLocation {
  readonly format: TocFormat;
  /** Blob offset of the TOC's compressed bytes. */
  readonly tocOffset: number;
  /** Compressed length of the TOC; undefined = up to the footer. */
  readonly tocLength?: number;
  /** Uncompressed length of the TOC, when the footer says (zstd). */
  readonly tocUncompressedLength?: number;
  /** Bytes of footer at the blob's end. */
  readonly footerLength: number;
}

export interface DecodedToc {
  readonly index: TocIndex;
  /** `sha256:…` of the uncompressed TOC JSON (what `containerd.io/snapshot/stargz/toc.digest` names). */
  readonly tocDigest: string;
  /** `sha256:…` of the TOC's compressed bytes (what zstd:chunked's manifest-checksum names). */
  readonly compressedTocDigest: string;
}

export interface TocCodec {
  readonly format: TocFormat;
  /** Bytes of the blob's tail this codec's footer occupies. */
  readonly footerLength: number;
  /** Checks and parses a footer; `tail.length` must equal footerLength. Throws FormatError, never reads. */
  parseFooter(tail: Uint8Array, blobSize: number): TocLocation;
  /** Decompresses and decodes the TOC bytes [tocOffset, blobSize - footerLength) into an index. */
  decodeToc(tocBytes: Uint8Array, location: TocLocation, limits?: Partial<TocLimits>): Promise<DecodedToc>;
  /**
   * Decompresses one compressed span [compressedOffset, compressedEnd) into its uncompressed bytes.
   * `expectedBytes`, when known, is how many the caller needs: a hint for sizing output buffers, no bound.
   */
  decompressSpan(span: Uint8Array, maxOutputBytes: number, expectedBytes?: number): Promise<Uint8Array>;
}
