/**
 * The SOCI v2 form (soci-snapshotter `soci/soci_convert.go`, `Convert`): the index manifest without a
 * subject (config media type index.v2), and a NEW image index, tagged DST, in which
 *  - the indexed image's manifest is rewritten as an OCI image manifest (config media type OCI too, as soci
 *    does: registries refuse a Docker manifest carrying annotations, or mixed with OCI artifacts) with the
 *    annotation `com.amazon.soci.index-digest` = the v2 index's digest; its descriptor carries the same
 *    annotations and the platform;
 *  - the v2 index is listed too: media type OCI manifest, `artifactType` index.v2, the platform, and
 *    `com.amazon.soci.image-manifest-digest` = the rewritten manifest's digest (replacing an older v2 index
 *    of the same platform);
 *  - a single-manifest REF becomes an index of that manifest (its platform from the config); a
 *    multi-platform REF keeps its other manifests as they are.
 * Rewriting the manifest changes its digest: that is why v2 is a new image (DST), and v1 stays the default.
 */
import { ANNOTATION_IMAGE_MANIFEST_DIGEST, ANNOTATION_INDEX_DIGEST, EMPTY_JSON_DIGEST, OCI_MANIFEST_MEDIA_TYPE, SOCI_INDEX_V2, writeSociIndex, type SociZtocRef } from '../formats/soci/index-manifest.js';
import { FormatError, InvalidOptionError } from '../errors.js';
import { Readable } from 'node:stream';
import type { RegistryClient, ResolvedImage } from '../registry/client.js';
import { digestOf } from '../registry/digest.js';
import { MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX } from '../registry/manifest.js';
import type { Descriptor, ImageReference, Platform } from '../registry/types.js';

export interface SociV2Result {
  /** The v2 SOCI index manifest. */
  readonly index: Descriptor;
  /** The image manifest with the index-digest annotation. */
  readonly manifest: Descriptor;
  /** The image index tagged DST. */
  readonly imageIndex: Descriptor;
}

type Json = Record<string, unknown>;

function jsonOf(bytes: Uint8Array, what: string): Json {
  const doc: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new FormatError(`${what} is not a JSON object`);
  return doc as Json;
}

const encode = (doc: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(doc));

/** Copies a blob into DST's repository unless it is there (same repository: nothing to do). */
async function copyBlob(client: RegistryClient, from: ImageReference, to: ImageReference, blob: Descriptor, signal?: AbortSignal): Promise<void> {
  if (await client.blobExists(to, blob.digest, { signal })) return;
  await client.pushBlob(to, blob.digest, () => Readable.from(client.streamBlob(from, blob, { signal })), blob.size, { signal });
}

async function platformOf(client: RegistryClient, image: ResolvedImage, signal?: AbortSignal): Promise<Platform> {
  const listed = image.index?.document.manifests.find((d) => d.digest === image.manifest.digest)?.platform;
  if (listed) return listed;
  const { document: config } = await client.getConfig(image.ref, image.manifest, { signal });
  if (typeof config.os !== 'string' || typeof config.architecture !== 'string') throw new FormatError(`image config ${image.manifest.document.config.digest} names no os and architecture`);
  return { os: config.os, architecture: config.architecture, ...(typeof config.variant === 'string' ? { variant: config.variant } : {}) };
}

export async function writeSociV2(
  client: RegistryClient,
  image: ResolvedImage,
  ztocs: readonly SociZtocRef[],
  dst: ImageReference,
  opts: { readonly buildToolIdentifier: string; readonly signal?: AbortSignal },
): Promise<SociV2Result> {
  const { signal } = opts;
  const src = image.ref;
  const sameRepo = src.registry === dst.registry && src.repository === dst.repository;
  // The other platforms' manifests (and their blobs) would have to be copied too: a whole-image copy.
  if (!sameRepo && image.index !== undefined) {
    throw new InvalidOptionError('--v2', `a multi-platform image is written only into its own repository (${src.registry}/${src.repository}), not ${dst.registry}/${dst.repository}`);
  }
  if (dst.tag === undefined) throw new InvalidOptionError('--v2', 'DST needs a tag (the new image index is tagged with it)');
  const doc = image.manifest.document;
  if (!sameRepo) {
    for (const blob of [doc.config, ...doc.layers]) await copyBlob(client, src, dst, blob, signal);
    for (const z of ztocs) await copyBlob(client, src, dst, z.ztoc, signal);
    await copyBlob(client, src, dst, { mediaType: 'application/json', digest: EMPTY_JSON_DIGEST, size: 2 }, signal);
  }
  const platform = await platformOf(client, image, signal);

  const soci = writeSociIndex({ version: 'v2', ztocs, buildToolIdentifier: opts.buildToolIdentifier });
  await client.putManifest(dst, soci.digest, OCI_MANIFEST_MEDIA_TYPE, soci.bytes, { signal });

  const manifest = jsonOf(image.manifest.bytes, 'image manifest');
  manifest['mediaType'] = OCI_MANIFEST_MEDIA_TYPE;
  const config = manifest['config'] as Json;
  if (config['mediaType'] === MEDIA_TYPE_DOCKER_CONFIG) config['mediaType'] = MEDIA_TYPE_OCI_CONFIG;
  const annotations = { ...((manifest['annotations'] as Record<string, string> | undefined) ?? {}), [ANNOTATION_INDEX_DIGEST]: soci.digest };
  manifest['annotations'] = annotations;
  const manifestBytes = encode(manifest);
  const manifestDigest = digestOf(manifestBytes);
  await client.putManifest(dst, manifestDigest, OCI_MANIFEST_MEDIA_TYPE, manifestBytes, { signal });
  const manifestDesc: Descriptor = { mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: manifestDigest, size: manifestBytes.length, annotations, platform };
  const sociDesc: Descriptor = {
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: SOCI_INDEX_V2,
    digest: soci.digest,
    size: soci.bytes.length,
    annotations: { [ANNOTATION_IMAGE_MANIFEST_DIGEST]: manifestDigest },
    platform,
  };

  const samePlatform = (d: Json): boolean => {
    const p = d['platform'] as Platform | undefined;
    return p?.os === platform.os && p?.architecture === platform.architecture && (p?.variant ?? '') === (platform.variant ?? '');
  };
  let index: Json;
  if (image.index) {
    index = jsonOf(image.index.bytes, 'image index');
    const manifests = (index['manifests'] as Json[]).filter((d) => !(d['artifactType'] === SOCI_INDEX_V2 && samePlatform(d)));
    index['manifests'] = [...manifests.map((d) => (d['digest'] === image.manifest.digest ? { ...d, ...manifestDesc } : d)), sociDesc];
    index['mediaType'] = MEDIA_TYPE_OCI_INDEX;
  } else {
    index = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [manifestDesc, sociDesc] };
  }
  const indexBytes = encode(index);
  const indexDigest = await client.putManifest(dst, dst.tag, MEDIA_TYPE_OCI_INDEX, indexBytes, { signal });
  return {
    index: { mediaType: OCI_MANIFEST_MEDIA_TYPE, artifactType: SOCI_INDEX_V2, digest: soci.digest, size: soci.bytes.length },
    manifest: manifestDesc,
    imageIndex: { mediaType: MEDIA_TYPE_OCI_INDEX, digest: indexDigest, size: indexBytes.length },
  };
}
