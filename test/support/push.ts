// Seeds a registry over plain HTTP without auth (the `seedUrl` of test/support/registry.ts), with the
// distribution 2.8 push protocol: it has no monolithic POST upload, so every blob is POST (open a
// session) then PUT Location?digest=... with the whole body (TESTING.md).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request } from 'undici';
import type { BuiltImage, BuiltIndex } from './image-builder.js';

export type BlobSource = { readonly path: string; readonly digest?: string } | { readonly bytes: Uint8Array; readonly digest?: string };

export interface PushedBlob {
  readonly digest: string;
  readonly size: number;
  /** True when HEAD said the registry already had it, so nothing was uploaded. */
  readonly existed: boolean;
}

// reset: one connection per request. Idle keep-alive sockets would make the registry's graceful stop
// wait for them until the harness kills it.
const once = { reset: true } as const;

function v2(seedUrl: string, repo: string, rest: string): URL {
  return new URL(`/v2/${repo}/${rest}`, seedUrl);
}

async function failure(what: string, res: { statusCode: number; body: { text(): Promise<string> } }): Promise<Error> {
  const body = await res.body.text().catch(() => '');
  return new Error(`${what}: HTTP ${res.statusCode} ${body.slice(0, 500)}`);
}

async function digestOf(source: BlobSource): Promise<string> {
  if (source.digest) return source.digest;
  const hash = createHash('sha256');
  if ('bytes' in source) hash.update(source.bytes);
  else for await (const chunk of createReadStream(source.path) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

export async function blobExists(seedUrl: string, repo: string, digest: string): Promise<boolean> {
  const res = await request(v2(seedUrl, repo, `blobs/${digest}`), { method: 'HEAD', ...once });
  await res.body.dump();
  if (res.statusCode === 200) return true;
  if (res.statusCode === 404) return false;
  throw new Error(`HEAD blob ${digest} in ${repo}: HTTP ${res.statusCode}`);
}

/** Uploads one blob unless the registry has it; a file is streamed, never read into memory. */
export async function pushBlob(seedUrl: string, repo: string, source: BlobSource): Promise<PushedBlob> {
  const digest = await digestOf(source);
  const size = 'bytes' in source ? source.bytes.byteLength : (await stat(source.path)).size;
  if (await blobExists(seedUrl, repo, digest)) return { digest, size, existed: true };

  const opened = await request(v2(seedUrl, repo, 'blobs/uploads/'), { method: 'POST', ...once });
  const location = opened.headers.location;
  if (opened.statusCode !== 202 || typeof location !== 'string') throw await failure(`POST upload ${repo}`, opened);
  await opened.body.dump();

  const target = new URL(location, seedUrl);
  target.searchParams.set('digest', digest);
  const put = await request(target, {
    method: 'PUT',
    ...once,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: 'bytes' in source ? Buffer.from(source.bytes) : createReadStream(source.path),
  });
  if (put.statusCode !== 201) throw await failure(`PUT blob ${digest} in ${repo}`, put);
  await put.body.dump();
  return { digest, size, existed: false };
}

/**
 * PUTs manifest bytes exactly as given (malformed ones too) and returns the digest the registry
 * answers in Docker-Content-Digest.
 */
export async function putManifest(
  seedUrl: string,
  repo: string,
  ref: string,
  mediaType: string,
  bytes: Uint8Array,
): Promise<string> {
  const res = await request(v2(seedUrl, repo, `manifests/${ref}`), {
    method: 'PUT',
    ...once,
    headers: { 'content-type': mediaType },
    body: Buffer.from(bytes),
  });
  if (res.statusCode !== 201) throw await failure(`PUT manifest ${repo}:${ref}`, res);
  await res.body.dump();
  const digest = res.headers['docker-content-digest'];
  if (typeof digest !== 'string') throw new Error(`PUT manifest ${repo}:${ref}: no Docker-Content-Digest`);
  return digest;
}

/** Pushes layers, config and manifest; without `tagOrDigest` the manifest is put by its digest. */
export async function pushImage(
  seedUrl: string,
  repo: string,
  tagOrDigest: string | undefined,
  image: BuiltImage,
): Promise<{ digest: string }> {
  for (const layer of image.layers) await pushBlob(seedUrl, repo, { path: layer.path, digest: layer.digest });
  await pushBlob(seedUrl, repo, { bytes: image.config.bytes, digest: image.config.digest });
  const ref = tagOrDigest ?? image.manifest.digest;
  const digest = await putManifest(seedUrl, repo, ref, image.manifest.mediaType, image.manifest.bytes);
  return { digest };
}

/** Pushes every image of the index by digest, then the index under `tagOrDigest` (or its digest). */
export async function pushIndex(
  seedUrl: string,
  repo: string,
  tagOrDigest: string | undefined,
  index: BuiltIndex,
): Promise<{ digest: string }> {
  for (const image of index.images) await pushImage(seedUrl, repo, undefined, image);
  const digest = await putManifest(seedUrl, repo, tagOrDigest ?? index.digest, index.mediaType, index.bytes);
  return { digest };
}
