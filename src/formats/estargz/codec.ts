/**
 * eStargz (51-byte footer) and legacy CRFS stargz (47-byte footer) as `TocCodec`s, and the gzip span
 * decompressor they share (the list of every codec, and detection, are ../codecs.ts). Bytes in, values out: the fetch choreography around
 * them lives in src/layers (STYLE.md item 1).
 */
import { createHash } from 'node:crypto';
import { createGunzip, gunzip, gunzipSync, type InputType, type ZlibOptions } from 'node:zlib';
import { FormatError, InvalidOptionError, TocfsError } from '../../errors.js';
import { resolveTocLimits } from '../toc-fields.js';
import { indexToc } from '../toc-index.js';
import { tocJsonEntries } from '../toc-json-stream.js';
import type { DecodedToc, TocCodec, TocFormat, TocLimits, TocLocation } from '../toc.js';
import { ESTARGZ_FOOTER_LENGTH, LEGACY_FOOTER_LENGTH, parseEstargzFooter, parseLegacyFooter, type ParsedFooter } from './footer.js';
import { tocJsonFromTar } from './toc-tar.js';

/** Room for the tar header, PAX records, padding and end-of-archive blocks around the JSON. */
const TAR_OVERHEAD = 64 << 10;

function gunzipBounded(input: InputType, options: ZlibOptions & { maxOutputLength: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => gunzip(input, options, (err, out) => (err ? reject(err) : resolve(out))));
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Inflates the gzip member(s) of one span and returns its first `maxOutputBytes` bytes (all of them when
 * the span holds fewer). Inflation stops at the bound, so a hostile span can never make us allocate
 * more (decompression-bomb guard). A bound is a prefix, not an error, because an eStargz span holds more
 * than its chunk: the tar padding and the next entries' headers share the member, and several packed
 * chunks share one member (`innerOffset`). Callers pass `innerOffset + size` and slice.
 * Bytes that do not inflate are BAD_DATA: the TOC that named the span was verified, so the span's bytes
 * are what is wrong, and a fresh fetch may cure it.
 */
export function decompressGzipSpan(span: Uint8Array, maxOutputBytes: number, expectedBytes?: number): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) {
    return Promise.reject(new InvalidOptionError('maxOutputBytes', `${maxOutputBytes} is not a non-negative safe integer`));
  }
  if (maxOutputBytes === 0) return Promise.resolve(new Uint8Array(0));
  if (span.length <= SYNC_SPAN_BYTES) {
    const small = inflateSmallSpan(span, maxOutputBytes);
    if (small) return small;
  }
  return inflateSpanStreaming(span, maxOutputBytes, expectedBytes);
}

// Most chunks of an image are small files. For them the thread-pool round trip and stream set-up of
// async zlib cost more than the inflate itself (bench/chunk-throughput.ts), so they inflate inline;
// the output cap keeps the JS thread's work per call under about a millisecond.
const SYNC_SPAN_BYTES = 32 << 10;
const SYNC_OUTPUT_BYTES = 1 << 20;

/** Inline inflate of a small span; undefined when its output would pass SYNC_OUTPUT_BYTES. */
function inflateSmallSpan(span: Uint8Array, maxOutputBytes: number): Promise<Uint8Array> | undefined {
  try {
    const out = gunzipSync(span, { maxOutputLength: Math.min(SYNC_OUTPUT_BYTES, Math.max(maxOutputBytes, 1)) });
    return Promise.resolve(out.length > maxOutputBytes ? out.subarray(0, maxOutputBytes) : out);
  } catch (err) {
    // Past the cap: the streaming path truncates at maxOutputBytes off the JS thread.
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return undefined;
    return Promise.reject(new TocfsError('BAD_DATA', `gzip span of ${span.length} bytes does not inflate: ${(err as Error).message}`, { cause: err }));
  }
}

/** Output buffers of the streaming inflate: 64 KiB unless the caller says how much it needs. */
const STREAM_CHUNK_BYTES = 64 << 10;
const MAX_STREAM_CHUNK_BYTES = 16 << 20;
/** Beyond the bytes a chunk needs, its member may hold tar padding and the next entry's header. */
const STREAM_SLACK_BYTES = 4 << 10;

