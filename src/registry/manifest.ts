/**
 * Manifest and index documents: OCI image-spec v1.1 and Docker distribution schema2. Parsing validates
 * every field tocfs will later trust (digests become URLs and cache keys, sizes bound reads) and returns
 * fresh objects holding only the known fields.
 */
import { FormatError } from '../errors.js';
import { digestProblem } from './digest.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from './types.js';

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MEDIA_TYPE_DOCKER_SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

export const MEDIA_TYPE_OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const MEDIA_TYPE_OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
export const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
export const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_GZIP = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
export const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_ZSTD = 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd';
export const MEDIA_TYPE_DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const MEDIA_TYPE_DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const MEDIA_TYPE_DOCKER_LAYER_ZSTD = 'application/vnd.docker.image.rootfs.diff.tar.zstd';
export const MEDIA_TYPE_DOCKER_LAYER_FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar';
export const MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

/** The Accept header of a manifest GET: without the OCI types, distribution answers 404 for OCI images. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
].join(', ');

/** distribution refuses to store manifests over 4 MiB; anything larger is not a manifest we should parse. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export type LayerCompression = 'gzip' | 'zstd' | 'none';

const LAYER_COMPRESSION: ReadonlyMap<string, LayerCompression> = new Map([
  [MEDIA_TYPE_OCI_LAYER, 'none'],
  [MEDIA_TYPE_OCI_LAYER_GZIP, 'gzip'],
  [MEDIA_TYPE_OCI_LAYER_ZSTD, 'zstd'],
  [MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE, 'none'],
  [MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_GZIP, 'gzip'],
  [MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_ZSTD, 'zstd'],
  [MEDIA_TYPE_DOCKER_LAYER, 'none'],
  [MEDIA_TYPE_DOCKER_LAYER_GZIP, 'gzip'],
  [MEDIA_TYPE_DOCKER_LAYER_ZSTD, 'zstd'],
  [MEDIA_TYPE_DOCKER_LAYER_FOREIGN, 'none'],
  [MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP, 'gzip'],
]);

const MANIFEST_TYPES = new Set([MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST]);
const INDEX_TYPES = new Set([MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST]);
const SCHEMA1_TYPES = new Set([MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED]);

export function isLayerMediaType(mediaType: string): boolean {
  return LAYER_COMPRESSION.has(mediaType);
}

/** How a layer blob is compressed, from its media type; undefined for a type that is not a layer. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return LAYER_COMPRESSION.get(mediaType);
}

/** ZIP artifacts (DESIGN.md §1.2, §3.6): layers that are ZIP archives, not tars; served by their own kind. */
export const MEDIA_TYPE_ZIP = 'application/zip';

/**
 * Why a descriptor in an image manifest's `layers` is not a tar layer tocfs can apply (a Helm chart, a
 * signature, a ZIP archive...), or undefined when it is one. Such a "layer" is no filesystem change set:
 * serving it as one would show a tree the image never had.
 */
export function notALayerReason(mediaType: string): string | undefined {
  if (LAYER_COMPRESSION.has(mediaType)) return undefined;
  if (mediaType === MEDIA_TYPE_ZIP) return `media type ${JSON.stringify(mediaType)} is a ZIP archive, not a tar layer: ZIP artifacts are not served as image layers`;
  return `media type ${JSON.stringify(mediaType.slice(0, 200))} is not a layer media type (expected one of the OCI or Docker tar, tar+gzip or tar+zstd layer types)`;
}

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFEST_TYPES.has(mediaType);
}

export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

type Json = Record<string, unknown>;

const SCHEMA1_MESSAGE =
  'Docker schema1 manifests are not supported (deprecated since 2017); push the image again with a current tool';

/**
 * Parses a manifest or index. `contentType` is the response's Content-Type, if any. The kind comes from the
 * document's `mediaType`, else from a Content-Type naming a manifest type, else from the fields present.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ImageManifest | ImageIndex {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new FormatError(`manifest is ${bytes.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new FormatError('manifest is not valid UTF-8 JSON', { cause: err });
  }
  if (!isObject(doc)) throw new FormatError('manifest is not a JSON object');

  const headerType = mediaTypeOfHeader(contentType);
  if ((headerType !== undefined && SCHEMA1_TYPES.has(headerType)) || doc['schemaVersion'] === 1) {
    throw new FormatError(SCHEMA1_MESSAGE);
  }
  if (doc['schemaVersion'] !== 2) {
    throw new FormatError(`manifest schemaVersion must be 2, got ${JSON.stringify(doc['schemaVersion'])}`);
  }
  const docType = doc['mediaType'];
  if (docType !== undefined && typeof docType !== 'string') throw new FormatError('manifest mediaType must be a string');
  if (docType !== undefined && SCHEMA1_TYPES.has(docType)) throw new FormatError(SCHEMA1_MESSAGE);
  const knownHeader = headerType !== undefined && (MANIFEST_TYPES.has(headerType) || INDEX_TYPES.has(headerType));
  // The registry chose the Content-Type from what it stored; a document claiming another type is either a
  // broken registry or an attempt to have one digest read as two documents (GHSA-mc8v-mgrf-8f4m).
  if (docType !== undefined && knownHeader && docType !== headerType) {
    throw new FormatError(`manifest mediaType ${docType} disagrees with Content-Type ${headerType}`);
  }
  const mediaType = docType ?? (knownHeader ? headerType : inferMediaType(doc));

  // GHSA-77vh-xpmg-72qh: before image-spec 1.0.2 documents were not self-describing, so one digest could
  // be read as a manifest by one tool and as an index by another. Refuse documents with both shapes.
  const looksIndex = 'manifests' in doc;
  const looksManifest = 'config' in doc || 'layers' in doc;
  if (looksIndex && looksManifest) throw new FormatError('manifest has both "manifests" and "config"/"layers"');

  if (MANIFEST_TYPES.has(mediaType)) {
    if (looksIndex) throw new FormatError(`${mediaType} document must not have "manifests"`);
    return parseImageManifest(doc, mediaType);
  }
  if (INDEX_TYPES.has(mediaType)) {
    if (looksManifest) throw new FormatError(`${mediaType} document must not have "config" or "layers"`);
    return parseIndex(doc, mediaType);
  }
  throw new FormatError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
}

/** The media type of a Content-Type header: parameters dropped, lower-cased. */
function mediaTypeOfHeader(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return type === '' ? undefined : type;
}

