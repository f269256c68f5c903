/**
 * The index of one unpacked directory tree on CVMFS (a DUCC `layerfs`, or a `.flat` rootfs), listed one
 * directory at a time, never walked up front: `listDir(path)` reads a directory and lstat()s its entries,
 * after which `children(path)` and `lookup(path/NAME)` answer synchronously, with the same `TocEntry`
 * shape a TOC gives, so the merged tree applies one set of rules to both.
 *
 * A layerfs holds whiteouts either as tar writes them (`.wh.NAME` files, `.wh..wh..opq`) or as overlayfs
 * does (a char device 0/0 named NAME; `trusted.overlay.opaque=y` on a directory). The overlay forms are
 * shown as the tar forms (`.wh.NAME`, a `.wh..wh..opq` child), so `/layers` shows them as in the tar and
 * the merged tree needs one rule. A flat tree has no whiteouts: `whiteouts: false` takes names literally.
 *
 * Nothing escapes the tree: names come from readdir (no `/`, never `.` or `..`), entries are lstat()ed
 * and never followed, and only directories lstat() found are descended into.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TocfsError } from '../../errors.js';
import type { TocEntry } from '../../formats/toc.js';
import { readXattrs } from './xattrs.js';
import { OPAQUE_WHITEOUT, opaqueMarkerPath, whiteoutFor } from '../../formats/whiteouts.js';
import { SingleFlight } from '../../util/single-flight.js';

const OVERLAY_OPAQUE = 'trusted.overlay.opaque';
/** overlayfs's own attributes describe the layer's encoding, not the image's files. */
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
/** lstat()s in flight per directory listing. */
const LIST_CONCURRENCY = 32;

export interface DirIndexOptions {
  /** Read whiteouts (both forms). False for a flat rootfs, whose names are all literal. */
  readonly whiteouts: boolean;
  /** Largest number of entries listed in one directory (a guard, like a TOC's maxEntries). */
  readonly maxEntriesPerDir?: number;
  readonly format: 'cvmfs' | 'cvmfs-flat';
}

export class CvmfsDirIndex {
  readonly format: 'cvmfs' | 'cvmfs-flat';
  readonly root: TocEntry;
  /** The directory on disk this index lists. */
  readonly dir: string;
  readonly #opts: DirIndexOptions;
  readonly #entries = new Map<string, TocEntry>();
  readonly #children = new Map<string, Map<string, TocEntry>>();
  readonly #listing = new SingleFlight<void>();
  /** Files with nlink > 1 by `dev:ino`, so every name of a hardlinked file shares one entry (one inode). */
  readonly #byInode = new Map<string, Promise<TocEntry>>();
  /** Directories found opaque by overlay xattr, whose listing gains a `.wh..wh..opq` child. */
  readonly #opaqueByXattr = new Set<string>();

  private constructor(dir: string, root: TocEntry, opts: DirIndexOptions) {
    this.dir = dir;
    this.root = root;
    this.format = opts.format;
    this.#opts = opts;
    this.#entries.set('', root);
  }

  /** Opens the tree at `dir` (its root must be a directory); lists nothing yet. */
  static async open(dir: string, opts: DirIndexOptions): Promise<CvmfsDirIndex> {
    const st = await lstat(dir, { bigint: true });
    if (!st.isDirectory()) throw new TocfsError('SOURCE_UNAVAILABLE', `${dir} is not a directory`);
    const { entry: root, opaqueXattr } = await entryOf(dir, '', st);
    const index = new CvmfsDirIndex(dir, root, opts);
    if (opts.whiteouts) await index.#noteOpaque('', dir, opaqueXattr);
    return index;
  }

  lookup(path: string): TocEntry | undefined {
    return this.#entries.get(path);
  }

