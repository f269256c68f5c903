/**
 * The layer-descriptor annotations that locate and pin a zstd TOC without reading the blob's tail.
 * Two generations carry the same values: containers/storage's current `io.github.containers.*` names
 * and the older `io.containers.*` ones (stargz-snapshotter, containers/storage before 2022, skopeo 1.9).
 * Pure text parsing.
 */
import { FormatError } from '../../errors.js';
import type { TocFormat, TocLocation } from '../toc.js';
import { ZSTD_CHUNKED_FOOTER_LENGTH, ZSTD_LEGACY_FOOTER_LENGTH } from './footer.js';
import { isSha256Digest } from '../../util/sha256-digest.js';

export const ZSTD_CHUNKED_ANNOTATIONS = {
  /** sha256 of the compressed TOC bytes. */
  checksum: 'io.github.containers.zstd-chunked.manifest-checksum',
  /** `offset:compressedLength:uncompressedLength:type` of the TOC (type 1 = JSON). */
  position: 'io.github.containers.zstd-chunked.manifest-position',
  /** `offset:compressedLength:uncompressedLength` of the tar-split. */
  tarSplitPosition: 'io.github.containers.zstd-chunked.tarsplit-position',
} as const;

export const LEGACY_ZSTD_CHUNKED_ANNOTATIONS = {
  checksum: 'io.containers.zstd-chunked.manifest-checksum',
  position: 'io.containers.zstd-chunked.manifest-position',
} as const;

const POSITION = /^(\d{1,16}):(\d{1,16}):(\d{1,16}):(\d{1,16})$/;

export interface ZstdAnnotations {
  /** `sha256:…` of the compressed TOC (manifest-checksum). */
  readonly compressedTocDigest: string;
  /** Where the TOC is, from manifest-position; undefined when only the checksum is given (then the footer says). */
  readonly location?: TocLocation;
  /** Which annotation names carried them. */
  readonly generation: 'current' | 'legacy';
}

/**
 * The zstd:chunked annotations of a layer, or undefined when it has none. The current names win over
 * the older ones. The format is what each generation's writers put behind it: the 64-byte footer for
 * the current names, the 40-byte one for the older. Throws FormatError when present but malformed.
 */
export function parseZstdAnnotations(annotations: Readonly<Record<string, string>> | undefined): ZstdAnnotations | undefined {
  if (!annotations) return undefined;
  for (const [generation, names] of [
    ['current', ZSTD_CHUNKED_ANNOTATIONS],
    ['legacy', LEGACY_ZSTD_CHUNKED_ANNOTATIONS],
  ] as const) {
    const checksum = annotations[names.checksum];
    const position = annotations[names.position];
    if (checksum === undefined && position === undefined) continue;
    // A position without a checksum locates a TOC nothing pins: not an error (the README promises such a
    // layer is read, pulled whole and checked by its digest), just nothing to read it lazily by.
    if (checksum === undefined) continue;
    if (!isSha256Digest(checksum)) throw new FormatError(`${names.checksum} ${JSON.stringify(checksum.slice(0, 80))} is not a sha256 digest`);
    if (position === undefined) return { compressedTocDigest: checksum, generation };
    const m = POSITION.exec(position);
    if (!m) throw new FormatError(`${names.position} ${JSON.stringify(position.slice(0, 80))} is not offset:length:uncompressedLength:type`);
    const [offset, length, uncompressed, type] = m.slice(1, 5).map(Number) as [number, number, number, number];
    if (type !== 1) throw new FormatError(`${names.position}: manifest type ${type} is not 1 (JSON TOC)`);
    if (length === 0 || !Number.isSafeInteger(offset + length)) throw new FormatError(`${names.position} ${JSON.stringify(position)}: bad TOC span`);
    const format: TocFormat = generation === 'current' ? 'zstd-chunked' : 'estargz-zstd';
    const footerLength = generation === 'current' ? ZSTD_CHUNKED_FOOTER_LENGTH : ZSTD_LEGACY_FOOTER_LENGTH;
    return {
      compressedTocDigest: checksum,
      generation,
      location: { format, tocOffset: offset, tocLength: length, tocUncompressedLength: uncompressed, footerLength },
    };
  }
  return undefined;
}
