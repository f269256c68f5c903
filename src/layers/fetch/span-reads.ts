/**
 * The fetcher's side facing the sources (fetcher.ts): merged range reads of compressed spans, each span
 * decompressed as soon as its own bytes are in, and a unit assembled from its spans and verified.
 */
import { DigestMismatchError } from '../../errors.js';
import { fetchRangeChannel, publish, verifyFailChannel } from '../events.js';
import type { AbortScope, Deferred } from '../../util/abort.js';
import { BadBytes, describeUnit, mergeSpans, spanKey, unitChunks, type Span, type Unit } from './fetch-plan.js';
import type { ChunkLayer, FetchFigures } from './chunk-layer.js';
import { sha256Hex } from '../../util/sha256.js';

/** A span to read, and the deferred its decompressed bytes settle (a first read's ends its single flight). */
export interface SpanFetch {
  readonly key: string;
  readonly span: Span;
  readonly d: Deferred<Uint8Array>;
}

/** What a span read needs of the fetcher that starts it. */
export interface SpanReadContext {
  /** Missing spans this far apart at most share a request; Infinity with `maxRequestBytes`: one request. */
  readonly gapBytes: number;
  readonly maxRequestBytes: number;
  /** The second attempt of units whose bytes were bad: a fresh read, past every cache. */
  readonly attempt: 1 | 2;
  /** A background read: it waits for its piece's turn in a layer's prioritised head (preread-source.ts). */
  readonly patient: boolean;
  /** Aborts the reads when the fetcher closes; each read gets a signal of its own (AbortScope). */
  readonly closing: AbortScope;
  /** Decompression-bomb guard, and the bytes the units need, of the span under `key`. */
  maxOut(key: string): number;
  need(key: string): number;
  count(what: keyof FetchFigures, n: number): void;
  /** A read goes to the source (the write-behind waits for a pause). */
  busy(): void;
}

/** Starts the merged range reads; each span's deferred settles with its decompressed bytes. */
export function readSpans(layer: ChunkLayer, toFetch: readonly SpanFetch[], ctx: SpanReadContext): void {
  if (toFetch.length === 0) return;
  const byStart = new Map(toFetch.map((f) => [`${f.span.start}-${f.span.end}`, f]));
  const requests = mergeSpans(toFetch.map((f) => f.span), ctx.gapBytes, ctx.maxRequestBytes);
  const settle = (f: SpanFetch, bytes: Uint8Array | undefined, err?: unknown): void => {
    if (bytes !== undefined) f.d.resolve(bytes);
    else f.d.reject(err);
  };
  for (const req of requests) {
    // Each member span decompresses as soon as its bytes are in, not when the whole request is: a read
    // that joined a large read-ahead or prefetch request waits for its own file, not for the tail.
    // Sorted by end, so the members under way are always members[0, next).
    const members = req.spans.map((s) => byStart.get(`${s.start}-${s.end}`)!).sort((a, b) => a.span.end - b.span.end);
    const inflating: Promise<void>[] = [];
    const inflate = (f: SpanFetch, bytes: Uint8Array): void => {
      const compressed = bytes.subarray(f.span.start - req.start, f.span.end - req.start);
      inflating.push(
        layer.codec.decompressSpan(compressed, ctx.maxOut(f.key), ctx.need(f.key)).then(
          (out) => settle(f, out),
          (err: unknown) => settle(f, undefined, new BadBytes(`blob bytes [${f.span.start}, ${f.span.end}) do not decompress`, { cause: err })),
        ),
      );
    };
    let next = 0;
    // Counted as the bytes come, so that a reader served from the head of a request sees it counted.
    let counted = -1;
    const count = (received: number): void => {
      if (counted < 0) ctx.count('requests', 1);
      if (received > counted) ctx.count('bytesFetched', received - Math.max(0, counted));
      counted = Math.max(counted, received);
    };
    const onData = (received: number, bytes: Uint8Array): void => {
      count(received);
      // A retried read starts again from 0 in a new buffer: the members under way keep the bytes they
      // had, which were whole.
      while (next < members.length && members[next]!.span.end - req.start <= received) inflate(members[next++]!, bytes);
    };
    void (async () => {
      let bytes: Uint8Array;
      const startedMs = performance.now();
      ctx.busy();
      try {
        const opts = ctx.attempt === 2 ? { fresh: true, onData } : { onData, ...(ctx.patient && { patient: true }) };
        bytes = await ctx.closing.run((signal) => layer.source.read({ start: req.start, end: req.end }, signal, opts));
      } catch (err) {
        for (const f of members.slice(next)) settle(f, undefined, err);
        return;
      }
      count(bytes.byteLength);
      publish(fetchRangeChannel, { layer: layer.digest, start: req.start, end: req.end, bytes: bytes.byteLength, spans: members.length, startedMs, ms: performance.now() - startedMs });
      if (bytes.byteLength !== req.end - req.start) {
        const err = new BadBytes(`source answered ${bytes.byteLength} bytes for [${req.start}, ${req.end})`);
        for (const f of members.slice(next)) settle(f, undefined, err);
        return;
      }
      for (const f of members.slice(next)) inflate(f, bytes);
      await Promise.all(inflating);
    })();
  }
}

