/**
 * Verified uncompressed chunks in memory (DESIGN.md §2, source 2): an LRU bounded by bytes. A chunk
 * larger than the whole budget is simply not kept.
 */
import { LRUCache } from 'lru-cache';
import { InvalidOptionError } from '../../errors.js';
import {
  checkChunkSize,
  digestHex,
  sizeMismatch,
  type ChunkStore,
  type ChunkStoreStats,
  type ChunkWriter,
} from './chunk-store.js';

export interface MemoryStoreOptions {
  /** Budget in bytes of chunk data (> 0). */
  readonly maxBytes: number;
}

export class MemoryChunkStore implements ChunkStore {
  #lru: LRUCache<string, Uint8Array>;
  #maxBytes: number;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(opts: MemoryStoreOptions) {
    if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes <= 0) {
      throw new InvalidOptionError('memoryCacheBytes', 'must be a positive integer');
    }
    this.#maxBytes = opts.maxBytes;
    this.#lru = new LRUCache<string, Uint8Array>({
      maxSize: opts.maxBytes,
      // lru-cache needs a positive size; an empty chunk still costs its key.
      sizeCalculation: (bytes) => Math.max(1, bytes.byteLength),
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.#evictions++;
      },
    });
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    const bytes = this.#lru.get(digest);
    if (bytes === undefined) this.#misses++;
    else this.#hits++;
    return bytes;
  }

  async has(digest: string): Promise<boolean> {
    return this.#lru.has(digest);
  }

  begin(digest: string, size: number): ChunkWriter {
    digestHex(digest);
    checkChunkSize(digest, size);
    let parts: Uint8Array[] | undefined = [];
    let written = 0;
    const lru = this.#lru;
    return {
      async write(bytes, opts) {
        if (parts === undefined) throw new Error(`memory store: ${digest}: write after commit or abort`);
        // A copy unless the caller vouches for the bytes: it may reuse its buffer, and a cached chunk must
        // never change. A small view of a large buffer is copied too, or it would hold the whole buffer
        // while the LRU counts only the view.
        parts.push(opts?.immutable && !holdsMuchMore(bytes) ? bytes : Uint8Array.prototype.slice.call(bytes));
        written += bytes.byteLength;
      },
      async commit() {
        if (parts === undefined) throw new Error(`memory store: ${digest}: commit after commit or abort`);
        const chunks = parts;
        parts = undefined;
        if (written !== size) throw sizeMismatch(digest, size, written);
        lru.set(digest, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      },
      async abort() {
        parts = undefined;
      },
    };
  }

  async delete(digest: string): Promise<void> {
    this.#lru.delete(digest);
  }

  stats(): ChunkStoreStats {
    return {
      entries: this.#lru.size,
      bytes: this.#lru.calculatedSize,
      maxBytes: this.#maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      corrupt: 0,
    };
  }

  async close(): Promise<void> {
    this.#lru.clear();
  }
}

/** Whether keeping `bytes` would keep alive a buffer much larger than itself. */
function holdsMuchMore(bytes: Uint8Array): boolean {
  return bytes.buffer.byteLength - bytes.byteLength > Math.max(8 << 10, bytes.byteLength >> 4);
}
