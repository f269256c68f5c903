/**
 * A directory's children as a read-only Map view. The index keeps, per directory, only the array of
 * its children's full paths (the same strings that key the name table); a Map per directory plus a base
 * name string per child cost about 90 bytes per entry, a quarter of the index. `get` is one lookup in
 * the name table, so it is as cheap as a Map; a view is one small object, made per `children()` call.
 */
import type { TocEntry } from './toc.js';

export class ChildrenView implements ReadonlyMap<string, TocEntry> {
  readonly #prefixLength: number;
  readonly #prefix: string;
  readonly #paths: readonly string[];
  readonly #names: ReadonlyMap<string, TocEntry>;

  /** `dir` is the directory's normalised path ('' for the root); `paths` its children's full paths. */
  constructor(dir: string, paths: readonly string[], names: ReadonlyMap<string, TocEntry>) {
    this.#prefix = dir === '' ? '' : `${dir}/`;
    this.#prefixLength = this.#prefix.length;
    this.#paths = paths;
    this.#names = names;
  }

  get size(): number {
    return this.#paths.length;
  }

  get(name: string): TocEntry | undefined {
    // A base name has no '/', and normalised paths hold no '' '.' '..' components.
    if (name === '' || name.includes('/')) return undefined;
    return this.#names.get(this.#prefix + name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  forEach(callback: (value: TocEntry, key: string, map: ReadonlyMap<string, TocEntry>) => void, thisArg?: unknown): void {
    for (const path of this.#paths) callback.call(thisArg, this.#names.get(path)!, path.slice(this.#prefixLength), this);
  }

  *entries(): MapIterator<[string, TocEntry]> {
    for (const path of this.#paths) yield [path.slice(this.#prefixLength), this.#names.get(path)!];
  }

  *keys(): MapIterator<string> {
    for (const path of this.#paths) yield path.slice(this.#prefixLength);
  }

  *values(): MapIterator<TocEntry> {
    for (const path of this.#paths) yield this.#names.get(path)!;
  }

  [Symbol.iterator](): MapIterator<[string, TocEntry]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return 'ChildrenView';
  }
}
