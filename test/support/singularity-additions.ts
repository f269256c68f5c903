// What tocfs adds to an image root for Singularity/Apptainer (src/image/singularity-files.ts), split off
// a snapshot of a mounted image so the rest can be compared with `umoci unpack` of the same image.
import { singularityEntries } from '../../src/image/singularity-files.js';
import type { TreeSnapshot } from './tree-snapshot.js';

const SYNTHETIC = new Set(singularityEntries({}).map((e) => e.path));

/**
 * `got` without the synthetic entries that `want` (the oracle) lacks, each parent's link count lowered
 * for every synthetic subdirectory taken out; `added` lists what was taken out. A path outside the
 * synthetic set is never touched, so anything else tocfs adds still shows up as a difference.
 */
export function withoutSingularityAdditions(got: TreeSnapshot, want: TreeSnapshot): { tree: TreeSnapshot; added: string[] } {
  const tree: Record<string, TreeSnapshot[string]> = { ...got };
  const added: string[] = [];
  for (const path of Object.keys(got)) {
    if (path in want || !SYNTHETIC.has(path)) continue;
    added.push(path);
    delete tree[path];
  }
  for (const path of added) {
    if (got[path]!.type !== 'dir') continue;
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? '' : path.slice(0, cut);
    const entry = tree[parent];
    if (entry !== undefined) tree[parent] = { ...entry, nlink: entry.nlink - 1 };
  }
  return { tree, added: added.sort() };
}
