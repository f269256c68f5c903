/**
 * zstd:chunked (containers/storage, 64-byte footer) and eStargz-zstd (stargz-snapshotter's zstdchunked
 * package and older containers/storage, 40-byte footer) as `TocCodec`s. Both TOCs are the same JSON
 * (`{"version":1,"entries":[…]}`), zstd-compressed in a skippable frame, with no tar around it; they
 * differ in how a chunk's compressed span ends (below, `assignSpanEnds`). Bytes in, values out.
 */
import { createHash } from 'node:crypto';
import { FormatError, InvalidOptionError, TocfsError } from '../../errors.js';
import { resolveTocLimits } from '../toc-fields.js';
import { indexToc } from '../toc-index.js';
import { parseTocJson } from '../toc-json.js';
import type { DecodedToc, RawTocEntry, TocCodec, TocFormat, TocLimits, TocLocation } from '../toc.js';
import { ZstdDataError, zstdDecompressBounded } from './decompress.js';
import { SKIPPABLE_HEADER_LENGTH, ZSTD_CHUNKED_FOOTER_LENGTH, ZSTD_LEGACY_FOOTER_LENGTH, parseZstdFooter, type ZstdFooterKind } from './footer.js';

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Decompresses one compressed span, on the calling thread (src/layers/zstd-offload.ts moves large spans
 * to worker threads in the daemon). Bytes that do not decompress are BAD_DATA (the TOC that named the
 * span was verified, so the span's bytes are what is wrong and a fresh fetch may cure them).
 */
export function decompressZstdSpan(span: Uint8Array, maxOutputBytes: number): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) {
    return Promise.reject(new InvalidOptionError('maxOutputBytes', `${maxOutputBytes} is not a non-negative safe integer`));
  }
  try {
    return Promise.resolve(zstdDecompressBounded(span, maxOutputBytes));
  } catch (err) {
    return Promise.reject(zstdSpanError(span.length, err));
  }
}

