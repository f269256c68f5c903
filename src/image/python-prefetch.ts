/**
 * Prefetch of the modules a Python import is about to load (issue 8: time to first command on an image
 * without recorded priorities). When a compiled module (`__pycache__/*.pyc`) is read at offset 0, the
 * imports of its module-level code (pyc-imports.ts) are located in the image as CPython's path finder
 * would (the package for relative imports; else the standard library, lib-dynload and site directories of
 * the interpreter that wrote it) and read whole in the background, in parallel, and so are theirs in turn.
 * `import numpy` executes ~300 modules, each found only when the one before it runs: one round trip each
 * on an unprioritised layer, now fetched a few levels at a time. Extension modules go to the library
 * prefetch, which reads them whole with the libraries they need.
 *
 * Only what the import will execute is fetched: module-level imports (not those inside functions), and the
 * names of `from package import name` that are submodules. Modules CPython 3.11+ runs from its frozen
 * copies (os, site, codecs, ...) are not read from the image, so neither are they fetched. A file of
 * another Python, too large, or malformed costs nothing; failures are ignored (the import's own read
 * reports them).
 */
import { pycCacheTag, pycImports, type PyImport } from '../formats/python/pyc-imports.js';
import { readWhole, resolveInTree, type PrefetchTree } from './tree-paths.js';

export interface PythonPrefetchOptions {
  /** Largest compiled module read whole to find its imports. Default 4 MiB. */
  readonly maxPycBytes?: number;
  /** Modules followed per image, at most. Default 2048. */
  readonly maxModules?: number;
  /** Called for an extension module an import will load (LibraryPrefetch.prefetch). */
  readonly onExtension?: (path: string) => void;
  /** Whether a module read by the workload is worth following; asked only of compiled modules. Default: all are. */
  readonly follows?: (path: string) => boolean;
}

/** Modules CPython 3.11 to 3.13 import from their frozen copies, never from the files in the image. */
const FROZEN = new Set([
  '_collections_abc', '_sitebuiltins', 'abc', 'codecs', 'genericpath', 'io', 'ntpath', 'os', 'posixpath',
  'runpy', 'site', 'stat', 'zipimport', 'importlib._bootstrap', 'importlib._bootstrap_external',
  'importlib.machinery', 'importlib.util', '__hello__', '__phello__',
]);

/** Where a module name was found: its directory when a package, the file the import reads, if any. */
interface Found {
  readonly packageDir?: string;
  readonly file?: { readonly path: string; readonly kind: 'pyc' | 'source' | 'extension' };
}

const MACHINES = ['x86_64-linux-gnu', 'aarch64-linux-gnu', 'powerpc64le-linux-gnu', 's390x-linux-gnu', 'riscv64-linux-gnu'];

export class PythonPrefetch {
  readonly #tree: PrefetchTree;
  readonly #maxPycBytes: number;
  readonly #maxModules: number;
  readonly #onExtension: ((path: string) => void) | undefined;
  readonly #follows: (path: string) => boolean;
  /** Files followed or read (normalised paths). */
  readonly #seen = new Set<string>();
  /** Where each module name was found (#locateIn). */
  readonly #located = new Map<string, Promise<Found | undefined>>();
  /** The import path per interpreter prefix and cache tag. */
  readonly #roots = new Map<string, Promise<string[]>>();

  constructor(tree: PrefetchTree, opts: PythonPrefetchOptions = {}) {
    this.#tree = tree;
    this.#maxPycBytes = opts.maxPycBytes ?? 4 << 20;
    this.#maxModules = opts.maxModules ?? 2048;
    this.#onExtension = opts.onExtension;
    this.#follows = opts.follows ?? (() => true);
  }

