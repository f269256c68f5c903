/**
 * Hints `tocfs convert` puts on the eStargz layers it writes (issue 8), each saving round trips at mount:
 *  - where the TOC starts, so that a reader reads the TOC in one request instead of the footer first. The
 *    eStargz TOC is the gzip member between this offset and the 51-byte footer, so the offset alone
 *    locates it (zstd:chunked's manifest-position plays the same part). The TOC still has to match
 *    `toc.digest`, and a reader that finds no TOC there falls back to the footer.
 *  - where `.prefetch.landmark` starts, so that a reader starts fetching the prioritised files along with
 *    the TOC instead of after decoding it. Every byte still has to match its chunk digest from the TOC;
 *    a wrong hint costs only the bytes it names.
 * Pure text parsing.
 */
import { FormatError } from '../../errors.js';
import type { TocLocation } from '../toc.js';
import { ESTARGZ_FOOTER_LENGTH } from './footer.js';

export const ESTARGZ_TOC_OFFSET_ANNOTATION = 'io.tocfs.estargz.toc-offset';
export const ESTARGZ_PREFETCH_END_ANNOTATION = 'io.tocfs.estargz.prefetch-end';

/**
 * The TOC location the hint gives for a blob of `blobSize` bytes, or undefined without the hint. Throws
 * FormatError when the hint is malformed or does not fit the blob.
 */
export function estargzHintedLocation(annotations: Readonly<Record<string, string>> | undefined, blobSize: number): TocLocation | undefined {
  const text = annotations?.[ESTARGZ_TOC_OFFSET_ANNOTATION];
  if (text === undefined) return undefined;
  const tocOffset = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  const tocLength = blobSize - ESTARGZ_FOOTER_LENGTH - tocOffset;
  if (!Number.isSafeInteger(tocOffset) || !(tocLength > 0)) {
    throw new FormatError(`${ESTARGZ_TOC_OFFSET_ANNOTATION} ${JSON.stringify(text)} is not a TOC offset inside a ${blobSize}-byte blob`);
  }
  return { format: 'estargz-gzip', tocOffset, tocLength, footerLength: ESTARGZ_FOOTER_LENGTH };
}

/**
 * The end of the prioritised bytes [0, end) the hint gives for a blob of `blobSize` bytes, or undefined
 * without the hint. Throws FormatError when the hint is malformed or does not fit the blob.
 */
export function estargzHintedPrefetchEnd(annotations: Readonly<Record<string, string>> | undefined, blobSize: number): number | undefined {
  const text = annotations?.[ESTARGZ_PREFETCH_END_ANNOTATION];
  if (text === undefined) return undefined;
  const end = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(end) || end <= 0 || end > blobSize - ESTARGZ_FOOTER_LENGTH) {
    throw new FormatError(`${ESTARGZ_PREFETCH_END_ANNOTATION} ${JSON.stringify(text)} is not an offset inside a ${blobSize}-byte blob`);
  }
  return end;
}
