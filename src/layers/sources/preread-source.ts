/**
 * A range source that starts reading the head [0, end) of a blob before anyone asks for it: the
 * prioritised files of an optimized eStargz layer, whose end `tocfs convert` puts in an annotation
 * (formats/estargz/annotations.ts). The layer's prefetch can only plan its reads once the TOC is fetched
 * and decoded; with the hint the bytes are already on their way with the TOC (issue 8: on a 20 ms link
 * that wait was a third of an optimized start).
 *
 * The head is read in pieces, a few at a time, in blob order. A read inside pieces under way or done waits
 * for them instead of sending a request, and is told of their bytes as they arrive (`onData`: the fetcher
 * inflates and verifies a chunk once its span is in, not when the 2 MiB piece ends); a read of a piece not
 * started yet starts it, unless it is `patient` (a prefetch's guess), which waits for the piece's turn: a
 * guess must not split the link with the pieces the workload needs first. Bytes are handed out
 * unverified, like any source's: the fetcher checks every chunk digest, and its second attempt asks for
 * `fresh` bytes, which always come from the blob. A piece whose every byte was handed out is let go, as is
 * every piece once the layer's prefetch has run (`finish()`). A failed piece is no one's error: reads in it
 * go to the blob, unless it had given them all their bytes.
 */
import { abortable, deferred, type Deferred } from '../../util/abort.js';
import { DEFAULT_MAX_PREFETCH_BYTES, PREFETCH_PARALLEL, PREFETCH_PIECE_BYTES } from '../fetch/prefetch-region.js';
import type { OnRangeData } from '../../registry/blobs.js';
import type { ByteRange, RangeSource, RangeReadOptions } from './range-source.js';

export interface PrereadOptions {
  /** Bytes per request. Default: the layer prefetch's piece (2 MiB). */
  readonly pieceBytes?: number;
  /** Requests at a time. Default: the layer prefetch's (2). */
  readonly parallel?: number;
  /** Bytes read ahead at most, whatever the hint says. Default: the layer prefetch's region bound (64 MiB). */
  readonly maxBytes?: number;
  /**
   * Start no piece unasked until a read outside the pieces (the layer's TOC) has its first bytes or has
   * ended. The mount waits for the TOC before anything else; pieces sent with it share the link with it
   * from its first round trip, and it came ~75 ms later (issue 8, 100 Mbit/s 20 ms). Default false.
   */
  readonly afterFirstOtherRead?: boolean;
}

export interface PrereadSource extends RangeSource {
  /**
   * The layer's prefetch has run: no piece starts any more and every piece is let go, those under way once
   * they are in (a read waiting on one still gets it). Later reads go to the blob.
   */
  finish(): void;
  /** Stops everything, pieces under way included, and lets every piece go (the layer service closes). Idempotent. */
  dispose(): void;
}

interface Piece {
  readonly start: number;
  readonly end: number;
  bytes: Promise<Uint8Array> | undefined;
  /** The head of the piece as it arrives: `received` bytes are final in `partial` (OnRangeData). */
  received: number;
  partial: Uint8Array | undefined;
  /** Reads waiting in this piece that want its progress. */
  readonly watchers: Set<() => void>;
  handedOut: number;
  state: 'waiting' | 'reading' | 'done' | 'gone';
  /** Settles when the piece leaves 'waiting' (started, or let go unstarted): what a patient read waits for. */
  readonly left: Deferred<void>;
}

