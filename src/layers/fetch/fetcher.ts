/**
 * The fetch policy of DESIGN.md §2, and the only module that knows both the caches and the sources
 * (STYLE.md item 9). For each chunk asked for:
 *
 *   memory LRU -> single-flight (by chunk digest) -> disk store -> ONE range read of the merged compressed
 *   spans of every missing chunk -> decompress each span (async zlib/zstd, off the JS thread) -> slice ->
 *   verify sha256 -> fill memory (and disk, once fetches pause: write-behind.ts) -> return.
 *
 * The reads, decompression and verification themselves are span-reads.ts; this module decides what to read.
 *
 * Nothing is returned or cached before it verifies. Bytes that fail (digest mismatch, undecodable span,
 * short read) are fetched once more from the source, bypassing every cache and in-flight read, because
 * the fault may be transient (a flaky proxy); a second failure is a BAD_DATA error naming the layer, the
 * file and the chunk. Source errors (network, HTTP) are not retried here: the registry client already
 * retries what is worth it.
 *
 * Single-flight (STYLE.md item 10): `#units` by verified-unit digest and `#spans` by (blob, region) for
 * decompressed spans. An entry is deleted when it settles, success or failure, so no failure is memoised.
 */
import { InvalidOptionError, TocfsError } from '../../errors.js';
import type { ChunkStore } from '../store/chunk-store.js';
import { cacheErrorChannel, publish } from '../events.js';
import { AbortScope, abortError, abortable, deferred, type Deferred } from '../../util/abort.js';
import { SingleFlight } from '../../util/single-flight.js';
import { finalError, planRef, type ChunkRef, type Unit } from './fetch-plan.js';
import type { ChunkLayer, FetchFigures } from './chunk-layer.js';
import { assembleUnit, readSpans, reportVerifyFailure, spanNeeds, type SpanFetch } from './span-reads.js';
import { GATHER_GAP_BYTES, GATHER_MAX_UNIT_BYTES, Gatherer } from './batching.js';
import { WriteBehind, type WriteBehindOptions } from './write-behind.js';

export type { ChunkRef } from './fetch-plan.js';
export type { ChunkLayer, FetchFigures } from './chunk-layer.js';

export interface FetcherStats extends FetchFigures {
  readonly unitsVerified: number;
  readonly verifyFailures: number;
  /** Units fetched a second time after a failed verification. */
  readonly retries: number;
  /** Reads that joined a fetch already under way instead of starting one. */
  readonly joins: number;
  /** Units fetched as read-ahead along with a read's own request. */
  readonly readAhead: number;
  /** Verified bytes waiting for a pause in the fetches to go to the disk cache (write-behind.ts). */
  readonly diskWritesPending: number;
}

export interface FetcherOptions {
  readonly memory: ChunkStore;
  readonly disk?: ChunkStore;
  /** Missing spans separated by at most this many bytes share one request. Default 64 KiB. */
  readonly mergeGapBytes?: number;
  /** A merged request grows no larger than this. Default 16 MiB. */
  readonly maxRequestBytes?: number;
  /** Largest file read whole when its chunks carry no digest of their own. Default 64 MiB. */
  readonly maxWholeFileBytes?: number;
  /** Decompression-bomb guard: largest decompressed span. Default 80 MiB (64 MiB chunk + headers). */
  readonly maxSpanOutputBytes?: number;
  /** When verified chunks go to `disk` (write-behind.ts). Default: its defaults; `{ quietMs: 0 }` at once. */
  readonly diskWrites?: WriteBehindOptions;
}

export interface GetChunksOptions {
  /** Merge every missing span into one request whatever the holes (prefetch of a known region). */
  readonly oneRequest?: boolean;
  /**
   * Chunks to fetch along with the missing ones (read-ahead.ts): added to the same requests only when
   * some asked-for chunk goes to the source, never awaited, never an error for the caller.
   */
  readonly readAhead?: readonly ChunkRef[];
  /**
   * Chunks fetched in requests of their own (read-ahead.ts: the rest of a file, a directory) only when
   * some asked-for chunk goes to the source; never awaited, never an error for the caller.
   */
  readonly onMiss?: readonly ChunkRef[];
  /** A background read (a prefetch): its small units wait a moment to share requests with others (batching.ts). */
  readonly gather?: boolean;
}

interface Pending {
  readonly unit: Unit;
  readonly d: Deferred<Uint8Array>;
  /** Bytes of the unit the caller uses (the figures count these when a cache serves it). */
  readonly used: number;
  error?: unknown;
}

/** A read whose own chunks weigh this much (uncompressed) sends its on-miss fetches only once it has them. */
const DEFER_ON_MISS_BYTES = 1 << 20;

