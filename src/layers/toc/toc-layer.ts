/**
 * A layer = its TOC index + chunk reads. STYLE.md item 5: a TOC read from a blob or a cache is an
 * `UnverifiedLayer`, whose only useful method is `verify(tocDigest)`; only the `VerifiedLayer` it returns
 * can `read()`. There is no way to skip verification.
 */
import { DigestMismatchError, InvalidOptionError, TocfsError } from '../../errors.js';
import type { DecodedToc, TocCodec, TocEntry, TocFormat, TocIndex, TocLocation } from '../../formats/toc.js';
import { abortable } from '../../util/abort.js';
import { firstChunkEndingAfter, ownRegularFile, ratio, type Layer, type LayerFigures, type LayerReadOptions, type PrefetchState } from '../layer.js';
import { SingleFlight } from '../../util/single-flight.js';
import { prefetchFailChannel, publish } from '../events.js';
import type { ChunkFetcher, ChunkLayer, ChunkRef, FetchFigures } from '../fetch/fetcher.js';
import type { RangeSource } from '../sources/range-source.js';
import { DEFAULT_MAX_PREFETCH_BYTES, fetchPrefetchRegion } from '../fetch/prefetch-region.js';
import { NO_READ_AHEAD, ReadAhead, type ReadAheadPolicy } from '../fetch/read-ahead.js';

/** Where the TOC came from: the disk TOC cache, or the blob itself. */
export type TocSource = 'cache' | 'blob';

export interface LayerStats extends Readonly<FetchFigures> {
  readonly digest: string;
  readonly format: TocFormat;
  readonly tocSource: TocSource;
  /** The compressed blob's size in bytes. */
  readonly blobBytes: number;
  /** bytesFetched / the blob's size (the `fetched %` of DESIGN.md §1.4, as a ratio). */
  readonly fetchedRatio: number;
  readonly prefetch: PrefetchState;
}

export interface LayerParts {
  readonly source: RangeSource;
  readonly codec: TocCodec;
  readonly fetcher: ChunkFetcher;
  readonly decoded: DecodedToc;
  readonly location: TocLocation;
  /** The TOC's compressed bytes as read (what the TOC cache stores). */
  readonly tocBytes: Uint8Array;
  readonly tocSource: TocSource;
  /** A prefetch region larger than this is fetched in several requests. Default 64 MiB. */
  readonly maxPrefetchBytes?: number;
  /** What reads fetch ahead (read-ahead.ts); default: its defaults. */
  readonly readAhead?: ReadAheadPolicy;
}

const verified = new WeakSet<UnverifiedLayer>();

export class UnverifiedLayer {
  readonly digest: string;
  readonly parts: LayerParts;

  constructor(digest: string, parts: LayerParts) {
    this.digest = digest;
    this.parts = parts;
  }

  /**
   * Checks the TOC against the manifest: `tocDigest` (`containerd.io/snapshot/stargz/toc.digest`, sha256
   * of the uncompressed TOC JSON) and/or `compressedTocDigest` (zstd:chunked `manifest-checksum`, sha256 of
   * the compressed TOC bytes); every one given must match. A string is a `tocDigest`.
   * Throws DigestMismatchError (BAD_DATA) on a mismatch.
   */
  verify(expected: string | { readonly tocDigest?: string; readonly compressedTocDigest?: string }): VerifiedLayer {
    const want = typeof expected === 'string' ? { tocDigest: expected } : expected;
    if (want.tocDigest === undefined && want.compressedTocDigest === undefined) {
      throw new TocfsError('BAD_DATA', `layer ${this.digest}: no TOC digest to verify against`);
    }
    const { tocDigest, compressedTocDigest } = this.parts.decoded;
    if (want.tocDigest !== undefined && tocDigest !== want.tocDigest) {
      throw new DigestMismatchError(`layer ${this.digest}: TOC (toc.digest)`, want.tocDigest, tocDigest);
    }
    if (want.compressedTocDigest !== undefined && compressedTocDigest !== want.compressedTocDigest) {
      throw new DigestMismatchError(`layer ${this.digest}: TOC (zstd:chunked manifest-checksum)`, want.compressedTocDigest, compressedTocDigest);
    }
    verified.add(this);
    return new VerifiedLayer(this);
  }
}

export class VerifiedLayer implements ChunkLayer, Layer {
  readonly digest: string;
  readonly index: TocIndex;
  readonly source: RangeSource;
  readonly codec: TocCodec;
  readonly location: TocLocation;
  readonly tocSource: TocSource;
  readonly fetched: FetchFigures = { requests: 0, bytesFetched: 0, bytesFromMemory: 0, bytesFromDisk: 0 };
  readonly #fetcher: ChunkFetcher;
  readonly #maxPrefetchBytes: number;
  readonly #readAhead: ReadAhead;
  readonly #prefetching = new SingleFlight<void>();
  #prefetchState: 'idle' | 'done' | 'failed' = 'idle';

