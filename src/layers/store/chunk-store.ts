/**
 * The chunk store contract (STYLE.md item 11): a content-addressed, transactional map from a chunk's
 * `sha256:…` digest to its uncompressed bytes. The memory LRU and the disk cache implement it and are
 * tested by one suite (test/support/store-suite.ts).
 *
 * Stores trust their caller for content: the fetcher verifies bytes before `begin()`, so a store does not
 * hash on commit. The disk store hashes on load instead, because a disk can rot between restarts.
 */
import { FormatError, TocfsError } from '../../errors.js';
import { sha256DigestHex } from '../../util/sha256-digest.js';

export interface ChunkWriter {
  /**
   * Appends bytes; the writer copies or persists them before the promise settles. With `immutable` the
   * caller promises never to change them (bytes it just made and verified): a store may keep them as they
   * are instead of a copy.
   */
  write(bytes: Uint8Array, opts?: { readonly immutable?: boolean }): Promise<void>;
  /**
   * Publishes the chunk atomically: before commit settles, `get` misses; after, it hits. Rejects with
   * BAD_DATA (and publishes nothing) when the bytes written are not the size announced to `begin`.
   */
  commit(): Promise<void>;
  /** Discards what was written. Idempotent; a no-op after commit. */
  abort(): Promise<void>;
}

export interface ChunkStoreStats {
  /** Chunks held and their bytes. */
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  /** Files found corrupt on load and deleted (disk only). */
  readonly corrupt: number;
}

export interface ChunkStore {
  /** The verified bytes stored under `digest`, or undefined. Callers must not mutate the result. */
  get(digest: string): Promise<Uint8Array | undefined>;
  has(digest: string): Promise<boolean>;
  /** Starts a transaction that stores `size` bytes under `digest`. */
  begin(digest: string, size: number): ChunkWriter;
  delete(digest: string): Promise<void>;
  stats(): ChunkStoreStats;
  /** Waits for writes under way; keeps every committed chunk (a restart reuses them). Idempotent. */
  close(): Promise<void>;
}

/** The hex part of a `sha256:…` digest; throws FORMAT for anything else (it becomes a file name). */
export function digestHex(digest: string): string {
  const hex = sha256DigestHex(digest);
  if (hex === undefined) throw new FormatError(`chunk store: ${JSON.stringify(digest)} is not a sha256 digest`);
  return hex;
}

export function checkChunkSize(digest: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(`chunk store: ${digest}: invalid size ${size}`);
}

export function sizeMismatch(digest: string, expected: number, written: number): TocfsError {
  return new TocfsError('BAD_DATA', `chunk store: ${digest}: ${written} bytes written, ${expected} announced`);
}
