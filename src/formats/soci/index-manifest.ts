/**
 * The SOCI index (DESIGN.md §3.3; soci-snapshotter `soci/soci_index.go`): an OCI image manifest whose
 * config media type names the index version and whose layers are the zTOCs, one per indexed image layer.
 * Facts as soci writes them (`MarshalIndex`, `NewIndex`, `addSociLayerAnnotations`):
 *  - `schemaVersion` 2, `mediaType` application/vnd.oci.image.manifest.v1+json, no `artifactType`;
 *  - `config` = { mediaType: the index artifact type (v1 or v2), the digest of `{}`, size 2 };
 *  - v1 has `subject` = the image manifest (found through the referrers API); v2 has none (the image
 *    manifest names the index in its `com.amazon.soci.index-digest` annotation instead);
 *  - each zTOC layer: mediaType application/octet-stream, annotations image-layer-mediaType,
 *    image-layer-digest, span-size (newer builders) and disable-xattrs (optional, "true");
 *  - prefetch artifacts (application/vnd.amazon.soci.prefetch.v1+json) may sit among the layers;
 *  - `com.amazon.soci.build-tool-identifier` is an annotation of the index manifest itself, not of a layer.
 * Pure text in, values out; no I/O.
 */
import { createHash } from 'node:crypto';
import { FormatError, InvalidOptionError } from '../../errors.js';

export const SOCI_INDEX_V1 = 'application/vnd.amazon.soci.index.v1+json';
export const SOCI_INDEX_V2 = 'application/vnd.amazon.soci.index.v2+json';
export const ZTOC_MEDIA_TYPE = 'application/octet-stream';
export const SOCI_PREFETCH_MEDIA_TYPE = 'application/vnd.amazon.soci.prefetch.v1+json';
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const ANNOTATION_LAYER_DIGEST = 'com.amazon.soci.image-layer-digest';
export const ANNOTATION_LAYER_MEDIA_TYPE = 'com.amazon.soci.image-layer-mediaType';
export const ANNOTATION_SPAN_SIZE = 'com.amazon.soci.span-size';
export const ANNOTATION_BUILD_TOOL = 'com.amazon.soci.build-tool-identifier';
export const ANNOTATION_DISABLE_XATTRS = 'com.amazon.soci.disable-xattrs';
/** On an image manifest's descriptor in an image index (or on the manifest): the v2 SOCI index for it. */
export const ANNOTATION_INDEX_DIGEST = 'com.amazon.soci.index-digest';
/** On a v2 SOCI index's descriptor in an image index: the image manifest it indexes. */
export const ANNOTATION_IMAGE_MANIFEST_DIGEST = 'com.amazon.soci.image-manifest-digest';

/** sha256 of `{}`: the config blob every SOCI index points at (OCI 1.0 manifests need a config). */
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

export type SociIndexVersion = 'v1' | 'v2';

/** The descriptor fields a SOCI index uses (formats may not import src/registry's Descriptor). */
export interface SociDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface SociZtocRef {
  /** The zTOC blob. */
  readonly ztoc: SociDescriptor;
  /** `com.amazon.soci.image-layer-digest`: the image layer this zTOC indexes. */
  readonly layerDigest: string;
  /** `com.amazon.soci.image-layer-mediaType`: that layer's media type ('' when absent: very old builders). */
  readonly layerMediaType: string;
  /** `com.amazon.soci.span-size` in bytes; undefined when absent. */
  readonly spanSize?: number;
  /** `com.amazon.soci.disable-xattrs` = "true": the layer has no xattrs, so none need asking. */
  readonly disableXattrs: boolean;
}

export interface SociIndex {
  readonly version: SociIndexVersion;
  /** v1: the image manifest this index belongs to; v2: usually absent. */
  readonly subject?: SociDescriptor;
  readonly ztocs: readonly SociZtocRef[];
  /** Prefetch artifacts listed among the layers (not served yet; kept so a writer can copy them). */
  readonly prefetch: readonly SociDescriptor[];
  /** `com.amazon.soci.build-tool-identifier` of the index manifest; '' when absent. */
  readonly buildToolIdentifier: string;
  /** Every annotation of the index manifest. */
  readonly annotations: Readonly<Record<string, string>>;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function annotationsOf(value: unknown, where: string): Readonly<Record<string, string>> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw new FormatError(`SOCI index ${where}.annotations is not an object`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new FormatError(`SOCI index ${where}.annotations[${JSON.stringify(k)}] is not a string`);
  }
  return Object.freeze(Object.fromEntries(Object.entries(value as Record<string, string>)));
}

