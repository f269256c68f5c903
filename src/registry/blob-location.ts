/**
 * Where a blob's bytes are served from. Registries backed by object storage answer a blob GET with a
 * redirect to a signed CDN/S3 URL; following it on every range read would double the round trips, so the
 * target is resolved once per blob (a `GET` with a Range, redirects not followed, DESIGN.md §2),
 * remembered until shortly before its signature expires, and resolved again when the target refuses it
 * (401/403/410). A registry that serves blobs itself is remembered as "direct" for the client's life.
 *
 * The resolving GET is the blob's first read itself, not a `bytes=0-1` probe sent before it: a registry
 * that redirects answers it with the same redirect the probe would get, and one that serves the blob
 * answers it with the bytes, a round trip sooner (issue 8: every layer's TOC read waited for its probe).
 * On a registry known to redirect, reads that arrive while that GET is out wait for its answer, so each
 * blob is resolved once. On one that serves its blobs, or has not answered yet, they go out at once: a
 * layer's TOC read must not wait a round trip behind its prefetch's first request, and the price is a
 * redirect per such read the first time a redirecting registry is used.
 */
import { debuglog } from 'node:util';
import { header, isRedirect, parseContentRange, type HttpResponse } from './http.js';
import { abortable, deferred } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';

const debug = debuglog('tocfs');

export interface BlobLocation {
  /** The redirect target; undefined when the registry serves the blob itself. */
  readonly target: URL | undefined;
  /** Epoch ms after which the target must be resolved again. */
  readonly expiresAt: number;
}

/**
 * The right, and duty, to resolve a blob's location with one's own GET to the registry: `BlobLocator.locate`
 * gives one to the first reader of a blob. One of its methods is called once the answer (or failure) is known.
 */
export interface LocationClaim {
  /** The registry answered: a redirect sets the target, the blob's bytes (200, 206) "direct"; the rest teach nothing. */
  answered(res: HttpResponse, origin: string): BlobLocation | undefined;
  /** The registry refused the range as past the blob's end: it serves the blob itself. */
  direct(totalSize: number | undefined): void;
  /** Nothing learnt (an error, an abort): the next reader resolves afresh. */
  abandon(): void;
}

export interface BlobLocatorOptions {
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
  /** The first claim out, by blob: resolves to the location, or undefined when the claim was abandoned. */
  #inflight = new SingleFlight<BlobLocation | undefined>();
  /** Per registry, whether its last resolving GET was answered with a redirect. */
  #redirects = new Map<string, boolean>();

  constructor(opts: BlobLocatorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxEntries ?? 4096;
  }

  /**
   * The blob's location when known, or when a registry known to redirect is resolving it (after waiting
   * for the answer); otherwise a claim: the caller sends its own GET to the registry and reports the answer.
   */
  async locate(registry: string, repository: string, digest: string, signal?: AbortSignal): Promise<BlobLocation | LocationClaim> {
    const key = keyOf(registry, repository, digest);
    for (;;) {
      const known = this.#locations.get(key);
      if (known && known.expiresAt > this.#now()) return known;
      const pending = this.#inflight.get(key);
      if (pending === undefined || this.#redirects.get(registry) !== true) return this.#claim(registry, repository, digest, key);
      const loc = await abortable(pending, signal);
      if (loc !== undefined) return loc;
    }
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

  #claim(registry: string, repository: string, digest: string, key: string): LocationClaim {
    // Only the first claim out is the blob's flight, which others wait on; a later one is no one's.
    const answer = this.#inflight.has(key) ? deferred<BlobLocation | undefined>() : this.#inflight.begin(key);
    this.#o.onResolve?.();
    let open = true;
    const settle = (loc: BlobLocation | undefined): BlobLocation | undefined => {
      if (!open) return loc;
      open = false;
      if (loc !== undefined) {
        this.#redirects.set(registry, loc.target !== undefined);
        this.#store(registry, repository, digest, loc);
      }
      answer.resolve(loc);
      return loc;
    };
    return {
      answered: (res, origin) => {
        const status = res.statusCode;
        if (isRedirect(status)) {
          const location = header(res, 'location');
          // A redirect to nowhere teaches nothing; the caller reports it as the error it is.
          if (location === undefined) return settle(undefined);
          const target = new URL(location, origin);
          debug('registry %s: blob %s redirects to %s', registry, digest, target.host);
          return settle({ target, expiresAt: this.#expiry(target) });
        }
        if (status !== 200 && status !== 206) return settle(undefined);
        if (status === 206) {
          const total = parseContentRange(header(res, 'content-range'))?.total;
          if (total !== undefined) this.noteSize(registry, repository, digest, total);
        }
        return settle({ target: undefined, expiresAt: Infinity });
      },
      direct: (totalSize) => {
        if (totalSize !== undefined) this.noteSize(registry, repository, digest, totalSize);
        settle({ target: undefined, expiresAt: Infinity });
      },
      abandon: () => void settle(undefined),
    };
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
