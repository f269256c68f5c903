/**
 * Content-defined cut points for file data (a gear rolling hash, as FastCDC uses): a chunk ends where
 * the hash of the last bytes matches a mask, but never before `min` bytes nor after `max`. Cuts follow
 * the content, so an edit early in a file moves only the chunks around it, and identical runs in two
 * images become identical chunks (same digest, one cache entry). containers/storage cuts zstd:chunked
 * files the same way (a rolling checksum); the exact hash does not matter to readers.
 */
export interface ChunkerOptions {
  /** Smallest chunk (except a file's last). */
  readonly min: number;
  /** Largest chunk. */
  readonly max: number;
  /** Expected chunk size past `min`, a power of two. */
  readonly average: number;
}

const GEAR = new Uint32Array(256);
{
  let x = 0x9e3779b9; // xorshift32: a fixed table, so cut points are the same on every machine
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    GEAR[i] = x >>> 0;
  }
}

export class ContentChunker {
  readonly #min: number;
  readonly #max: number;
  readonly #mask: number;
  #hash = 0;
  #length = 0;

  constructor(opts: ChunkerOptions) {
    if (!(opts.min >= 1 && opts.max >= opts.min)) throw new RangeError(`chunker: bad bounds ${opts.min}..${opts.max}`);
    this.#min = opts.min;
    this.#max = opts.max;
    // The top bits of a gear hash mix best: test those.
    const bits = Math.max(1, Math.min(31, Math.round(Math.log2(opts.average))));
    this.#mask = ((0xffffffff << (32 - bits)) >>> 0) | 0;
  }

  /** Resets for a new file. */
  reset(): void {
    this.#hash = 0;
    this.#length = 0;
  }

  /**
   * How many bytes of `bytes` belong to the current chunk before it is cut: `bytes.length` + 1 is never
   * returned; a value v <= bytes.length with `cut` true means the chunk ends after v bytes.
   */
  scan(bytes: Uint8Array): { take: number; cut: boolean } {
    let h = this.#hash;
    let len = this.#length;
    const max = this.#max;
    const min = this.#min;
    const mask = this.#mask;
    let i = 0;
    // A gear hash with a one-bit shift depends on the last 32 bytes only, so bytes more than 32 before
    // the minimum cannot decide a cut: skip them (FastCDC's "cut-point skipping").
    if (len < min - 32) {
      i = Math.min(bytes.length, min - 32 - len);
      len += i;
    }
    for (; i < bytes.length; i++) {
      h = ((h << 1) + GEAR[bytes[i]!]!) | 0;
      len++;
      if (len >= max || (len >= min && (h & mask) === 0)) {
        this.#hash = 0;
        this.#length = 0;
        return { take: i + 1, cut: true };
      }
    }
    this.#hash = h;
    this.#length = len;
    return { take: bytes.length, cut: false };
  }
}
