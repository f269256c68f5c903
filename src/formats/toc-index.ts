/**
 * `indexToc`: validates a format's raw TOC entries once and builds the read-only `TocIndex` every layer
 * read goes through (stargz `initFields`, estargz.go). Everything that can be wrong in a TOC is a
 * FormatError naming the entry; nothing here allocates in proportion to a number read from the TOC.
 */
import { FormatError } from '../errors.js';
import { isFormatArtefact, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './whiteouts.js';
import { ChildrenView } from './toc-children.js';
import { FieldError, checkDigest, count, normalizePath, parseModtime, resolveTocLimits, type ResolvedTocLimits } from './toc-fields.js';
import type { RawTocEntry, TocChunk, TocEntry, TocFormat, TocIndex, TocLimits } from './toc.js';

export { resolveTocLimits, type ResolvedTocLimits } from './toc-fields.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Entry = Mutable<TocEntry>;
type Chunk = Mutable<TocChunk>;

export interface IndexTocOptions {
  readonly format: TocFormat;
  /** Blob offset of the TOC: every data span must start before it, and the last one ends there. */
  readonly tocOffset: number;
  readonly limits?: Partial<TocLimits>;
}

/** Shared by every entry without data, so an index of 50,000 entries does not hold 50,000 empty arrays. */
const NO_CHUNKS: readonly TocChunk[] = Object.freeze([]);
const NO_CHILDREN: readonly string[] = Object.freeze([]);

class Index implements TocIndex {
  readonly format: TocFormat;
  readonly tocOffset: number;
  readonly root: TocEntry;
  readonly size: number;
  readonly prefetch?: { readonly start: number; readonly end: number };
  readonly #names: ReadonlyMap<string, TocEntry>;
  /** Per directory, its children's full paths in TOC order (the name table's own key strings). */
  readonly #children: ReadonlyMap<string, readonly string[]>;
  readonly #externalLinks: ReadonlyMap<string, string>;

  constructor(
    format: TocFormat,
    tocOffset: number,
    names: Map<string, TocEntry>,
    children: Map<string, string[]>,
    size: number,
    prefetchEnd: number | undefined,
    externalLinks: ReadonlyMap<string, string>,
  ) {
    this.format = format;
    this.tocOffset = tocOffset;
    this.root = names.get('')!;
    this.size = size;
    if (prefetchEnd !== undefined) this.prefetch = Object.freeze({ start: 0, end: prefetchEnd });
    this.#names = names;
    this.#children = children;
    this.#externalLinks = externalLinks;
  }

  lookup(path: string): TocEntry | undefined {
    return this.#names.get(path);
  }

  children(path: string): ReadonlyMap<string, TocEntry> | undefined {
    const entry = this.#names.get(path);
    if (entry?.type !== 'dir') return undefined;
    return new ChildrenView(path, this.#children.get(path) ?? NO_CHILDREN, this.#names);
  }

  walk(): Iterable<[path: string, entry: TocEntry]> {
    return this.#names.entries();
  }

  externalLinks(): ReadonlyMap<string, string> {
    return this.#externalLinks;
  }
}

/** The regular file whose `chunk` entries may follow. `entry` is null for a hidden landmark. */
interface OpenFile {
  readonly path: string;
  readonly entry: Entry | null;
  readonly size: number;
  readonly digest: string | undefined;
  readonly chunks: Chunk[];
  covered: number;
}

class Indexer {
  readonly #limits: ResolvedTocLimits;
  readonly #tocOffset: number;
  /** Format `tar`: spans are uncompressed bytes of a local file, so nothing is inflated. */
  readonly #uncompressed: boolean;
  /** Every explicit name in TOC order; a hardlink's name maps to its target's entry. */
  readonly explicit = new Map<string, Entry>();
  /** Hardlinks to a name this layer does not hold (yet): link path -> target path, in TOC order. */
  readonly external = new Map<string, string>();
  /** Raw entry number of each external link, to name it if `finish` refuses it. */
  readonly #externalAt = new Map<string, number>();
  readonly #hiddenSeen = new Set<string>();
  /** Chunks with a compressed span, in TOC order, for the compressedEnd pass. */
  readonly #spans: Chunk[] = [];
  #lastOffset = 0;
  #open: OpenFile | null = null;
  #index = 0;
  #name = '';
  prefetchEnd: number | undefined;
  noPrefetch = false;

  constructor(limits: ResolvedTocLimits, tocOffset: number, uncompressed: boolean) {
    this.#limits = limits;
    this.#tocOffset = tocOffset;
    this.#uncompressed = uncompressed;
  }

  fail(reason: string, cause?: unknown): never {
    const shown = this.#name.length > 200 ? `${this.#name.slice(0, 200)}…` : this.#name;
    throw new FormatError(`TOC entry #${this.#index} ${JSON.stringify(shown)}: ${reason}`, cause === undefined ? undefined : { cause });
  }

  add(raw: RawTocEntry, index: number): void {
    this.#index = index;
    this.#name = typeof raw.name === 'string' ? raw.name : String(raw.name);
    try {
      if (raw.type === 'chunk') this.#addChunkEntry(raw);
      else this.#addEntry(raw);
    } catch (err) {
      if (err instanceof FieldError) this.fail(err.message);
      throw err;
    }
  }

  #addChunkEntry(raw: RawTocEntry): void {
    const open = this.#open;
    if (open === null) this.fail('a chunk entry must follow a regular file with data');
    const path = normalizePath(raw.name, this.#limits);
    if (path !== open.path) this.fail(`a chunk entry must follow a chunk of the same file (the previous file is ${JSON.stringify(open.path)})`);
    this.#addChunk(raw, open);
  }

  #addEntry(raw: RawTocEntry): void {
    this.#finishFile();
    const path = normalizePath(raw.name, this.#limits);
    if (isFormatArtefact(path)) return this.#addHidden(raw, path);
    if (this.explicit.has(path) || this.external.has(path)) {
      // eStargz writers never repeat a name (stargz Build keeps the last copy of a tar entry, and its
      // Verifier rejects an offset "found twice"); a repeat could make two readers see different files.
      this.fail('duplicate name');
    }
    const mode = count(raw.mode, 'mode') & 0o7777;
    const uid = count(raw.uid, 'uid');
    const gid = count(raw.gid, 'gid');
    const mtimeMs = parseModtime(raw.modtime);
    let entry: Entry;
    switch (raw.type) {
      case 'hardlink':
        return this.#addHardlink(raw, path);
      case 'dir':
      case 'fifo':
        entry = { path, type: raw.type, mode, uid, gid, mtimeMs, size: 0, chunks: NO_CHUNKS, nlink: raw.type === 'dir' ? 2 : 1, implicit: false };
        break;
      case 'reg': {
        const size = count(raw.size, 'size');
        if (size > this.#limits.maxFileBytes) this.fail(`size ${size} is above maxFileBytes ${this.#limits.maxFileBytes}`);
        const digest = checkDigest(raw.digest, 'digest');
        entry =
          digest === undefined
            ? { path, type: 'reg', mode, uid, gid, mtimeMs, size, chunks: NO_CHUNKS, nlink: 1, implicit: false }
            : { path, type: 'reg', mode, uid, gid, mtimeMs, size, digest, chunks: NO_CHUNKS, nlink: 1, implicit: false };
        if (size > 0) this.#openFile(raw, path, entry, size, digest);
        break;
      }
      case 'symlink': {
        if (typeof raw.linkName !== 'string' || raw.linkName === '') this.fail('symlink without a linkName');
        const size = Buffer.byteLength(raw.linkName, 'utf8');
        if (size > this.#limits.maxPathLength) this.fail(`symlink target is longer than ${this.#limits.maxPathLength} bytes`);
        entry = { path, type: 'symlink', mode, uid, gid, mtimeMs, size, linkName: raw.linkName, chunks: NO_CHUNKS, nlink: 1, implicit: false };
        break;
      }
      case 'char':
      case 'block': {
        const devMajor = count(raw.devMajor, 'devMajor');
        const devMinor = count(raw.devMinor, 'devMinor');
        entry = { path, type: raw.type, mode, uid, gid, mtimeMs, size: 0, devMajor, devMinor, chunks: NO_CHUNKS, nlink: 1, implicit: false };
        break;
      }
      default:
        this.fail(`unknown type ${JSON.stringify(String((raw as { type: unknown }).type)).slice(0, 40)}`);
    }
    if (raw.xattrs !== undefined && Object.keys(raw.xattrs).length > 0) entry.xattrs = raw.xattrs;
    if (path === '' && entry.type !== 'dir') this.fail(`the root must be a directory, not ${entry.type}`);
    this.explicit.set(path, entry);
  }

  /**
   * Security: the target is a path inside the image root (`normalizePath` has refused `..`, and a leading
   * `/` names the root, as in umoci, which joins it under the rootfs), never a directory (that would make
   * the tree a graph). An earlier entry of this layer shares its TocEntry. Any other target is kept as an
   * external link (`TocIndex.externalLinks`) for the merged view to resolve against the LOWER layers: a
   * layer may link to a file an earlier layer made (umoci unpack does), and refusing it failed the whole
   * image. It never reaches outside the image (CVE-2018-20482 is link following out of the extraction
   * root; here the target only ever names a path of the merged tree). A forward reference to a later
   * entry of this layer is still refused in `finish` (two orders of reading would disagree).
   */
  #addHardlink(raw: RawTocEntry, path: string): void {
    if (typeof raw.linkName !== 'string') this.fail('hardlink without a linkName');
    const target = normalizePath(raw.linkName, this.#limits);
    if (target === '') this.fail('hardlink target "" is a directory');
    const entry = this.explicit.get(target);
    if (entry === undefined) {
      // A link to an earlier external link of this layer is one more name of the same lower file.
      this.external.set(path, this.external.get(target) ?? target);
      this.#externalAt.set(path, this.#index);
      return;
    }
    if (entry.type === 'dir') this.fail(`hardlink target ${JSON.stringify(target)} is a directory`);
    entry.nlink++;
    this.explicit.set(path, entry);
  }

  /** Landmarks still occupy a member, so their spans take part in offsets; they are never listed. */
  #addHidden(raw: RawTocEntry, path: string): void {
    if (this.#hiddenSeen.has(path)) this.fail('duplicate name');
    this.#hiddenSeen.add(path);
    if (path === NO_PREFETCH_LANDMARK) this.noPrefetch = true;
    if (raw.type !== 'reg') return;
    const size = count(raw.size, 'size');
    if (size > this.#limits.maxFileBytes) this.fail(`size ${size} is above maxFileBytes ${this.#limits.maxFileBytes}`);
    if (path === PREFETCH_LANDMARK) this.prefetchEnd = count(raw.offset, 'offset');
    if (size > 0) this.#openFile(raw, path, null, size, checkDigest(raw.digest, 'digest'));
  }

  #openFile(raw: RawTocEntry, path: string, entry: Entry | null, size: number, digest: string | undefined): void {
    this.#open = { path, entry, size, digest, chunks: [], covered: 0 };
    this.#addChunk(raw, this.#open);
  }

  #addChunk(raw: RawTocEntry, file: OpenFile): void {
    const chunkOffset = count(raw.chunkOffset, 'chunkOffset');
    if (chunkOffset !== file.covered) {
      this.fail(`chunkOffset ${chunkOffset} leaves a gap or overlap: the file's chunks so far end at ${file.covered}`);
    }
    const chunkSize = count(raw.chunkSize, 'chunkSize');
    const size = chunkSize > 0 ? chunkSize : file.size - chunkOffset;
    if (size <= 0 || chunkOffset + size > file.size) {
      this.fail(`chunk [${chunkOffset}, ${chunkOffset + size}) does not fit in the file's ${file.size} bytes`);
    }
    const zeros = raw.chunkType === 'zeros';
    if (raw.chunkType !== undefined && !zeros && raw.chunkType !== 'data') this.fail(`unknown chunkType ${JSON.stringify(raw.chunkType)}`);
    const innerOffset = count(raw.innerOffset, 'innerOffset');
    let compressedOffset = 0;
    let compressedEnd = 0;
    if (!zeros) {
      // Decompression-bomb guard: a read must inflate innerOffset + size bytes of this span.
      if (!this.#uncompressed && innerOffset + size > this.#limits.maxChunkBytes) {
        this.fail(`chunk needs ${innerOffset + size} uncompressed bytes, above maxChunkBytes ${this.#limits.maxChunkBytes}`);
      }
      compressedOffset = count(raw.offset, 'offset');
      if (compressedOffset < this.#lastOffset) this.fail(`offset ${compressedOffset} is before the previous data offset ${this.#lastOffset}`);
      if (compressedOffset >= this.#tocOffset) this.fail(`offset ${compressedOffset} is not before the TOC at ${this.#tocOffset}`);
      this.#lastOffset = compressedOffset;
      if (raw.endOffset !== undefined) {
        compressedEnd = count(raw.endOffset, 'endOffset');
        if (compressedEnd <= compressedOffset || compressedEnd > this.#tocOffset) {
          this.fail(`endOffset ${compressedEnd} is not in (${compressedOffset}, ${this.#tocOffset}]`);
        }
      }
    }
    const chunkDigest = checkDigest(raw.chunkDigest, 'chunkDigest');
    const chunk: Chunk = {
      fileOffset: chunkOffset,
      size,
      compressedOffset,
      compressedEnd,
      innerOffset,
      // The same text as the file digest (a one-chunk file) is stored once.
      digest: chunkDigest === undefined ? '' : chunkDigest === file.digest ? file.digest : chunkDigest,
      zeros,
    };
    if (raw.span !== undefined) chunk.span = count(raw.span, 'span');
    file.chunks.push(chunk);
    file.covered += size;
    if (!zeros && raw.endOffset === undefined) this.#spans.push(chunk);
  }

  #finishFile(): void {
    const file = this.#open;
    if (file === null) return;
    this.#open = null;
    if (file.covered !== file.size) this.fail(`the chunks of ${JSON.stringify(file.path)} cover ${file.covered} of its ${file.size} bytes`);
    const only = file.chunks.length === 1 ? file.chunks[0]! : undefined;
    // A one-chunk file without chunkDigest is guarded by the whole-file digest, as stargz's Verifier does.
    if (only !== undefined && only.digest === '' && file.digest !== undefined) only.digest = file.digest;
    // Exact-length copies: an array grown by push keeps room for 17 elements, 150 bytes per small file.
    if (file.entry !== null) file.entry.chunks = only !== undefined ? [only] : file.chunks.slice();
  }

  finish(): void {
    this.#finishFile();
    for (const [path, target] of this.external) {
      if (this.explicit.has(target) || this.external.has(target)) {
        this.#index = this.#externalAt.get(path)!;
        this.#name = path;
        this.fail(`hardlink target ${JSON.stringify(target)} is not an earlier entry of this layer (a forward reference)`);
      }
    }
    // A span ends at the next greater offset (chunks sharing one gzip member differ by innerOffset), or at the TOC.
    let end = this.#tocOffset;
    for (let i = this.#spans.length - 1; i >= 0; i--) {
      const chunk = this.#spans[i]!;
      const next = this.#spans[i + 1];
      if (next !== undefined && next.compressedOffset > chunk.compressedOffset) end = next.compressedOffset;
      chunk.compressedEnd = end;
    }
  }
}

function implicitDir(path: string): Entry {
  return { path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0, chunks: NO_CHUNKS, nlink: 2, implicit: true };
}

/** Places every name under its parent, parents first, creating the directories a layer leaves out. */
class TreeBuilder {
  readonly names = new Map<string, Entry>();
  readonly children = new Map<string, string[]>();
  distinct = 0;
  readonly #explicit: Map<string, Entry>;
  readonly #seen = new Set<Entry>();

  constructor(explicit: Map<string, Entry>) {
    this.#explicit = explicit;
    const root = explicit.get('') ?? implicitDir('');
    this.#count(root);
    this.names.set('', root);
  }

  place(path: string, entry: Entry): void {
    if (this.names.has(path)) return;
    const cut = path.lastIndexOf('/');
    const parentPath = cut < 0 ? '' : path.slice(0, cut);
    const parent = this.#directory(parentPath, path);
    this.names.set(path, entry);
    this.#count(entry);
    const siblings = this.children.get(parentPath);
    // Keyed by the parent's own path string: the sliced `parentPath` would be one more string per directory.
    if (siblings === undefined) this.children.set(parent.path, [path]);
    else siblings.push(path);
    if (entry.type === 'dir') parent.nlink++;
  }

  #count(entry: Entry): void {
    if (entry.type === 'dir' || entry.nlink === 1) this.distinct++;
    else if (!this.#seen.has(entry)) {
      this.#seen.add(entry);
      this.distinct++;
    }
  }

  #directory(path: string, child: string): Entry {
    const placed = this.names.get(path);
    if (placed !== undefined) {
      if (placed.type !== 'dir') throw new FormatError(`TOC entry ${JSON.stringify(child)}: parent ${JSON.stringify(path)} is a ${placed.type}, not a directory`);
      return placed;
    }
    const entry = this.#explicit.get(path) ?? implicitDir(path);
    if (entry.type !== 'dir') throw new FormatError(`TOC entry ${JSON.stringify(child)}: parent ${JSON.stringify(path)} is a ${entry.type}, not a directory`);
    this.place(path, entry);
    return entry;
  }

  /** An external link's parents are placed like any entry's (the name itself must stay free: see indexToc). */
  placeLinkParents(path: string): void {
    const cut = path.lastIndexOf('/');
    this.#directory(cut < 0 ? '' : path.slice(0, cut), path);
  }
}

/** Validates and indexes raw TOC entries (a generator: each indexed as it comes, then collectable). FormatError. */
export function indexToc(raw: Iterable<RawTocEntry>, opts: IndexTocOptions): TocIndex {
  const limits = resolveTocLimits(opts.limits);
  if (!Number.isSafeInteger(opts.tocOffset) || opts.tocOffset < 0) throw new FormatError(`TOC offset ${opts.tocOffset} is not a non-negative safe integer`);
  if (Array.isArray(raw) && raw.length > limits.maxEntries) throw new FormatError(`TOC has ${raw.length} entries, above maxEntries ${limits.maxEntries}`);
  const indexer = new Indexer(limits, opts.tocOffset, opts.format === 'tar');
  let i = 0;
  for (const entry of raw) {
    if (i >= limits.maxEntries) throw new FormatError(`TOC has more than ${limits.maxEntries} entries, above maxEntries ${limits.maxEntries}`);
    indexer.add(entry, i++);
  }
  indexer.finish();
  const tree = new TreeBuilder(indexer.explicit);
  for (const [path, entry] of indexer.explicit) if (path !== '') tree.place(path, entry);
  for (const path of indexer.external.keys()) tree.placeLinkParents(path);
  for (const path of indexer.external.keys()) {
    if (tree.names.has(path)) throw new FormatError(`TOC entry ${JSON.stringify(path)}: a hardlink is also the parent directory of other entries`);
  }
  for (const [dir, paths] of tree.children) tree.children.set(dir, paths.slice());
  if (tree.distinct > limits.maxEntries) throw new FormatError(`TOC implies ${tree.distinct} entries, above maxEntries ${limits.maxEntries}`);
  // A landmark at offset 0 has nothing before it to prefetch.
  const prefetchEnd = indexer.noPrefetch || !indexer.prefetchEnd ? undefined : indexer.prefetchEnd;
  return new Index(opts.format, opts.tocOffset, tree.names, tree.children, tree.distinct, prefetchEnd, indexer.external);
}
