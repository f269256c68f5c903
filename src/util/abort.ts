/** Promise plumbing: deferreds for single-flight (single-flight.ts), and waits a caller may abort. */
import { TocfsError } from '../errors.js';

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => {}); // a waiter that gave up (aborted) must not make the rejection unhandled
  return { promise, resolve, reject };
}

/**
 * `promise`, unless `signal` aborts first: then an ABORTED error saying `what` was aborted or, without
 * `what`, the signal's own reason (the registry client's callers see the reason they aborted with). The
 * work behind `promise` goes on, for it is shared: one caller giving up must not fail the others waiting
 * on the same flight. The listener is removed when `promise` settles, so a long-lived signal does not
 * gather one per call.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, what?: string): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(what === undefined ? (signal.reason as Error) : abortError(what, signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    // Removed before the caller resumes: a caller looping on one signal never holds two listeners.
    const settle = <A>(then: (a: A) => void) => (a: A): void => {
      signal.removeEventListener('abort', onAbort);
      then(a);
    };
    promise.then(settle(resolve), settle(reject));
  });
}

/**
 * The reason a deadline's signal aborts with: the wait is over, which is no caller's abort (EIO, not
 * EINTR). The registry client's time budget and the FUSE read deadline both use it (--fetch-timeout).
 */
export class DeadlinePassed extends TocfsError {
  override name = 'DeadlinePassed';
  constructor(
    readonly ms: number,
    what = 'no answer',
  ) {
    super('TIMEOUT', `${what} within ${ms / 1000} s (--fetch-timeout)`);
  }
}

/** What a wait ended by `signal` throws: TIMEOUT when a deadline passed, else ABORTED. */
export function abortError(what: string, signal: AbortSignal): TocfsError {
  const reason: unknown = signal.reason;
  if (reason instanceof TocfsError && reason.code === 'TIMEOUT') return new TocfsError('TIMEOUT', `${what}: ${reason.message}`, { cause: reason });
  return new TocfsError('ABORTED', `${what} aborted`, { cause: reason });
}

/**
 * A signal that aborts when `signal` does or, with a DeadlinePassed reason, after `ms`; `done()` clears
 * the timer and the listener. Infinity: `signal` itself.
 */
export function deadline(ms: number, signal?: AbortSignal, what?: string): { signal: AbortSignal | undefined; done(): void } {
  if (!Number.isFinite(ms)) return { signal, done() {} };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DeadlinePassed(ms, what)), ms);
  const forward = (): void => ac.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener('abort', forward, { once: true });
  return {
    signal: ac.signal,
    done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forward);
    },
  };
}

/**
 * Aborts at once every operation run under it, without hanging a listener per operation on one long-lived
 * signal: undici adds an 'abort' listener to the signal of each request in flight, so one signal shared by
 * a fetcher's concurrent range reads went past Node's limit of 10 (MaxListenersExceededWarning) on any
 * busy image. Each operation gets a controller of its own instead, forgotten when it ends.
 */
export class AbortScope {
  readonly #live = new Set<AbortController>();
  #aborted: { reason: unknown } | undefined;

  /** Runs `op` with a signal of its own, which abort() aborts (at once if it already has). */
  async run<T>(op: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    if (this.#aborted) ac.abort(this.#aborted.reason);
    this.#live.add(ac);
    try {
      return await op(ac.signal);
    } finally {
      this.#live.delete(ac);
    }
  }

  abort(reason: unknown): void {
    this.#aborted ??= { reason };
    for (const ac of this.#live) ac.abort(reason);
  }
}
