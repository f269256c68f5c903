/**
 * Paths inside an image tree as a process in it would see them, for the prefetches that guess what a
 * process will read next (library-prefetch.ts, python-prefetch.ts): symlinks followed inside the image,
 * absolute targets from its root, and whole files read in the background.
 */
import type { FsNode } from './filesystem.js';
import type { LayerReadOptions } from '../layers/layer.js';

/** What a prefetch needs of an image tree (MergedTree): normalised paths, '' = root. */
export interface PrefetchTree {
  lookup(path: string): FsNode | undefined;
  read(path: string, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array>;
  /** Lists lazily listed directories along `path` (CVMFS layers) before `lookup` is asked. */
  load?(path: string): Promise<void>;
}

const MAX_SYMLINK_HOPS = 40;

/** The normalised path of `absolute` with every symlink followed inside the image; undefined if missing. */
export async function resolveInTree(tree: PrefetchTree, absolute: string): Promise<string | undefined> {
  // Most paths hold no symlink and no dot: a lookup of the path as written, and of its parent when it is
  // missing, says so (the prefetches ask for many paths that are not there).
  const direct = absolute.replace(/^\/+/, '');
  if (!/(^|\/)\.\.?(\/|$)|\/\//.test(direct)) {
    await tree.load?.(direct);
    const node = tree.lookup(direct);
    if (node !== undefined && node.type !== 'symlink') return direct;
    const slash = direct.lastIndexOf('/');
    if (node === undefined && (slash < 0 || tree.lookup(direct.slice(0, slash))?.type === 'dir')) return undefined;
  }
  const rest = absolute.split('/');
  const done: string[] = [];
  for (let hops = 0; rest.length > 0; ) {
    const name = rest.shift()!;
    if (name === '' || name === '.') continue;
    if (name === '..') {
      done.pop();
      continue;
    }
    const path = [...done, name].join('/');
    await tree.load?.(path);
    const node = tree.lookup(path);
    if (node === undefined) return undefined;
    if (node.type === 'symlink' && node.linkName !== undefined) {
      if (++hops > MAX_SYMLINK_HOPS) return undefined;
      rest.unshift(...node.linkName.split('/'));
      if (node.linkName.startsWith('/')) done.length = 0;
      continue;
    }
    done.push(name);
  }
  return done.join('/');
}

/** A regular file of at most `maxBytes`, read whole in the background; undefined for anything else. */
export async function readWhole(tree: PrefetchTree, path: string, maxBytes: number): Promise<Uint8Array | undefined> {
  const node = tree.lookup(path);
  if (node?.type !== 'reg' || node.size > maxBytes) return undefined;
  return tree.read(path, 0, node.size, undefined, { background: true });
}
