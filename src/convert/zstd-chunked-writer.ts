/**
 * Streams one layer's uncompressed tar into a zstd:chunked blob (DESIGN.md §3.2), in one pass: memory
 * is bounded by the largest chunk (4 MiB by default) plus the TOC and tar-split, which grow with the
 * number of entries, not with their size. Format artefacts of an earlier eStargz conversion
 * (`stargz.index.json`, landmarks) are dropped from the input: zstd:chunked has no landmarks.
 */
import type { Writable } from 'node:stream';
import { InvalidOptionError } from '../errors.js';
import { readTar, type TarLimits } from '../formats/tar/reader.js';
import { DEFAULT_TOC_LIMITS } from '../formats/toc.js';
import { isFormatArtefact } from '../formats/whiteouts.js';
import { ZstdChunkedEncoder, type ZstdChunkedBlob } from './zstd-chunked-encoder.js';
import { FrameSink } from './zstd-frames.js';
import { writeNewFile } from './new-file.js';
import { feedTar } from './feed-tar.js';

export const DEFAULT_ZSTD_LEVEL = 3;
/** Chunk bounds: containers/storage's files are cut by content too; 64 KiB .. 4 MiB, about 1 MiB apart. */
export const DEFAULT_MIN_CHUNK = 64 << 10;
export const DEFAULT_MAX_CHUNK = 4 << 20;

export interface ZstdChunkedWriterOptions {
  /** Largest chunk of a file, and so of a frame. Default 4 MiB. */
  readonly chunkSize?: number;
  /** Smallest chunk (not counting a file's last). Default 64 KiB, or chunkSize when that is smaller. */
  readonly minChunkSize?: number;
  /** zstd level 1-19. Default 3 (zstd's own default). */
  readonly compressionLevel?: number;
  readonly tarLimits?: Partial<TarLimits>;
}

export async function writeZstdChunked(
  tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  output: Writable,
  options: ZstdChunkedWriterOptions = {},
): Promise<ZstdChunkedBlob> {
  const max = options.chunkSize ?? DEFAULT_MAX_CHUNK;
  if (!Number.isSafeInteger(max) || max < 1 || max > DEFAULT_TOC_LIMITS.maxChunkBytes) {
    throw new InvalidOptionError('chunkSize', `must be an integer from 1 to ${DEFAULT_TOC_LIMITS.maxChunkBytes}, got ${max}`);
  }
  const min = Math.min(options.minChunkSize ?? DEFAULT_MIN_CHUNK, max);
  if (!Number.isSafeInteger(min) || min < 1) throw new InvalidOptionError('minChunkSize', `must be a positive integer, got ${min}`);
  const level = options.compressionLevel ?? DEFAULT_ZSTD_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new InvalidOptionError('compressionLevel', `must be an integer from 1 to 19, got ${level}`);
  const average = Math.max(min, Math.min(max, 1 << 20));
  const encoder = new ZstdChunkedEncoder(new FrameSink(output), level, { min, max, average: Math.max(1, average - min) });
  try {
    await feedTar(encoder, readTar(tar, { limits: options.tarLimits ?? {} }), isFormatArtefact);
    return await encoder.finish();
  } catch (err) {
    output.destroy();
    throw err;
  }
}

/** `writeZstdChunked` into a new file at `path`; the file is removed if anything fails. */
export async function writeZstdChunkedFile(
  tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  path: string,
  options: ZstdChunkedWriterOptions = {},
): Promise<ZstdChunkedBlob> {
  return writeNewFile(path, (out) => writeZstdChunked(tar, out, options));
}
