/**
 * A hint `tocfs convert` puts on the eStargz layers it writes: where the TOC starts, so that a reader
 * reads the TOC in one request instead of the footer first (one round trip less per layer at mount,
 * issue 8). The eStargz TOC is the gzip member between this offset and the 51-byte footer, so the offset
 * alone locates it (zstd:chunked's manifest-position plays the same part). A hint only: the TOC still
 * has to match `toc.digest`, and a reader that finds no TOC there falls back to the footer.
 * Pure text parsing.
 */
import { FormatError } from '../../errors.js';
import type { TocLocation } from '../toc.js';
import { ESTARGZ_FOOTER_LENGTH } from './footer.js';

export const ESTARGZ_TOC_OFFSET_ANNOTATION = 'io.tocfs.estargz.toc-offset';

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
