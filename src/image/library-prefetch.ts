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
import { elfNeeds, isElf64 } from '../formats/elf/elf-deps.js';
import { readWhole, resolveInTree, type PrefetchTree } from './tree-paths.js';

export type LibraryTree = PrefetchTree;

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

  /**
   * A file about to be loaded that no one has opened yet (a Python extension module an import will load):
   * read whole, and what it needs followed, as for a program opened. Never throws.
   */
  prefetch(path: string): Promise<void> {
    return this.#follow(path).catch(() => {});
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

  #readWhole(path: string): Promise<Uint8Array | undefined> {
    return readWhole(this.#tree, path, this.#maxFileBytes);
  }

  #resolve(absolute: string): Promise<string | undefined> {
    return resolveInTree(this.#tree, absolute);
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
}
