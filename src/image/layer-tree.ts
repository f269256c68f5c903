/**
 * What an image tree needs from one layer: its TOC index and reads of its regular files. `VerifiedLayer`
 * (a layer with a TOC) and the full-layer reader (a layer streamed once and indexed) both satisfy it.
 */
import type { TocEntry, TocFormat, TocIndex } from '../formats/toc.js';
import type { LayerReadOptions } from '../layers/toc/toc-layer.js';

/**
 * What the merged tree asks of a layer's index: a whole `TocIndex`, or an index listed one directory at a
 * time (a CVMFS `layerfs`, format 'cvmfs'), whose `children`/`lookup` answer for directories that
 * `LayerTree.listDir` has listed.
 */
export interface LayerIndex extends Pick<TocIndex, 'root' | 'lookup' | 'children' | 'walk' | 'externalLinks'> {
  readonly format: TocFormat | 'cvmfs' | 'cvmfs-flat';
  /** The prioritised files' span of an optimized layer (TocIndex.prefetch); absent for other indexes. */
  readonly prefetch?: TocIndex['prefetch'];
}

export type { LayerReadOptions };

export interface LayerTree {
  readonly digest: string;
  readonly index: LayerIndex;
  /** Where the TOC came from this time: the layer's blob, tocfs's disk cache, or a CVMFS directory. */
  readonly tocSource?: 'blob' | 'cache' | 'cvmfs';
  /** Bytes [offset, offset + length) of a regular file of this layer, clamped at its end; may be a view of cached bytes, never to be changed. */
  read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array>;
  /**
   * Lazily listed layers only: lists the directory at `path` (its parent listed first), after which
   * `index.children(path)` and `index.lookup` of its children answer, and the opaque marker of each child
   * directory is known. Absent when the index is whole.
   */
  listDir?(path: string, signal?: AbortSignal): Promise<void>;
}

/** Lists every directory along `path` ('' = root only) in a lazily listed layer; a no-op for a whole index. */
export async function listPath(layer: LayerTree, path: string, signal?: AbortSignal): Promise<void> {
  if (layer.listDir === undefined) return;
  await layer.listDir('', signal);
  if (path === '') return;
  const parts = path.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (layer.index.lookup(dir)?.type !== 'dir') return;
    await layer.listDir(dir, signal);
  }
}

/** One inode counter per filesystem, so numbers are unique across every image and view of a mount. */
export interface InodeCounter {
  next(): number;
  /** How many numbers `next` has handed out. */
  issued(): number;
}

/** Inode 1 is the mount root (FUSE_ROOT_ID); numbers handed out start at 2 unless told otherwise. */
export function createInodeCounter(first = 2): InodeCounter {
  let n = first;
  return { next: () => n++, issued: () => n - first };
}