export function prereadSource(inner: RangeSource, end: number, opts: PrereadOptions = {}): PrereadSource {
  const pieceBytes = opts.pieceBytes ?? PREFETCH_PIECE_BYTES;
  const parallel = opts.parallel ?? PREFETCH_PARALLEL;
  const headEnd = Math.min(end, inner.size, opts.maxBytes ?? DEFAULT_MAX_PREFETCH_BYTES);
  const stop = new AbortController();
  const pieces: Piece[] = [];
  for (let start = 0; start < headEnd; start += pieceBytes) {
    pieces.push({ start, end: Math.min(headEnd, start + pieceBytes), bytes: undefined, received: 0, partial: undefined, watchers: new Set(), handedOut: 0, state: 'waiting', left: deferred() });
  }
  let running = 0;
  let finished = false;
  let held = opts.afterFirstOtherRead === true;

  const begin = (p: Piece): void => {
    if (p.state !== 'waiting') return;
    p.state = 'reading';
    p.left.resolve();
    running++;
    const onData = (received: number, partial: Uint8Array): void => {
      p.received = received;
      p.partial = partial;
      for (const watch of p.watchers) watch();
    };
    p.bytes = inner.read({ start: p.start, end: p.end }, stop.signal, { onData });
    p.bytes.then(
      () => {
        if (p.state !== 'reading') return;
        if (finished) letGo(p);
        else p.state = 'done';
      },
      () => letGo(p),
    );
    void p.bytes.catch(() => {}).finally(() => {
      running--;
      next();
    });
  };
  const next = (): void => {
    if (held) return;
    for (const p of pieces) {
      if (running >= parallel || finished || stop.signal.aborted) return;
      begin(p);
    }
  };
  const letGo = (p: Piece): void => {
    p.state = 'gone';
    p.left.resolve();
    p.bytes = undefined;
    p.partial = undefined;
  };

  const release = (): void => {
    if (!held) return;
    held = false;
    next();
  };
  /** A read that goes to the blob, releasing the held pieces once it is answered. */
  const other = (range: ByteRange, signal: AbortSignal | undefined, readOpts: RangeReadOptions | undefined): Promise<Uint8Array> => {
    if (!held) return inner.read(range, signal, readOpts);
    const onData: OnRangeData = (received, bytes) => {
      release();
      readOpts?.onData?.(received, bytes);
    };
    return inner.read(range, signal, { ...readOpts, onData }).finally(release);
  };

  next();

  return {
    id: inner.id,
    size: inner.size,
    async read(range: ByteRange, signal?: AbortSignal, readOpts?: RangeReadOptions): Promise<Uint8Array> {
      const mine = readOpts?.fresh || range.end > headEnd ? [] : pieces.filter((p) => p.start < range.end && p.end > range.start);
      if (mine.length === 0 || mine.some((p) => p.state === 'gone')) return other(range, signal, readOpts);
      if (readOpts?.patient) {
        await abortable(Promise.all(mine.map((p) => p.left.promise)), signal, 'read ahead of the TOC');
        if (mine.some((p) => p.state === 'gone')) return other(range, signal, readOpts);
      }
      for (const p of mine) begin(p);
      const watching = readOpts?.onData ? watch(mine, range, readOpts.onData) : undefined;
      let parts: Uint8Array[];
      try {
        parts = await abortable(Promise.all(mine.map((p) => p.bytes!)), signal, 'read ahead of the TOC');
      } catch (err) {
        if (signal?.aborted) throw err;
        const whole = watching?.whole();
        if (whole) return whole; // every byte was in before the piece failed
        // A piece failed: the blob, as if it had never been read ahead. What was reported stays true
        // (OnRangeData: a retried read starts again from 0 in a new buffer).
        return inner.read(range, signal, readOpts);
      } finally {
        watching?.stop();
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
    finish() {
      finished = true;
      for (const p of pieces) if (p.state !== 'reading') letGo(p);
    },
    dispose() {
      finished = true;
      stop.abort();
      for (const p of pieces) letGo(p);
    },
  };
}

/**
 * Reports the head of `range` to `onData` as the pieces under it arrive: the bytes up to the first piece
 * still short of its part of the range. One piece lends a view of its own buffer; a range over several is
 * gathered into one buffer as they come. `whole()` is the range once every byte of it was reported.
 */
function watch(mine: readonly Piece[], range: ByteRange, onData: OnRangeData): { stop(): void; whole(): Uint8Array | undefined } {
  const single = mine.length === 1;
  const out = single ? undefined : new Uint8Array(range.end - range.start);
  // How far each piece's part was copied into `out`, and from which buffer (a retried piece has a new one).
  const copied = mine.map(() => ({ upTo: 0, from: undefined as Uint8Array | undefined }));
  let reported = 0;
  let lastView: Uint8Array | undefined;
  const want = range.end - range.start;
  const update = (): void => {
    let head = 0;
    let view: Uint8Array | undefined;
    for (let k = 0; k < mine.length; k++) {
      const p = mine[k]!;
      const from = Math.max(range.start, p.start);
      const to = Math.min(range.end, p.end);
      const have = p.partial === undefined ? from : Math.min(to, p.start + p.received);
      if (have <= from) break;
      if (single) {
        view = p.partial!.subarray(range.start - p.start, range.end - p.start);
      } else {
        const c = copied[k]!;
        if (c.from !== p.partial) c.upTo = from;
        c.from = p.partial;
        if (have > c.upTo) out!.set(p.partial!.subarray(c.upTo - p.start, have - p.start), c.upTo - range.start);
        c.upTo = Math.max(c.upTo, have);
      }
      head = have - range.start;
      if (have < to) break;
    }
    if (head <= reported) return;
    reported = head;
    lastView = single ? view! : out!;
    // Every byte told: nothing more to hear. A piece's bytes arrive in ~64 KiB events, and a 2 MiB piece
    // has a reader for each chunk in it; kept, each would be called on every event (a prefetch profile:
    // 48 ms of the JS thread in this function alone).
    if (reported === want) stop();
    onData(head, lastView);
  };
  const stop = (): void => {
    for (const p of mine) p.watchers.delete(update);
  };
  for (const p of mine) p.watchers.add(update);
  update();
  return { stop, whole: () => (reported === want ? lastView : undefined) };
}
