/**
 * Read-ahead (DESIGN.md §2 fetch policy; issue 8): what to fetch beyond the chunks a read needs, planned
 * from the TOC alone. These patterns pay for themselves on a link with a real round-trip time:
 *
 *  - adjacent small files: a workload that reads one file of a directory reads its neighbours next
 *    (Python imports a package's modules, a loader its libraries), and the tar keeps them adjacent in the
 *    blob. The chunks that follow the last one needed, up to a byte budget, ride in the same range request:
 *    one round trip instead of one per file.
 *  - sequential reads of a large file: the next chunks of the same file are fetched in requests of their
 *    own, in parallel with the one being read, so transfer, decompression and verification overlap.
 *  - the rest of a file opened at its start: a loader that reads an ELF header at 0 maps pages near the
 *    start and the end next, each a round trip of its own; a file of a few chunks is fetched whole, its
 *    other chunks in the same request after the ones read, when the read at 0 goes to the source.
 *  - a directory that a workload keeps reading from: the second file of one directory that misses the
 *    caches warms the whole directory (its small files, up to a budget) in requests of their own, in
 *    parallel with the read; a directory whose small files are few bytes in all, already the first.
 *    Python imports a package's modules one after another, each a round trip on an unprioritised layer;
 *    one request brings the rest. Reads served from the caches (an optimized layer's prefetched files)
 *    never warm anything, so a prioritised image moves no more bytes.
 *  - neither neighbours nor the directory for a compiled Python module of a version that
 *    image/python-prefetch.ts reads: its imports are fetched by name when it is read, and its neighbours
 *    would be a guess.
 *
 * Pure planning (no I/O); the fetcher decides what is already cached or in flight.
 */
import type { TocEntry, TocIndex } from '../../formats/toc.js';
import type { ChunkRef } from './fetch-plan.js';

/**
 * Compiled modules of the CPython versions whose imports image/python-prefetch.ts follows (the cache tags
 * of image/pyc-imports.ts). What their import executes next is fetched by name, not by neighbourhood.
 */
const FOLLOWED_BYTECODE = /(?:^|\/)__pycache__\/[^/]+\.cpython-31[123]\.pyc$/;

export function isFollowedBytecode(path: string): boolean {
  return FOLLOWED_BYTECODE.test(path);
}

/** Adjacent chunks whose compressed spans sit further apart than this are not "adjacent". */
const MAX_GAP_BYTES = 64 << 10;

export interface ReadAheadPolicy {
  /**
   * Compressed bytes of following chunks fetched along with a read's own request. Default 64 KiB: a few
   * small neighbours. It was 192 KiB for a package's next few modules; python-prefetch.ts now fetches
   * those by name, and in the app of issue 8 the 192 KiB after the other files read (the interpreter, a
   * locale, a time zone) were ~0.5 MB never read. 0 disables.
   */
  readonly adjacentBytes?: number;
  /** Chunks of the same file fetched ahead of a sequential read, each its own request. Default 2; 0 disables. */
  readonly sequentialChunks?: number;
  /**
   * A file no larger than this (uncompressed) is fetched whole when read at offset 0. Default 16 MiB; 0
   * disables.
   */
  readonly wholeFileBytes?: number;
  /**
   * Compressed bytes of a directory's small files warmed after its second file missed the caches.
   * Default 2 MiB; 0 disables.
   */
  readonly directoryBytes?: number;
  /** Largest file (uncompressed) a directory warm fetches. Default 256 KiB. */
  readonly directoryFileBytes?: number;
  /**
   * A directory whose small files weigh no more than this (compressed) is warmed on its first file's
   * miss, not its second. Default 512 KiB; 0: always the second.
   */
  readonly directoryFirstBytes?: number;
}

export interface ReadAheadPlan {
  /** Merged into the read's own request, not awaited. */
  readonly adjacent: readonly ChunkRef[];
  /** Fetched in parallel requests of their own, not awaited. */
  readonly sequential: readonly ChunkRef[];
  /** Fetched in requests of their own only when the read itself goes to the source; not awaited. */
  readonly onMiss: readonly ChunkRef[];
}

/** Nothing ahead: what a read plans when it plans nothing (a background read, an empty one). */
export const NO_READ_AHEAD: ReadAheadPlan = { adjacent: [], sequential: [], onMiss: [] };

export class ReadAhead {
  readonly #index: TocIndex;
  readonly #adjacentBytes: number;
  readonly #sequentialChunks: number;
  readonly #wholeFileBytes: number;
  readonly #directoryBytes: number;
  readonly #directoryFileBytes: number;
  readonly #directoryFirstBytes: number;
  /** Per directory path: the first file read there, then `true` once the directory was planned. */
  readonly #directories = new Map<string, TocEntry | true>();
  /** Every data chunk of the layer in blob order, built on first use. */
  #order: ChunkRef[] | undefined;
  /** Where the last read of each file ended: a read that starts there is sequential. */
  readonly #lastEnd = new WeakMap<TocEntry, number>();

  constructor(index: TocIndex, policy: ReadAheadPolicy = {}) {
    this.#index = index;
    this.#adjacentBytes = policy.adjacentBytes ?? 64 << 10;
    this.#sequentialChunks = policy.sequentialChunks ?? 2;
    this.#wholeFileBytes = policy.wholeFileBytes ?? 16 << 20;
    this.#directoryBytes = policy.directoryBytes ?? 2 << 20;
    this.#directoryFileBytes = policy.directoryFileBytes ?? 256 << 10;
    this.#directoryFirstBytes = policy.directoryFirstBytes ?? 512 << 10;
  }

