/**
 * Uploads, for `tocfs convert` and `tocfs index`. Distribution 2.8 has no monolithic upload (TESTING.md):
 * a POST opens an upload session, then one PUT to its Location with `?digest=` sends the whole blob.
 * Each retry opens a new session, which is why a streamed body is given as a factory.
 */
import type { Readable } from 'node:stream';
import { DigestMismatchError, FormatError, TocfsError } from '../errors.js';
import { pullScope, pushScope } from './auth.js';
import { blobPath } from './blob-location.js';
import type { BlobDeps } from './blobs.js';
import { digestOf, isDigest, parseDigest } from './digest.js';
import { describe, discard, header, statusError } from './http.js';
import { withRetry } from './retry.js';
import type { RepositoryRef } from './types.js';

/** Bytes in memory, or a factory for a fresh stream of them (called once per attempt). */
export type BlobSource = Uint8Array | (() => Readable);

async function exists(
  deps: BlobDeps,
  repo: RepositoryRef,
  digest: string,
  scope: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const { transport: t } = deps;
  const path = blobPath(repo.repository, digest);
  const res = await t.send(repo.registry, { method: 'HEAD', path, scope, signal });
  if (res.statusCode === 200) {
    await discard(res);
    return true;
  }
  if (res.statusCode === 404) {
    await discard(res);
    return false;
  }
  throw await statusError(t.context(repo.registry, 'HEAD', path), res, `blob ${digest}`);
}

export async function blobExists(
  deps: BlobDeps,
  repo: RepositoryRef,
  digest: string,
  signal?: AbortSignal,
): Promise<boolean> {
  parseDigest(digest);
  const ctx = deps.transport.context(repo.registry, 'HEAD', blobPath(repo.repository, digest));
  const scope = pullScope(repo.repository);
  return withRetry(ctx, deps.policy, signal, () => exists(deps, repo, digest, scope, signal), deps.hooks);
}

/** Uploads a blob unless the repository already has it. The registry verifies the digest on PUT. */
export async function pushBlob(
  deps: BlobDeps,
  repo: RepositoryRef,
  digest: string,
  source: BlobSource,
  size: number,
  signal?: AbortSignal,
): Promise<void> {
  const { algorithm } = parseDigest(digest);
  if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(`blob ${digest}: invalid size ${size}`);
  if (source instanceof Uint8Array) {
    if (source.length !== size) throw new FormatError(`blob ${digest}: ${source.length} bytes given, size says ${size}`);
    const actual = digestOf(source, algorithm);
    if (actual !== digest) throw new DigestMismatchError(`blob to push to ${repo.repository}`, digest, actual);
  }
  const { transport: t } = deps;
  const scope = pushScope(repo.repository);
  const uploads = `/v2/${repo.repository}/blobs/uploads/`;
  const ctx = t.context(repo.registry, 'POST', uploads);
  await withRetry(
    ctx,
    deps.policy,
    signal,
    async () => {
      if (await exists(deps, repo, digest, scope, signal)) return;
      const headers = { 'content-length': '0' };
      const opened = await t.send(repo.registry, { method: 'POST', path: uploads, headers, scope, signal });
      if (opened.statusCode !== 202) throw await statusError(ctx, opened, `blob ${digest}`);
      const location = header(opened, 'location');
      await discard(opened);
      if (location === undefined) throw new TocfsError('PROTOCOL', `${describe(ctx)}: upload session without a Location`);
      const origin = await t.origin(repo.registry, signal);
      const url = new URL(location, origin);
      url.searchParams.set('digest', digest);
      const put = {
        method: 'PUT' as const,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: source,
        signal,
      };
      // The session URL normally points back at the registry; anywhere else gets no credentials.
      const res =
        url.origin === origin
          ? await t.send(repo.registry, { ...put, path: `${url.pathname}${url.search}`, scope })
          : await t.sendUrl(url, put);
      const putCtx = t.context(repo.registry, 'PUT', url.pathname, url.origin === origin ? undefined : url.host);
      if (res.statusCode !== 201) throw await statusError(putCtx, res, `blob ${digest}`);
      const claimed = header(res, 'docker-content-digest');
      await discard(res);
      if (claimed !== undefined && claimed !== digest) {
        throw new TocfsError('PROTOCOL', `${describe(putCtx)}: registry stored ${claimed}, not ${digest}`);
      }
    },
    deps.hooks,
  );
}

/** PUTs a manifest under a tag or its digest; returns its digest. */
export async function putManifest(
  deps: BlobDeps,
  repo: RepositoryRef,
  reference: string,
  mediaType: string,
  bytes: Uint8Array,
  signal?: AbortSignal,
): Promise<string> {
  const digest = isDigest(reference) ? reference : digestOf(bytes);
  const { algorithm } = parseDigest(digest);
  const actual = digestOf(bytes, algorithm);
  if (actual !== digest) throw new DigestMismatchError(`manifest to push as ${reference}`, digest, actual);
  const { transport: t } = deps;
  const path = `/v2/${repo.repository}/manifests/${reference}`;
  const ctx = t.context(repo.registry, 'PUT', path);
  await withRetry(
    ctx,
    deps.policy,
    signal,
    async () => {
      const res = await t.send(repo.registry, {
        method: 'PUT',
        path,
        headers: { 'content-type': mediaType },
        body: bytes,
        scope: pushScope(repo.repository),
        signal,
      });
      if (res.statusCode !== 201) throw await statusError(ctx, res, `manifest ${repo.repository}:${reference}`);
      const claimed = header(res, 'docker-content-digest');
      await discard(res);
      // A registry may answer in another algorithm than the one we named; only a same-algorithm answer compares.
      const comparable = claimed !== undefined && isDigest(claimed) && parseDigest(claimed).algorithm === algorithm;
      if (comparable && claimed !== digest) {
        throw new TocfsError('PROTOCOL', `${describe(ctx)}: registry stored ${claimed}, not ${digest}`);
      }
    },
    deps.hooks,
  );
  return digest;
}