/** The unit's verified bytes, or why not (and whether another fetch may help). */
export async function assembleUnit(
  layer: ChunkLayer,
  unit: Unit,
  spans: ReadonlyMap<string, Promise<Uint8Array>>,
): Promise<Uint8Array | { retry: boolean; error: unknown }> {
  const pieces: Uint8Array[] = [];
  for (const c of unitChunks(unit)) {
    if (c.zeros) {
      pieces.push(new Uint8Array(c.size));
      continue;
    }
    let span: Uint8Array;
    try {
      span = await spans.get(spanKey(layer.digest, { start: c.compressedOffset, end: c.compressedEnd }))!;
    } catch (err) {
      return { retry: err instanceof BadBytes, error: err };
    }
    if (c.innerOffset + c.size > span.byteLength) {
      const msg = `blob bytes [${c.compressedOffset}, ${c.compressedEnd}) decompress to ${span.byteLength} bytes, chunk needs ${c.innerOffset + c.size}`;
      return { retry: true, error: new BadBytes(msg) };
    }
    pieces.push(span.subarray(c.innerOffset, c.innerOffset + c.size));
  }
  const bytes = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, unit.size);
  const actual = `sha256:${await sha256Hex(bytes)}`;
  if (actual !== unit.key) return { retry: true, error: new DigestMismatchError(describeUnit(layer.digest, unit), unit.key, actual) };
  return bytes;
}

/** Every span the units need, by key, with how many of its decompressed bytes they use. */
export function spanNeeds(layerDigest: string, units: readonly Unit[]): Map<string, { span: Span; need: number }> {
  const needs = new Map<string, { span: Span; need: number }>();
  for (const unit of units) {
    for (const c of unitChunks(unit)) {
      if (c.zeros) continue;
      const span = { start: c.compressedOffset, end: c.compressedEnd };
      const key = spanKey(layerDigest, span);
      const n = needs.get(key);
      needs.set(key, { span, need: Math.max(n?.need ?? 0, c.innerOffset + c.size) });
    }
  }
  return needs;
}

/** A unit whose bytes did not verify, on `tocfs:verify:fail`. */
export function reportVerifyFailure(layerDigest: string, unit: Unit, error: unknown, attempt: 1 | 2): void {
  publish(verifyFailChannel, {
    layer: layerDigest,
    path: unit.entry.path,
    chunk: unit.first,
    fileOffset: unit.entry.chunks[unit.first]?.fileOffset ?? 0,
    expected: unit.key,
    ...(error instanceof DigestMismatchError ? { actual: error.actual } : { error }),
    attempt,
  });
}
