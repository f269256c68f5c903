/**
 * Pure planning for the fetcher: which verifiable unit serves a chunk, which compressed spans a unit
 * needs, and how spans merge into range requests. No I/O, no caches.
 */
import { TocfsError } from '../../errors.js';
import type { TocChunk, TocEntry } from '../../formats/toc.js';

/** A chunk of a file: `entry.chunks[index]`. */
export interface ChunkRef {
  readonly entry: TocEntry;
  readonly index: number;
  /**
   * Bytes of the chunk the caller will use, for the figures only: a cache hit counts what a read took
   * from it, not the whole chunk. Default: the whole chunk.
   */
  readonly used?: number;
}

/**
 * What is fetched, verified and cached as one piece: a chunk with its own digest, or, when the format
 * gives chunks no digest, the whole file (verified by the file digest). `key` is the digest the bytes
 * must hash to, hence also the content-addressed cache key.
 */
export interface Unit {
  readonly key: string;
  readonly entry: TocEntry;
  /** The chunks [first, first + count) of the entry. */
  readonly first: number;
  readonly count: number;
  /** Uncompressed bytes. */
  readonly size: number;
}

/** A ref resolved: its unit and where its bytes sit in the unit, or a zeros chunk (no unit at all). */
export type RefPlan = { readonly unit: Unit; readonly offset: number; readonly size: number } | { readonly zeros: number };

/** A compressed span of the blob [start, end): one gzip member or zstd frame, decompressed on its own. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** One range request: [start, end) covering `spans`, sorted by start. */
export interface Request {
  readonly start: number;
  readonly end: number;
  readonly spans: readonly Span[];
}

export function describeChunk(layer: string, entry: TocEntry, index: number, chunk: TocChunk | undefined): string {
  if (!chunk) return `layer ${layer}: file ${entry.path}: chunk ${index}`;
  return (
    `layer ${layer}: file ${entry.path}: chunk ${index} (file offset ${chunk.fileOffset}, ` +
    `blob bytes [${chunk.compressedOffset}, ${chunk.compressedEnd}))`
  );
}

export function describeUnit(layer: string, unit: Unit): string {
  return unit.count === 1 && unit.entry.chunks[unit.first]?.digest === unit.key
    ? describeChunk(layer, unit.entry, unit.first, unit.entry.chunks[unit.first])
    : `layer ${layer}: file ${unit.entry.path} (whole file, ${unit.entry.chunks.length} chunk(s), verified by its file digest)`;
}

export function planRef(layer: string, ref: ChunkRef, maxWholeFileBytes: number): RefPlan {
  const { entry, index } = ref;
  const chunk = entry.chunks[index];
  if (!chunk) throw new TocfsError('INVALID_OPTION', `${describeChunk(layer, entry, index, chunk)} does not exist`);
  if (chunk.zeros) return { zeros: chunk.size };
  if (chunk.digest !== '') {
    return { unit: { key: chunk.digest, entry, first: index, count: 1, size: chunk.size }, offset: 0, size: chunk.size };
  }
  // No chunk digest: only the whole file can be verified, so the whole file is the unit.
  if (entry.digest === undefined || entry.size > maxWholeFileBytes) {
    throw new TocfsError(
      'BAD_DATA',
      `${describeChunk(layer, entry, index, chunk)} has no chunk digest` +
        (entry.digest === undefined ? ' and the file has no digest' : ` and the file is too large to verify whole (${entry.size} bytes)`) +
        ': its bytes cannot be verified',
    );
  }
  return {
    unit: { key: entry.digest, entry, first: 0, count: entry.chunks.length, size: entry.size },
    offset: chunk.fileOffset,
    size: chunk.size,
  };
}

/** The data chunks of a unit (zeros chunks need no span). */
export function* unitChunks(unit: Unit): Generator<TocChunk> {
  for (let i = unit.first; i < unit.first + unit.count; i++) yield unit.entry.chunks[i]!;
}

export function spanKey(blob: string, span: Span): string {
  return `${blob}@${span.start}-${span.end}`;
}

/**
 * Sorted spans merged into requests: a span joins the previous request when the hole between them is at
 * most `gapBytes` and the request stays within `maxBytes` (a single span larger than that is its own
 * request).
 */
export function mergeSpans(spans: Iterable<Span>, gapBytes: number, maxBytes: number): Request[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end);
  const requests: { start: number; end: number; spans: Span[] }[] = [];
  for (const span of sorted) {
    const last = requests.at(-1);
    if (last && span.start - last.end <= gapBytes && Math.max(last.end, span.end) - last.start <= maxBytes) {
      last.end = Math.max(last.end, span.end);
      last.spans.push(span);
    } else {
      requests.push({ start: span.start, end: span.end, spans: [span] });
    }
  }
  return requests;
}

/** Bytes that did not decode or were cut short: worth one more fetch, unlike a source error. */
export class BadBytes extends Error {
  override name = 'BadBytes';
}

/** The error a unit fails with after its second bad fetch: always BAD_DATA, naming layer, file and chunk. */
export function finalError(layer: string, unit: Unit, error: unknown): TocfsError {
  if (error instanceof TocfsError && error.code === 'BAD_DATA') return error;
  const cause = error instanceof Error ? error : new Error(String(error));
  return new TocfsError('BAD_DATA', `${describeUnit(layer, unit)}: ${cause.message} (fetched twice)`, { cause });
}
