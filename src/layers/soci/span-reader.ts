/**
 * The zran spans of a SOCI-indexed gzip layer (DESIGN.md §3.3, §3.4): each span's compressed bytes are
 * fetched by range, checked against its digest from the zTOC BEFORE inflating (the only digest a plain
 * gzip layer has), inflated from its checkpoint (src/layers/zran), and cached:
 *
 *   memory LRU (inflated span) -> disk store (compressed span, content-addressed by the span digest, so the
 *   disk store re-verifies it on load) -> one range request for each run of adjacent missing spans.
 *
 * Bytes that fail their digest are fetched once more, past every buffer; a second failure is BAD_DATA
 * naming the layer and the span. One fetch per span at a time (single-flight by span digest).
 */
import { createHash } from 'node:crypto';
import { TocfsError } from '../../errors.js';
import type { SociSpan } from '../../formats/soci/zinfo.js';
import { abortable, deferred, type Deferred } from '../../util/abort.js';
import { sha256Hex } from '../../util/sha256.js';
import { cacheErrorChannel, fetchRangeChannel, publish, verifyFailChannel } from '../events.js';
import type { FetchFigures } from '../fetch/chunk-layer.js';
import { mergeSpans } from '../fetch/fetch-plan.js';
import type { RangeSource } from '../sources/range-source.js';
import type { ChunkStore } from '../store/chunk-store.js';
import { extract } from '../zran/zran.js';

export interface SpanStores {
  /** Inflated spans, by `inflatedKey(span digest)`. */
  readonly memory: ChunkStore;
  /** Compressed spans, by span digest. */
  readonly disk?: ChunkStore;
}

export interface SpanReaderOptions {
  /** Adjacent missing spans share a request up to this size. Default 16 MiB. */
  readonly maxRequestBytes?: number;
}

const DEFAULT_MAX_REQUEST_BYTES = 16 << 20;
/** Missing spans this close share a request: the hole costs less than a round trip. */
const MERGE_GAP_BYTES = 64 << 10;

/**
 * The memory key of a span's inflated bytes: the stores are keyed by sha256 digests, and the inflated
 * bytes have none of their own until hashed; a digest derived from the span's (compressed) digest names
 * them without hashing 4 MiB per span.
 */
export function inflatedKey(spanDigest: string): string {
  return `sha256:${createHash('sha256').update(`tocfs zran inflated span\0${spanDigest}`).digest('hex')}`;
}

export class SpanReader {
  readonly #layer: string;
  readonly #source: RangeSource;
  readonly #stores: SpanStores;
  readonly #maxRequest: number;
  readonly #flights = new Map<string, Promise<Uint8Array>>();
  readonly fetched: FetchFigures = { requests: 0, bytesFetched: 0, bytesFromMemory: 0, bytesFromDisk: 0 };

