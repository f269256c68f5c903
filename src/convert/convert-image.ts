/**
 * `tocfs convert`: rewrites one image's layers as eStargz or zstd:chunked and pushes the result. Per
 * layer: stream the verified blob, decompress it, write the new blob to a temp file, push it, delete it; so disk use
 * is one layer (plus its spool when prioritising) and memory is bounded by the writer. Then the config
 * gets the new `rootfs.diff_ids` (history is kept as is) and the manifest the new layer descriptors.
 * Everything under the temp dir is removed at the end, on error too.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { DigestMismatchError, FormatError, TocfsError } from '../errors.js';
import { ESTARGZ_PREFETCH_END_ANNOTATION, ESTARGZ_TOC_OFFSET_ANNOTATION } from '../formats/estargz/annotations.js';
import type { RegistryClient, ResolvedImage } from '../registry/client.js';
import { digestOf } from '../registry/digest.js';
import {
  layerCompression,
  MEDIA_TYPE_DOCKER_LAYER_GZIP,
  MEDIA_TYPE_DOCKER_LAYER_ZSTD,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_OCI_LAYER_GZIP,
  MEDIA_TYPE_OCI_LAYER_ZSTD,
  type LayerCompression,
} from '../registry/manifest.js';
import type { Descriptor, ImageReference, Platform } from '../registry/types.js';
import { writeEstargzFile, type EstargzLayer } from './estargz-writer.js';
import { writeZstdChunkedFile } from './zstd-chunked-writer.js';

/** Layer annotation keys (stargz-snapshotter estargz/types.go). */
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';

/** Annotations that describe a layer's former encoding and would lie about the new blob. */
const STALE_ANNOTATION_PREFIXES = [
  'containerd.io/snapshot/stargz/',
  'io.containers.estargz.',
  'io.github.containers.zstd-chunked.',
  'io.containers.zstd-chunked.',
  'io.tocfs.estargz.',
];

export type ConvertFormat = 'estargz' | 'zstd-chunked';

/** What either writer reports about a converted layer. */
interface WrittenLayer {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
  readonly uncompressedSize: number;
  readonly tocDigest: string;
  readonly missingPrioritized: readonly string[];
  /** The format's own layer annotations. */
  readonly annotations: Readonly<Record<string, string>>;
}

export interface ConvertImageOptions {
  readonly format?: ConvertFormat;
  /** Platform to pick when SRC is an index. Default: the client's. */
  readonly platform?: Platform;
  readonly prioritize?: readonly string[];
  readonly chunkSize?: number;
  readonly compressionLevel?: number;
  /** Parent of the temp dir for layer files and spools. Default: the OS temp dir. */
  readonly tempDir?: string;
  readonly signal?: AbortSignal;
  /** Called after each layer is pushed, for progress output. */
  readonly onLayer?: (layer: ConvertedLayer, index: number, total: number) => void;
}

export interface ConvertedLayer {
  readonly source: Descriptor;
  readonly compression: LayerCompression;
  readonly target: Descriptor;
  /** sha256 of the new blob's uncompressed tar. */
  readonly diffId: string;
  readonly uncompressedSize: number;
  readonly tocDigest: string;
  readonly missingPrioritized: readonly string[];
}