function inflateSpanStreaming(span: Uint8Array, maxOutputBytes: number, expectedBytes?: number): Promise<Uint8Array> {
  // One output buffer the size of the chunk: a 4 MiB chunk in 64 KiB pieces costs 64 thread-pool round
  // trips and a concatenating copy (bench/gib-throughput.ts).
  const wanted = expectedBytes !== undefined && expectedBytes > 0 ? expectedBytes + STREAM_SLACK_BYTES : STREAM_CHUNK_BYTES;
  const chunkSize = Math.max(64, Math.min(maxOutputBytes, Math.max(STREAM_CHUNK_BYTES, Math.min(wanted, MAX_STREAM_CHUNK_BYTES))));
  return new Promise((resolve, reject) => {
    const inflater = createGunzip({ chunkSize });
    const parts: Buffer[] = [];
    let total = 0;
    let settled = false;
    const finish = (): void => {
      settled = true;
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
      resolve(all.length > maxOutputBytes ? all.subarray(0, maxOutputBytes) : all);
    };
    inflater.on('data', (part: Buffer) => {
      if (settled) return;
      parts.push(part);
      total += part.length;
      if (total >= maxOutputBytes) {
        finish();
        inflater.destroy();
      }
    });
    inflater.on('end', () => {
      if (!settled) finish();
    });
    inflater.on('error', (err: Error) => {
      if (settled) return;
      settled = true;
      reject(new TocfsError('BAD_DATA', `gzip span of ${span.length} bytes does not inflate: ${err.message}`, { cause: err }));
    });
    inflater.end(span);
  });
}

class GzipTocCodec implements TocCodec {
  readonly format: TocFormat;
  readonly footerLength: number;
  readonly #parse: (tail: Uint8Array, blobSize: number) => ParsedFooter;

  constructor(format: TocFormat, footerLength: number, parse: (tail: Uint8Array, blobSize: number) => ParsedFooter) {
    this.format = format;
    this.footerLength = footerLength;
    this.#parse = parse;
  }

  parseFooter(tail: Uint8Array, blobSize: number): TocLocation {
    const { tocOffset, footerLength } = this.#parse(tail, blobSize);
    return { format: this.format, tocOffset, tocLength: blobSize - footerLength - tocOffset, footerLength };
  }

  async decodeToc(tocBytes: Uint8Array, location: TocLocation, limits?: Partial<TocLimits>): Promise<DecodedToc> {
    const lim = resolveTocLimits(limits);
    if (location.tocLength !== undefined && tocBytes.length !== location.tocLength) {
      throw new FormatError(`TOC is ${tocBytes.length} bytes, the footer says ${location.tocLength}`);
    }
    if (tocBytes.length > lim.maxTocBytes) throw new FormatError(`TOC of ${tocBytes.length} bytes is above maxTocBytes ${lim.maxTocBytes}`);
    let tar: Buffer;
    try {
      // Several members inflate as one stream; the reference writes one.
      tar = await gunzipBounded(tocBytes, { maxOutputLength: lim.maxTocBytes + TAR_OVERHEAD });
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? `inflates beyond maxTocBytes ${lim.maxTocBytes}` : `is not gzip: ${(err as Error).message}`;
      throw new FormatError(`TOC at ${location.tocOffset} ${reason}`, { cause: err });
    }
    const json = tocJsonFromTar(tar);
    // Entries indexed as they are parsed: a 10^6-entry TOC never has all its parsed entries alive at once.
    const index = indexToc(tocJsonEntries(json, lim.maxEntries), { format: this.format, tocOffset: location.tocOffset, limits: lim });
    return { index, tocDigest: sha256(json), compressedTocDigest: sha256(tocBytes) };
  }

  decompressSpan(span: Uint8Array, maxOutputBytes: number, expectedBytes?: number): Promise<Uint8Array> {
    return decompressGzipSpan(span, maxOutputBytes, expectedBytes);
  }
}

/** eStargz as written by stargz-snapshotter, nerdctl, buildkit and `tocfs convert`. */
export const estargzCodec: TocCodec = Object.freeze(new GzipTocCodec('estargz-gzip', ESTARGZ_FOOTER_LENGTH, parseEstargzFooter));

/** The original CRFS stargz; same TOC, shorter footer. */
export const legacyStargzCodec: TocCodec = Object.freeze(new GzipTocCodec('stargz-legacy', LEGACY_FOOTER_LENGTH, parseLegacyFooter));
