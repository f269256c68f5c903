/**
 * Small background fetches gathered for a moment, then sent together: a prefetch asks for a module's
 * imports or a program's libraries one file at a time, and spans near each other in the blob then share
 * requests (and connections) instead of each opening its own.
 */

/** How long background fetches wait for others to share their requests. */
export const GATHER_MS = 2;
/** Gathered fetches share a request across a hole this small at most: they are guesses, so are its bytes. */
export const GATHER_GAP_BYTES = 4 << 10;
/** Larger units are not gathered: a stream of one library must not hold up the small files behind it. */
export const GATHER_MAX_UNIT_BYTES = 256 << 10;

/** Items added under one key within `ms` of the first go to `send` together, once. */
export class Gatherer<K, T> {
  readonly #send: (key: K, items: T[]) => Promise<void>;
  readonly #ms: number;
  readonly #batches = new Map<K, { readonly items: T[]; readonly done: Promise<void> }>();

  constructor(send: (key: K, items: T[]) => Promise<void>, ms = GATHER_MS) {
    this.#send = send;
    this.#ms = ms;
  }

  /** Resolves once the batch `items` joined has been sent and settled. */
  add(key: K, items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    let batch = this.#batches.get(key);
    if (batch === undefined) {
      const gathered: T[] = [];
      const done = new Promise<void>((resolve) => setTimeout(resolve, this.#ms)).then(() => {
        this.#batches.delete(key);
        return this.#send(key, gathered);
      });
      batch = { items: gathered, done };
      this.#batches.set(key, batch);
    }
    batch.items.push(...items);
    return batch.done;
  }
}
