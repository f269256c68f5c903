/**
 * The open choreography (stargz `estargz.Open`, which STYLE.md item 1 keeps out of src/formats):
 *
 *   TOC cache hit -> decode, verify, done (no network at all);
 *   else ONE range read of the blob's tail, sized for the footer and, usually, the whole TOC ->
 *   detect the footer -> one more read only for the part of the TOC before that tail -> decode ->
 *   verify against the manifest's toc.digest annotation -> store in the TOC cache.
 *
 * zstd:chunked layers with the manifest-position annotation skip the tail: one read of the TOC itself;
 * so do eStargz layers with tocfs's TOC-offset hint (formats/estargz/annotations.ts), falling back to
 * the tail when the hint does not lead to the TOC the manifest pins.
 * A layer without a toc.digest or manifest-checksum annotation cannot be verified lazily and is refused
 * before any read.
 */
import { FormatError, isTocfsError, TocfsError } from '../../errors.js';
import { estargzHintedLocation } from '../../formats/estargz/annotations.js';
import type { TocCodec, TocLimits, TocLocation } from '../../formats/toc.js';
import { LEGACY_ZSTD_CHUNKED_ANNOTATIONS, ZSTD_CHUNKED_ANNOTATIONS, parseZstdAnnotations } from '../../formats/zstd/annotations.js';
import type { Descriptor } from '../../registry/types.js';
import { cacheErrorChannel, publish } from '../events.js';
import type { ChunkFetcher } from '../fetch/fetcher.js';
import { UnverifiedLayer, type LayerParts, type VerifiedLayer } from './toc-layer.js';
import type { RangeSource } from '../sources/range-source.js';
import type { TocCache } from '../store/toc-cache.js';
import type { ReadAheadPolicy } from '../fetch/read-ahead.js';
import { isSha256Digest } from '../../util/sha256-digest.js';

export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';

export interface TocDetection {
  readonly codec: TocCodec;
  readonly location: TocLocation;
}

/** Finds the codec whose footer `tail` (the blob's last bytes) holds; throws FormatError when none does. */
export type TocDetector = (tail: Uint8Array, blobSize: number) => TocDetection;

export interface OpenLayerOptions {
  readonly source: RangeSource;
  readonly descriptor: Descriptor;
  /** Every codec tocfs may meet: decodes cached TOCs by format, and detects footers unless `detect` is given. */
  readonly codecs: readonly TocCodec[];
  readonly detect?: TocDetector;
  readonly fetcher: ChunkFetcher;
  readonly tocCache?: TocCache;
  /** Overrides the descriptor's annotation. */
  readonly expectedTocDigest?: string;
  /** Bytes of the blob's tail read first. Default 64 KiB: the footer and the TOC of ~1000 files. */
  readonly tailBytes?: number;
  /** Largest compressed TOC accepted. Default 64 MiB. */
  readonly maxTocBytes?: number;
  readonly limits?: Partial<TocLimits>;
  readonly maxPrefetchBytes?: number;
  /** What reads fetch ahead (read-ahead.ts). Default: its defaults. */
  readonly readAhead?: ReadAheadPolicy;
  readonly signal?: AbortSignal;
}

const DEFAULT_TAIL_BYTES = 64 << 10;
const DEFAULT_MAX_TOC_BYTES = 64 << 20;

/**
 * What a layer's TOC must match, from its descriptor: the stargz `toc.digest` (sha256 of the TOC JSON)
 * and/or the zstd:chunked `manifest-checksum` (sha256 of the compressed TOC), each checked when present;
 * `location` when `manifest-position` says where the TOC is (no tail read needed).
 */
export interface TocExpectation {
  readonly tocDigest?: string;
  readonly compressedTocDigest?: string;
  readonly location?: TocLocation;
  /** Where tocfs's eStargz hint says the TOC is; tried first, the footer when it misleads. */
  readonly hint?: TocLocation;
}

/** True when the descriptor carries an annotation a lazily read TOC can be verified against. */
export function hasLazyToc(descriptor: Descriptor): boolean {
  const a = descriptor.annotations;
  return a !== undefined && (a[TOC_DIGEST_ANNOTATION] !== undefined || Object.keys(a).some(isZstdChecksumName));
}

/**
 * The zstd:chunked position annotation a descriptor carries without its checksum, if any: it locates a TOC
 * nothing pins, so the layer is not read lazily by it (pulled whole and checked by the layer digest unless
 * a stargz toc.digest pins the TOC).
 */
export function unpinnedZstdPosition(descriptor: Descriptor): string | undefined {
  const a = descriptor.annotations;
  if (a === undefined) return undefined;
  for (const names of [ZSTD_CHUNKED_ANNOTATIONS, LEGACY_ZSTD_CHUNKED_ANNOTATIONS]) {
    if (a[names.position] !== undefined && a[names.checksum] === undefined) return names.position;
  }
  return undefined;
}

function isZstdChecksumName(name: string): boolean {
  return name === ZSTD_CHUNKED_ANNOTATIONS.checksum || name === LEGACY_ZSTD_CHUNKED_ANNOTATIONS.checksum;
}