const DEFAULTS = {
  mergeGapBytes: 64 << 10,
  maxRequestBytes: 16 << 20,
  maxWholeFileBytes: 64 << 20,
  maxSpanOutputBytes: 80 << 20,
};

function positive(name: string, value: number): number {
  if (!(value > 0) || (Number.isFinite(value) && !Number.isSafeInteger(value))) {
    throw new InvalidOptionError(name, 'must be a positive integer');
  }
  return value;
}

export class ChunkFetcher {
  readonly #memory: ChunkStore;
  readonly #disk: ChunkStore | undefined;
  readonly #gap: number;
  readonly #maxRequest: number;
  readonly #maxWholeFile: number;
  readonly #maxSpanOutput: number;
  readonly #units = new SingleFlight<Uint8Array>();
  readonly #spans = new SingleFlight<Uint8Array>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #diskWrites: WriteBehind | undefined;
  readonly #closing = new AbortScope();
  readonly #gathering = new Gatherer<ChunkLayer, Pending>((layer, pendings) => this.#fetchAndSettle(layer, pendings, { gather: true }));
  #figures = { requests: 0, bytesFetched: 0, bytesFromMemory: 0, bytesFromDisk: 0, unitsVerified: 0, verifyFailures: 0, retries: 0, joins: 0, readAhead: 0 };

