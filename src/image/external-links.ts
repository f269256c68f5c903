/**
 * A layer's external hardlinks (TocIndex.externalLinks: targets another, lower layer holds) grouped by
 * the directory that holds the link, as MergedTree merges one directory at a time.
 */
import type { LayerIndex } from '../layers/layer.js';

/** Parent directory ('' = root) -> [name, target] of each external link there; empty for almost every layer. */
export function externalLinksByDir(index: Pick<LayerIndex, 'externalLinks'>): Map<string, (readonly [name: string, target: string])[]> {
  const byDir = new Map<string, (readonly [string, string])[]>();
  for (const [path, target] of index.externalLinks()) {
    const cut = path.lastIndexOf('/');
    const dir = cut < 0 ? '' : path.slice(0, cut);
    const list = byDir.get(dir);
    const link = [path.slice(cut + 1), target] as const;
    if (list === undefined) byDir.set(dir, [link]);
    else list.push(link);
  }
  return byDir;
}
