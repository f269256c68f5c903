/**
 * An image tree with the Singularity/Apptainer entries (singularity-files.ts) the image lacks laid over
 * it, so `singularity exec MNT/images/REF cmd` finds what a sandbox build would have made (DESIGN.md §1.3).
 * The image always wins: a synthetic entry appears only where the image has no entry of that name and
 * its parent is a directory, and the `/.singularity.d` metadata only when the image has none of its own.
 * Decided lazily, per directory, on first use, and memoised: the trees are immutable, so inodes, sizes
 * and link counts stay stable for the life of the mount.
 */
import { TocfsError } from '../errors.js';
import type { FileHandle, FsNode } from './filesystem.js';
import type { InodeCounter } from './layer-tree.js';
import type { SyntheticEntry } from './singularity-files.js';
import { notAFile } from './tree-file.js';

/** What namespace.ts asks of an image's tree (MergedTree satisfies it). Paths are normalised ('' = root). */
export interface ImageTree {
  lookup(path: string): FsNode | undefined;
  readdir(path: string): readonly string[] | undefined;
  xattrs(path: string): ReadonlyMap<string, Uint8Array> | undefined;
  read(path: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** The node at `path` resolved once for many reads (MergedTree.open); undefined when there is none. */
  open(path: string): FileHandle | undefined;
  /** Makes `path` answerable by the synchronous calls (lazily listed CVMFS layers; see MergedTree.load). */
  load(path: string, signal?: AbortSignal): Promise<void>;
}

export interface OverlayOptions {
  readonly inodes: InodeCounter;
  /** mtime of every synthetic entry (the image's creation time, so it is the same on every mount). */
  readonly mtimeMs: number;
}

const NO_XATTRS: ReadonlyMap<string, Uint8Array> = new Map();
const NONE: ReadonlyMap<string, SyntheticEntry> = new Map();

export class SingularityOverlay implements ImageTree {
  readonly #base: ImageTree;
  readonly #opts: OverlayOptions;
  /** Synthetic entries by parent path, then name. */
  readonly #byParent = new Map<string, Map<string, SyntheticEntry>>();
  readonly #byPath = new Map<string, SyntheticEntry>();
  /** Per directory path: the synthetic children that apply there, once decided. */
  readonly #applied = new Map<string, ReadonlyMap<string, SyntheticEntry>>();
  readonly #stats = new Map<string, FsNode>();
  #ownMetadata: boolean | undefined;

  constructor(base: ImageTree, entries: readonly SyntheticEntry[], opts: OverlayOptions) {
    this.#base = base;
    this.#opts = opts;
    for (const entry of entries) {
      const cut = entry.path.lastIndexOf('/');
      const parent = cut < 0 ? '' : entry.path.slice(0, cut);
      let children = this.#byParent.get(parent);
      if (children === undefined) this.#byParent.set(parent, (children = new Map()));
      children.set(entry.path.slice(cut + 1), entry);
      this.#byPath.set(entry.path, entry);
    }
  }