  /** Children of a listed directory; undefined when `path` is not a directory. Throws when not listed yet. */
  children(path: string): ReadonlyMap<string, TocEntry> | undefined {
    if (this.#entries.get(path)?.type !== 'dir') return undefined;
    const children = this.#children.get(path);
    if (children === undefined) throw new Error(`CVMFS ${this.dir}: directory ${JSON.stringify(path)} read before it was listed`);
    return children;
  }

  /** The entries listed so far, parents before children (the whole tree only once it was all visited). */
  walk(): Iterable<[path: string, entry: TocEntry]> {
    return this.#entries.entries();
  }

  /** An unpacked tree has no links to other layers: a hardlink there is just another name of a file. */
  externalLinks(): ReadonlyMap<string, string> {
    return new Map();
  }

  /** Whether `path` (a directory) has been listed. */
  listed(path: string): boolean {
    return this.#children.has(path);
  }

  /** Lists the directory at `path`; concurrent callers share one listing. Its parent must be listed. */
  listDir(path: string): Promise<void> {
    if (this.#children.has(path)) return Promise.resolve();
    return this.#listing.run(path, () => this.#list(path));
  }

  async #list(path: string): Promise<void> {
    const entry = this.#entries.get(path);
    if (entry?.type !== 'dir') throw new TocfsError('NOT_FOUND', `CVMFS ${this.dir}: ${JSON.stringify(path)} is not a listed directory`);
    const abs = path === '' ? this.dir : join(this.dir, path);
    const names = await readdir(abs).catch((err: unknown) => {
      throw new TocfsError('SOURCE_UNAVAILABLE', `CVMFS ${abs}: listing failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    });
    const max = this.#opts.maxEntriesPerDir ?? 1_000_000;
    if (names.length > max) throw new TocfsError('FORMAT', `CVMFS ${abs}: ${names.length} entries, more than ${max}`);
    const found: (readonly [string, TocEntry] | undefined)[] = new Array(names.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const i = next++;
        found[i] = await this.#child(path, abs, names[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, names.length) }, worker));
    const children = new Map<string, TocEntry>();
    for (const item of found) {
      if (item === undefined) continue;
      const [name, child] = item;
      if (!children.has(name)) children.set(name, child);
    }
    const prefix = path === '' ? '' : `${path}/`;
    if (this.#opaqueByXattr.has(path) && !children.has(OPAQUE_WHITEOUT)) children.set(OPAQUE_WHITEOUT, this.#entries.get(prefix + OPAQUE_WHITEOUT)!);
    for (const [name, child] of children) {
      this.#entries.set(prefix + name, child);
      // #noteOpaque recorded a child directory's opaque marker before the directory itself: move it after
      // it, so that walk() lists parents before children, as a TocIndex does.
      const marker = `${prefix}${name}/${OPAQUE_WHITEOUT}`;
      const noted = child.type === 'dir' ? this.#entries.get(marker) : undefined;
      if (noted !== undefined) {
        this.#entries.delete(marker);
        this.#entries.set(marker, noted);
      }
    }
    this.#children.set(path, children);
  }

  /** One directory entry as [name it shows under, entry]; undefined for what an image cannot hold (sockets). */
  async #child(parent: string, absParent: string, name: string): Promise<readonly [string, TocEntry] | undefined> {
    const abs = join(absParent, name);
    const path = parent === '' ? name : `${parent}/${name}`;
    let st: BigIntStats;
    try {
      st = await lstat(abs, { bigint: true });
    } catch (err) {
      // Gone between readdir and lstat (a new CVMFS revision): it is not part of the listing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (this.#opts.whiteouts && st.isCharacterDevice() && st.rdev === 0n) {
      // overlayfs's whiteout: shown as the tar's `.wh.NAME`, an empty regular file as in the layer tar.
      const wh = whiteoutFor(name);
      return [wh, markerEntry(parent === '' ? wh : `${parent}/${wh}`, st)];
    }
    if (st.isSocket()) return undefined;
    if (st.isFile() && st.nlink > 1n) {
      // Names of one file are listed concurrently: the first claims the inode before it awaits.
      const key = `${st.dev}:${st.ino}`;
      let same = this.#byInode.get(key);
      if (same === undefined) {
        same = entryOf(abs, path, st).then((r) => r.entry);
        this.#byInode.set(key, same);
      }
      return [name, await same];
    }
    const { entry, opaqueXattr } = await entryOf(abs, path, st);
    if (entry.type === 'dir' && this.#opts.whiteouts) await this.#noteOpaque(path, abs, opaqueXattr);
    return [name, entry];
  }

  /**
   * Records whether a directory is opaque, before it is listed (the merged tree asks while merging its
   * parent): a `.wh..wh..opq` file in it, or overlayfs's `trusted.overlay.opaque=y` on it.
   */
  async #noteOpaque(path: string, abs: string, opaqueXattr: boolean): Promise<void> {
    const markerPath = opaqueMarkerPath(path);
    try {
      const st = await lstat(join(abs, OPAQUE_WHITEOUT), { bigint: true });
      this.#entries.set(markerPath, markerEntry(markerPath, st));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!opaqueXattr) return;
    this.#opaqueByXattr.add(path);
    this.#entries.set(markerPath, markerEntry(markerPath, await lstat(abs, { bigint: true })));
  }
}

/** A whiteout or opaque marker as the layer tar holds it: an empty regular file. */
function markerEntry(path: string, st: BigIntStats): TocEntry {
  return {
    path,
    type: 'reg',
    mode: 0o644,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeMs: Number(st.mtimeNs / 1_000_000n),
    size: 0,
    chunks: [],
    nlink: 1,
    implicit: false,
  };
}

/** A TocEntry from an lstat and, for files and directories, the entry's xattrs (overlayfs's left out). */
async function entryOf(abs: string, path: string, st: BigIntStats): Promise<{ entry: TocEntry; opaqueXattr: boolean }> {
  const type = st.isDirectory() ? 'dir' : st.isFile() ? 'reg' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : undefined;
  if (type === undefined) throw new TocfsError('FORMAT', `CVMFS ${abs}: not a file type an image holds`);
  const linkName = type === 'symlink' ? await readlink(abs) : undefined;
  let xattrs: Record<string, Uint8Array> | undefined;
  let opaqueXattr = false;
  if (type === 'reg' || type === 'dir') {
    const all = await readXattrs(abs);
    const opaque = all[OVERLAY_OPAQUE];
    opaqueXattr = opaque !== undefined && Buffer.from(opaque).toString() === 'y';
    const own = Object.entries(all).filter(([k]) => !k.startsWith(OVERLAY_XATTR_PREFIX));
    if (own.length > 0) xattrs = Object.fromEntries(own);
  }
  const entry: TocEntry = {
    path,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeMs: Number(st.mtimeNs / 1_000_000n),
    size: type === 'reg' ? Number(st.size) : type === 'symlink' ? Buffer.byteLength(linkName!) : 0,
    chunks: [],
    nlink: Number(st.nlink),
    implicit: false,
    ...(linkName !== undefined && { linkName }),
    ...((type === 'char' || type === 'block') && { devMajor: major(st.rdev), devMinor: minor(st.rdev) }),
    ...(xattrs !== undefined && { xattrs }),
  };
  return { entry, opaqueXattr };
}

/** glibc's gnu_dev_major / gnu_dev_minor. */
function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}
