/**
 * What the fetch path (fetcher.ts, span-reads.ts) needs of a layer, and the figures it moves: types only,
 * so the fetcher and the modules it hands work to share them without importing each other.
 */
import type { TocCodec } from '../../formats/toc.js';
import type { RangeSource } from '../sources/range-source.js';

/** The figures of DESIGN.md §1.4 that the fetcher moves; kept per fetcher and, optionally, per layer. */
export interface FetchFigures {
  /** Range requests sent to sources, and their compressed bytes. */
  requests: number;
  bytesFetched: number;
  /** Uncompressed bytes that callers took from the memory LRU and from the disk store (`ChunkRef.used`). */
  bytesFromMemory: number;
  bytesFromDisk: number;
}

/** What the fetcher needs of a layer. */
export interface ChunkLayer {
  /** The layer blob's digest, for messages and events. */
  readonly digest: string;
  readonly source: RangeSource;
  readonly codec: Pick<TocCodec, 'decompressSpan'>;
  /** Incremented along with the fetcher's own figures. */
  readonly fetched?: FetchFigures;
}
