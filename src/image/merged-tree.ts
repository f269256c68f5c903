/**
 * The merged root filesystem of an image, exactly as `umoci unpack` lays it out (DESIGN.md §1.3): layers
 * apply bottom to top, `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` hides lower layers'
 * children of its directory, a non-directory replaces whatever was below, a directory merges into a
 * directory below (its own metadata wins). Everything is lazy: a directory's merged children are computed
 * on its first lookup or readdir and memoised, so a negative lookup in a seen directory is one Map get.
 *
 * A hardlink whose target another (lower) layer holds (`TocIndex.externalLinks`) is resolved as umoci's
 * link(2) does when the layer applies: against the merged view of the layers below it. The name then is
 * one more name of that file (its inode, stat and bytes); a target missing there, or a directory, leaves
 * the name out (logged), never failing the image.
 *
 * Layers listed lazily (a CVMFS `layerfs`, `Layer.listDir`) are listed one directory at a time: `load`
 * lists, in every layer that contributes to it, each directory along a path before the synchronous calls
 * (`lookup`, `readdir`, `xattrs`, `read`) are asked about it. A tree whose layers are all whole indexes
 * needs no `load`.
 */
import { TocfsError } from '../errors.js';
import type { TocEntry } from '../formats/toc.js';
import type { FileHandle, FsNode } from './filesystem.js';
import type { Layer, LayerReadOptions } from '../layers/layer.js';
import { entryStat } from './entry-stat.js';
import { externalLinksByDir } from './external-links.js';
import { isWhiteout, opaqueMarkerPath } from '../formats/whiteouts.js';
import { SingleFlight } from '../util/single-flight.js';
import { createInodeCounter, type InodeCounter } from './layer-tree.js';
import { notAFile, readOwned, treeFile, type OnOpened, type Owned } from './tree-file.js';

import { mergeDirectory, type LinkPart, type Part } from './merge-dir.js';

interface Node {
  /** Directories and files with several names: made when first asked for, then kept. */
  stat?: FsNode;
  /**
   * A file with one name: its inode once first asked for (0 before), its stat made afresh on each ask. A
   * tree of 10^6 files keeps one small object per name instead of a stat and two WeakMap entries (~250
   * bytes a name: half the daemon's heap after a `find` over such a tree); the kernel caches attributes.
   */
  ino?: number;
  /** The layer and entry that own the node: reads and xattrs go there. Absent for an image without layers. */
  readonly owner?: Part;
  /**
   * Directories only: the normalised path, the layers whose children merge into it (topmost first, down
   * to an opaque one) and the layers that hold the directory itself (the same, plus the ones below an
   * opaque marker: `.wh..wh..opq` hides children, not the directory's own metadata).
   */
  readonly dir?: { readonly path: string; readonly parts: readonly Part[]; readonly held: readonly Part[] };
  /** Directories only, once computed. */
  children?: Map<string, Node>;
}

export interface MergedTreeOptions {
  /** Shared with the rest of the filesystem so inode numbers are unique across it. */
  readonly inodes?: InodeCounter;
  /** Told once per tree about each hardlink left out because its target is missing below it or a directory. */
  readonly log?: (line: string) => void;
  /** Told of every successful read at offset 0 of a file, with its bytes (library-prefetch.ts). */
  readonly onOpened?: OnOpened;
}

export class MergedTree {
  readonly layers: readonly Layer[];
  readonly #inodes: InodeCounter;
  /** Per layer index: the inode of each entry (hardlinks share their TocEntry, hence their inode). */
  readonly #inos: WeakMap<TocEntry, number>[];
  /** Per layer index: the stat of each non-directory entry, shared by all its names. */
  readonly #stats: WeakMap<TocEntry, FsNode>[];
  /** Per layer index: whether an implicit directory holds anything but whiteouts. */
  readonly #content: WeakMap<TocEntry, boolean>[];
  readonly #root: Node;
  readonly #log: ((line: string) => void) | undefined;
  readonly #onOpened: OnOpened | undefined;
  /** Per layer index: its external hardlinks by parent directory, as [name, target] (almost always empty). */
  readonly #links: ReadonlyMap<string, (readonly [name: string, target: string])[]>[];
  /** The merged views of layers [0, n), keyed by n; shared with those views (each only asks lower ones). */
  #belowViews = new Map<number, MergedTree>();
  /** Per file reached by external links, the link paths that resolve to it; made on first stat. */
  #linkNames: WeakMap<TocEntry, string[]> | undefined;
  /** Whether some layer is listed lazily (then `load` must run before the synchronous calls). */
  readonly #lazy: boolean;
  /** External link targets listed in the lazily listed layers below them (once). */
  readonly #externalTargets = new SingleFlight<void>();
  #externalTargetsListed = false;

