/**
 * What an image tree needs from one layer: its TOC index and reads of its regular files. `VerifiedLayer`
 * (a layer with a TOC) and the full-layer reader (a layer streamed once and indexed) both satisfy it.
 */
import type { TocEntry, TocIndex } from '../formats/toc.js';

export interface LayerTree {
  readonly digest: string;
  readonly index: TocIndex;
  /** Where the TOC came from this time: the layer's blob, or tocfs's disk cache (for the log line). */
  readonly tocSource?: 'blob' | 'cache';
  /** Bytes [offset, offset + length) of a regular file of this layer, clamped at its end. */
  read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
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
