/**
 * The FUSE file handle table: `open` resolves a path once and keeps the result here under a number the
 * kernel hands back with every read of that open file, so a read does no path walk; `release` frees it.
 */
import type { FileHandle } from '../image/filesystem.js';

/**
 * fuse-native carries the number as an int32 and treats 0 as "no handle" (it leaves fi->fh alone), so
 * numbers run 1..2^31-1 and wrap; a number still open is skipped, never handed out twice.
 */
const MAX_FH = 0x7fff_ffff;
/** Open files held at once by default: a leak (a carrier that never releases) stays bounded. */
export const DEFAULT_MAX_OPEN_FILES = 1 << 16;

export class FileHandles {
  readonly #open = new Map<number, FileHandle>();
  readonly #max: number;
  #next = 1;

  constructor(maxOpen = DEFAULT_MAX_OPEN_FILES) {
    this.#max = Math.min(maxOpen, MAX_FH);
  }

  /** The number for a new open of `file`; 0 when the table is full, and then reads go by path (slower, as correct). */
  add(file: FileHandle): number {
    if (this.#open.size >= this.#max) return 0;
    while (this.#open.has(this.#next)) this.#next = this.#next >= MAX_FH ? 1 : this.#next + 1;
    const fh = this.#next;
    this.#next = fh >= MAX_FH ? 1 : fh + 1;
    this.#open.set(fh, file);
    return fh;
  }

  get(fh: number): FileHandle | undefined {
    return this.#open.get(fh);
  }

  delete(fh: number): void {
    this.#open.delete(fh);
  }

  get size(): number {
    return this.#open.size;
  }
}
