/**
 * Random access into plain gzip layers (zran, DESIGN.md §3.3-3.4), through the N-API addon in native/
 * (native/build/Release/tocfs_zran.node, built by `npm run build`).
 *
 * - `ZranIndexer` inflates a gzip blob pushed chunk by chunk (a layer as it downloads, §2 step 5) and hands
 *   back its uncompressed bytes and the checkpoints it took: one right after the first gzip header (out 0),
 *   then one at the first deflate block boundary past every `spanSize` uncompressed bytes. Concatenated
 *   gzip members are read through, totals running on.
 * - `extract` resumes at a checkpoint: it primes the `bits` unused bits of the byte before `in`
 *   (inflatePrime), sets the window as dictionary and inflates the span's bytes, skipping and taking.
 *
 * Both run in libuv's thread pool, never on the JS thread. The addon calls inflatePrime; Node's zlib has
 * none. Without it, shifting the span's bits into byte alignment is wrong (a stored block pads to the
 * original byte boundary); zran.c's preface of empty deflate blocks is right, but inflateRaw with it was
 * 1.1x (sync, on the JS thread) to 1.7x (async) slower on a 4 MiB span and cannot stop early, while the
 * addon stops once `length` bytes are out (bench/zran.ts, bench/RESULTS.md). So only the addon is here.
 *
 * The addon is found from the package root (the directory of tocfs's package.json above this module), so
 * the same code loads it from src/ under tsx and from the bundle in dist/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError } from '../../errors.js';

/** Bytes in a checkpoint's window: deflate's largest distance. */
export const ZRAN_WINDOW_SIZE = 32768;

/** Where a span starts: one zran checkpoint (a SOCI zTOC's checkpoint has the same fields). */
export interface ZranCheckpoint {
  /** Compressed offset in the blob of the first byte wholly inside the span. */
  readonly in: number;
  /** Uncompressed offset in the blob's (all members') output where the span starts. */
  readonly out: number;
  /** 0..7: how many high bits of the byte at `in - 1` belong to the span (its first deflate block). */
  readonly bits: number;
  /** The ZRAN_WINDOW_SIZE uncompressed bytes before `out`, zero-padded when `out` is smaller. */
  readonly window: Uint8Array;
}

export interface ZranPushResult {
  /** The uncompressed bytes this chunk completed, in order. */
  readonly out: Buffer[];
  /** The checkpoints reached in this chunk, in order. */
  readonly checkpoints: ZranCheckpoint[];
}

export interface ZranTotals {
  /** Compressed bytes read. */
  readonly totalIn: number;
  /** Uncompressed bytes produced. */
  readonly totalOut: number;
  /** Gzip members begun. */
  readonly members: number;
  /** Checkpoints taken. */
  readonly checkpoints: number;
}

interface NativeIndexer extends ZranTotals {
  push(chunk: Uint8Array): Promise<ZranPushResult>;
  end(): ZranTotals;
}

interface NativeZran {
  readonly ZranIndexer: new (spanSize: number) => NativeIndexer;
  extract(compressed: Uint8Array, bits: number, window: Uint8Array, skip: number, length: number): Promise<Buffer>;
  readonly WINDOW_SIZE: number;
  readonly zlibVersion: string;
}

const ADDON = join('native', 'build', 'Release', 'tocfs_zran.node');
/** Node 20's buffer.constants.MAX_LENGTH: the longest extraction asked in one call. */
const MAX_LENGTH = 2 ** 32;

let loaded: NativeZran | undefined;

/** The directory of tocfs's package.json: the first one above this module whose name is "tocfs". */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'tocfs') {
      return dir;
    }
    if (dirname(dir) === dir) throw new Error(`tocfs's package.json not found above ${start}`);
  }
}

