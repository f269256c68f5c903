/**
 * Where a blob's bytes are served from. Registries backed by object storage answer a blob GET with a
 * redirect to a signed CDN/S3 URL; following it on every range read would double the round trips, so the
 * target is resolved once per blob (`GET` + `Range: bytes=0-1`, redirects not followed, DESIGN.md §2),
 * remembered until shortly before its signature expires, and resolved again when the target refuses it
 * (401/403/410). A registry that serves blobs itself is remembered as "direct" for the client's life.
 */
import { debuglog } from 'node:util';
import { pullScope } from './auth.js';
import { raceSignal, singleFlight } from './flight.js';
import { contentLength, discard, drop, header, isRedirect, parseContentRange, statusError } from './http.js';
import { RangeNotSatisfiableError } from './range-not-satisfiable.js';
import type { Transport } from './transport.js';

const debug = debuglog('tocfs');

export interface BlobLocation {
  /** The redirect target; undefined when the registry serves the blob itself. */
  readonly target: URL | undefined;
  /** Epoch ms after which the target must be resolved again. */
  readonly expiresAt: number;
}

export interface BlobLocatorOptions {
  readonly transport: Transport;
  readonly now?: () => number;
  readonly onResolve?: () => void;
  /** Remembered blobs; the oldest is forgotten beyond this. Default 4096. */
  readonly maxEntries?: number;
}

/** Longest we trust a signed URL when it does not say (docker and containerd use similar figures). */
const DEFAULT_TARGET_TTL_MS = 5 * 60_000;
const MAX_MARGIN_MS = 30_000;

export function blobPath(repository: string, digest: string): string {
  return `/v2/${repository}/blobs/${digest}`;
}

export class BlobLocator {
  #o: BlobLocatorOptions;
  #now: () => number;
  #max: number;
  #locations = new Map<string, BlobLocation>();
  #sizes = new Map<string, number>();
  #inflight = new Map<string, Promise<BlobLocation>>();

  constructor(opts: BlobLocatorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxEntries ?? 4096;
  }

  async locate(registry: string, repository: string, digest: string, signal?: AbortSignal): Promise<BlobLocation> {
    const key = keyOf(registry, repository, digest);
    const known = this.#locations.get(key);
    if (known && known.expiresAt > this.#now()) return known;
    return raceSignal(
      singleFlight(this.#inflight, key, () => this.#resolve(registry, repository, digest)),
      signal,
    );
  }

  /** Drops `loc` (when still current) after its target refused us, so the next locate resolves again. */
  forget(registry: string, repository: string, digest: string, loc: BlobLocation): void {
    const key = keyOf(registry, repository, digest);
    if (this.#locations.get(key) === loc) this.#locations.delete(key);
  }

  /** A blob size learnt on the way (Content-Range totals, HEAD), for reads given only a digest. */
  sizeOf(registry: string, repository: string, digest: string): number | undefined {
    return this.#sizes.get(keyOf(registry, repository, digest));
  }

  noteSize(registry: string, repository: string, digest: string, size: number): void {
    this.#bounded(this.#sizes, keyOf(registry, repository, digest), size);
  }

  async #resolve(registry: string, repository: string, digest: string): Promise<BlobLocation> {
    const t = this.#o.transport;
    const path = blobPath(repository, digest);
    const ctx = t.context(registry, 'GET', path);
    this.#o.onResolve?.();
    let res;
    try {
      res = await t.send(registry, { method: 'GET', path, headers: { range: 'bytes=0-1' }, scope: pullScope(repository) });
    } catch (err) {
      // An empty blob has no byte 0; the 416 still proves the registry serves it directly.
      if (!(err instanceof RangeNotSatisfiableError)) throw err;
      if (err.totalSize !== undefined) this.noteSize(registry, repository, digest, err.totalSize);
      return this.#store(registry, repository, digest, { target: undefined, expiresAt: Infinity });
    }
    const status = res.statusCode;
    if (isRedirect(status)) {
      const location = header(res, 'location');
      if (location === undefined) throw await statusError(ctx, res, `blob ${digest}`);
      await discard(res);
      const target = new URL(location, await t.origin(registry));
      debug('registry %s: blob %s redirects to %s', registry, digest, target.host);
      return this.#store(registry, repository, digest, { target, expiresAt: this.#expiry(target) });
    }
    if (status === 206 || status === 200) {
      const total = status === 206 ? parseContentRange(header(res, 'content-range'))?.total : contentLength(res);
      if (total !== undefined) this.noteSize(registry, repository, digest, total);
      // A 200 is the whole blob, possibly gigabytes: drop the connection rather than read it.
      if (status === 206) await discard(res);
      else drop(res.body);
      return this.#store(registry, repository, digest, { target: undefined, expiresAt: Infinity });
    }
    throw await statusError(ctx, res, `blob ${digest}`);
  }

  /** Resolution time plus the signature's own lifetime (S3, GCS, CloudFront), capped, minus a margin. */
  #expiry(target: URL): number {
    const now = this.#now();
    const q = target.searchParams;
    let ttl = DEFAULT_TARGET_TTL_MS;
    for (const name of ['X-Amz-Expires', 'X-Goog-Expires']) {
      const v = Number(q.get(name) ?? NaN);
      if (Number.isFinite(v) && v >= 0) ttl = Math.min(ttl, v * 1000);
    }
    const epoch = Number(q.get('Expires') ?? NaN);
    if (Number.isFinite(epoch) && epoch > 0) ttl = Math.min(ttl, epoch * 1000 - now);
    return now + Math.max(0, ttl - Math.min(MAX_MARGIN_MS, ttl / 10));
  }

  #store(registry: string, repository: string, digest: string, loc: BlobLocation): BlobLocation {
    this.#bounded(this.#locations, keyOf(registry, repository, digest), loc);
    return loc;
  }

  #bounded<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    if (map.size >= this.#max) map.delete(map.keys().next().value!);
    map.set(key, value);
  }
}

function keyOf(registry: string, repository: string, digest: string): string {
  return `${registry}/${repository}@${digest}`;
}