  /** `layers` bottom to top, as in the manifest. */
  constructor(layers: readonly Layer[], opts: MergedTreeOptions = {}) {
    this.layers = layers;
    this.#inodes = opts.inodes ?? createInodeCounter();
    this.#inos = layers.map(() => new WeakMap());
    this.#stats = layers.map(() => new WeakMap());
    this.#content = layers.map(() => new WeakMap());
    this.#log = opts.log;
    this.#onOpened = opts.onOpened;
    this.#lazy = layers.some((layer) => layer.listDir !== undefined);
    this.#links = layers.map((layer) => externalLinksByDir(layer.index));
    const parts: Part[] = [];
    const held: Part[] = [];
    let opaque = false;
    for (let l = layers.length - 1; l >= 0; l--) {
      const part = { layer: l, entry: layers[l]!.index.root };
      held.push(part);
      if (!opaque) parts.push(part);
      opaque ||= this.#isOpaque(l, '');
    }
    if (held.length === 0) {
      // An image without layers: an empty root, owned by nobody.
      this.#root = { stat: Object.freeze(emptyDir(this.#inodes.next())), dir: { path: '', parts: [], held: [] }, children: new Map() };
    } else {
      this.#root = this.#dirNode('', parts, held);
    }
  }

  get root(): FsNode {
    return this.#statOf(this.#root);
  }