  /** A read of `path` at offset 0 returned `head`. Never throws; never awaited by the reader. */
  opened(path: string, head: Uint8Array): void {
    if (!path.endsWith('.pyc') || pycCacheTag(head) === undefined || !this.#follows(path)) return;
    void this.#follow(path).catch(() => {});
  }

  /** Files followed or read so far (for tests and figures). */
  get followed(): number {
    return this.#seen.size;
  }

  async #follow(path: string): Promise<void> {
    if (!this.#claim(path)) return;
    const bytes = await readWhole(this.#tree, path, this.#maxPycBytes);
    const module = bytes && pycImports(bytes);
    if (!module) return;
    const context = await this.#context(path, module.cacheTag);
    await Promise.all(module.imports.map((imp) => this.#prefetchImport(imp, context)));
  }

  #claim(path: string): boolean {
    if (this.#seen.has(path) || this.#seen.size >= this.#maxModules) return false;
    this.#seen.add(path);
    return true;
  }

  /** The module's package directory, and the import path of the interpreter that compiled it. */
  async #context(pycPath: string, cacheTag: string): Promise<ImportContext> {
    const parts = pycPath.split('/');
    parts.pop();
    if (parts[parts.length - 1] === '__pycache__') parts.pop();
    const packageDir = parts.join('/');
    const version = `3.${cacheTag.slice('cpython-3'.length)}`;
    const lib = pycPath.match(new RegExp(`^(.*?)/?lib/python(?:${version.replace('.', '\\.')}|3)/`));
    const prefix = lib ? lib[1]! : 'usr';
    const key = `${prefix}\0${version}`;
    let roots = this.#roots.get(key);
    if (roots === undefined) this.#roots.set(key, (roots = this.#importPath(prefix, version)));
    const importPath = await roots;
    const stdlib = importPath.find((dir) => dir.split('/').pop() === `python${version}`);
    return { packageDir, roots: importPath, cacheTag, stdlib };
  }

  /** Debian's and CPython's own sys.path for an interpreter installed under `prefix`, as far as the image has it. */
  async #importPath(prefix: string, version: string): Promise<string[]> {
    const candidates = [
      `${prefix}/lib/python${version}`,
      `${prefix}/lib/python${version}/lib-dynload`,
      `usr/local/lib/python${version}/dist-packages`,
      `${prefix}/lib/python${version}/site-packages`,
      `${prefix}/lib/python3/dist-packages`,
    ];
    const roots: string[] = [];
    for (const dir of candidates) {
      const found = await this.#resolve(dir);
      if (found !== undefined && this.#tree.lookup(found)?.type === 'dir' && !roots.includes(found)) roots.push(found);
    }
    return roots;
  }

  async #prefetchImport(imp: PyImport, context: ImportContext): Promise<void> {
    const found = await this.#resolveImport(imp, context);
    await Promise.all(found.map((f) => this.#fetch(f, context.stdlib)));
  }

  /** Every module an import statement executes: each package along the dotted name, then submodules of the fromlist. */
  async #resolveImport(imp: PyImport, context: ImportContext): Promise<Found[]> {
    const names = imp.name === '' ? [] : imp.name.split('.');
    const found: Found[] = [];
    let dirs: readonly string[];
    if (imp.level > 0) {
      const base = context.packageDir.split('/');
      if (imp.level - 1 >= base.length) return [];
      dirs = [base.slice(0, base.length - (imp.level - 1)).join('/')];
    } else {
      dirs = context.roots;
    }
    let here: Found | undefined = imp.level > 0 ? { packageDir: dirs[0]! } : undefined;
    for (const name of names) {
      here = await this.#locateIn(dirs, name, context.cacheTag);
      if (here === undefined) return found;
      found.push(here);
      if (here.packageDir === undefined) break;
      dirs = [here.packageDir];
    }
    if (here?.packageDir !== undefined) {
      for (const name of imp.fromlist) {
        if (name === '*') continue;
        const sub = await this.#locateIn([here.packageDir], name, context.cacheTag);
        if (sub?.file !== undefined) found.push(sub);
      }
    }
    return found;
  }

  /** `name` in the first of `dirs` that has it, as CPython's FileFinder looks: package, extension, source, bytecode. */
  #locateIn(dirs: readonly string[], name: string, cacheTag: string): Promise<Found | undefined> {
    // `import sys, re, typing` in module after module: each name is looked for once per directory list.
    const key = `${dirs.join('\0')}\0${name}\0${cacheTag}`;
    let found = this.#located.get(key);
    if (found === undefined) this.#located.set(key, (found = this.#search(dirs, name, cacheTag)));
    return found;
  }

  async #search(dirs: readonly string[], name: string, cacheTag: string): Promise<Found | undefined> {
    for (const dir of dirs) {
      const packageDir = await this.#resolve(`${dir}/${name}`);
      if (packageDir !== undefined && this.#tree.lookup(packageDir)?.type === 'dir') {
        const init = await this.#moduleFile(packageDir, '__init__', cacheTag);
        return init ? { packageDir, file: init } : { packageDir }; // no __init__: a namespace package
      }
      const file = await this.#moduleFile(dir, name, cacheTag);
      if (file) return { file };
    }
    return undefined;
  }

  async #moduleFile(dir: string, name: string, cacheTag: string): Promise<Found['file']> {
    const extensions = [...MACHINES.map((m) => `${name}.${cacheTag}-${m}.so`), `${name}.abi3.so`, `${name}.so`];
    for (const file of extensions) {
      const path = await this.#regularFile(`${dir}/${file}`);
      if (path) return { path, kind: 'extension' };
    }
    const source = await this.#regularFile(`${dir}/${name}.py`);
    if (source) {
      const cached = await this.#regularFile(`${dir}/__pycache__/${name}.${cacheTag}.pyc`);
      return cached ? { path: cached, kind: 'pyc' } : { path: source, kind: 'source' };
    }
    const sourceless = await this.#regularFile(`${dir}/${name}.pyc`);
    return sourceless ? { path: sourceless, kind: 'pyc' } : undefined;
  }

  async #regularFile(path: string): Promise<string | undefined> {
    const found = await this.#resolve(path);
    return found !== undefined && this.#tree.lookup(found)?.type === 'reg' ? found : undefined;
  }

  #resolve(path: string): Promise<string | undefined> {
    return resolveInTree(this.#tree, `/${path}`);
  }

  /** A module of the standard library at `stdlib` that CPython runs from its frozen copy. */
  #isFrozen(path: string, stdlib: string | undefined): boolean {
    if (stdlib === undefined || !path.startsWith(`${stdlib}/`)) return false;
    const name = path
      .slice(stdlib.length + 1)
      .replace(/(?:^|\/)__pycache__\//, '/')
      .replace(/\.(?:cpython-\d+\.pyc|py|pyc)$/, '')
      .replace(/\/__init__$/, '')
      .replace(/^\//, '')
      .replaceAll('/', '.');
    return FROZEN.has(name);
  }

  async #fetch(found: Found, stdlib: string | undefined): Promise<void> {
    const file = found.file;
    if (file === undefined || this.#isFrozen(file.path, stdlib)) return;
    if (file.kind === 'pyc') return this.#follow(file.path);
    if (!this.#claim(file.path)) return;
    if (file.kind === 'extension' && this.#onExtension) return this.#onExtension(file.path);
    await readWhole(this.#tree, file.path, this.#maxPycBytes);
  }
}

interface ImportContext {
  /** The directory relative imports start from: the module's package. */
  readonly packageDir: string;
  /** The interpreter's import path, directories that exist in the image, in order. */
  readonly roots: readonly string[];
  readonly cacheTag: string;
  /** The standard library's directory, whose frozen modules are never read. */
  readonly stdlib: string | undefined;
}
