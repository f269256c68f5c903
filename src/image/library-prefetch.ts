/**
 * Prefetch of the shared libraries a program is about to load (issue 8: time to first command on an
 * image without recorded priorities). When a file that starts like an ELF is read at offset 0 — a loader
 * or `exec` opening it — its interpreter and DT_NEEDED libraries are located in the image as the dynamic
 * loader would (RUNPATH/RPATH, then the standard and multiarch directories, symlinks followed inside the
 * image) and read whole in the background, in parallel, and so are theirs in turn. The loader then finds
 * them here instead of asking for each in turn: on a link with a real round-trip time, python3 with numpy
 * loads a dozen libraries one after another, each a round trip and more.
 *
 * glibc's loader reads /etc/ld.so.cache before it looks in the default directories; it is fetched as soon
 * as the head of a dynamically linked program (one with an interpreter) is read, with no wait for the rest
 * of the program: the loader asked for it ~0.1 s after python3's head arrived, and waited ~50 ms for it
 * (issue 8, 100 Mbit/s 20 ms).
 *
 * Only what the loader will read anyway is fetched (a library it needs at start, its cache), once per
 * image; a file that is no ELF, or too large, costs nothing. Failures are ignored: the loader's own read
 * reports them.
 */
import type { FsNode } from './filesystem.js';
import { elfNeeds, isElf64 } from './elf-deps.js';
import type { LayerReadOptions } from './layer-tree.js';

/** What the prefetch needs of an image tree (MergedTree): normalised paths, '' = root. */
export interface LibraryTree {
  lookup(path: string): FsNode | undefined;
  read(path: string, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array>;
  /** Lists lazily listed directories along `path` (CVMFS layers) before `lookup` is asked. */
  load?(path: string): Promise<void>;
}

export interface LibraryPrefetchOptions {
  /**
   * Largest file read whole to find what it needs. Default 16 MiB, as read-ahead.ts's whole-file rule: a
   * larger program or library is left to the loader's own reads.
   */
  readonly maxFileBytes?: number;
  /** Files followed per image, at most. Default 512. */
  readonly maxFiles?: number;
}

/** Where glibc's loader looks after RUNPATH and ld.so.cache (Debian's multiarch directories included). */
const DEFAULT_DIRS = [
  '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu',
  '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib',
];
const MAX_SYMLINK_HOPS = 40;
/** glibc's cache of library locations (ldconfig). */
const LOADER_CACHE = '/etc/ld.so.cache';

export class LibraryPrefetch {
  readonly #tree: LibraryTree;
  readonly #maxFileBytes: number;
  readonly #maxFiles: number;
  /** Files already followed (resolved paths). */
  readonly #seen = new Set<string>();
  #loaderCacheRead = false;

  constructor(tree: LibraryTree, opts: LibraryPrefetchOptions = {}) {
    this.#tree = tree;
    this.#maxFileBytes = opts.maxFileBytes ?? 16 << 20;
    this.#maxFiles = opts.maxFiles ?? 512;
  }

  /** A read of `path` at offset 0 returned `head`. Never throws; never awaited by the reader. */
  opened(path: string, head: Uint8Array): void {
    if (!isElf64(head)) return;
    if (!this.#loaderCacheRead && elfNeeds(head)?.interpreter !== undefined) {
      this.#loaderCacheRead = true;
      void this.#readLoaderCache().catch(() => {});
    }
    void this.#follow(path).catch(() => {});
  }

  /** Files followed so far (for tests and figures). */
  get followed(): number {
    return this.#seen.size;
  }

  async #follow(path: string): Promise<void> {
    if (this.#seen.has(path) || this.#seen.size >= this.#maxFiles) return;
    this.#seen.add(path);
    const bytes = await this.#readWhole(path);
    const needs = bytes && elfNeeds(bytes);
    if (!needs) return;
    const origin = `/${path.split('/').slice(0, -1).join('/')}`;
    const dirs = [...needs.searchPath.map((d) => d.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin)), ...DEFAULT_DIRS];
    const wanted = [...(needs.interpreter ? [needs.interpreter] : []), ...needs.needed];
    await Promise.all(
      wanted.map(async (name) => {
        const found = await this.#locate(name, dirs);
        if (found !== undefined) await this.#follow(found);
      }),
    );
  }

  async #readLoaderCache(): Promise<void> {
    const path = await this.#resolve(LOADER_CACHE);
    if (path !== undefined) await this.#readWhole(path);
  }

  /** A regular file of at most maxFileBytes, read whole in the background; undefined for anything else. */
  async #readWhole(path: string): Promise<Uint8Array | undefined> {
    const node = this.#tree.lookup(path);
    if (node?.type !== 'reg' || node.size > this.#maxFileBytes) return undefined;
    return this.#tree.read(path, 0, node.size, undefined, { background: true });
  }

  /** The resolved path of a library: a path as given, a bare name in the first directory that has it. */
  async #locate(name: string, dirs: readonly string[]): Promise<string | undefined> {
    if (name.includes('/')) return this.#resolve(name.startsWith('/') ? name : `/${name}`);
    for (const dir of dirs) {
      if (!dir.startsWith('/')) continue;
      const found = await this.#resolve(`${dir}/${name}`);
      if (found !== undefined && this.#tree.lookup(found)?.type === 'reg') return found;
    }
    return undefined;
  }

  /** `absolute` with every symlink followed inside the image (absolute targets from its root). */
  async #resolve(absolute: string): Promise<string | undefined> {
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
      await this.#tree.load?.(path);
      const node = this.#tree.lookup(path);
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
}