  /** Only `UnverifiedLayer.verify()` makes one. */
  constructor(from: UnverifiedLayer) {
    if (!verified.has(from)) throw new TocfsError('BAD_DATA', `layer ${from.digest}: TOC not verified`);
    const p = from.parts;
    this.digest = from.digest;
    this.index = p.decoded.index;
    this.source = p.source;
    this.codec = p.codec;
    this.location = p.location;
    this.tocSource = p.tocSource;
    this.#fetcher = p.fetcher;
    this.#maxPrefetchBytes = p.maxPrefetchBytes ?? DEFAULT_MAX_PREFETCH_BYTES;
    this.#readAhead = new ReadAhead(this.index, p.readAhead);
  }

  /**
   * Exactly bytes [offset, offset + length) of a regular file, clamped at its end (empty past EOF).
   * Whole chunks are fetched and cached, so a small file (one chunk) is read and cached whole. The result
   * may be a view of a cached chunk: callers must not change it.
   */
  async read(target: string | TocEntry, offset: number, length: number, signal?: AbortSignal, opts: LayerReadOptions = {}): Promise<Uint8Array> {
    const entry = ownRegularFile(this, target);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOptionError('offset', `${offset} is not a byte offset`);
    if (!Number.isSafeInteger(length) || length < 0) throw new InvalidOptionError('length', `${length} is not a length`);
    const end = Math.min(entry.size, offset + length);
    if (offset >= end) return new Uint8Array(0);

    const { chunks } = entry;
    const refs: ChunkRef[] = [];
    for (let i = firstChunkEndingAfter(chunks, offset); i < chunks.length && chunks[i]!.fileOffset < end; i++) {
      const c = chunks[i]!;
      refs.push({ entry, index: i, used: opts.background ? 0 : Math.min(c.fileOffset + c.size, end) - Math.max(c.fileOffset, offset) });
    }
    const ahead = opts.background ? NO_READ_AHEAD : this.#readAhead.plan(entry, refs, offset, end);
    const reading = this.#fetcher.getChunks(this, refs, signal, { readAhead: ahead.adjacent, onMiss: ahead.onMiss, ...(opts.background && { gather: true }) });
    // The next chunks of a file read sequentially: requests of their own, in parallel with this one.
    // `used: 0`: fetching ahead reads nothing yet, so a cache hit here is no byte served (the figures).
    for (const ref of ahead.sequential) this.#fetcher.getChunks(this, [{ ...ref, used: 0 }]).catch(() => {});
    const parts = await reading;
    if (parts.length === 1) {
      // One chunk (every read of a small file, most of a large one): a view of the cached chunk, no copy.
      const c = chunks[refs[0]!.index]!;
      return parts[0]!.subarray(offset - c.fileOffset, end - c.fileOffset);
    }
    const out = new Uint8Array(end - offset);
    parts.forEach((bytes, k) => {
      const c = chunks[refs[k]!.index]!;
      const from = Math.max(0, offset - c.fileOffset);
      const to = Math.min(c.size, end - c.fileOffset);
      out.set(bytes.subarray(from, to), c.fileOffset + from - offset);
    });
    return out;
  }

  /**
   * Fetches every chunk before `.prefetch.landmark` (DESIGN.md §2) in one request, verified and cached
   * like any other. Resolves at once for a layer without the landmark or already prefetched; concurrent
   * calls share one run. `signal` only stops the caller's wait.
   */
  prefetch(signal?: AbortSignal): Promise<void> {
    const region = this.index.prefetch;
    if (!region || this.#prefetchState === 'done') return Promise.resolve();
    const running = this.#prefetching.run('', () =>
      fetchPrefetchRegion(this.#fetcher, this, this.index, region, this.#maxPrefetchBytes).then(
        () => void (this.#prefetchState = 'done'),
        (err: unknown) => {
          this.#prefetchState = 'failed'; // not memoised: a later call tries again
          throw err;
        },
      ),
    );
    return abortable(running, signal, 'prefetch');
  }

  /**
   * Starts `prefetch()` without waiting; a failure is published on `tocfs:prefetch:fail`. `settled` runs
   * when it has succeeded or failed.
   */
  prefetchInBackground(settled?: () => void): void {
    this.prefetch()
      .catch((error: unknown) => publish(prefetchFailChannel, { layer: this.digest, error }))
      .finally(settled);
  }

  figures(): LayerFigures {
    const figures = this.fetched;
    return {
      format: this.index.format,
      tocSource: this.tocSource,
      source: 'registry',
      blobBytes: this.source.size,
      bytesFetched: figures.bytesFetched,
      bytesCache: figures.bytesFromMemory + figures.bytesFromDisk,
      fetchedRatio: ratio(figures.bytesFetched, this.source.size),
      requests: figures.requests,
      prefetch: this.#prefetchStateNow(),
    };
  }

  stats(): LayerStats {
    return {
      digest: this.digest,
      format: this.index.format,
      tocSource: this.tocSource,
      ...this.fetched,
      blobBytes: this.source.size,
      fetchedRatio: ratio(this.fetched.bytesFetched, this.source.size),
      prefetch: this.#prefetchStateNow(),
    };
  }

  #prefetchStateNow(): PrefetchState {
    return !this.index.prefetch ? 'none' : this.#prefetching.size > 0 ? 'running' : this.#prefetchState;
  }
}
