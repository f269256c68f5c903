/**
 * The one contract every layer kind implements (a TOC layer, a whole layer, a CVMFS layer, and the SOCI and
 * ZIP kinds to come): a tree of entries and reads of its regular files. src/image sees layers only through
 * it; which kind serves a descriptor is the layer service's decision (layer-service.ts).
 */
import { InvalidOptionError, TocfsError } from '../errors.js';
import type { TocEntry, TocFormat, TocIndex } from '../formats/toc.js';
import type { Descriptor, RepositoryRef } from '../registry/types.js';

/**
 * What the merged tree asks of a layer's index: a whole `TocIndex`, or an index listed one directory at a
 * time (a CVMFS `layerfs`, format 'cvmfs'), whose `children`/`lookup` answer for directories that
 * `Layer.listDir` has listed.
 */
export interface LayerIndex extends Pick<TocIndex, 'root' | 'lookup' | 'children' | 'walk' | 'externalLinks'> {
  readonly format: LayerFormat;
  /** The prioritised files' span of an optimized layer (TocIndex.prefetch); absent for other indexes. */
  readonly prefetch?: TocIndex['prefetch'];
}

/** A TOC format, a whole tar (`tar`), a CVMFS `layerfs` walked lazily, or a CVMFS `.flat` tree. */
export type LayerFormat = TocFormat | 'cvmfs' | 'cvmfs-flat';

/** Where the layer's tree came from this time: its blob, tocfs's disk cache, or a CVMFS directory. */
export type TreeSource = 'blob' | 'cache' | 'cvmfs';

/** Where a layer's file bytes came from so far. */
export type BytesSource = 'registry' | 'cvmfs' | 'cvmfs+registry';

export type PrefetchState = 'none' | 'idle' | 'running' | 'done' | 'failed';

export interface LayerReadOptions {
  /**
   * A prefetch's read (src/image/library-prefetch.ts), not a reader's: nothing it finds in a cache counts
   * as bytes served (the figures), and it plans no read-ahead of its own. What it fetches still counts as
   * fetched.
   */
  readonly background?: boolean;
}

/** One layer's entry in `user.tocfs.layers` (DESIGN.md §1.4). */
export interface LayerFigures {
  readonly format: LayerFormat;
  readonly tocSource: TreeSource;
  readonly source: BytesSource;
  /** The compressed blob's size in bytes (0 for a tree CVMFS serves without the registry). */
  readonly blobBytes: number;
  /** Blob bytes fetched from the registry for this layer. */
  readonly bytesFetched: number;
  /** File bytes reads took from tocfs's caches (memory, disk chunks, a whole layer on disk). */
  readonly bytesCache: number;
  /** bytesFetched / blobBytes (the `fetched %`, as a ratio). */
  readonly fetchedRatio: number;
  /** Range requests sent for this layer (layers read by range only). */
  readonly requests?: number;
  /** The eStargz prefetch of the prioritised files (TOC layers only). */
  readonly prefetch?: PrefetchState;
  /** CVMFS layers: file bytes read from CVMFS, from the registry's copy, and files that fell back. */
  readonly bytesCvmfs?: number;
  readonly bytesRegistry?: number;
  readonly filesFromRegistry?: number;
}

export interface Layer {
  /** The compressed layer's digest (a `.flat` tree: the image config's). */
  readonly digest: string;
  readonly index: LayerIndex;
  readonly tocSource: TreeSource;
  /**
   * Bytes [offset, offset + length) of a regular file of this layer, clamped at its end (empty past EOF),
   * every byte verified; may be a view of cached bytes, never to be changed.
   */
  read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array>;
  /**
   * Lazily listed layers only: lists the directory at `path` (its parent listed first), after which
   * `index.children(path)` and `index.lookup` of its children answer. Absent when the index is whole.
   */
  listDir?(path: string, signal?: AbortSignal): Promise<void>;
  figures(): LayerFigures;
}

/** What the layer service may know of the image a layer is opened for (SOCI indexes refer to images). */
export interface ImageContext {
  /** The image (platform) manifest's digest: a SOCI v1 index's subject. */
  readonly manifestDigest: string;
  /** Its layers: which a SOCI index should cover. */
  readonly layers: readonly Descriptor[];
  /** The image index's descriptor of that manifest, when the reference named an index (SOCI v2's annotation). */
  readonly indexDescriptor?: Descriptor;
}

export interface OpenLayerOptions {
  readonly signal?: AbortSignal;
  readonly image?: ImageContext;
}

/** What src/image needs to get layers: the layer service's decision of which kind serves each. */
export interface LayerOpener {
  open(repo: RepositoryRef, descriptor: Descriptor, opts?: OpenLayerOptions): Promise<Layer>;
}

/** The ratio of fetched to whole, 0 for an empty (or unknown) whole. */
export function ratio(part: number, whole: number): number {
  return whole > 0 ? part / whole : 0;
}

/**
 * The layer's own regular file for `target` (a path, or an entry of its index). NOT_FOUND when the layer
 * has none, an entry of another layer included (its offsets would read someone else's bytes, and a path
 * would read this layer's file under another's name); FORMAT when it is not a regular file (a FIFO or a
 * device would be opened as such by a layer that reads a directory).
 */
export function ownRegularFile(layer: { readonly digest: string; readonly index: Pick<LayerIndex, 'lookup'> }, target: string | TocEntry): TocEntry {
  const path = typeof target === 'string' ? target.replace(/^(\.?\/)+/, '').replace(/\/+$/, '') : target.path;
  const entry = layer.index.lookup(path);
  if (entry === undefined || (typeof target !== 'string' && entry !== target)) {
    throw new TocfsError('NOT_FOUND', `layer ${layer.digest}: no file ${JSON.stringify(path)}`);
  }
  if (entry.type !== 'reg') throw new TocfsError('FORMAT', `layer ${layer.digest}: ${JSON.stringify(path)} is a ${entry.type}, not a regular file`);
  return entry;
}

/** [offset, end) of a read clamped at the file's end; INVALID_OPTION for a range no reader can mean. */
export function clampedRange(entry: TocEntry, offset: number, length: number): { readonly offset: number; readonly end: number } {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOptionError('offset', `${offset} is not a byte offset`);
  if (!Number.isSafeInteger(length) || length < 0) throw new InvalidOptionError('length', `${length} is not a length`);
  return { offset, end: Math.max(offset, Math.min(entry.size, offset + length)) };
}

/** Index of the first chunk whose bytes end after `offset` (chunks are sorted and contiguous). */
export function firstChunkEndingAfter(chunks: TocEntry['chunks'], offset: number): number {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = chunks[mid]!;
    if (c.fileOffset + c.size <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
