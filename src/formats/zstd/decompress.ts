/**
 * Bounded zstd decompression of one span (one or more frames, skippable frames skipped) with zstd-napi's
 * streaming binding. The output bound makes a hostile span unable to allocate more than the caller
 * allows (decompression-bomb guard); reaching it is not an error but a prefix, like the gzip path, since
 * an eStargz-zstd span may hold the next entries' tar headers after its chunk.
 * Synchronous and pure: src/layers moves large spans to worker threads (zstd-offload.ts).
 */
import binding from 'zstd-napi/binding.js';

/** Why a span did not decompress: `truncated` = input ended inside a frame. */
export class ZstdDataError extends Error {
  override name = 'ZstdDataError';
  constructor(
    readonly reason: 'truncated' | 'corrupt',
    message: string,
  ) {
    super(message);
  }
}

let scratch: binding.DCtx | undefined;

/**
 * Decompresses `src` and returns at most `maxOutputBytes` bytes. Throws ZstdDataError when the bytes are
 * not zstd, or end inside a frame before the bound is reached.
 */
export function zstdDecompressBounded(src: Uint8Array, maxOutputBytes: number): Buffer {
  if (maxOutputBytes === 0 || src.length === 0) return Buffer.alloc(0);
  const dctx = (scratch ??= new binding.DCtx());
  dctx.reset(binding.ResetDirective.sessionOnly);
  let hint: number | null = null;
  try {
    hint = binding.getFrameContentSize(src);
  } catch {
    hint = null; // a skippable or unknown first frame: no hint; decompressStream judges it
  }
  let out = Buffer.allocUnsafe(Math.min(maxOutputBytes, Math.max(hint ?? 0, 64 << 10, src.length * 4)));
  let produced = 0;
  let input = src;
  for (;;) {
    if (produced === out.length) {
      if (out.length >= maxOutputBytes) break;
      const grown = Buffer.allocUnsafe(Math.min(maxOutputBytes, out.length * 2));
      out.copy(grown, 0, 0, produced);
      out = grown;
    }
    let ret: number;
    let p: number;
    let c: number;
    try {
      [ret, p, c] = dctx.decompressStream(out.subarray(produced), input);
    } catch (err) {
      throw new ZstdDataError('corrupt', (err as Error).message);
    }
    produced += p;
    input = input.subarray(c);
    if (input.length === 0) {
      if (ret === 0) break; // every frame complete
      if (p === 0 && produced < out.length) throw new ZstdDataError('truncated', `input ends inside a zstd frame (${src.length} bytes read)`);
    } else if (p === 0 && c === 0 && produced < out.length) {
      throw new ZstdDataError('corrupt', 'no progress decompressing');
    }
  }
  return out.subarray(0, produced);
}

/** Spans up to this many compressed bytes are tried inline; see `zstdDecompressInline`. */
export const INLINE_SPAN_BYTES = 32 << 10;
/** …as long as their output stays under this: about a millisecond of the JS thread. */
export const INLINE_OUTPUT_BYTES = 1 << 20;

/**
 * The span's bytes when it is small enough to decompress on the calling thread (most chunks of an
 * image are small files, and a worker round trip costs more than their decompression), else undefined:
 * the caller moves it off the JS thread. Throws ZstdDataError like zstdDecompressBounded.
 */
export function zstdDecompressInline(src: Uint8Array, maxOutputBytes: number): Buffer | undefined {
  if (src.length > INLINE_SPAN_BYTES) return undefined;
  const cap = Math.min(maxOutputBytes, INLINE_OUTPUT_BYTES);
  const out = zstdDecompressBounded(src, cap);
  // At the inline cap but below the caller's bound: there may be more, so it is not ours to do.
  if (out.length === cap && cap < maxOutputBytes) return undefined;
  return out;
}
