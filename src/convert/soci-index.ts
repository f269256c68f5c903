/**
 * `tocfs index` (DESIGN.md §1.1, §3.3): SOCI zTOCs for an unmodified gzip image, pushed as a SOCI v1 index
 * whose `subject` is the image manifest and made findable as its referrer; the image itself is not touched,
 * so its digest (and signatures) stay. Each layer is streamed from the registry once (digest-verified) into
 * a `ZtocBuilder`: nothing is written to disk, memory is one chunk plus the zTOC. Layers run a few at a time
 * (the inflate runs in libuv's pool, the hashing on this thread, so two or three overlap well on a small
 * machine). `--v2 DST` (soci-v2.ts) also writes the v2 form: an image index tagged DST.
 */
import { ESTARGZ_TOC_OFFSET_ANNOTATION } from '../formats/estargz/annotations.js';
import {
  ANNOTATION_BUILD_TOOL,
  EMPTY_JSON_DIGEST,
  OCI_MANIFEST_MEDIA_TYPE,
  SOCI_INDEX_V1,
  writeSociIndex,
  type SociZtocRef,
} from '../formats/soci/index-manifest.js';
import { FormatError, InvalidOptionError, TocfsError, isTocfsError } from '../errors.js';
import { ZtocBuilder, DEFAULT_SPAN_SIZE } from '../layers/zran/ztoc-builder.js';
import { decodeZtoc } from '../formats/soci/ztoc.js';
import { localZtoc } from '../layers/soci/open-soci.js';
import type { RegistryClient, ResolvedImage } from '../registry/client.js';
import { digestOf } from '../registry/digest.js';
import { MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_OCI_CONFIG, layerCompression } from '../registry/manifest.js';
import type { Descriptor, ImageReference, Platform } from '../registry/types.js';
import { TOC_DIGEST_ANNOTATION } from './convert-image.js';
import { writeSociV2, type SociV2Result } from './soci-v2.js';

/** soci's default: layers smaller than this are pulled whole, a zTOC would save little. */
export const DEFAULT_MIN_LAYER_SIZE = 10 << 20;
export const BUILD_TOOL_IDENTIFIER = 'tocfs';
const DEFAULT_CONCURRENCY = 2;
/** Compressed bytes handed to the inflater at once. */
const PUSH_BATCH = 1 << 20;
const EMPTY_JSON = new TextEncoder().encode('{}');

export interface SociIndexOptions {
  readonly spanSize?: number;
  readonly minLayerSize?: number;
  readonly platform?: Platform;
  /** Also write the SOCI v2 form as an image index tagged with this reference. */
  readonly v2?: ImageReference;
  /** Layers indexed at once. Default 2. */
  readonly concurrency?: number;
  /** Least time between two progress calls for a layer. Default 3000 ms. */
  readonly progressIntervalMs?: number;
  readonly signal?: AbortSignal;
  readonly onSkip?: (skip: SkippedLayer) => void;
  readonly onProgress?: (progress: LayerProgress) => void;
  readonly onLayer?: (layer: IndexedLayer) => void;
  /**
   * tocfs's cache: a zTOC a local mount's first pull built for a layer (src/layers/full) is pushed as it is
   * instead of streaming the layer again, when its span size is the one asked for.
   */
  readonly cacheDir?: string;
}

export interface LayerPosition {
  readonly layer: Descriptor;
  /** 0-based position in the manifest. */
  readonly index: number;
  readonly total: number;
}

export interface SkippedLayer extends LayerPosition {
  readonly reason: string;
}

export interface LayerProgress extends LayerPosition {
  readonly compressedDone: number;
  readonly elapsedMs: number;
}

export interface IndexedLayer extends LayerPosition {
  /** The zTOC blob's descriptor as the SOCI index lists it. */
  readonly ztoc: Descriptor;
  readonly spans: number;
  readonly entries: number;
  readonly uncompressedSize: number;
  readonly elapsedMs: number;
  /** The zTOC a local pull had built (`localZtoc`): the layer was not streamed. */
  readonly fromCache?: boolean;
}

export interface SociIndexResult {
  readonly image: ResolvedImage;
  /** The v1 SOCI index manifest (subject = the image manifest). */
  readonly v1: Descriptor;
  readonly v2?: SociV2Result;
  readonly layers: readonly IndexedLayer[];
  readonly skipped: readonly SkippedLayer[];
}

