/**
 * The eStargz prefetch of an optimized layer (DESIGN.md §2): every chunk before `.prefetch.landmark`,
 * verified and cached like any other, fetched in pieces so the first prioritised files arrive early.
 */
import type { TocIndex } from '../../formats/toc.js';
import type { ChunkLayer } from './chunk-layer.js';
import type { ChunkFetcher, ChunkRef } from './fetcher.js';
import { blobOrder } from './read-ahead.js';

/** A prefetch region larger than this is fetched in several requests. */
export const DEFAULT_MAX_PREFETCH_BYTES = 64 << 20;
export const PREFETCH_PIECE_BYTES = 2 << 20;
export const PREFETCH_PARALLEL = 2;

/**
 * Pieces of PREFETCH_PIECE_BYTES, in blob order (the prioritised files in the order they were first read),
 * PREFETCH_PARALLEL at a time: the first files arrive after one piece, not after the whole region, and a
 * read of a file whose piece has not started fetches it itself without waiting.
 */
export async function fetchPrefetchRegion(
  fetcher: ChunkFetcher,
  layer: ChunkLayer,
  index: TocIndex,
  region: { readonly start: number; readonly end: number },
  maxPrefetchBytes = DEFAULT_MAX_PREFETCH_BYTES,
): Promise<void> {
  const refs = blobOrder(index).filter(({ entry, index: i }) => {
    const c = entry.chunks[i]!;
    return c.compressedOffset >= region.start && c.compressedEnd <= region.end;
  });
  if (refs.length === 0) return;
  const pieces: ChunkRef[][] = [];
  let pieceStart = -1;
  for (const ref of refs) {
    const c = ref.entry.chunks[ref.index]!;
    if (pieceStart < 0 || c.compressedEnd - pieceStart > Math.min(PREFETCH_PIECE_BYTES, maxPrefetchBytes)) {
      pieces.push([]);
      pieceStart = c.compressedOffset;
    }
    pieces[pieces.length - 1]!.push(ref);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < pieces.length) await fetcher.getChunks(layer, pieces[next++]!, undefined, { oneRequest: true });
  };
  await Promise.all(Array.from({ length: Math.min(PREFETCH_PARALLEL, pieces.length) }, worker));
}
