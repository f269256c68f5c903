/**
 * Disk-cache writes held back while fetches are under way (issue 8). Writing a chunk costs CPU: six or more
 * file-system calls (and fresh page-cache pages where O_DIRECT is refused, direct-writes.ts), ~0.5 CPU-s of
 * an unoptimized app start at 100 Mbit/s when measured with page-cache writes (bench/RESULTS.md), which a
 * starting workload on a small node would otherwise share its cores with.
 *
 * - A chunk waits until no fetch has gone to a source for `quietMs`; a fetch that starts while the queue
 *   drains pauses it after the write under way.
 * - While more than `maxBytes` wait (a long sequential read), the oldest go out at once.
 * - `flush()` writes everything (the fetcher's close).
 * - `get()` serves a queued chunk, so one evicted from memory before its write is not fetched again.
 *
 * The queued bytes are verified and never changed (the fetcher's own buffers). A daemon killed before the
 * writes loses them: it is a cache, and the next start fetches them again.
 */
import type { Unit } from './fetch-plan.js';

export interface WriteBehindOptions {
  /** How long no fetch must have started before queued chunks are written. Default 500 ms; 0: at once. */
  readonly quietMs?: number;
  /** Bytes queued at most; beyond them the oldest are written at once. Default 64 MiB. */
  readonly maxBytes?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** Writes one chunk; reports its own failures (the queue has no caller to give them to). */
export type WriteChunk = (unit: Unit, bytes: Uint8Array) => Promise<void>;

export class WriteBehind {
  readonly #write: WriteChunk;
  readonly #quietMs: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #queue = new Map<string, { unit: Unit; bytes: Uint8Array }>();
  #queuedBytes = 0;
  #lastBusy = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  /** Flushes under way: while any runs, writes go whatever the fetches do. */
  #flushes = 0;

  constructor(write: WriteChunk, opts: WriteBehindOptions = {}) {
    this.#write = write;
    this.#quietMs = opts.quietMs ?? 500;
    this.#maxBytes = opts.maxBytes ?? 64 << 20;
    this.#now = opts.now ?? performance.now.bind(performance);
  }

  /** A fetch went to a source: queued writes wait until `quietMs` after it. */
  busy(): void {
    this.#lastBusy = this.#now();
  }

  add(unit: Unit, bytes: Uint8Array): void {
    if (this.#queue.has(unit.key)) return;
    this.#queue.set(unit.key, { unit, bytes });
    this.#queuedBytes += bytes.byteLength;
    this.#kick();
  }

  /** A queued chunk's bytes, until it is on disk. */
  get(key: string): Uint8Array | undefined {
    return this.#queue.get(key)?.bytes;
  }

  /** Chunks and bytes waiting. */
  pending(): { chunks: number; bytes: number } {
    return { chunks: this.#queue.size, bytes: this.#queuedBytes };
  }

  /** Writes every queued chunk, those added meanwhile included, whatever the fetches do. */
  async flush(): Promise<void> {
    this.#flushes++;
    try {
      while (this.#queue.size > 0 || this.#draining) {
        this.#kick();
        await this.#draining;
      }
    } finally {
      this.#flushes--;
    }
  }

  #quietFor(): number {
    return this.#now() - this.#lastBusy;
  }

  #mayWrite(): boolean {
    return this.#flushes > 0 || this.#queuedBytes > this.#maxBytes || this.#quietFor() >= this.#quietMs;
  }

  /** Starts the drain when writes may go, else makes sure a timer will look again. */
  #kick(): void {
    if (this.#draining || this.#queue.size === 0) return;
    if (this.#mayWrite()) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#draining = this.#drain().finally(() => {
        this.#draining = undefined;
        this.#kick();
      });
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, Math.max(1, this.#quietMs - this.#quietFor())).unref();
  }

  async #drain(): Promise<void> {
    while (this.#queue.size > 0 && this.#mayWrite()) {
      const [key, { unit, bytes }] = this.#queue.entries().next().value!;
      // Served from the queue until it is on disk; a failed write is the writer's to report.
      await this.#write(unit, bytes).catch(() => {});
      this.#queue.delete(key);
      this.#queuedBytes -= bytes.byteLength;
    }
  }
}
