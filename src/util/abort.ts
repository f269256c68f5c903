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
    const onAbort = (): void =>
      reject(what === undefined ? (signal.reason as Error) : new TocfsError('ABORTED', `${what} aborted`, { cause: signal.reason }));
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