  /**
   * Makes `path` answerable by the synchronous calls: lists, in the lazily listed layers that merge into
   * them, the root and every directory along `path` (and `path` itself when it is one, since a directory's
   * stat counts its subdirectories). Memoised per directory; a no-op when no layer is listed lazily.
   */
  async load(path: string, signal?: AbortSignal): Promise<void> {
    if (!this.#lazy) return;
    if (!this.#externalTargetsListed) {
      // A link's target may lie in a lazily listed layer below it: list those paths there first.
      await this.#externalTargets.run('', async () => {
        await Promise.all(
          this.#links.flatMap((byDir, layer) =>
            [...byDir.values()].flat().map(([, target]) => this.#below(layer).load(target, signal)),
          ),
        );
        this.#externalTargetsListed = true;
      });
    }
    let node: Node | undefined = this.#root;
    await this.#loadDir(node, signal);
    if (path === '') return;
    for (const name of path.split('/')) {
      if (node.dir === undefined) return;
      node = this.#childrenOf(node).get(name);
      if (node === undefined) return;
      if (node.dir !== undefined) await this.#loadDir(node, signal);
    }
  }

  async #loadDir(node: Node, signal: AbortSignal | undefined): Promise<void> {
    if (node.children !== undefined) return;
    const { path, parts } = node.dir!;
    await Promise.all(parts.map(({ layer }) => this.layers[layer]!.listDir?.(path, signal)));
  }

  /** The node at a normalised path ('' = root, 'usr/bin'), or undefined. */
  lookup(path: string): FsNode | undefined {
    const node = this.#find(path);
    return node === undefined ? undefined : this.#statOf(node);
  }

  /** The names in a directory; undefined when `path` is not a directory. */
  readdir(path: string): readonly string[] | undefined {
    const node = this.#find(path);
    if (node?.dir === undefined) return undefined;
    return [...this.#childrenOf(node).keys()];
  }

  /** The xattrs of a node (empty for an implicit directory); undefined when there is no node. */
  xattrs(path: string): ReadonlyMap<string, Uint8Array> | undefined {
    const node = this.#find(path);
    if (node === undefined) return undefined;
    return new Map(Object.entries(node.owner?.entry.xattrs ?? {}));
  }

  /** Where a regular file's bytes live; undefined when `path` is not one. */
  owner(path: string): Owned | undefined {
    const node = this.#find(path);
    return node && this.#owned(node);
  }

  /** Bytes of a regular file, read from the layer that owns it. NOT_FOUND, IS_DIRECTORY, FORMAT (no file). */
  read(path: string, offset: number, length: number, signal?: AbortSignal, opts: LayerReadOptions = {}): Promise<Uint8Array> {
    const node = this.#find(path);
    if (node === undefined) return Promise.reject(new TocfsError('NOT_FOUND', `no file ${JSON.stringify(path)}`));
    const owned = this.#owned(node);
    if (owned === undefined) return Promise.reject(notAFile(path, node.dir !== undefined));
    return readOwned(path, owned, offset, length, signal, opts, this.#onOpened);
  }

  /** The node at `path` with where its bytes live, for all the reads of one FUSE open; undefined when none. */
  open(path: string): FileHandle | undefined {
    const node = this.#find(path);
    return node && treeFile(path, this.#statOf(node), this.#owned(node), this.#onOpened);
  }

  #owned({ owner }: Node): Owned | undefined {
    if (owner === undefined || owner.entry.type !== 'reg') return undefined;
    return { layer: this.layers[owner.layer]!, entry: owner.entry };
  }

  #find(path: string): Node | undefined {
    let node: Node | undefined = this.#root;
    if (path === '') return node;
    for (const name of path.split('/')) {
      if (node.dir === undefined) return undefined;
      node = this.#childrenOf(node).get(name);
      if (node === undefined) return undefined;
    }
    return node;
  }

  #childrenOf(node: Node): Map<string, Node> {
    if (node.children !== undefined) return node.children;
    const { path, parts } = node.dir!;
    const prefix = path === '' ? '' : `${path}/`;
    const found = mergeDirectory(
      parts.map(({ layer }) => ({ layer, index: this.layers[layer]!.index, links: this.#links[layer]!.get(path) ?? [] })),
      path,
      (layer, dirPath) => this.#isOpaque(layer, dirPath),
    );
    const children = new Map<string, Node>();
    for (const [name, { parts: childParts, held, link }] of found) {
      if (link !== undefined) {
        const owner = this.#resolveLink(link, prefix + name);
        if (owner !== undefined) children.set(name, { owner });
        continue;
      }
      const top = childParts[0];
      if (top === undefined) continue;
      // umoci only MkdirAll's the parents of real entries: a directory implied by whiteouts alone is never
      // created, though its whiteouts still apply when a lower layer has the real directory.
      if (held.every((p) => !this.#hasContent(p.layer, prefix + name, p.entry))) continue;
      children.set(name, top.entry.type === 'dir' ? this.#dirNode(prefix + name, childParts, held) : this.#leafNode(top));
    }
    node.children = children;
    return children;
  }

  #dirNode(path: string, parts: readonly Part[], held: readonly Part[]): Node {
    // umoci applies a real directory's metadata; an implicit one (MkdirAll) leaves a lower real one alone.
    const owner = held.find((p) => !p.entry.implicit) ?? held[0]!;
    return { owner, dir: { path, parts, held } };
  }

  /** A directory's stat counts its subdirectories in nlink, so it is made on first use. */
  #statOf(node: Node): FsNode {
    if (node.stat !== undefined) return node.stat;
    if (node.dir === undefined) {
      const owner = node.owner!;
      if (owner.entry.nlink !== 1 || this.#linkNamesOf(owner.entry) !== undefined) return (node.stat = this.#leafStat(owner));
      if (node.ino === 0 || node.ino === undefined) node.ino = this.#inodes.next();
      return entryStat(owner.entry, node.ino, 1);
    }
    const { entry } = node.owner!;
    let subdirs = 0;
    for (const child of this.#childrenOf(node).values()) if (child.dir !== undefined) subdirs++;
    node.stat = Object.freeze({ ...entryStat(entry, this.#ino(node.owner!), 2 + subdirs), type: 'dir', size: 0 } satisfies FsNode);
    return node.stat;
  }

  #leafNode(part: Part): Node {
    // `ino` from the start: a property added later would cost the object a separate property store.
    return { owner: part, ino: 0 };
  }

  /** Shared by every name of the file (hardlinks, in-layer or external, share the TocEntry). */
  #leafStat(part: Part): FsNode {
    const stats = this.#stats[part.layer]!;
    let stat = stats.get(part.entry);
    if (stat === undefined) {
      stat = Object.freeze(entryStat(part.entry, this.#ino(part), this.#nlink(part)));
      stats.set(part.entry, stat);
    }
    return stat;
  }

  /**
   * The entry's own count, unless external links reach it: then, as on umoci's disk, the names of it
   * this tree shows (its names in its own layer and the links that resolved to it, less those an upper
   * layer deleted or replaced).
   */
  #nlink(part: Part): number {
    const links = this.#linkNamesOf(part.entry);
    if (links === undefined) return part.entry.nlink;
    const names = [...this.#layerNames(part), ...links];
    let n = 0;
    for (const name of names) if (this.#find(name)?.owner?.entry === part.entry) n++;
    return Math.max(n, 1);
  }

  #linkNamesOf(entry: TocEntry): readonly string[] | undefined {
    if (this.#linkNames === undefined) {
      this.#linkNames = new WeakMap();
      for (const [layer, byDir] of this.#links.entries()) {
        for (const [dir, list] of byDir) {
          for (const [name, target] of list) {
            const owner = this.#below(layer).#resolve(target);
            if (typeof owner === 'string') continue;
            const names = this.#linkNames.get(owner.entry);
            const path = dir === '' ? name : `${dir}/${name}`;
            if (names === undefined) this.#linkNames.set(owner.entry, [path]);
            else names.push(path);
          }
        }
      }
    }
    return this.#linkNames.get(entry);
  }

  /** The names an entry has in its own layer (rare: only for files external links reach). */
  #layerNames({ layer, entry }: Part): string[] {
    if (entry.nlink === 1) return [entry.path];
    const names: string[] = [];
    for (const [path, e] of this.layers[layer]!.index.walk()) if (e === entry) names.push(path);
    return names;
  }

  /** The file an external link names, as the layers below it show it; undefined (logged) when there is none. */
  #resolveLink(link: LinkPart, path: string): Part | undefined {
    const owner = this.#below(link.layer).#resolve(link.target);
    if (typeof owner !== 'string') return owner;
    this.#log?.(`layer ${link.layer} ${this.layers[link.layer]!.digest}: hardlink ${JSON.stringify(path)} left out: its target ${JSON.stringify(link.target)} ${owner} in the layers below`);
    return undefined;
  }

  /** The non-directory at `path` of this view (its owning part), or why there is none. */
  #resolve(path: string): Part | string {
    const node = this.#find(path);
    if (node?.owner === undefined) return 'is missing';
    if (node.dir !== undefined) return 'is a directory';
    return node.owner;
  }

  /** The merged view of layers [0, layer): indices and TocEntry objects are the same as in this tree. */
  #below(layer: number): MergedTree {
    let view = this.#belowViews.get(layer);
    if (view === undefined) {
      view = new MergedTree(this.layers.slice(0, layer));
      view.#belowViews = this.#belowViews;
      this.#belowViews.set(layer, view);
    }
    return view;
  }

  #ino({ layer, entry }: Part): number {
    const inos = this.#inos[layer]!;
    let ino = inos.get(entry);
    if (ino === undefined) {
      ino = this.#inodes.next();
      inos.set(entry, ino);
    }
    return ino;
  }

  #isOpaque(layer: number, dirPath: string): boolean {
    return this.layers[layer]!.index.lookup(opaqueMarkerPath(dirPath)) !== undefined;
  }

  /** Whether a directory of one layer holds (at any depth) an entry that is not a whiteout. */
  #hasContent(layer: number, path: string, entry: TocEntry): boolean {
    if (entry.type !== 'dir' || !entry.implicit) return true;
    const memo = this.#content[layer]!;
    let has = memo.get(entry);
    if (has !== undefined) return has;
    // An external hardlink is content: umoci makes its parents before linking.
    has = this.#links[layer]!.has(path);
    const prefix = `${path}/`;
    for (const [name, child] of has ? [] : (this.layers[layer]!.index.children(path) ?? [])) {
      if (isWhiteout(name) && child.type !== 'dir') continue;
      if (child.type !== 'dir' || this.#hasContent(layer, prefix + name, child)) {
        has = true;
        break;
      }
    }
    memo.set(entry, has);
    return has;
  }
}

function emptyDir(ino: number): FsNode {
  return { ino, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0, nlink: 2 };
}