  /**
   * What to fetch ahead of a read of `refs` (chunks of `entry`, in order) for bytes [offset, end). Only a
   * read that starts where the previous read of the file ended counts as sequential: a loader reading an
   * ELF header at 0 and then mapping pages here and there must not pull the chunks that follow each page
   * of a library too large to come whole.
   */
  plan(entry: TocEntry, refs: readonly ChunkRef[], offset: number, end: number): ReadAheadPlan {
    const first = refs[0];
    const last = refs[refs.length - 1];
    if (!first || !last) return NO_READ_AHEAD;
    const sequentialRead = offset > 0 && this.#lastEnd.get(entry) === offset;
    this.#lastEnd.set(entry, end);
    const sequential: ChunkRef[] = [];
    if (sequentialRead) {
      for (let i = last.index + 1; i < entry.chunks.length && sequential.length < this.#sequentialChunks; i++) {
        if (!entry.chunks[i]!.zeros) sequential.push({ entry, index: i });
      }
    }
    // The rest of a file read at 0 rides in the read's own request, after the chunks read: the fetcher
    // hands the read its bytes as they arrive, and the rest follows on the same connection with no round
    // trip of its own and no second request to share the link with.
    const rest = offset === 0 && entry.size <= this.#wholeFileBytes ? this.#restOf(entry, refs) : [];
    const lastFetched = rest.length > 0 ? entry.chunks[rest[rest.length - 1]!.index]! : entry.chunks[last.index]!;
    if (isFollowedBytecode(entry.path)) return { adjacent: rest, sequential, onMiss: [] };
    return { adjacent: [...rest, ...this.#adjacent(lastFetched.compressedEnd, entry)], sequential, onMiss: this.#directory(entry) };
  }

  /** The chunks of `entry` that a read of `refs` does not fetch. */
  #restOf(entry: TocEntry, refs: readonly ChunkRef[]): ChunkRef[] {
    const reading = new Set(refs.map((r) => r.index));
    const rest: ChunkRef[] = [];
    entry.chunks.forEach((c, index) => {
      if (!c.zeros && !reading.has(index)) rest.push({ entry, index });
    });
    return rest;
  }

  /**
   * The small files of `entry`'s directory, once: on its first read when they all fit in
   * `directoryFirstBytes` (a package's compiled modules, a small config directory), else on the read of a
   * second file there. The read that plans them fetches them only if it misses the caches itself; either
   * way the directory is planned once.
   */
  #directory(entry: TocEntry): ChunkRef[] {
    if (this.#directoryBytes <= 0) return [];
    const slash = entry.path.lastIndexOf('/');
    const dir = slash < 0 ? '' : entry.path.slice(0, slash);
    const seen = this.#directories.get(dir);
    if (seen === true || seen === entry) return [];
    const { refs, allBytes } = this.#smallFiles(dir, entry, seen);
    if (seen === undefined && allBytes > this.#directoryFirstBytes) {
      this.#directories.set(dir, entry);
      return [];
    }
    this.#directories.set(dir, true);
    return refs;
  }

  /** The chunks of a directory's small files but `entry` and `other`, within the budget; and what all of them weigh. */
  #smallFiles(dir: string, entry: TocEntry, other: TocEntry | undefined): { refs: ChunkRef[]; allBytes: number } {
    const refs: ChunkRef[] = [];
    let budget = this.#directoryBytes;
    let allBytes = 0;
    for (const child of this.#index.children(dir)?.values() ?? []) {
      if (child.type !== 'reg' || child === entry || child === other || child.size > this.#directoryFileBytes) continue;
      const bytes = child.chunks.reduce((sum, c) => sum + (c.zeros ? 0 : c.compressedEnd - c.compressedOffset), 0);
      allBytes += bytes;
      if (bytes > budget) continue;
      budget -= bytes;
      child.chunks.forEach((c, index) => {
        if (!c.zeros) refs.push({ entry: child, index });
      });
    }
    return { refs, allBytes };
  }

  /** Chunks of other files that follow `end` in the blob, within the byte budget. */
  #adjacent(end: number, entry: TocEntry): ChunkRef[] {
    if (this.#adjacentBytes <= 0) return [];
    const order = (this.#order ??= blobOrder(this.#index));
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (chunkOf(order[mid]!).compressedOffset < end) lo = mid + 1;
      else hi = mid;
    }
    const out: ChunkRef[] = [];
    let budget = this.#adjacentBytes;
    let at = end;
    for (let i = lo; i < order.length; i++) {
      const ref = order[i]!;
      // The rest of a large file is the sequential read-ahead's business, not this one's.
      if (ref.entry === entry) break;
      const c = chunkOf(ref);
      const bytes = c.compressedEnd - c.compressedOffset;
      if (c.compressedOffset - at > MAX_GAP_BYTES || bytes > budget) break;
      budget -= bytes;
      at = c.compressedEnd;
      out.push(ref);
    }
    return out;
  }
}

const chunkOf = (ref: ChunkRef) => ref.entry.chunks[ref.index]!;

/** Every non-zeros chunk of every regular file (hardlinks once), sorted by compressed offset. */
export function blobOrder(index: TocIndex): ChunkRef[] {
  const refs: ChunkRef[] = [];
  const seen = new Set<TocEntry>();
  for (const [, entry] of index.walk()) {
    if (entry.type !== 'reg' || seen.has(entry)) continue;
    seen.add(entry);
    entry.chunks.forEach((c, index) => {
      if (!c.zeros) refs.push({ entry, index });
    });
  }
  return refs.sort((a, b) => chunkOf(a).compressedOffset - chunkOf(b).compressedOffset);
}