/** Why a layer gets no zTOC, or undefined when it gets one. */
export function skipReason(layer: Descriptor, minLayerSize: number): string | undefined {
  const annotations = layer.annotations ?? {};
  if (layer.urls !== undefined && layer.urls.length > 0) return 'a foreign layer (it lists urls)';
  const compression = layerCompression(layer.mediaType);
  if (compression === undefined) return `media type ${layer.mediaType} is not a tar layer`;
  if (compression === 'zstd') return 'zstd-compressed (SOCI indexes gzip layers only)';
  if (compression === 'none') return 'uncompressed (SOCI indexes gzip layers only)';
  // An eStargz layer is seekable by its own TOC; tocfs (and stargz) read that instead.
  if (annotations[TOC_DIGEST_ANNOTATION] !== undefined || annotations[ESTARGZ_TOC_OFFSET_ANNOTATION] !== undefined) return 'eStargz (it has its own TOC)';
  if (layer.size < minLayerSize) return `${layer.size} bytes, under --min-layer-size ${minLayerSize}`;
  return undefined;
}

function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) throw new InvalidOptionError(name, `${value} is not an integer >= ${min}`);
}

/** Drives the rest of a blob stream to its end, so that its digest check runs. */
async function drain(blob: AsyncIterator<Uint8Array>): Promise<void> {
  for (;;) if ((await blob.next()).done) return;
}