  constructor(layer: string, source: RangeSource, stores: SpanStores, opts: SpanReaderOptions = {}) {
    this.#layer = layer;
    this.#source = source;
    this.#stores = stores;
    this.#maxRequest = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  }

  /**
   * The inflated bytes of each span, in order. `used[i]` is how many of span i's bytes the caller takes
   * (what the figures count when a cache serves it). `signal` stops only this caller's wait.
   */
  async read(spans: readonly SociSpan[], used: readonly number[], signal?: AbortSignal): Promise<Uint8Array[]> {
    const hits = await Promise.all(spans.map((s) => this.#stores.memory.get(inflatedKey(s.digest))));
    const missing: SociSpan[] = [];
    const waits = spans.map((span, i) => {
      const hit = hits[i];
      if (hit !== undefined && hit.byteLength === span.uncompressedEnd - span.uncompressedStart) {
        this.fetched.bytesFromMemory += used[i] ?? 0;
        return Promise.resolve(hit);
      }
      const flying = this.#flights.get(span.digest);
      if (flying) return flying;
      missing.push(span);
      return undefined;
    });
    if (missing.length > 0) {
      const started = this.#start(missing, new Map(spans.map((s, i) => [s.digest, used[i] ?? 0])));
      spans.forEach((s, i) => (waits[i] ??= started.get(s.digest)!));
    }
    return abortable(Promise.all(waits as Promise<Uint8Array>[]), signal, `span read of layer ${this.#layer}`);
  }

  /** Starts the fill of every missing span: disk first, then merged range requests for the rest. */
  #start(missing: readonly SociSpan[], used: ReadonlyMap<string, number>): Map<string, Promise<Uint8Array>> {
    const pending = new Map(missing.map((span) => [span.digest, deferred<Uint8Array>()]));
    for (const [digest, d] of pending) {
      const flight = d.promise.finally(() => {
        if (this.#flights.get(digest) === flight) this.#flights.delete(digest);
      });
      flight.catch(() => {});
      this.#flights.set(digest, flight);
    }
    this.#fromDisk(missing, used).then(
      (found) => {
        for (const [digest, bytes] of found) pending.get(digest)!.resolve(bytes);
        this.#fetchRuns(missing.filter((s) => !found.has(s.digest)), pending);
      },
      (err: unknown) => {
        for (const d of pending.values()) d.reject(err);
      },
    );
    return new Map([...pending].map(([digest]) => [digest, this.#flights.get(digest)!]));
  }

  /** Spans the disk store has (compressed, re-verified on load), inflated and put in memory. */
  async #fromDisk(spans: readonly SociSpan[], used: ReadonlyMap<string, number>): Promise<Map<string, Uint8Array>> {
    const found = new Map<string, Uint8Array>();
    const disk = this.#stores.disk;
    if (disk === undefined) return found;
    await Promise.all(
      spans.map(async (span) => {
        const compressed = await disk.get(span.digest).catch((error: unknown) => {
          publish(cacheErrorChannel, { store: 'chunks', op: 'read', digest: span.digest, error });
          return undefined;
        });
        if (compressed === undefined || compressed.byteLength !== span.compressedEnd - span.compressedStart) return;
        found.set(span.digest, await this.#inflate(span, compressed));
        this.fetched.bytesFromDisk += used.get(span.digest) ?? 0;
      }),
    );
    return found;
  }

  #fetchRuns(spans: readonly SociSpan[], pending: ReadonlyMap<string, Deferred<Uint8Array>>): void {
    const byRange = new Map(spans.map((s) => [`${s.compressedStart}-${s.compressedEnd}`, s]));
    // Adjacent spans overlap by the byte a mid-byte checkpoint starts in (a gap of -1), and merge.
    for (const req of mergeSpans(spans.map((s) => ({ start: s.compressedStart, end: s.compressedEnd })), MERGE_GAP_BYTES, this.#maxRequest)) {
      const members = req.spans.map((r) => byRange.get(`${r.start}-${r.end}`)!);
      void this.#fetchRun(req, members, pending);
    }
  }

  async #fetchRun(req: { start: number; end: number }, members: readonly SociSpan[], pending: ReadonlyMap<string, Deferred<Uint8Array>>): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await this.#readRange(req, false);
    } catch (err) {
      for (const s of members) pending.get(s.digest)!.reject(err);
      return;
    }
    await Promise.all(
      members.map(async (span) => {
        const p = pending.get(span.digest)!;
        try {
          let compressed = bytes.subarray(span.compressedStart - req.start, span.compressedEnd - req.start);
          if (!(await this.#verified(span, compressed, 1))) {
            compressed = await this.#readRange({ start: span.compressedStart, end: span.compressedEnd }, true);
            if (!(await this.#verified(span, compressed, 2))) {
              throw new TocfsError('BAD_DATA', `layer ${this.#layer}: span ${span.index} [${span.compressedStart}, ${span.compressedEnd}) does not match its zTOC digest ${span.digest} (fetched twice)`);
            }
          }
          void this.#putDisk(span, compressed);
          p.resolve(await this.#inflate(span, compressed));
        } catch (err) {
          p.reject(err);
        }
      }),
    );
  }

  async #readRange(range: { start: number; end: number }, fresh: boolean): Promise<Uint8Array> {
    const startedMs = performance.now();
    const bytes = await this.#source.read(range, undefined, fresh ? { fresh: true } : {});
    this.fetched.requests++;
    this.fetched.bytesFetched += bytes.byteLength;
    publish(fetchRangeChannel, { layer: this.#layer, ...range, bytes: bytes.byteLength, spans: 1, startedMs, ms: performance.now() - startedMs });
    if (bytes.byteLength !== range.end - range.start) {
      throw new TocfsError('BAD_DATA', `layer ${this.#layer}: source answered ${bytes.byteLength} bytes for [${range.start}, ${range.end})`);
    }
    return bytes;
  }

  async #verified(span: SociSpan, compressed: Uint8Array, attempt: 1 | 2): Promise<boolean> {
    const actual = `sha256:${await sha256Hex(compressed)}`;
    if (actual === span.digest) return true;
    publish(verifyFailChannel, { layer: this.#layer, path: `span ${span.index}`, chunk: span.index, fileOffset: span.uncompressedStart, expected: span.digest, actual, attempt });
    return false;
  }

  /** The span's tar bytes from its verified compressed bytes; exactly the zTOC's length or BAD_DATA. */
  async #inflate(span: SociSpan, compressed: Uint8Array): Promise<Uint8Array> {
    const length = span.uncompressedEnd - span.uncompressedStart;
    let out: Uint8Array;
    try {
      out = await extract(compressed, span.checkpoint, 0, length);
    } catch (err) {
      throw new TocfsError('BAD_DATA', `layer ${this.#layer}: span ${span.index} does not inflate from its checkpoint: ${(err as Error).message}`, { cause: err });
    }
    if (out.byteLength !== length) {
      throw new TocfsError('BAD_DATA', `layer ${this.#layer}: span ${span.index} inflates to ${out.byteLength} bytes, its zTOC says ${length}`);
    }
    await this.#put(this.#stores.memory, inflatedKey(span.digest), out, 'memory');
    return out;
  }

  #putDisk(span: SociSpan, compressed: Uint8Array): Promise<void> {
    return this.#stores.disk ? this.#put(this.#stores.disk, span.digest, compressed, 'chunks') : Promise.resolve();
  }

  async #put(store: ChunkStore, key: string, bytes: Uint8Array, name: string): Promise<void> {
    let writer;
    try {
      writer = store.begin(key, bytes.byteLength);
      await writer.write(bytes, { immutable: true });
      await writer.commit();
    } catch (error) {
      await writer?.abort().catch(() => {});
      publish(cacheErrorChannel, { store: name, op: 'write', digest: key, error });
    }
  }
}