export interface ConvertedImage {
  readonly source: ResolvedImage;
  readonly layers: readonly ConvertedLayer[];
  readonly configDigest: string;
  readonly manifestDigest: string;
  readonly manifestMediaType: string;
  readonly manifestBytes: Uint8Array;
  /** Prioritised paths that no layer has. */
  readonly unmatchedPrioritized: readonly string[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(bytes: Uint8Array, what: string): Json {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new FormatError(`${what} is not valid UTF-8 JSON`, { cause: err });
  }
  if (!isObject(doc)) throw new FormatError(`${what} is not a JSON object`);
  return doc;
}

/** Decompresses `blob` and hands the tar stream to `consume`; errors of every stage reach the caller. */
async function withTar<T>(
  blob: AsyncIterable<Uint8Array>,
  compression: LayerCompression,
  consume: (tar: AsyncIterable<Uint8Array>) => Promise<T>,
): Promise<T> {
  let result: T | undefined;
  const sink = async (tar: AsyncIterable<Uint8Array>): Promise<void> => {
    result = await consume(tar);
  };
  const source = Readable.from(blob, { objectMode: false });
  if (compression === 'none') {
    await pipeline(source, sink);
    return result as T;
  }
  // Large output chunks: zlib's default 16 KiB would mean ten times more tar-reader events.
  const inflater = compression === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : new DecompressStream();
  let inflateError: unknown;
  inflater.once('error', (err) => (inflateError = err));
  try {
    await pipeline(source, inflater, sink);
  } catch (err) {
    // Only the decompressor's own failure means bad bytes. pipeline also destroys the decompressor with
    // the source's error (a digest mismatch, a network failure), which must keep its own class.
    const own = err === inflateError && !(err instanceof TocfsError) && (err as Error).name !== 'AbortError';
    if (own) throw new FormatError(`not valid ${compression}: ${(err as Error).message}`, { cause: err });
    throw err;
  }
  return result as T;
}

function targetAnnotations(source: Descriptor, blob: WrittenLayer): Record<string, string> {
  const kept = Object.entries(source.annotations ?? {}).filter(([k]) => !STALE_ANNOTATION_PREFIXES.some((p) => k.startsWith(p)));
  return Object.fromEntries([...kept, ...Object.entries(blob.annotations)]);
}

function estargzWritten(blob: EstargzLayer): WrittenLayer {
  return {
    ...blob,
    annotations: {
      [TOC_DIGEST_ANNOTATION]: blob.tocDigest,
      [UNCOMPRESSED_SIZE_ANNOTATION]: String(blob.uncompressedSize),
      [ESTARGZ_TOC_OFFSET_ANNOTATION]: String(blob.tocOffset),
      ...(blob.prefetchEnd !== undefined ? { [ESTARGZ_PREFETCH_END_ANNOTATION]: String(blob.prefetchEnd) } : {}),
    },
  };
}

/** Writes one layer's tar in the chosen format to `file`. */
async function writeLayer(tar: AsyncIterable<Uint8Array>, file: string, opts: ConvertImageOptions, tempDir: string): Promise<WrittenLayer> {
  if (opts.format === 'zstd-chunked') {
    const blob = await writeZstdChunkedFile(tar, file, {
      ...(opts.chunkSize !== undefined && { chunkSize: opts.chunkSize }),
      ...(opts.compressionLevel !== undefined && { compressionLevel: opts.compressionLevel }),
    });
    return { ...blob, missingPrioritized: [] };
  }
  return estargzWritten(
    await writeEstargzFile(tar, file, {
      ...(opts.chunkSize !== undefined && { chunkSize: opts.chunkSize }),
      ...(opts.compressionLevel !== undefined && { compressionLevel: opts.compressionLevel }),
      ...(opts.prioritize !== undefined && { prioritize: opts.prioritize }),
      tempDir,
    }),
  );
}

async function convertLayer(
  client: RegistryClient,
  src: ImageReference,
  dst: ImageReference,
  layer: Descriptor,
  mediaType: string,
  file: string,
  opts: ConvertImageOptions,
  tempDir: string,
): Promise<ConvertedLayer> {
  const compression = layerCompression(layer.mediaType);
  if (compression === undefined) {
    throw new FormatError(`layer ${layer.digest} has media type ${layer.mediaType}, which is not a layer tocfs can convert`);
  }
  if (layer.urls !== undefined && layer.urls.length > 0) {
    throw new FormatError(`layer ${layer.digest} is a foreign layer (it lists urls); tocfs does not convert those`);
  }
  const signal = opts.signal;
  let blob: WrittenLayer;
  try {
    blob = await withTar(client.streamBlob(src, layer, { signal }), compression, (tar) => writeLayer(tar, file, opts, tempDir));
  } catch (err) {
    // The tar reader knows offsets, not which layer: name it, or the user cannot tell which one is bad.
    if (err instanceof FormatError) throw new FormatError(`layer ${layer.digest}: ${err.message}`, { cause: err });
    throw err;
  }
  try {
    await client.pushBlob(dst, blob.digest, () => createReadStream(file), blob.size, { signal });
  } finally {
    await rm(file, { force: true });
  }
  return {
    source: layer,
    compression,
    target: { mediaType, digest: blob.digest, size: blob.size, annotations: targetAnnotations(layer, blob) },
    diffId: blob.diffId,
    uncompressedSize: blob.uncompressedSize,
    tocDigest: blob.tocDigest,
    missingPrioritized: blob.missingPrioritized,
  };
}

/** The config with the new diff_ids; every other field, history included, as it was. */
function rewriteConfig(bytes: Uint8Array, diffIds: readonly string[]): Uint8Array {
  const doc = parseJson(bytes, 'image config');
  const rootfs = doc['rootfs'];
  if (!isObject(rootfs) || !Array.isArray(rootfs['diff_ids'])) throw new FormatError('image config has no rootfs.diff_ids');
  if (rootfs['diff_ids'].length !== diffIds.length) {
    throw new FormatError(`image config lists ${rootfs['diff_ids'].length} diff_ids for ${diffIds.length} layers`);
  }
  rootfs['diff_ids'] = [...diffIds];
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

/** The manifest with the new config and layer descriptors; other fields (annotations…) as they were. */
function rewriteManifest(bytes: Uint8Array, config: Descriptor, layers: readonly Descriptor[]): Uint8Array {
  const doc = parseJson(bytes, 'manifest');
  const oldConfig = isObject(doc['config']) ? doc['config'] : {};
  doc['config'] = { ...oldConfig, mediaType: config.mediaType, digest: config.digest, size: config.size };
  doc['layers'] = layers;
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

/** Converts SRC (resolved to one platform) and pushes it as DST (its tag, else its digest). */
export async function convertImage(
  client: RegistryClient,
  src: ImageReference,
  dst: ImageReference,
  opts: ConvertImageOptions = {},
): Promise<ConvertedImage> {
  const signal = opts.signal;
  const resolved = await client.resolve(src, opts.platform, { signal });
  const manifest = resolved.manifest;
  const config = await client.getConfig(src, manifest, { signal });
  const pinned = resolved.ref;
  const docker = manifest.mediaType === MEDIA_TYPE_DOCKER_MANIFEST;
  const zstd = opts.format === 'zstd-chunked';
  if (zstd && (opts.prioritize?.length ?? 0) > 0) {
    throw new TocfsError('INVALID_OPTION', 'zstd:chunked has no prefetch landmark: --prioritize works with --format estargz only');
  }
  const layerType = zstd ? (docker ? MEDIA_TYPE_DOCKER_LAYER_ZSTD : MEDIA_TYPE_OCI_LAYER_ZSTD) : docker ? MEDIA_TYPE_DOCKER_LAYER_GZIP : MEDIA_TYPE_OCI_LAYER_GZIP;
  const sources = manifest.document.layers;

  const tempDir = await mkdtemp(join(opts.tempDir ?? tmpdir(), 'tocfs-convert-'));
  const layers: ConvertedLayer[] = [];
  try {
    for (const [i, layer] of sources.entries()) {
      const converted = await convertLayer(client, pinned, dst, layer, layerType, join(tempDir, `layer-${i}.${zstd ? 'tar.zst' : 'tar.gz'}`), opts, tempDir);
      layers.push(converted);
      opts.onLayer?.(converted, i, sources.length);
    }
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }

  const configBytes = rewriteConfig(config.bytes, layers.map((l) => l.diffId));
  const configDescriptor: Descriptor = {
    mediaType: manifest.document.config.mediaType,
    digest: digestOf(configBytes),
    size: configBytes.length,
  };
  await client.pushBlob(dst, configDescriptor.digest, configBytes, configBytes.length, { signal });
  const manifestBytes = rewriteManifest(manifest.bytes, configDescriptor, layers.map((l) => l.target));
  const manifestDigest = digestOf(manifestBytes);
  if (dst.tag !== undefined && dst.digest !== undefined && dst.digest !== manifestDigest) {
    throw new DigestMismatchError(`converted manifest for ${dst.registry}/${dst.repository}`, dst.digest, manifestDigest);
  }
  await client.putManifest(dst, dst.tag ?? dst.digest ?? manifestDigest, manifest.mediaType, manifestBytes, { signal });

  const prioritize = opts.prioritize ?? [];
  const unmatchedPrioritized = prioritize.filter((p) => layers.every((l) => l.missingPrioritized.includes(p)));
  return {
    source: resolved,
    layers,
    configDigest: configDescriptor.digest,
    manifestDigest,
    manifestMediaType: manifest.mediaType,
    manifestBytes,
    unmatchedPrioritized,
  };
}