  constructor(opts: FetcherOptions) {
    this.#memory = opts.memory;
    this.#disk = opts.disk;
    this.#gap = opts.mergeGapBytes ?? DEFAULTS.mergeGapBytes;
    if (!Number.isSafeInteger(this.#gap) || this.#gap < 0) throw new InvalidOptionError('mergeGapBytes', 'must be an integer >= 0');
    this.#maxRequest = positive('maxRequestBytes', opts.maxRequestBytes ?? DEFAULTS.maxRequestBytes);
    this.#maxWholeFile = positive('maxWholeFileBytes', opts.maxWholeFileBytes ?? DEFAULTS.maxWholeFileBytes);
    this.#maxSpanOutput = positive('maxSpanOutputBytes', opts.maxSpanOutputBytes ?? DEFAULTS.maxSpanOutputBytes);
    const disk = opts.disk;
    this.#diskWrites = disk ? new WriteBehind((unit, bytes) => this.#put(disk, unit, bytes), opts.diskWrites) : undefined;
  }

  /**
   * The verified uncompressed bytes of each chunk, in order. The arrays may be views of cached
   * buffers: callers must not mutate them. `signal` only stops this caller's wait; a fetch other readers
   * joined goes on.
   */
  async getChunks(layer: ChunkLayer, refs: readonly ChunkRef[], signal?: AbortSignal, opts: GetChunksOptions = {}): Promise<Uint8Array[]> {
    if (signal?.aborted) throw abortError('chunk read', signal);
    const plans = refs.map((ref) => planRef(layer.digest, ref, this.#maxWholeFile));
    const units = new Map<string, Unit>();
    const used = new Map<string, number>();
    plans.forEach((p, i) => {
      if (!('unit' in p)) return;
      if (!units.has(p.unit.key)) units.set(p.unit.key, p.unit);
      used.set(p.unit.key, (used.get(p.unit.key) ?? 0) + Math.min(refs[i]!.used ?? p.size, p.size));
    });
    const list = [...units.values()];
    const extra: Unit[] = [];
    for (const ref of opts.readAhead ?? []) {
      let plan;
      try {
        plan = planRef(layer.digest, ref, this.#maxWholeFile);
      } catch {
        continue; // unverifiable read-ahead is simply not read ahead
      }
      if ('unit' in plan && !units.has(plan.unit.key) && !extra.some((u) => u.key === plan.unit.key)) extra.push(plan.unit);
    }
    const [hits, extraHits] = await Promise.all([
      Promise.all(list.map((u) => this.#memory.get(u.key))),
      Promise.all(extra.map((u) => this.#memory.get(u.key))),
    ]);

    // From here to the end of the loop nothing awaits: a unit is either in memory, joined, or ours.
    const waits = new Map<string, Promise<Uint8Array>>();
    const mine: Pending[] = [];
    list.forEach((unit, i) => {
      const hit = hits[i];
      if (hit !== undefined && hit.byteLength === unit.size) {
        this.#count(layer, 'bytesFromMemory', used.get(unit.key)!);
        waits.set(unit.key, Promise.resolve(hit));
        return;
      }
      const flying = this.#units.get(unit.key);
      if (flying) {
        this.#figures.joins++;
        waits.set(unit.key, flying);
        return;
      }
      const d = this.#units.begin(unit.key);
      mine.push({ unit, d, used: used.get(unit.key)! });
      waits.set(unit.key, d.promise);
    });
    if (mine.length > 0) {
      extra.forEach((unit, i) => {
        if (extraHits[i] !== undefined || this.#units.has(unit.key)) return;
        const d = this.#units.begin(unit.key); // nobody waits for read-ahead: its failure is no one's error
        mine.push({ unit, d, used: 0 }); // read-ahead: no caller takes bytes from it now
        this.#figures.readAhead++;
      });
      const filling = this.#fill(layer, mine, opts);
      this.#track(filling);
      if (opts.onMiss?.length) {
        // `used: 0`: nothing is read from these yet, so a cache hit is no byte served (the figures).
        const fetchOnMiss = (): void => void this.getChunks(layer, opts.onMiss!.map((ref) => ({ ...ref, used: 0 }))).catch(() => {});
        // Requests share the link. Next to a small read they cost it little; next to a large one (a
        // library's first 4 MiB chunk) they would halve its rate, and the loader waits on that read.
        const ownBytes = mine.reduce((n, p) => n + (p.used > 0 ? p.unit.size : 0), 0);
        if (ownBytes >= DEFER_ON_MISS_BYTES) void filling.finally(fetchOnMiss);
        else fetchOnMiss();
      }
    }

    const keys = [...waits.keys()];
    const values = await abortable(Promise.all(waits.values()), signal, 'chunk read');
    const byKey = new Map(keys.map((k, i) => [k, values[i]!]));
    return plans.map((p) => ('zeros' in p ? new Uint8Array(p.zeros) : byKey.get(p.unit.key)!.subarray(p.offset, p.offset + p.size)));
  }

  stats(): FetcherStats {
    return { ...this.#figures, diskWritesPending: this.#diskWrites?.pending().bytes ?? 0 };
  }

  /** Chunks verified but not yet written to disk (write-behind.ts). */
  pendingDiskWrites(): { chunks: number; bytes: number } {
    return this.#diskWrites?.pending() ?? { chunks: 0, bytes: 0 };
  }

  /** Writes to disk every verified chunk waiting for a pause in the fetches. */
  flushDiskWrites(): Promise<void> {
    return this.#diskWrites?.flush() ?? Promise.resolve();
  }

  /** Stops source reads under way and writes what waits for the disk. The stores belong to the caller. */
  async close(): Promise<void> {
    this.#closing.abort(new TocfsError('ABORTED', 'chunk fetcher closed'));
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    await this.flushDiskWrites();
  }

  #count(layer: ChunkLayer, what: keyof FetchFigures, n: number): void {
    this.#figures[what] += n;
    if (layer.fetched) layer.fetched[what] += n;
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch(() => {}).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  #settle(p: Pending, bytes: Uint8Array | undefined, err?: unknown): void {
    if (bytes !== undefined) p.d.resolve(bytes);
    else p.d.reject(err);
  }

  async #fill(layer: ChunkLayer, mine: Pending[], opts: GetChunksOptions): Promise<void> {
    let pending = mine;
    try {
      // Again: a fetch that settled between the caller's memory miss and its registration left it there.
      pending = await this.#fromStore(layer, this.#memory, pending);
      pending = await this.#fromDiskQueue(layer, pending);
      if (this.#disk) pending = await this.#fromStore(layer, this.#disk, pending);
      if (pending.length === 0) return;
      if (!opts.gather) return await this.#fetchAndSettle(layer, pending, opts);
      const small = pending.filter((p) => p.unit.size <= GATHER_MAX_UNIT_BYTES);
      const large = pending.filter((p) => p.unit.size > GATHER_MAX_UNIT_BYTES);
      await Promise.all([this.#gathering.add(layer, small), large.length > 0 && this.#fetchAndSettle(layer, large, opts)]);
    } catch (err) {
      for (const p of pending) this.#settle(p, undefined, err); // settling twice is a no-op
    }
  }

  /** Fetches `pending` from the source, once more what came bad, and settles every one. */
  async #fetchAndSettle(layer: ChunkLayer, pending: Pending[], opts: GetChunksOptions): Promise<void> {
    try {
      let failed = await this.#fetchUnits(layer, pending, 1, opts);
      if (failed.length > 0) {
        this.#figures.retries += failed.length;
        failed = await this.#fetchUnits(layer, failed, 2, opts);
      }
      for (const p of failed) this.#settle(p, undefined, finalError(layer.digest, p.unit, p.error));
    } catch (err) {
      for (const p of pending) this.#settle(p, undefined, err);
    }
  }

  /** Settles what waits for the disk (evicted from memory meanwhile: it goes back); returns the rest. */
  async #fromDiskQueue(layer: ChunkLayer, pending: Pending[]): Promise<Pending[]> {
    const rest: Pending[] = [];
    for (const p of pending) {
      const bytes = this.#diskWrites?.get(p.unit.key);
      if (bytes === undefined) {
        rest.push(p);
        continue;
      }
      this.#count(layer, 'bytesFromMemory', p.used);
      await this.#put(this.#memory, p.unit, bytes);
      this.#settle(p, bytes);
    }
    return rest;
  }

  /** Settles what `store` has (copying disk hits to memory); returns the rest. */
  async #fromStore(layer: ChunkLayer, store: ChunkStore, pending: Pending[]): Promise<Pending[]> {
    const found = await Promise.all(
      pending.map((p) =>
        store.get(p.unit.key).catch((error: unknown) => {
          publish(cacheErrorChannel, { store: store === this.#memory ? 'memory' : 'chunks', op: 'read', digest: p.unit.key, error });
          return undefined;
        }),
      ),
    );
    const rest: Pending[] = [];
    for (const [i, p] of pending.entries()) {
      const bytes = found[i];
      if (bytes === undefined || bytes.byteLength !== p.unit.size) {
        rest.push(p);
        continue;
      }
      if (store === this.#memory) {
        this.#count(layer, 'bytesFromMemory', p.used);
      } else {
        this.#count(layer, 'bytesFromDisk', p.used);
        await this.#put(this.#memory, p.unit, bytes);
      }
      this.#settle(p, bytes);
    }
    return rest;
  }

  /**
   * Fetches, decodes and verifies units; settles the good ones and those with a source error, and
   * returns those whose bytes were bad (each with its `error`).
   */
  async #fetchUnits(layer: ChunkLayer, pendings: Pending[], attempt: 1 | 2, opts: GetChunksOptions): Promise<Pending[]> {
    const spans = new Map<string, Promise<Uint8Array>>();
    const needs = spanNeeds(layer.digest, pendings.map((p) => p.unit));
    const toFetch: SpanFetch[] = [];
    for (const [key, { span }] of needs) {
      // A retry joins nothing: the bytes it replaces may have come from the very read under way.
      const flying = attempt === 1 ? this.#spans.get(key) : undefined;
      if (flying) {
        spans.set(key, flying);
        continue;
      }
      const d = attempt === 1 ? this.#spans.begin(key) : deferred<Uint8Array>();
      spans.set(key, d.promise);
      toFetch.push({ key, span, d });
    }
    readSpans(layer, toFetch, {
      gapBytes: opts.oneRequest ? Infinity : opts.gather ? Math.min(this.#gap, GATHER_GAP_BYTES) : this.#gap,
      maxRequestBytes: opts.oneRequest ? Infinity : this.#maxRequest,
      attempt,
      patient: opts.gather === true,
      closing: this.#closing,
      maxOut: (key) => Math.max(needs.get(key)!.need, this.#maxSpanOutput),
      need: (key) => needs.get(key)!.need,
      count: (what, n) => this.#count(layer, what, n),
      busy: () => this.#diskWrites?.busy(),
    });

    const failed: Pending[] = [];
    await Promise.all(
      pendings.map(async (p) => {
        const result = await assembleUnit(layer, p.unit, spans);
        if (result instanceof Uint8Array) {
          this.#figures.unitsVerified++;
          await this.#store(p.unit, result);
          this.#settle(p, result);
        } else if (result.retry) {
          this.#figures.verifyFailures++;
          reportVerifyFailure(layer.digest, p.unit, result.error, attempt);
          p.error = result.error;
          failed.push(p);
        } else {
          this.#settle(p, undefined, result.error);
        }
      }),
    );
    return failed;
  }

  /** Fills memory now and disk once fetches pause; a cache that cannot take it is reported, not fatal. */
  async #store(unit: Unit, bytes: Uint8Array): Promise<void> {
    await this.#put(this.#memory, unit, bytes);
    this.#diskWrites?.add(unit, bytes);
  }

  async #put(store: ChunkStore, unit: Unit, bytes: Uint8Array): Promise<void> {
    let writer;
    try {
      writer = store.begin(unit.key, unit.size);
      // Verified bytes this fetcher made (or read from disk) and hands out read-only: no copy needed.
      await writer.write(bytes, { immutable: true });
      await writer.commit();
    } catch (error) {
      await writer?.abort().catch(() => {});
      publish(cacheErrorChannel, { store: store === this.#memory ? 'memory' : 'chunks', op: 'write', digest: unit.key, error });
    }
  }
}