/**
 * The descriptor's TOC expectation; TocfsError FORMAT when it has nothing to verify against (a TOC read
 * from an untrusted blob and checked against nothing could name any bytes).
 */
export function expectedToc(descriptor: Descriptor, overrideTocDigest?: string): TocExpectation {
  const tocDigest = overrideTocDigest ?? descriptor.annotations?.[TOC_DIGEST_ANNOTATION];
  if (tocDigest !== undefined && !isSha256Digest(tocDigest)) {
    throw new FormatError(`layer ${descriptor.digest}: ${TOC_DIGEST_ANNOTATION} ${JSON.stringify(tocDigest)} is not a sha256 digest`);
  }
  let zstd;
  try {
    zstd = parseZstdAnnotations(descriptor.annotations);
  } catch (err) {
    throw new FormatError(`layer ${descriptor.digest}: ${(err as Error).message}`, { cause: err });
  }
  if (tocDigest === undefined && zstd === undefined) {
    throw new TocfsError(
      'FORMAT',
      `layer ${descriptor.digest} has no ${TOC_DIGEST_ANNOTATION} or ${ZSTD_CHUNKED_ANNOTATIONS.checksum} annotation: cannot verify its TOC`,
    );
  }
  let hint;
  try {
    hint = zstd === undefined ? estargzHintedLocation(descriptor.annotations, descriptor.size) : undefined;
  } catch (err) {
    throw new FormatError(`layer ${descriptor.digest}: ${(err as Error).message}`, { cause: err });
  }
  return {
    ...(tocDigest !== undefined ? { tocDigest } : {}),
    ...(zstd ? { compressedTocDigest: zstd.compressedTocDigest } : {}),
    ...(zstd?.location ? { location: zstd.location } : {}),
    ...(hint ? { hint } : {}),
  };
}

/** Tries every codec on its own footer length and keeps every reason (STYLE.md item 3). */
export function detectWith(codecs: readonly TocCodec[]): TocDetector {
  return (tail, blobSize) => {
    const reasons: unknown[] = [];
    for (const codec of codecs) {
      try {
        if (tail.length < codec.footerLength) throw new FormatError(`${codec.format}: blob shorter than its ${codec.footerLength}-byte footer`);
        return { codec, location: codec.parseFooter(tail.subarray(tail.length - codec.footerLength), blobSize) };
      } catch (err) {
        reasons.push(err);
      }
    }
    throw new FormatError(`blob of ${blobSize} bytes has no TOC footer tocfs understands`, {
      cause: new AggregateError(reasons, 'every codec refused the footer'),
    });
  };
}

export async function openLayer(opts: OpenLayerOptions): Promise<VerifiedLayer> {
  const { descriptor, source, tocCache } = opts;
  const tocDigest = expectedToc(descriptor, opts.expectedTocDigest);
  if (source.id !== descriptor.digest || source.size !== descriptor.size) {
    throw new TocfsError('INVALID_OPTION', `layer ${descriptor.digest}: source is ${source.id} (${source.size} bytes), not this blob`);
  }
  if (tocCache) {
    const cached = await fromCache(opts, tocCache);
    if (cached) {
      try {
        return cached.verify(tocDigest);
      } catch (err) {
        await tocCache.reject(descriptor.digest, (err as Error).message);
      }
    }
  }
  let hinted: { unverified: UnverifiedLayer; layer: VerifiedLayer } | undefined;
  if (tocDigest.hint && !tocDigest.location) {
    try {
      const unverified = await fromPosition(opts, tocDigest.hint);
      hinted = { unverified, layer: unverified.verify(tocDigest) };
    } catch (err) {
      // Bytes that are no TOC, or not the pinned one: the hint misled, the footer decides. Anything else
      // (the network, an abort) is the caller's.
      if (!isTocfsError(err) || (err.code !== 'FORMAT' && err.code !== 'BAD_DATA')) throw err;
    }
  }
  const unverified = hinted?.unverified ?? (tocDigest.location ? await fromPosition(opts, tocDigest.location) : await fromBlob(opts));
  const layer = hinted?.layer ?? unverified.verify(tocDigest);
  if (tocCache) {
    // Only a verified TOC is cached; a cache that cannot take it costs the next open a fetch, nothing more.
    await tocCache.put(layer.digest, unverified.parts.location, unverified.parts.tocBytes).catch((error: unknown) =>
      publish(cacheErrorChannel, { store: 'tocs', op: 'write', digest: layer.digest, error }),
    );
  }
  return layer;
}

function parts(opts: OpenLayerOptions, rest: Omit<LayerParts, 'source' | 'fetcher' | 'maxPrefetchBytes' | 'readAhead'>): LayerParts {
  return {
    source: opts.source,
    fetcher: opts.fetcher,
    ...(opts.readAhead !== undefined ? { readAhead: opts.readAhead } : {}),
    ...(opts.maxPrefetchBytes !== undefined ? { maxPrefetchBytes: opts.maxPrefetchBytes } : {}),
    ...rest,
  };
}

