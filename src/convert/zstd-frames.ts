/**
 * The byte sink of the zstd:chunked writer: counts and hashes what it writes (blob offset, size and
 * digest) and honours the stream's backpressure, so memory stays at one frame in flight.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

export class FrameSink {
  readonly #sink: Writable;
  readonly #hash = createHash('sha256');
  #offset = 0;
  #failure: Error | undefined;

  constructor(sink: Writable) {
    this.#sink = sink;
    sink.on('error', (err: Error) => (this.#failure ??= err));
  }

  /** Bytes written so far: the blob offset of the next frame. */
  get offset(): number {
    return this.#offset;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (bytes.length === 0) return;
    this.#hash.update(bytes);
    this.#offset += bytes.length;
    if (!this.#sink.write(bytes)) {
      // Whichever of the two comes first, the other's listeners go: a wait left behind on every full
      // buffer piled up listeners on the stream (MaxListenersExceededWarning in `convert`).
      const waited = new AbortController();
      const { signal } = waited;
      try {
        await Promise.race([once(this.#sink, 'drain', { signal }), once(this.#sink, 'close', { signal })]);
      } finally {
        waited.abort();
      }
      if (this.#failure) throw this.#failure;
    }
  }

  async finish(): Promise<{ size: number; digest: string }> {
    if (this.#failure) throw this.#failure;
    this.#sink.end();
    await finished(this.#sink);
    return { size: this.#offset, digest: `sha256:${this.#hash.digest('hex')}` };
  }
}
