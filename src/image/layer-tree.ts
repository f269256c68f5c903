/**
 * Helpers the image code shares over layers (the contract itself is src/layers/layer.ts): listing the
 * directories along a path of a lazily listed layer, and the mount's inode counter.
 */
import type { TocEntry } from '../formats/toc.js';
import type { Layer } from '../layers/layer.js';

/** Lists every directory along `path` ('' = root only) in a lazily listed layer; a no-op for a whole index. */
export async function listPath(layer: Layer, path: string, signal?: AbortSignal): Promise<void> {
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

/** Every entry of a layer (`tocfs ls`); a lazily listed layer has each of its directories listed first. */
export async function* walkLayer(layer: Layer, signal?: AbortSignal): AsyncGenerator<[path: string, entry: TocEntry]> {
  if (layer.listDir !== undefined) {
    const dirs = [''];
    while (dirs.length > 0) {
      const dir = dirs.pop()!;
      await layer.listDir(dir, signal);
      for (const [name, entry] of layer.index.children(dir) ?? []) {
        if (entry.type === 'dir') dirs.push(dir === '' ? name : `${dir}/${name}`);
      }
    }
  }
  yield* layer.index.walk();
}
