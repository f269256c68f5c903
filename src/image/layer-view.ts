/** One layer's own tree (`MNT/layers/HOST/REPO@DIGEST/`): every entry of its index, whiteouts included. */
import type { TocEntry } from '../formats/toc.js';
import type { Layer } from '../layers/layer.js';
import { entryStat } from './entry-stat.js';
import type { FileHandle, FsNode } from './filesystem.js';
import { treeFile } from './tree-file.js';

export class LayerView {
  readonly layer: Layer;
  readonly #layer: Layer;
  readonly #next: () => number;
  readonly #inos = new WeakMap<TocEntry, number>();

  constructor(layer: Layer, next: () => number) {
    this.layer = layer;
    this.#layer = layer;
    this.#next = next;
  }

  lookup(path: string): FsNode | undefined {
    const entry = this.#layer.index.lookup(path);
    if (entry === undefined) return undefined;
    let ino = this.#inos.get(entry);
    if (ino === undefined) this.#inos.set(entry, (ino = this.#next()));
    return entryStat(entry, ino, entry.nlink);
  }

  readdir(path: string): readonly string[] | undefined {
    const children = this.#layer.index.children(path);
    return children === undefined ? undefined : [...children.keys()];
  }

  xattrs(path: string): ReadonlyMap<string, Uint8Array> | undefined {
    const entry = this.#layer.index.lookup(path);
    return entry === undefined ? undefined : new Map(Object.entries(entry.xattrs ?? {}));
  }

  open(path: string): FileHandle | undefined {
    const node = this.lookup(path);
    const entry = this.#layer.index.lookup(path);
    if (node === undefined || entry === undefined) return undefined;
    return treeFile(path, node, entry.type === 'reg' ? { layer: this.#layer, entry } : undefined, undefined);
  }
}