function descriptorOf(value: unknown, where: string): SociDescriptor {
  if (!isObject(value)) throw new FormatError(`SOCI index ${where} is not a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw new FormatError(`SOCI index ${where}.mediaType is missing`);
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new FormatError(`SOCI index ${where}.digest ${JSON.stringify(String(digest).slice(0, 80))} is not sha256:<64 hex>`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new FormatError(`SOCI index ${where}.size ${String(size)} is not a non-negative safe integer`);
  const annotations = annotationsOf(value['annotations'], where);
  return Object.keys(annotations).length === 0 ? { mediaType, digest, size } : { mediaType, digest, size, annotations };
}

function ztocRefOf(desc: SociDescriptor, where: string): SociZtocRef {
  const a = desc.annotations ?? {};
  const layerDigest = a[ANNOTATION_LAYER_DIGEST];
  if (layerDigest === undefined || !DIGEST.test(layerDigest)) throw new FormatError(`SOCI index ${where}: ${ANNOTATION_LAYER_DIGEST} ${JSON.stringify(layerDigest ?? null)} is not sha256:<64 hex>`);
  const ref: { -readonly [K in keyof SociZtocRef]: SociZtocRef[K] } = {
    ztoc: desc,
    layerDigest,
    layerMediaType: a[ANNOTATION_LAYER_MEDIA_TYPE] ?? '',
    disableXattrs: a[ANNOTATION_DISABLE_XATTRS] === 'true',
  };
  const span = a[ANNOTATION_SPAN_SIZE];
  if (span !== undefined) {
    if (!/^\d{1,16}$/.test(span) || !Number.isSafeInteger(Number(span))) throw new FormatError(`SOCI index ${where}: ${ANNOTATION_SPAN_SIZE} ${JSON.stringify(span.slice(0, 40))} is not a byte count`);
    ref.spanSize = Number(span);
  }
  return ref;
}

/**
 * Parses a SOCI index manifest. Throws FormatError when the bytes are not JSON, not an OCI manifest, the
 * config media type is not a SOCI index type, a v1 index has no subject, a zTOC has no image-layer-digest,
 * or two zTOCs claim the same layer. Layers of other media types are skipped (future soci artifacts).
 */
export function parseSociIndex(bytes: Uint8Array): SociIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new FormatError(`SOCI index is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(doc)) throw new FormatError('SOCI index is not a JSON object');
  if (doc['schemaVersion'] !== 2) throw new FormatError(`SOCI index schemaVersion ${JSON.stringify(doc['schemaVersion'] ?? null)} is not 2`);
  if (doc['mediaType'] !== undefined && doc['mediaType'] !== OCI_MANIFEST_MEDIA_TYPE) {
    throw new FormatError(`SOCI index mediaType ${JSON.stringify(doc['mediaType'])} is not ${OCI_MANIFEST_MEDIA_TYPE}`);
  }
  const config = descriptorOf(doc['config'], 'config');
  const version = config.mediaType === SOCI_INDEX_V1 ? 'v1' : config.mediaType === SOCI_INDEX_V2 ? 'v2' : undefined;
  if (version === undefined) throw new FormatError(`SOCI index config.mediaType ${JSON.stringify(config.mediaType)} is not ${SOCI_INDEX_V1} or ${SOCI_INDEX_V2}`);
  const artifactType = doc['artifactType'];
  if (artifactType !== undefined && artifactType !== config.mediaType) {
    throw new FormatError(`SOCI index artifactType ${JSON.stringify(artifactType)} disagrees with config.mediaType ${config.mediaType}`);
  }
  const subject = doc['subject'] === undefined || doc['subject'] === null ? undefined : descriptorOf(doc['subject'], 'subject');
  // v1 is found through the referrers API by its subject; without one it belongs to no image.
  if (version === 'v1' && subject === undefined) throw new FormatError('SOCI index v1 has no subject (the image manifest it indexes)');
  const layers = doc['layers'];
  if (!Array.isArray(layers)) throw new FormatError('SOCI index layers is not an array');
  const ztocs: SociZtocRef[] = [];
  const prefetch: SociDescriptor[] = [];
  const seen = new Set<string>();
  layers.forEach((layer, i) => {
    const desc = descriptorOf(layer, `layers[${i}]`);
    if (desc.mediaType === SOCI_PREFETCH_MEDIA_TYPE) prefetch.push(desc);
    if (desc.mediaType !== ZTOC_MEDIA_TYPE) return;
    const ref = ztocRefOf(desc, `layers[${i}]`);
    if (seen.has(ref.layerDigest)) throw new FormatError(`SOCI index layers[${i}]: a second zTOC for layer ${ref.layerDigest}`);
    seen.add(ref.layerDigest);
    ztocs.push(ref);
  });
  const annotations = annotationsOf(doc['annotations'], 'manifest');
  const index = { version, ztocs, prefetch, buildToolIdentifier: annotations[ANNOTATION_BUILD_TOOL] ?? '', annotations } as const;
  return subject === undefined ? index : { ...index, subject };
}