/** The TocfsError for a span that failed in zstdDecompressBounded (here or in a worker). */
export function zstdSpanError(spanLength: number, err: unknown): TocfsError {
  if (err instanceof TocfsError) return err;
  const what = err instanceof ZstdDataError && err.reason === 'truncated' ? 'is a truncated zstd frame' : 'does not decompress';
  return new TocfsError('BAD_DATA', `zstd span of ${spanLength} bytes ${what}: ${(err as Error).message}`, { cause: err });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * containers/storage puts `endOffset` on a file's `reg` entry as the end of its LAST chunk (the whole
 * file's frames), and gives `chunk` entries only `offset`; each chunk is its own frame, ending where the
 * next chunk of the file starts. Left as is, the first chunk would span the whole file, so a one-byte
 * read of a 100 MiB file would fetch all of it. Here each data chunk gets its own end: the next chunk's
 * offset, and the entry's endOffset for the last one. Chunks with an explicit endOffset of their own keep
 * it. eStargz-zstd TOCs carry no endOffset: indexToc ends their spans at the next greater offset.
 */
export function assignSpanEnds(raw: readonly RawTocEntry[]): RawTocEntry[] {
  const out: Mutable<RawTocEntry>[] = raw.map((e) => ({ ...e }));
  for (let i = 0; i < out.length; i++) {
    const head = out[i]!;
    if (head.type !== 'reg' || head.endOffset === undefined) continue;
    let last = i;
    while (last + 1 < out.length && out[last + 1]!.type === 'chunk' && out[last + 1]!.name === head.name) last++;
    if (last === i) continue;
    const fileEnd = head.endOffset;
    delete head.endOffset;
    for (let k = i; k <= last; k++) {
      const c = out[k]!;
      if (c.endOffset !== undefined && k !== i) continue;
      const next = out[k + 1];
      const nextOffset = k < last && next?.offset !== undefined ? next.offset : undefined;
      if (nextOffset !== undefined && c.offset !== undefined && nextOffset > c.offset) c.endOffset = nextOffset;
      else if (k === last) c.endOffset = fileEnd;
      // else: a zero-length step (zeros run sharing an offset); indexToc falls back to the next offset
    }
    i = last;
  }
  return out;
}

class ZstdTocCodec implements TocCodec {
  readonly format: TocFormat;
  readonly footerLength: number;
  readonly #kind: ZstdFooterKind;

  constructor(format: TocFormat, kind: ZstdFooterKind) {
    this.format = format;
    this.#kind = kind;
    this.footerLength = kind === 'current' ? ZSTD_CHUNKED_FOOTER_LENGTH : ZSTD_LEGACY_FOOTER_LENGTH;
  }

  parseFooter(tail: Uint8Array, blobSize: number): TocLocation {
    const f = parseZstdFooter(tail, blobSize, this.#kind);
    return { format: this.format, tocOffset: f.tocOffset, tocLength: f.tocLength, tocUncompressedLength: f.tocUncompressedLength, footerLength: this.footerLength };
  }

  async decodeToc(tocBytes: Uint8Array, location: TocLocation, limits?: Partial<TocLimits>): Promise<DecodedToc> {
    const lim = resolveTocLimits(limits);
    if (location.tocLength !== undefined && tocBytes.length !== location.tocLength) {
      throw new FormatError(`TOC is ${tocBytes.length} bytes, the footer says ${location.tocLength}`);
    }
    if (tocBytes.length > lim.maxTocBytes) throw new FormatError(`TOC of ${tocBytes.length} bytes is above maxTocBytes ${lim.maxTocBytes}`);
    const declared = location.tocUncompressedLength;
    if (declared !== undefined && declared > lim.maxTocBytes) {
      throw new FormatError(`TOC declares ${declared} uncompressed bytes, above maxTocBytes ${lim.maxTocBytes}`);
    }
    let json: Buffer;
    try {
      // One byte past the bound tells "larger than allowed" from "exactly the bound".
      json = zstdDecompressBounded(tocBytes, (declared ?? lim.maxTocBytes) + 1);
    } catch (err) {
      throw new FormatError(`TOC at ${location.tocOffset} is not a zstd frame: ${(err as Error).message}`, { cause: err });
    }
    if (declared !== undefined && json.length !== declared) {
      throw new FormatError(`TOC at ${location.tocOffset} decompresses to ${json.length > declared ? 'more than' : json.length} bytes, the footer says ${declared}`);
    }
    if (json.length > lim.maxTocBytes) throw new FormatError(`TOC at ${location.tocOffset} decompresses beyond maxTocBytes ${lim.maxTocBytes}`);
    const raw = assignSpanEnds(parseTocJson(json, lim.maxEntries));
    // The last data frame ends where the TOC's skippable frame header starts.
    const dataEnd = location.tocOffset - SKIPPABLE_HEADER_LENGTH;
    if (dataEnd < 0) throw new FormatError(`TOC offset ${location.tocOffset} leaves no room for its frame header`);
    const index = indexToc(raw, { format: this.format, tocOffset: dataEnd, limits: lim });
    return { index, tocDigest: sha256(json), compressedTocDigest: sha256(tocBytes) };
  }

  decompressSpan(span: Uint8Array, maxOutputBytes: number): Promise<Uint8Array> {
    return decompressZstdSpan(span, maxOutputBytes);
  }
}

/** zstd:chunked as containers/storage (podman, buildah, CRI-O) and `tocfs convert` write it. */
export const zstdChunkedCodec: TocCodec = Object.freeze(new ZstdTocCodec('zstd-chunked', 'current'));

/** The 40-byte `GnUlInUx` footer: eStargz-zstd (ctr-remote --zstdchunked) and older zstd:chunked. */
export const estargzZstdCodec: TocCodec = Object.freeze(new ZstdTocCodec('estargz-zstd', 'legacy'));
