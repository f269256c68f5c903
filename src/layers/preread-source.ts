/**
 * A range source that starts reading the head [0, end) of a blob before anyone asks for it: the
 * prioritised files of an optimized eStargz layer, whose end `tocfs convert` puts in an annotation
 * (formats/estargz/annotations.ts). The layer's prefetch can only plan its reads once the TOC is fetched
 * and decoded; with the hint the bytes are already on their way with the TOC (issue 8: on a 20 ms link
 * that wait was a third of an optimized start).
 *
 * The head is read in pieces, a few at a time, in blob order. A read inside pieces under way or done waits
 * for them instead of sending a request; a read of a piece not started yet starts it. Bytes are handed
 * out unverified, like any source's: the fetcher checks every chunk digest, and its second attempt asks
 * for `fresh` bytes, which always come from the blob. A piece whose every byte was handed out is let go,
 * as is everything on `dispose()` (the prefetch has run). A failed piece is no one's error: reads in it go
 * to the blob.
 */
import { abortable } from './deferred.js';
import { DEFAULT_MAX_PREFETCH_BYTES, PREFETCH_PARALLEL, PREFETCH_PIECE_BYTES } from './layer.js';
import type { ByteRange, RangeSource, RangeReadOptions } from './range-source.js';

export interface PrereadOptions {
  /** Bytes per request. Default: the layer prefetch's piece (2 MiB). */
  readonly pieceBytes?: number;
  /** Requests at a time. Default: the layer prefetch's (2). */
  readonly parallel?: number;
  /** Bytes read ahead at most, whatever the hint says. Default: the layer prefetch's region bound (64 MiB). */
  readonly maxBytes?: number;
}

export interface PrereadSource extends RangeSource {
  /** Stops what is not fetched yet and lets every piece go; later reads go to the blob. Idempotent. */
  dispose(): void;
}

interface Piece {
  readonly start: number;
  readonly end: number;
  bytes: Promise<Uint8Array> | undefined;
  handedOut: number;
  state: 'waiting' | 'reading' | 'done' | 'gone';
}

export function prereadSource(inner: RangeSource, end: number, opts: PrereadOptions = {}): PrereadSource {
  const pieceBytes = opts.pieceBytes ?? PREFETCH_PIECE_BYTES;
  const parallel = opts.parallel ?? PREFETCH_PARALLEL;
  const headEnd = Math.min(end, inner.size, opts.maxBytes ?? DEFAULT_MAX_PREFETCH_BYTES);
  const stop = new AbortController();
  const pieces: Piece[] = [];
  for (let start = 0; start < headEnd; start += pieceBytes) {
    pieces.push({ start, end: Math.min(headEnd, start + pieceBytes), bytes: undefined, handedOut: 0, state: 'waiting' });
  }
  let running = 0;

  const begin = (p: Piece): void => {
    if (p.state !== 'waiting') return;
    p.state = 'reading';
    running++;
    p.bytes = inner.read({ start: p.start, end: p.end }, stop.signal);
    p.bytes.then(
      () => {
        if (p.state === 'reading') p.state = 'done';
      },
      () => {
        p.state = 'gone';
        p.bytes = undefined;
      },
    );
    void p.bytes.catch(() => {}).finally(() => {
      running--;
      next();
    });
  };
  const next = (): void => {
    for (const p of pieces) {
      if (running >= parallel || stop.signal.aborted) return;
      begin(p);
    }
  };
  const letGo = (p: Piece): void => {
    p.state = 'gone';
    p.bytes = undefined;
  };

  next();

  return {
    id: inner.id,
    size: inner.size,
    async read(range: ByteRange, signal?: AbortSignal, readOpts?: RangeReadOptions): Promise<Uint8Array> {
      const mine = readOpts?.fresh || range.end > headEnd ? [] : pieces.filter((p) => p.start < range.end && p.end > range.start);
      if (mine.length === 0 || mine.some((p) => p.state === 'gone')) return inner.read(range, signal, readOpts);
      for (const p of mine) begin(p);
      let parts: Uint8Array[];
      try {
        parts = await abortable(Promise.all(mine.map((p) => p.bytes!)), signal, 'read ahead of the TOC');
      } catch (err) {
        if (signal?.aborted) throw err;
        return inner.read(range, signal, readOpts); // a piece failed: the blob, as if it had never been read ahead
      }
      const out = mine.length === 1 ? undefined : new Uint8Array(range.end - range.start);
      let view: Uint8Array | undefined;
      mine.forEach((p, k) => {
        const from = Math.max(range.start, p.start);
        const to = Math.min(range.end, p.end);
        const part = parts[k]!.subarray(from - p.start, to - p.start);
        if (out) out.set(part, from - range.start);
        else view = part;
        p.handedOut += to - from;
        if (p.handedOut >= p.end - p.start) letGo(p);
      });
      return out ?? view!;
    },
    dispose() {
      stop.abort();
      for (const p of pieces) letGo(p);
    },
  };
}