export interface SociIndexInput {
  readonly version: SociIndexVersion;
  /** Required for v1 (the image manifest); ignored for v2, which has none. */
  readonly subject?: SociDescriptor;
  readonly ztocs: readonly SociZtocRef[];
  readonly buildToolIdentifier: string;
}

function descriptorJson(d: SociDescriptor): Record<string, unknown> {
  return d.annotations === undefined ? { mediaType: d.mediaType, digest: d.digest, size: d.size } : { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations };
}

/** The manifest object soci would write for `input` (field order as Go's encoding/json emits it). */
export function sociIndexManifest(input: SociIndexInput): Record<string, unknown> {
  if (input.version === 'v1' && input.subject === undefined) throw new InvalidOptionError('subject', 'a v1 SOCI index needs the image manifest as subject');
  const layers = input.ztocs.map((z) => {
    const annotations: Record<string, string> = { [ANNOTATION_LAYER_MEDIA_TYPE]: z.layerMediaType, [ANNOTATION_LAYER_DIGEST]: z.layerDigest };
    if (z.spanSize !== undefined) annotations[ANNOTATION_SPAN_SIZE] = String(z.spanSize);
    if (z.disableXattrs) annotations[ANNOTATION_DISABLE_XATTRS] = 'true';
    return descriptorJson({ mediaType: ZTOC_MEDIA_TYPE, digest: z.ztoc.digest, size: z.ztoc.size, annotations });
  });
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: input.version === 'v1' ? SOCI_INDEX_V1 : SOCI_INDEX_V2, digest: EMPTY_JSON_DIGEST, size: 2 },
    layers,
    ...(input.version === 'v1' ? { subject: descriptorJson(input.subject!) } : {}),
    annotations: { [ANNOTATION_BUILD_TOOL]: input.buildToolIdentifier },
  };
}

/** Serialises a SOCI index; `digest` is what an image manifest's `com.amazon.soci.index-digest` names (v2). */
export function writeSociIndex(input: SociIndexInput): { readonly bytes: Uint8Array; readonly digest: string; readonly mediaType: string } {
  const bytes = new Uint8Array(Buffer.from(JSON.stringify(sociIndexManifest(input)), 'utf8'));
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, mediaType: OCI_MANIFEST_MEDIA_TYPE };
}

/**
 * The v2 SOCI index an image manifest names, from the annotations of its descriptor in the image index
 * (or of the manifest itself); undefined when it names none. Throws FormatError for a malformed digest.
 */
export function sociIndexDigestOf(annotations: Readonly<Record<string, string>> | undefined): string | undefined {
  const value = annotations?.[ANNOTATION_INDEX_DIGEST];
  if (value === undefined) return undefined;
  if (!DIGEST.test(value)) throw new FormatError(`${ANNOTATION_INDEX_DIGEST} ${JSON.stringify(value.slice(0, 80))} is not sha256:<64 hex>`);
  return value;
}