/** Loads the addon once (synchronously: a few small reads on first use). */
export function zranAddon(): NativeZran {
  if (loaded) return loaded;
  const root = packageRoot();
  const file = join(root, ADDON);
  try {
    loaded = createRequire(join(root, 'package.json'))(file) as NativeZran;
  } catch (err) {
    throw new Error(`tocfs's zran addon ${file} does not load (build it with npm run build): ${(err as Error).message}`, {
      cause: err,
    });
  }
  return loaded;
}

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/** A rejection of the addon is about the bytes: corrupt or truncated gzip data. */
function dataError(err: unknown): FormatError {
  const message = err instanceof Error ? err.message : String(err);
  return new FormatError(message, { cause: err });
}

/** Builds zran checkpoints while inflating a gzip blob; one push at a time, then end(). */
export class ZranIndexer {
  readonly #native: NativeIndexer;
  #pending = false;
  #ended = false;

  constructor(readonly spanSize: number) {
    if (!Number.isSafeInteger(spanSize) || spanSize <= 0) throw new RangeError(`zran span size ${spanSize} must be a positive integer`);
    this.#native = new (zranAddon().ZranIndexer)(spanSize);
  }

  /** Inflates the next compressed chunk (copied: the caller may reuse it at once). Rejects with a FormatError
   *  on bad gzip data, after which every call fails. */
  async push(chunk: Uint8Array): Promise<ZranPushResult> {
    if (this.#pending) throw new Error('ZranIndexer.push: the previous push has not settled');
    if (this.#ended) throw new Error('ZranIndexer.push: the indexer has ended');
    if (!(chunk instanceof Uint8Array)) throw new TypeError('ZranIndexer.push: chunk must be a Uint8Array');
    this.#pending = true;
    try {
      return await this.#native.push(chunk);
    } catch (err) {
      throw dataError(err);
    } finally {
      this.#pending = false;
    }
  }

  /** Declares the blob complete: throws a FormatError when it ended inside a gzip member (truncated). */
  end(): ZranTotals {
    if (this.#pending) throw new Error('ZranIndexer.end: a push has not settled');
    try {
      const totals = this.#native.end();
      this.#ended = true;
      return totals;
    } catch (err) {
      throw dataError(err);
    }
  }

  get totalIn(): number {
    return this.#native.totalIn;
  }

  get totalOut(): number {
    return this.#native.totalOut;
  }

  get members(): number {
    return this.#native.members;
  }

  get checkpoints(): number {
    return this.#native.checkpoints;
  }
}

/**
 * Inflates from a checkpoint: `compressed` starts at `checkpoint.in - (checkpoint.bits ? 1 : 0)` and holds the
 * span's bytes (to the next checkpoint's `in`, or the blob's end). Resolves to exactly `length` bytes of the
 * uncompressed stream after skipping `skip` from the checkpoint's `out`, or to fewer only when the given bytes
 * end first at a clean end (a deflate block boundary: the span's end; or the end of a gzip member). Rejects
 * with a FormatError on corrupt data or bytes that end inside a block, header or trailer; with a RangeError
 * on bad arguments (a window that is not ZRAN_WINDOW_SIZE bytes, bits outside 0..7).
 */
export async function extract(
  compressed: Uint8Array,
  checkpoint: Pick<ZranCheckpoint, 'bits' | 'window'>,
  skip: number,
  length: number,
): Promise<Buffer> {
  const { bits, window } = checkpoint;
  if (!(compressed instanceof Uint8Array) || !(window instanceof Uint8Array)) throw new TypeError('zran extract: compressed and window must be Uint8Arrays');
  if (!Number.isInteger(bits) || bits < 0 || bits > 7) throw new RangeError(`zran checkpoint bits ${bits} must be 0..7`);
  if (window.length !== ZRAN_WINDOW_SIZE) throw new RangeError(`zran window has ${window.length} bytes, not ${ZRAN_WINDOW_SIZE}`);
  if (!isCount(skip) || !isCount(length) || length > MAX_LENGTH) {
    throw new RangeError(`zran skip ${skip} and length ${length} must be non-negative integers (length at most 2^32)`);
  }
  if (bits !== 0 && compressed.length === 0) throw new RangeError('zran checkpoint with bits needs the byte before in');
  const addon = zranAddon();
  try {
    return await addon.extract(compressed, bits, window, skip, length);
  } catch (err) {
    throw dataError(err);
  }
}