  lookup(path: string): FsNode | undefined {
    const known = this.#stats.get(path);
    if (known !== undefined) return known;
    const own = this.#base.lookup(path);
    if (own !== undefined) {
      if (own.type !== 'dir') return own;
      // A directory of the image counts synthetic subdirectories in its link count too.
      const extra = [...this.#syntheticChildren(path).values()].filter((e) => e.type === 'dir').length;
      if (extra === 0) return own;
      return this.#remember(path, Object.freeze({ ...own, nlink: own.nlink + extra }));
    }
    const entry = this.#synthetic(path);
    return entry === undefined ? undefined : this.#remember(path, this.#statOf(path, entry));
  }

  readdir(path: string): readonly string[] | undefined {
    const own = this.#base.readdir(path);
    if (own !== undefined) {
      const extra = this.#syntheticChildren(path);
      return extra.size === 0 ? own : [...own, ...extra.keys()];
    }
    const entry = this.#synthetic(path);
    if (entry?.type !== 'dir') return undefined;
    return [...this.#syntheticChildren(path).keys()];
  }

  xattrs(path: string): ReadonlyMap<string, Uint8Array> | undefined {
    const own = this.#base.xattrs(path);
    if (own !== undefined) return own;
    return this.#synthetic(path) === undefined ? undefined : NO_XATTRS;
  }

  // The synthetic entries only ever fill gaps of the base tree, so what must be listed is the base's.
  load(path: string, signal?: AbortSignal): Promise<void> {
    return this.#base.load(path, signal);
  }

  read(path: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const file = this.open(path);
    if (file === undefined) return Promise.reject(new TocfsError('NOT_FOUND', `no file ${JSON.stringify(path)}`));
    return file.read(offset, length, { signal });
  }

  open(path: string): FileHandle | undefined {
    const own = this.#base.open(path);
    if (own !== undefined) {
      // The handle shows the node as lookup does: an image directory's link count counts synthetic subdirectories.
      return own.node.type === 'dir' ? { node: this.lookup(path)!, read: (offset, length, opts) => own.read(offset, length, opts) } : own;
    }
    const entry = this.#synthetic(path);
    if (entry === undefined) return undefined;
    const node = this.lookup(path)!;
    const { content } = entry;
    if (content === undefined) {
      const error = notAFile(path, entry.type === 'dir');
      return { node, read: () => Promise.reject(error) };
    }
    return {
      node,
      read: async (offset, length) => {
        const start = Math.min(offset, content.length);
        return content.subarray(start, Math.min(content.length, start + length));
      },
    };
  }

  /** The synthetic entry shown at `path`, if any: its parent is shown as a directory and lacks the name. */
  #synthetic(path: string): SyntheticEntry | undefined {
    if (!this.#byPath.has(path)) return undefined;
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? '' : path.slice(0, cut);
    return this.#syntheticChildren(parent).get(path.slice(cut + 1));
  }

  /** The synthetic children shown in directory `path` (empty when it is none, or not shown as one). */
  #syntheticChildren(path: string): ReadonlyMap<string, SyntheticEntry> {
    const candidates = this.#byParent.get(path);
    if (candidates === undefined) return NONE;
    const memo = this.#applied.get(path);
    if (memo !== undefined) return memo;
    let applied: ReadonlyMap<string, SyntheticEntry> = new Map();
    if (this.#isShownDir(path)) {
      const prefix = path === '' ? '' : `${path}/`;
      applied = new Map(
        [...candidates].filter(([name, e]) => !this.#baseHas(prefix + name) && (!e.metadata || !this.#hasOwnMetadata())),
      );
    }
    this.#applied.set(path, applied);
    return applied;
  }

  #isShownDir(path: string): boolean {
    const own = this.#base.lookup(path);
    if (own !== undefined) return own.type === 'dir';
    return this.#synthetic(path)?.type === 'dir';
  }

  /** An image that brings `/.singularity.d` (of any type) keeps it, and gets none of the metadata. */
  #hasOwnMetadata(): boolean {
    return (this.#ownMetadata ??= this.#baseHas('.singularity.d'));
  }

  /**
   * Whether the image has `path`, from its parent's listing: a lookup would stat it, and the stat of a
   * directory in a lazily listed (CVMFS) layer needs that directory listed, which only its own lookup does.
   */
  #baseHas(path: string): boolean {
    const cut = path.lastIndexOf('/');
    return this.#base.readdir(cut < 0 ? '' : path.slice(0, cut))?.includes(path.slice(cut + 1)) ?? false;
  }

  #statOf(path: string, entry: SyntheticEntry): FsNode {
    const subdirs = entry.type === 'dir' ? [...this.#syntheticChildren(path).values()].filter((e) => e.type === 'dir').length : 0;
    const size = entry.type === 'reg' ? entry.content!.length : entry.type === 'symlink' ? Buffer.byteLength(entry.linkName!) : 0;
    return Object.freeze({
      ino: this.#opts.inodes.next(),
      type: entry.type,
      mode: entry.mode,
      uid: 0,
      gid: 0,
      mtimeMs: this.#opts.mtimeMs,
      size,
      nlink: entry.type === 'dir' ? 2 + subdirs : 1,
      ...(entry.linkName !== undefined && { linkName: entry.linkName }),
    } satisfies FsNode);
  }

  #remember(path: string, stat: FsNode): FsNode {
    this.#stats.set(path, stat);
    return stat;
  }
}
