/**
 * The layer rules of one merged directory (DESIGN.md §1.3, as `umoci unpack` applies them): layers from the
 * top down, a name taken from the topmost layer that has it; a non-directory closes the name to the layers
 * below, a directory lets them add children unless it is opaque (`.wh..wh..opq`); `.wh.NAME` deletes NAME
 * from the layers below only; an external hardlink is a non-directory of its layer. Pure: no stats, no I/O.
 */
import type { TocEntry } from '../formats/toc.js';
import { isFormatArtefact, isWhiteout, OPAQUE_WHITEOUT, whitedOutName } from '../formats/whiteouts.js';
import type { LayerIndex } from '../layers/layer.js';

/** An external hardlink of one layer; its target is resolved in the view below that layer. */
export interface LinkPart {
  readonly layer: number;
  readonly target: string;
}

/** One layer's entry at a path. */
export interface Part {
  readonly layer: number;
  readonly entry: TocEntry;
}

/** One layer's contribution to the directory: its index, and its external hardlinks in the directory. */
export interface DirLayer {
  readonly layer: number;
  readonly index: Pick<LayerIndex, 'children'>;
  readonly links: readonly (readonly [name: string, target: string])[];
}

/**
 * Per name: its parts (topmost first, down to an opaque directory), the parts that hold it at all (`held`:
 * an opaque marker hides children, not the directory's own metadata), and the external link it is, if any.
 */
export interface MergedName {
  readonly parts: Part[];
  readonly held: Part[];
  /** Lower layers can no longer add children. */
  opaque: boolean;
  /** Lower layers can no longer hold the name. */
  closed: boolean;
  readonly link?: LinkPart;
}

/** The names of directory `path` over `layers` (topmost first). */
export function mergeDirectory(layers: readonly DirLayer[], path: string, isOpaque: (layer: number, dirPath: string) => boolean): Map<string, MergedName> {
  const prefix = path === '' ? '' : `${path}/`;
  const found = new Map<string, MergedName>();
  for (const { layer, index, links } of layers) {
    const entries = index.children(path);
    if (entries === undefined) continue;
    const whiteouts: string[] = [];
    // An external hardlink is a non-directory of this layer: it replaces lower names, upper ones win.
    for (const [name, target] of links) {
      const seen = found.get(name);
      if (seen === undefined) found.set(name, { parts: [], held: [], opaque: true, closed: true, link: { layer, target } });
      else seen.closed = true;
    }
    for (const [name, entry] of entries) {
      if (name === OPAQUE_WHITEOUT) continue; // handled where the directory's parts were chosen
      if (isWhiteout(name)) {
        // umoci reads whiteouts from tar entries' base names only. A `.wh.X` directory the TOC implies
        // for a deeper entry is no whiteout, and MkdirAll creates it as a plain directory.
        if (!entry.implicit) whiteouts.push(whitedOutName(name));
        if (entry.type !== 'dir') continue;
      }
      // TocIndex hides format artefacts too; a full layer's tar listing may not.
      if (path === '' && isFormatArtefact(name)) continue;
      const seen = found.get(name);
      if (seen?.closed) continue;
      const part = { layer, entry };
      const isDir = entry.type === 'dir';
      const opaque = isDir && isOpaque(layer, prefix + name);
      if (seen === undefined) {
        found.set(name, { parts: [part], held: [part], opaque, closed: !isDir });
      } else if (isDir) {
        seen.held.push(part);
        if (!seen.opaque) seen.parts.push(part);
        seen.opaque ||= opaque;
      } else {
        seen.closed = true; // an upper directory replaced this non-directory
      }
    }
    // A whiteout deletes the name from lower layers only; this layer's own entry stays.
    for (const name of whiteouts) {
      const seen = found.get(name);
      if (seen === undefined) found.set(name, { parts: [], held: [], opaque: true, closed: true });
      else seen.closed = true;
    }
  }
  return found;
}