/** Streams one layer through a ZtocBuilder and pushes the zTOC blob. */
async function indexLayer(client: RegistryClient, repo: ImageReference, at: LayerPosition, opts: SociIndexOptions, spanSize: number): Promise<{ indexed: IndexedLayer; ref: SociZtocRef }> {
  const { layer } = at;
  const started = Date.now();
  const local = opts.cacheDir === undefined ? undefined : await localZtoc(opts.cacheDir, layer, spanSize);
  if (local !== undefined) {
    const ztoc = decodeZtoc(local);
    const digest = digestOf(local);
    await client.pushBlob(repo, digest, local, local.length, { signal: opts.signal });
    const descriptor: Descriptor = { mediaType: 'application/octet-stream', digest, size: local.length };
    const indexed: IndexedLayer = {
      ...at,
      ztoc: descriptor,
      spans: ztoc.compression.maxSpanId + 1,
      entries: ztoc.entries.length,
      uncompressedSize: ztoc.uncompressedArchiveSize,
      elapsedMs: Date.now() - started,
      fromCache: true,
    };
    opts.onLayer?.(indexed);
    return { indexed, ref: { ztoc: descriptor, layerDigest: layer.digest, layerMediaType: layer.mediaType, spanSize, disableXattrs: false } };
  }
  const builder = new ZtocBuilder({ spanSize, buildToolIdentifier: BUILD_TOOL_IDENTIFIER });
  const blob = client.streamBlob(repo, layer, { signal: opts.signal })[Symbol.asyncIterator]();
  const interval = opts.progressIntervalMs ?? 3000;
  let lastReport = started;
  let built;
  try {
    try {
      // Network chunks (16-64 KiB) are gathered into batches: one thread-pool hop per batch, not per
      // chunk, and the next batch is read while the previous one inflates.
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      let inflating: Promise<unknown> | undefined;
      for (;;) {
        const step = await blob.next();
        if (!step.done) {
          batch.push(step.value);
          batchBytes += step.value.length;
        }
        if (step.done || batchBytes >= PUSH_BATCH) {
          await inflating;
          if (batchBytes > 0) {
            inflating = builder.push(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
            inflating.catch(() => undefined); // awaited above or below; this only keeps it from being "unhandled"
          }
          batch = [];
          batchBytes = 0;
        }
        const now = Date.now();
        if (opts.onProgress && now - lastReport >= interval) {
          lastReport = now;
          opts.onProgress({ ...at, compressedDone: builder.compressedBytes, elapsedMs: now - started });
        }
        if (step.done) break;
      }
      await inflating;
      built = builder.end();
    } catch (err) {
      // The blob's own failure (digest, network, abort) says more than what its bytes inflated to.
      if (err instanceof FormatError) await drain(blob);
      throw err;
    }
  } catch (err) {
    if (err instanceof FormatError) throw new FormatError(`layer ${layer.digest} is not a valid gzip tar: ${err.message}`, { cause: err });
    throw err;
  }
  const digest = digestOf(built.bytes);
  await client.pushBlob(repo, digest, built.bytes, built.bytes.length, { signal: opts.signal });
  const ztoc: Descriptor = { mediaType: 'application/octet-stream', digest, size: built.bytes.length };
  const indexed: IndexedLayer = {
    ...at,
    ztoc,
    spans: built.ztoc.compression.maxSpanId + 1,
    entries: built.ztoc.entries.length,
    uncompressedSize: built.uncompressedSize,
    elapsedMs: Date.now() - started,
  };
  opts.onLayer?.(indexed);
  return { indexed, ref: { ztoc, layerDigest: layer.digest, layerMediaType: layer.mediaType, spanSize, disableXattrs: false } };
}

/** Runs `work` over `items`, `limit` at a time, in order of start; the first failure stops new starts. */
async function pool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await work(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}

/** Builds and pushes the SOCI index of `ref` (resolved for `opts.platform`); see the file comment. */
export async function indexImage(client: RegistryClient, ref: ImageReference, opts: SociIndexOptions = {}): Promise<SociIndexResult> {
  checkCount('spanSize', opts.spanSize, 1);
  checkCount('minLayerSize', opts.minLayerSize, 0);
  checkCount('concurrency', opts.concurrency, 1);
  const spanSize = opts.spanSize ?? DEFAULT_SPAN_SIZE;
  const minLayerSize = opts.minLayerSize ?? DEFAULT_MIN_LAYER_SIZE;
  const signal = opts.signal;
  const image = await client.resolve(ref, opts.platform, { signal });
  const manifest = image.manifest;
  const configType = manifest.document.config.mediaType;
  // A SOCI index, a prefetch profile or another artifact has layers too, but no file tree to index.
  if (configType !== MEDIA_TYPE_OCI_CONFIG && configType !== MEDIA_TYPE_DOCKER_CONFIG) {
    throw new FormatError(`${ref.registry}/${ref.repository}@${manifest.digest} is not a container image (its config media type is ${configType})`);
  }
  const repo = image.ref;
  const layers = manifest.document.layers;
  const skipped: SkippedLayer[] = [];
  const indexable: LayerPosition[] = [];
  layers.forEach((layer, index) => {
    const at = { layer, index, total: layers.length };
    const reason = skipReason(layer, minLayerSize);
    if (reason === undefined) indexable.push(at);
    else {
      skipped.push({ ...at, reason });
      opts.onSkip?.({ ...at, reason });
    }
  });
  if (indexable.length === 0) {
    throw new TocfsError('INVALID_OPTION', `no layer of ${ref.registry}/${ref.repository}@${manifest.digest} can be indexed (every one was skipped), so no SOCI index was written`);
  }
  const built = await pool(indexable, opts.concurrency ?? DEFAULT_CONCURRENCY, (at) => indexLayer(client, repo, at, opts, spanSize));
  const ztocs = built.map((b) => b.ref);

  // OCI 1.0 manifests need a config blob: every SOCI index points at `{}`.
  await client.pushBlob(repo, EMPTY_JSON_DIGEST, EMPTY_JSON, EMPTY_JSON.length, { signal });
  const subject: Descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
  const v1 = writeSociIndex({ version: 'v1', subject, ztocs, buildToolIdentifier: BUILD_TOOL_IDENTIFIER });
  await client.putManifest(repo, v1.digest, OCI_MANIFEST_MEDIA_TYPE, v1.bytes, { signal });
  const v1Descriptor: Descriptor = {
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: SOCI_INDEX_V1,
    digest: v1.digest,
    size: v1.bytes.length,
    annotations: { [ANNOTATION_BUILD_TOOL]: BUILD_TOOL_IDENTIFIER },
  };
  await client.addReferrer(repo, manifest.digest, v1Descriptor, { signal });
  const result = { image, v1: v1Descriptor, layers: built.map((b) => b.indexed), skipped };
  if (opts.v2 === undefined) return result;
  try {
    return { ...result, v2: await writeSociV2(client, image, ztocs, opts.v2, { buildToolIdentifier: BUILD_TOOL_IDENTIFIER, signal }) };
  } catch (err) {
    if (isTocfsError(err)) throw new TocfsError(err.code, `--v2 ${opts.v2.registry}/${opts.v2.repository}: ${err.message}`, { cause: err });
    throw err;
  }
}
