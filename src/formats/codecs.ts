/**
 * Every TOC codec tocfs reads, gzip and zstd alike, and footer detection across them. Kept apart from
 * any one format's codec so that adding a format touches this list and nothing else.
 */
import { FormatError, TocfsError } from '../errors.js';
import { estargzCodec, legacyStargzCodec } from './estargz/codec.js';
import type { TocCodec, TocLocation } from './toc.js';
import { estargzZstdCodec, zstdChunkedCodec } from './zstd/codec.js';

/**
 * Every codec detectTocCodec tries, most specific first. The zstd footers cannot be mistaken for gzip
 * ones (a skippable frame header and an 8-byte magic), so their order among the gzip ones is free.
 */
export const TOC_CODECS: readonly TocCodec[] = Object.freeze([zstdChunkedCodec, estargzZstdCodec, estargzCodec, legacyStargzCodec]);

/** How many tail bytes a caller fetches so that every codec can look at its footer. */
export const MAX_FOOTER_LENGTH = Math.max(...TOC_CODECS.map((c) => c.footerLength));

export interface DetectOptions {
  /** Named in the error, e.g. `sha256:…`. */
  readonly layer?: string;
  readonly codecs?: readonly TocCodec[];
}

/**
 * Tries every codec on the blob's tail and keeps every reason (STYLE.md item 3, stargz estargz.go
 * `parseFooter`). `tail` is the blob's last min(blobSize, MAX_FOOTER_LENGTH) bytes or more.
 * Throws a FormatError whose cause is an AggregateError of each codec's refusal.
 */
export function detectTocCodec(tail: Uint8Array, blobSize: number, opts: DetectOptions = {}): { codec: TocCodec; location: TocLocation } {
  const reasons: Error[] = [];
  for (const codec of opts.codecs ?? TOC_CODECS) {
    if (tail.length < codec.footerLength) {
      reasons.push(new FormatError(`${codec.format}: the tail has ${tail.length} bytes, the footer needs ${codec.footerLength}`));
      continue;
    }
    try {
      return { codec, location: codec.parseFooter(tail.subarray(tail.length - codec.footerLength), blobSize) };
    } catch (err) {
      if (!(err instanceof TocfsError)) throw err;
      reasons.push(err);
    }
  }
  const message = `layer ${opts.layer ?? '(unnamed)'} has no TOC footer tocfs understands`;
  throw new FormatError(message, { cause: new AggregateError(reasons, message) });
}