function inferMediaType(doc: Json): string {
  // A document without mediaType was written before image-spec 1.0.2; only OCI types existed without it.
  if ('manifests' in doc) return MEDIA_TYPE_OCI_INDEX;
  if ('config' in doc && 'layers' in doc) return MEDIA_TYPE_OCI_MANIFEST;
  throw new FormatError('manifest has no mediaType and neither "manifests" nor "config" and "layers"');
}

function parseImageManifest(doc: Json, mediaType: string): ImageManifest {
  const layers = doc['layers'];
  if (!Array.isArray(layers)) throw new FormatError('manifest "layers" must be an array');
  return {
    kind: 'manifest',
    mediaType,
    schemaVersion: 2,
    config: parseDescriptor(doc['config'], 'config'),
    layers: layers.map((d: unknown, i) => parseDescriptor(d, `layers[${i}]`)),
    ...optionalFields(doc, 'manifest'),
  };
}

function parseIndex(doc: Json, mediaType: string): ImageIndex {
  const manifests = doc['manifests'];
  if (!Array.isArray(manifests)) throw new FormatError('index "manifests" must be an array');
  const annotations = doc['annotations'] === undefined ? undefined : stringMap(doc['annotations'], 'index annotations');
  return {
    kind: 'index',
    mediaType,
    schemaVersion: 2,
    manifests: manifests.map((d: unknown, i) => parseDescriptor(d, `manifests[${i}]`)),
    ...(annotations !== undefined && { annotations }),
  };
}

function optionalFields(
  doc: Json,
  where: string,
): { annotations?: Record<string, string>; subject?: Descriptor; artifactType?: string } {
  const out: { annotations?: Record<string, string>; subject?: Descriptor; artifactType?: string } = {};
  if (doc['annotations'] !== undefined) out.annotations = stringMap(doc['annotations'], `${where} annotations`);
  if (doc['subject'] !== undefined) out.subject = parseDescriptor(doc['subject'], 'subject');
  if (doc['artifactType'] !== undefined) out.artifactType = string(doc['artifactType'], `${where} artifactType`);
  return out;
}

/** Validates a descriptor; `where` names it in errors (e.g. `layers[3]`). Unknown fields are dropped. */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new FormatError(`${where}: descriptor must be an object`);
  const mediaType = string(value['mediaType'], `${where}.mediaType`);
  const digest = string(value['digest'], `${where}.digest`);
  const problem = digestProblem(digest);
  if (problem !== undefined) throw new FormatError(`${where}.digest ${JSON.stringify(digest)}: ${problem}`);
  const size = value['size'];
  // Sizes bound every later read and allocation: a negative, fractional or unsafe one is refused here.
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new FormatError(`${where}.size must be a non-negative integer, got ${JSON.stringify(size)}`);
  }
  const d: {
    mediaType: string;
    digest: string;
    size: number;
    urls?: string[];
    annotations?: Record<string, string>;
    platform?: Platform;
    artifactType?: string;
  } = { mediaType, digest, size };
  const urls = value['urls'];
  if (urls !== undefined) {
    if (!Array.isArray(urls)) throw new FormatError(`${where}.urls must be an array of strings`);
    d.urls = urls.map((u: unknown, i) => string(u, `${where}.urls[${i}]`));
  }
  if (value['annotations'] !== undefined) d.annotations = stringMap(value['annotations'], `${where}.annotations`);
  if (value['platform'] !== undefined) d.platform = parsePlatformField(value['platform'], `${where}.platform`);
  if (value['artifactType'] !== undefined) d.artifactType = string(value['artifactType'], `${where}.artifactType`);
  return d;
}

function parsePlatformField(value: unknown, where: string): Platform {
  if (!isObject(value)) throw new FormatError(`${where} must be an object`);
  const os = string(value['os'], `${where}.os`);
  const architecture = string(value['architecture'], `${where}.architecture`);
  const variant = value['variant'] === undefined ? undefined : string(value['variant'], `${where}.variant`);
  const osVersion = value['os.version'] === undefined ? undefined : string(value['os.version'], `${where}.os.version`);
  return {
    os,
    architecture,
    ...(variant !== undefined && { variant }),
    ...(osVersion !== undefined && { 'os.version': osVersion }),
  };
}

function stringMap(value: unknown, where: string): Record<string, string> {
  if (!isObject(value)) throw new FormatError(`${where} must be an object of strings`);
  const entries = Object.entries(value);
  for (const [key, v] of entries) {
    if (typeof v !== 'string') throw new FormatError(`${where}[${JSON.stringify(key)}] must be a string`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data and never reaches a prototype.
  return Object.fromEntries(entries) as Record<string, string>;
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new FormatError(`${where} must be a string`);
  return value;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
