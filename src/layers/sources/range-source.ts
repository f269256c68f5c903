/**
 * Where a layer's compressed bytes come from. A source returns exactly the bytes asked for, or throws; it
 * knows nothing about caches, decoding or verification (STYLE.md item 9): the fetcher owns all of that.
 */
import { FormatError } from '../../errors.js';
import type { RegistryClient } from '../../registry/client.js';
import type { OnRangeData } from '../../registry/blobs.js';
import type { ByteRange, Descriptor, RepositoryRef } from '../../registry/types.js';

export type { ByteRange } from '../../registry/types.js';

export interface RangeSource {
  /** The blob's digest (`sha256:…`): what caches and events name the source by. */
  readonly id: string;
  /** The blob's size in bytes. */
  readonly size: number;
  /** Bytes [start, end) of the blob: exactly end - start of them, unverified. */
  read(range: ByteRange, signal?: AbortSignal, opts?: RangeReadOptions): Promise<Uint8Array>;
}

export interface RangeReadOptions {
  /** Called as the bytes arrive (registry/blobs.ts `OnRangeData`); a source may also call it only at the end. */
  readonly onData?: OnRangeData;
  /**
   * Bytes from the blob itself, never from a buffer in front of it (preread-source.ts): the fetcher's
   * second attempt after bytes failed their digest.
   */
  readonly fresh?: boolean;
  /**
   * A guess (a prefetch): bytes a source is already reading ahead in order are waited for in their turn,
   * not fetched out of it (preread-source.ts).
   */
  readonly patient?: boolean;
}

/** Throws unless [start, end) is a non-empty range inside a blob of `size` bytes. */
export function checkRange(id: string, size: number, range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start || end > size) {
    throw new FormatError(`blob ${id}: range [${start}, ${end}) is not inside its ${size} bytes`);
  }
}

/** A layer blob in a registry, read by range through the one registry client. */
export function registryBlobSource(
  client: Pick<RegistryClient, 'readRange'>,
  repo: RepositoryRef,
  descriptor: Descriptor,
): RangeSource {
  const { digest, size } = descriptor;
  return {
    id: digest,
    size,
    async read(range, signal, opts) {
      checkRange(digest, size, range);
      return client.readRange(repo, descriptor, range, { ...(signal ? { signal } : {}), ...(opts?.onData ? { onData: opts.onData } : {}) });
    },
  };
}