/** The cached TOC decoded, or undefined (a miss, or a cached TOC that no longer decodes: deleted). */
async function fromCache(opts: OpenLayerOptions, tocCache: TocCache): Promise<UnverifiedLayer | undefined> {
  const digest = opts.descriptor.digest;
  const cached = await tocCache.get(digest).catch((error: unknown) => {
    publish(cacheErrorChannel, { store: 'tocs', op: 'read', digest, error });
    return undefined;
  });
  if (!cached) return undefined;
  const { location, tocBytes } = cached;
  const codec = opts.codecs.find((c) => c.format === location.format);
  try {
    if (!codec) throw new FormatError(`no codec for TOC format ${location.format}`);
    checkLocation(opts, location);
    const decoded = await codec.decodeToc(tocBytes, location, opts.limits);
    return new UnverifiedLayer(digest, parts(opts, { codec, decoded, location, tocBytes, tocSource: 'cache' }));
  } catch (err) {
    await tocCache.reject(digest, (err as Error).message);
    return undefined;
  }
}

/** [tocOffset, tocEnd) of the blob, checked against its size and the TOC size limit. */
function checkLocation(opts: OpenLayerOptions, location: TocLocation): { start: number; end: number } {
  const size = opts.source.size;
  const start = location.tocOffset;
  const end = location.tocLength !== undefined ? start + location.tocLength : size - location.footerLength;
  const max = opts.maxTocBytes ?? DEFAULT_MAX_TOC_BYTES;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start || end > size - location.footerLength) {
    throw new FormatError(`layer ${opts.descriptor.digest}: TOC at [${start}, ${end}) does not fit a ${size}-byte blob and its footer`);
  }
  if (end - start > max) throw new FormatError(`layer ${opts.descriptor.digest}: TOC of ${end - start} bytes exceeds maxTocBytes ${max}`);
  return { start, end };
}

async function fromBlob(opts: OpenLayerOptions): Promise<UnverifiedLayer> {
  const { source, signal } = opts;
  const size = source.size;
  const maxFooter = Math.max(0, ...opts.codecs.map((c) => c.footerLength));
  const tailLength = Math.min(size, Math.max(opts.tailBytes ?? DEFAULT_TAIL_BYTES, maxFooter));
  if (tailLength === 0) throw new FormatError(`layer ${opts.descriptor.digest}: empty blob`);
  const tailStart = size - tailLength;
  const tail = await source.read({ start: tailStart, end: size }, signal);
  if (tail.byteLength !== tailLength) {
    throw new TocfsError('PROTOCOL', `layer ${opts.descriptor.digest}: source answered ${tail.byteLength} bytes for a ${tailLength}-byte tail`);
  }
  const detect = opts.detect ?? detectWith(opts.codecs);
  const { codec, location } = detect(tail.subarray(tailLength - Math.min(maxFooter, tailLength)), size);
  const toc = checkLocation(opts, location);

  let tocBytes: Uint8Array;
  if (toc.start >= tailStart) {
    tocBytes = tail.subarray(toc.start - tailStart, toc.end - tailStart);
  } else if (toc.end <= tailStart) {
    tocBytes = await source.read(toc, signal);
  } else {
    // Only the part before the tail: the rest is already here.
    const head = await source.read({ start: toc.start, end: tailStart }, signal);
    tocBytes = Buffer.concat([head, tail.subarray(0, toc.end - tailStart)]);
  }
  if (tocBytes.byteLength !== toc.end - toc.start) {
    throw new TocfsError('PROTOCOL', `layer ${opts.descriptor.digest}: TOC read returned ${tocBytes.byteLength} of ${toc.end - toc.start} bytes`);
  }
  const decoded = await codec.decodeToc(tocBytes, location, opts.limits);
  return new UnverifiedLayer(opts.descriptor.digest, parts(opts, { codec, decoded, location, tocBytes, tocSource: 'blob' }));
}

/**
 * The TOC where the manifest-position annotation says: one range read of exactly its bytes, no tail read
 * (containers/storage does the same). A position that lies decodes to garbage or fails the checksum.
 */
async function fromPosition(opts: OpenLayerOptions, location: TocLocation): Promise<UnverifiedLayer> {
  const codec = opts.codecs.find((c) => c.format === location.format);
  if (!codec) throw new FormatError(`layer ${opts.descriptor.digest}: no codec for TOC format ${location.format}`);
  const toc = checkLocation(opts, location);
  const tocBytes = await opts.source.read(toc, opts.signal);
  if (tocBytes.byteLength !== toc.end - toc.start) {
    throw new TocfsError('PROTOCOL', `layer ${opts.descriptor.digest}: TOC read returned ${tocBytes.byteLength} of ${toc.end - toc.start} bytes`);
  }
  const decoded = await codec.decodeToc(tocBytes, location, opts.limits);
  return new UnverifiedLayer(opts.descriptor.digest, parts(opts, { codec, decoded, location, tocBytes, tocSource: 'blob' }));
}
