/**
 * Single-flight (STYLE.md item 10): callers asking for a key while its flight is under way share it, and a
 * settled flight is always forgotten, so a failure is never memoised and the next caller starts afresh.
 * Callers that keep results (an opened layer, a failure remembered for a while) do so on top of this.
 */
import { deferred, type Deferred } from './abort.js';

export class SingleFlight<T> {
  readonly #flights = new Map<string, Promise<T>>();

  /** The flight under way for `key`, to join. */
  get(key: string): Promise<T> | undefined {
    return this.#flights.get(key);
  }

  has(key: string): boolean {
    return this.#flights.has(key);
  }

  get size(): number {
    return this.#flights.size;
  }

  /** The flights under way (to wait for them all on close). */
  values(): IterableIterator<Promise<T>> {
    return this.#flights.values();
  }

  /** Joins the flight under way for `key`, or starts one with `start`. */
  run(key: string, start: () => Promise<T>): Promise<T> {
    const flying = this.#flights.get(key);
    if (flying) return flying;
    const d = this.begin(key);
    let started: Promise<T>;
    try {
      started = start();
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(d.resolve, d.reject);
    return d.promise;
  }

  /**
   * Starts a flight for `key` that the caller settles itself, for work that settles many keys at once
   * (one range read serving many chunks). The key is forgotten before the flight settles, so a caller
   * that sees the result never finds the settled flight still registered. Settling twice is a no-op.
   */
  begin(key: string): Deferred<T> {
    const d = deferred<T>();
    this.#flights.set(key, d.promise);
    const forget = (): void => {
      if (this.#flights.get(key) === d.promise) this.#flights.delete(key);
    };
    return {
      promise: d.promise,
      resolve: (value) => {
        forget();
        d.resolve(value);
      },
      reject: (err) => {
        forget();
        d.reject(err);
      },
    };
  }
}
