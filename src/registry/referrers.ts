/**
 * The artifacts that refer to a manifest (OCI distribution 1.1): SOCI indexes (DESIGN.md §3.3) and prefetch
 * profiles (§3.7). Two ways to ask, in the spec's order:
 *
 * - the referrers API, `GET /v2/NAME/referrers/DIGEST?artifactType=T`, an image index of descriptors;
 * - where a registry has none (distribution 2.8, as Debian packages it, answers 404), the tag schema: the
 *   tag `sha256-HEX` holds an image index that clients keep up to date when they push a referrer.
 *
 * A registry's answer is learnt once per host: the first lookup asks both ways at once (so it costs no round
 * trip after the other), every later one only the way that host answered, so a manifest with no referrers
 * costs one request. A referrers answer that is not an index (garbage) is ignored, as a 404 would be.
 */
import { FormatError, isTocfsError } from '../errors.js';
import { pullScope } from './auth.js';
import { parseDigest } from './digest.js';
import { readBody, statusError } from './http.js';
import { MAX_MANIFEST_BYTES, MEDIA_TYPE_OCI_INDEX, parseManifest } from './manifest.js';
import { fetchManifest, type ManifestDeps } from './manifests.js';
import { putManifest } from './push.js';
import { withRetry } from './retry.js';
import type { Descriptor, RepositoryRef } from './types.js';

/** How a registry lists referrers, learnt from its first answer. */
type Way = 'api' | 'tag';

export class Referrers {
  readonly #deps: ManifestDeps;
  readonly #ways = new Map<string, Way>();

  constructor(deps: ManifestDeps) {
    this.#deps = deps;
  }

  /**
   * Descriptors of the manifests that name `subject` (a manifest digest) as their subject, of
   * `artifactType` when given (by the descriptor's `artifactType`); [] when there are none. Errors other
   * than "none" (the registry down, credentials refused) are thrown.
   */
  async list(repo: RepositoryRef, subject: string, artifactType: string | undefined, signal?: AbortSignal): Promise<Descriptor[]> {
    const way = this.#ways.get(repo.registry);
    let found: Descriptor[] | undefined;
    if (way === 'api') found = await this.#viaApi(repo, subject, artifactType, signal);
    else if (way === 'tag') found = await this.#viaTag(repo, subject, signal);
    else {
      const [api, tag] = await Promise.allSettled([this.#viaApi(repo, subject, artifactType, signal), this.#viaTag(repo, subject, signal)]);
      if (api.status === 'fulfilled' && api.value !== undefined) {
        this.#ways.set(repo.registry, 'api');
        found = api.value;
      } else if (tag.status === 'fulfilled') {
        if (api.status === 'fulfilled') this.#ways.set(repo.registry, 'tag');
        found = tag.value;
      } else {
        throw tag.reason;
      }
    }
    return (found ?? []).filter((d) => artifactType === undefined || d.artifactType === artifactType);
  }

  /**
   * Records `referrer` (a manifest already pushed, whose `subject` is `subject`) where clients will find it:
   * a registry with the referrers API indexed it when it was pushed; for one without, the tag-schema index
   * `sha256-HEX` gets it added (read, merged by digest, written back).
   */
  async add(repo: RepositoryRef, subject: string, referrer: Descriptor, signal?: AbortSignal): Promise<void> {
    const present = await this.list(repo, subject, undefined, signal);
    if (this.#ways.get(repo.registry) === 'api' || present.some((d) => d.digest === referrer.digest)) return;
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_INDEX,
      manifests: [...present.filter((d) => d.digest !== referrer.digest), referrer],
    };
    const bytes = new TextEncoder().encode(JSON.stringify(index));
    await putManifest(this.#deps.blobs, repo, referrersTag(subject), MEDIA_TYPE_OCI_INDEX, bytes, signal);
  }

  /** The referrers API's index, or undefined when the registry has no such API (or answers garbage). */
  async #viaApi(repo: RepositoryRef, subject: string, artifactType: string | undefined, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    parseDigest(subject);
    const { transport: t, policy, hooks } = this.#deps.blobs;
    const query = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
    const path = `/v2/${repo.repository}/referrers/${subject}${query}`;
    const ctx = t.context(repo.registry, 'GET', path);
    const name = `referrers of ${repo.registry}/${repo.repository}@${subject}`;
    return withRetry(
      ctx,
      policy,
      signal,
      async (_n, bounded) => {
        const res = await t.send(repo.registry, { method: 'GET', path, headers: { accept: MEDIA_TYPE_OCI_INDEX }, scope: pullScope(repo.repository), signal: bounded });
        if (res.statusCode === 404 || res.statusCode === 400 || res.statusCode === 405) {
          await readBody(res.body, 4096, name, true).catch(() => undefined);
          return undefined;
        }
        if (res.statusCode !== 200) throw await statusError(ctx, res, name);
        const bytes = await readBody(res.body, MAX_MANIFEST_BYTES, name);
        try {
          const doc = parseManifest(bytes, MEDIA_TYPE_OCI_INDEX);
          if (doc.kind !== 'index') throw new FormatError(`${name}: not an image index`);
          return [...doc.manifests];
        } catch (err) {
          if (isTocfsError(err) && err.code === 'FORMAT') return undefined;
          throw err;
        }
      },
      hooks,
    );
  }

  /** The tag schema's index (`sha256-HEX`); [] when the tag does not exist or holds no index. */
  async #viaTag(repo: RepositoryRef, subject: string, signal?: AbortSignal): Promise<Descriptor[]> {
    try {
      const fetched = await fetchManifest(this.#deps, repo, referrersTag(subject), signal);
      return fetched.document.kind === 'index' ? [...fetched.document.manifests] : [];
    } catch (err) {
      if (isTocfsError(err) && (err.code === 'NOT_FOUND' || err.code === 'FORMAT')) return [];
      throw err;
    }
  }
}

/** The tag under which the OCI 1.1 tag schema keeps the referrers of `subject`. */
export function referrersTag(subject: string): string {
  const { algorithm, hex } = parseDigest(subject);
  return `${algorithm}-${hex}`;
}
