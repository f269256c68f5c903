/**
 * The merged root filesystem of an image, exactly as `umoci unpack` lays it out (DESIGN.md §1.3): layers
 * apply bottom to top, `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` hides lower layers'
 * children of its directory, a non-directory replaces whatever was below, a directory merges into a
 * directory below (its own metadata wins). Everything is lazy: a directory's merged children are computed
 * on its first lookup or readdir and memoised, so a negative lookup in a seen directory is one Map get.
 */
import { TocfsError } from '../errors.js';
import type { TocEntry } from '../formats/toc.js';
import type { FsNode } from './filesystem.js';
import { createInodeCounter, type InodeCounter, type LayerTree } from './layer-tree.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
/** Format artefacts stored as root-level tar entries; TocIndex hides them too, a full layer may not. */
const ARTEFACTS = new Set(['stargz.index.json', '.prefetch.landmark', '.no.prefetch.landmark']);

/** One layer's entry at a path. */
interface Part {
  readonly layer: number;
  readonly entry: TocEntry;
}

interface Node {
  /** Made when first asked for (directories) or at once (everything else). */
  stat?: FsNode;
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
}

export class MergedTree {
  readonly layers: readonly LayerTree[];
  readonly #inodes: InodeCounter;
  /** Per layer index: the inode of each entry (hardlinks share their TocEntry, hence their inode). */
  readonly #inos: WeakMap<TocEntry, number>[];
  /** Per layer index: the stat of each non-directory entry, shared by all its names. */
  readonly #stats: WeakMap<TocEntry, FsNode>[];
  /** Per layer index: whether an implicit directory holds anything but whiteouts. */
  readonly #content: WeakMap<TocEntry, boolean>[];
  readonly #root: Node;

  /** `layers` bottom to top, as in the manifest. */
  constructor(layers: readonly LayerTree[], opts: MergedTreeOptions = {}) {
    this.layers = layers;
    this.#inodes = opts.inodes ?? createInodeCounter();
    this.#inos = layers.map(() => new WeakMap());
    this.#stats = layers.map(() => new WeakMap());
    this.#content = layers.map(() => new WeakMap());
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
  owner(path: string): { layer: LayerTree; entry: TocEntry } | undefined {
    const node = this.#find(path);
    if (node?.owner === undefined || node.owner.entry.type !== 'reg') return undefined;
    return { layer: this.layers[node.owner.layer]!, entry: node.owner.entry };
  }

  /** Bytes of a regular file, read from the layer that owns it. NOT_FOUND / FORMAT (not a file). */
  read(path: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const node = this.#find(path);
    if (node === undefined) return Promise.reject(new TocfsError('NOT_FOUND', `no file ${JSON.stringify(path)}`));
    const { owner } = node;
    if (owner === undefined || owner.entry.type !== 'reg') {
      return Promise.reject(new TocfsError('FORMAT', `${JSON.stringify(path)} is not a regular file`));
    }
    return this.layers[owner.layer]!.read(owner.entry, offset, length, signal);
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
    // Per name: its parts and held parts so far (topmost first), whether lower layers can still hold it
    // (closed) and whether they can still add children (opaque).
    const found = new Map<string, { parts: Part[]; held: Part[]; opaque: boolean; closed: boolean }>();
    for (const { layer } of parts) {
      const entries = this.layers[layer]!.index.children(path);
      if (entries === undefined) continue;
      const whiteouts: string[] = [];
      for (const [name, entry] of entries) {
        if (name === OPAQUE) continue; // handled where `parts` was built
        if (name.startsWith(WHITEOUT_PREFIX)) {
          // umoci reads whiteouts from tar entries' base names only. A `.wh.X` directory the TOC implies
          // for a deeper entry is no whiteout, and MkdirAll creates it as a plain directory.
          if (!entry.implicit) whiteouts.push(name.slice(WHITEOUT_PREFIX.length));
          if (entry.type !== 'dir') continue;
        }
        if (path === '' && ARTEFACTS.has(name)) continue;
        const seen = found.get(name);
        if (seen?.closed) continue;
        const part = { layer, entry };
        const isDir = entry.type === 'dir';
        const opaque = isDir && this.#isOpaque(layer, prefix + name);
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
    const children = new Map<string, Node>();
    for (const [name, { parts: childParts, held }] of found) {
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
    const { entry } = node.owner!;
    let subdirs = 0;
    for (const child of this.#childrenOf(node).values()) if (child.dir !== undefined) subdirs++;
    node.stat = Object.freeze({
      ino: this.#ino(node.owner!),
      type: 'dir',
      mode: entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      mtimeMs: entry.mtimeMs,
      size: 0,
      nlink: 2 + subdirs,
    } satisfies FsNode);
    return node.stat;
  }

  #leafNode(part: Part): Node {
    const stats = this.#stats[part.layer]!;
    let stat = stats.get(part.entry);
    if (stat === undefined) {
      const e = part.entry;
      stat = Object.freeze({
        ino: this.#ino(part),
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtimeMs: e.mtimeMs,
        size: e.size,
        nlink: e.nlink,
        ...(e.linkName !== undefined && { linkName: e.linkName }),
        ...(e.devMajor !== undefined && { devMajor: e.devMajor }),
        ...(e.devMinor !== undefined && { devMinor: e.devMinor }),
      } satisfies FsNode);
      stats.set(part.entry, stat);
    }
    return { stat, owner: part };
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
    return this.layers[layer]!.index.lookup(dirPath === '' ? OPAQUE : `${dirPath}/${OPAQUE}`) !== undefined;
  }

  /** Whether a directory of one layer holds (at any depth) an entry that is not a whiteout. */
  #hasContent(layer: number, path: string, entry: TocEntry): boolean {
    if (entry.type !== 'dir' || !entry.implicit) return true;
    const memo = this.#content[layer]!;
    let has = memo.get(entry);
    if (has !== undefined) return has;
    has = false;
    const prefix = `${path}/`;
    for (const [name, child] of this.layers[layer]!.index.children(path) ?? []) {
      if (name.startsWith(WHITEOUT_PREFIX) && child.type !== 'dir') continue;
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
