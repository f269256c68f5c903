/**
 * Manifests and configs: fetch with the Accept header distribution needs, verify digests, pick the
 * platform from an index. Every document fetched by digest is checked against that digest; one fetched
 * by tag is checked against `Docker-Content-Digest` when the registry sends it.
 */
import { DigestMismatchError, FormatError } from '../errors.js';
import { pullScope } from './auth.js';
import { streamBlob } from './blob-stream.js';
import type { BlobDeps } from './blobs.js';
import { digestOf, isDigest, parseDigest } from './digest.js';
import { contentLength, drop, header, readBody, statusError } from './http.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, parseManifest } from './manifest.js';
import { selectManifest } from './platform.js';
import { formatReference } from './reference.js';
import { withRetry } from './retry.js';
import type {
  FetchedConfig,
  FetchedManifest,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  ImageReference,
  Platform,
  RepositoryRef,
} from './types.js';

export interface ManifestDeps {
  readonly blobs: BlobDeps;
  /** Largest config blob accepted (STYLE.md item 14: limits are options). */
  readonly maxConfigBytes: number;
}

/** An image reference resolved to one platform's manifest. */
export interface ResolvedImage {
  /** The reference pinned: as given, with `digest` set to what it resolved to. */
  readonly ref: ImageReference;
  readonly manifest: FetchedManifest<ImageManifest>;
  /** The index or manifest list the manifest was chosen from, when the reference named one. */
  readonly index?: FetchedManifest<ImageIndex>;
  /** The digest the reference resolved to (the index's when there is one): pin the image with it. */
  readonly digest: string;
}

function named(repo: RepositoryRef, reference: string): string {
  const ref = isDigest(reference) ? { ...repo, digest: reference } : { ...repo, tag: reference };
  return formatReference(ref);
}

/** GET one manifest or index by tag or digest. */
export async function fetchManifest(
  deps: ManifestDeps,
  repo: RepositoryRef,
  reference: string,
  signal?: AbortSignal,
): Promise<FetchedManifest> {
  const { transport: t, policy, hooks } = deps.blobs;
  const path = `/v2/${repo.repository}/manifests/${reference}`;
  const ctx = t.context(repo.registry, 'GET', path);
  const name = `manifest ${named(repo, reference)}`;
  return withRetry(
    ctx,
    policy,
    signal,
    async (_n, bounded) => {
      const res = await t.send(repo.registry, {
        method: 'GET',
        path,
        headers: { accept: MANIFEST_ACCEPT },
        scope: pullScope(repo.repository),
        signal: bounded,
      });
      if (res.statusCode !== 200) throw await statusError(ctx, res, name);
      const n = contentLength(res);
      if (n !== undefined && n > MAX_MANIFEST_BYTES) {
        drop(res.body);
        throw new FormatError(`${name} is ${n} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
      }
      const bytes = await readBody(res.body, MAX_MANIFEST_BYTES, name);
      const digest = checkDigest(name, reference, bytes, header(res, 'docker-content-digest'));
      const document = parseManifest(bytes, header(res, 'content-type'));
      return { document, bytes, digest, mediaType: document.mediaType };
    },
    hooks,
  );
}

function checkDigest(name: string, reference: string, bytes: Uint8Array, claimed: string | undefined): string {
  if (isDigest(reference)) {
    const actual = digestOf(bytes, parseDigest(reference).algorithm);
    if (actual !== reference) throw new DigestMismatchError(name, reference, actual);
    return reference;
  }
  const sha256 = digestOf(bytes);
  // By tag nothing else vouches for the bytes; the registry's own digest header at least catches damage
  // in transit. A header we cannot parse is ignored, as docker does.
  if (claimed !== undefined && isDigest(claimed)) {
    const actual = digestOf(bytes, parseDigest(claimed).algorithm);
    if (actual !== claimed) throw new DigestMismatchError(name, claimed, actual);
  }
  return sha256;
}

/** Resolves a reference to the manifest for `platform`, through an index when the reference names one. */
export async function resolveImage(
  deps: ManifestDeps,
  ref: ImageReference,
  platform: Platform,
  signal?: AbortSignal,
): Promise<ResolvedImage> {
  const top = await fetchManifest(deps, ref, ref.digest ?? ref.tag ?? 'latest', signal);
  const pinned: ImageReference = { ...ref, digest: top.digest };
  if (top.document.kind === 'manifest') {
    return { ref: pinned, manifest: top as FetchedManifest<ImageManifest>, digest: top.digest };
  }
  const index = top as FetchedManifest<ImageIndex>;
  const chosen = selectManifest(index.document, platform);
  const child = await fetchManifest(deps, ref, chosen.digest, signal);
  if (child.document.kind !== 'manifest') {
    const what = `index ${formatReference(pinned)} lists ${chosen.digest} as an image manifest`;
    throw new FormatError(`${what}, but it is an index`);
  }
  if (child.bytes.length !== chosen.size) {
    const what = `index ${formatReference(pinned)} gives ${chosen.digest} a size of ${chosen.size}`;
    throw new FormatError(`${what}, not ${child.bytes.length}`);
  }
  return { ref: pinned, manifest: child as FetchedManifest<ImageManifest>, index, digest: top.digest };
}

/** Fetches the config blob, verified against the manifest's config descriptor, and parses it. */
export async function fetchConfig(
  deps: ManifestDeps,
  repo: RepositoryRef,
  manifest: ImageManifest,
  signal?: AbortSignal,
): Promise<FetchedConfig> {
  const desc = manifest.config;
  if (desc.size > deps.maxConfigBytes) {
    throw new FormatError(`config ${desc.digest} is ${desc.size} bytes, over the ${deps.maxConfigBytes}-byte limit`);
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of streamBlob(deps.blobs, repo, desc, signal)) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new FormatError(`config ${desc.digest} is not valid UTF-8 JSON`, { cause: err });
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new FormatError(`config ${desc.digest} is not a JSON object`);
  }
  return { document: document as ImageConfig, bytes, digest: desc.digest };
}
