/**
 * Reads of an image tree's files, by path (MergedTree.read) or through a FileHandle made at open
 * (MergedTree.open), which keeps the layer entry its path resolved to so a FUSE read does no path walk.
 * Both go through `readOwned`, so the prefetches fed by `onOpened` (library-prefetch.ts, python-prefetch.ts)
 * see a read at offset 0 the same whichever way it came.
 */
import { IsDirectoryError, TocfsError } from '../errors.js';
import type { TocEntry } from '../formats/toc.js';
import type { FileHandle, FsNode } from './filesystem.js';
import type { Layer, LayerReadOptions } from '../layers/layer.js';

/** Told of every reader's successful read at offset 0 of a file, with its bytes. */
export type OnOpened = (path: string, head: Uint8Array) => void;

/** Where a regular file's bytes live. */
export interface Owned {
  readonly layer: Layer;
  readonly entry: TocEntry;
}

/** Bytes of the file at `path` from the layer that owns it; a reader's read at offset 0 tells `onOpened`. */
export function readOwned(
  path: string,
  { layer, entry }: Owned,
  offset: number,
  length: number,
  signal: AbortSignal | undefined,
  opts: LayerReadOptions,
  onOpened: OnOpened | undefined,
): Promise<Uint8Array> {
  const reading = layer.read(entry, offset, length, signal, opts);
  // A prefetch's own reads (background) must not set off more prefetches.
  if (onOpened !== undefined && offset === 0 && !opts.background) reading.then((head) => onOpened(path, head), () => {});
  return reading;
}

/**
 * Why a node has no bytes to read: EISDIR for a directory, as read(2) answers (a program's mistake, not a
 * broken image), and FORMAT for a symlink or device, which the kernel never sends here.
 */
export function notAFile(path: string, isDir: boolean): TocfsError {
  return isDir ? new IsDirectoryError(path) : new TocfsError('FORMAT', `${JSON.stringify(path)} is not a regular file`);
}

/** A handle on the node at `path`; `owned` is where its bytes live when it is a regular file. */
export function treeFile(path: string, node: FsNode, owned: Owned | undefined, onOpened: OnOpened | undefined): FileHandle {
  if (node.type !== 'reg' || owned === undefined) {
    const error = notAFile(path, node.type === 'dir');
    return { node, read: () => Promise.reject(error) };
  }
  return { node, read: (offset, length, opts = {}) => readOwned(path, owned, offset, length, opts.signal, {}, onOpened) };
}
