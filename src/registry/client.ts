/**
 * The registry client: one per daemon or command, built once (dispatcher -> auth -> transport -> blob
 * locator) and closed once. It knows nothing of caches (STYLE.md item 9): it returns bytes, verified
 * where the registry API lets it verify them.
 */
import type { Readable } from 'node:stream';
import { InvalidOptionError } from '../errors.js';
import { Authenticator, type CredentialLookup } from './auth.js';
import { BlobLocator } from './blob-location.js';
import { streamBlob } from './blob-stream.js';
import { blobSize, readRange, type BlobDeps, type OnRangeData } from './blobs.js';
import { createDispatcher, type ProxyOptions, type RegistryDispatcher, type TimeoutOptions } from './dispatcher.js';
import type { Resolver } from './host-policy.js';
import { fetchConfig, fetchManifest, resolveImage, type ManifestDeps, type ResolvedImage } from './manifests.js';
import { hostPlatform } from './platform.js';
import { isLoopbackRegistry } from './reference.js';
import { blobExists, pushBlob, putManifest } from './push.js';
import { retryPolicy, type RetryOptions } from './retry.js';
import { ClientFigures, type RegistryStats } from './stats.js';
import { Transport } from './transport.js';
import { Referrers } from './referrers.js';
import type {
  ByteRange,
  Descriptor,
  FetchedConfig,
  FetchedManifest,
  ImageManifest,
  ImageReference,
  Platform,
  RepositoryRef,
} from './types.js';

export type { ResolvedImage } from './manifests.js';
export type { RegistryStats } from './stats.js';
export type { CredentialLookup } from './auth.js';

export interface RegistryClientOptions {
  /** Where credentials come from (a docker config's CredentialStore). None: anonymous only. */
  readonly credentials?: CredentialLookup;
  /** `host[:port]` registries allowed plain HTTP and unverified TLS (--insecure-registry). */
  readonly insecureRegistries?: readonly string[];
  /** Extra trusted CA certificates, PEM. */
  readonly ca?: readonly string[];
  /**
   * `--registry-allow` patterns (host, host:port, `*.example.org`): when given, no other host is ever
   * contacted, token realms and redirect targets included (host-policy.ts).
   */
  readonly registryAllow?: readonly string[];
  /** Hosts the operator named besides --insecure-registry (mirrors): allowed even when link-local. */
  readonly namedHosts?: readonly string[];
  /** Name resolution for direct connections (tests). Default: dns.lookup. */
  readonly resolver?: Resolver;
  /** Called before each direct connection is opened (tests: proves what is never dialled). */
  readonly onDial?: (hostname: string, port: number) => void;
  /** Platform picked from indexes when `resolve` is not given one. Default: the host's. */
  readonly platform?: Platform;
  readonly retry?: RetryOptions;
  readonly timeouts?: TimeoutOptions;
  /** Overrides HTTP_PROXY / HTTPS_PROXY / NO_PROXY. */
  readonly proxy?: ProxyOptions;
  readonly userAgent?: string;
  /** Largest image config accepted. Default 8 MiB. */
  readonly maxConfigBytes?: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface RangeCallOptions extends CallOptions {
  /** Called as the body arrives: see blobs.ts `OnRangeData`. */
  readonly onData?: OnRangeData;
}

const DEFAULT_USER_AGENT = 'tocfs/0.1';
const DEFAULT_MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export class RegistryClient {
  #figures = new ClientFigures();
  #dispatcher: RegistryDispatcher;
  #platform: Platform;
  #blobs: BlobDeps;
  #pushes: BlobDeps;
  #manifests: ManifestDeps;
  #referrers: Referrers;
  #closed: Promise<void> | undefined;

  constructor(opts: RegistryClientOptions = {}) {
    const policy = retryPolicy(opts.retry);
    // Uploads (convert, index) move whole layers: no read's time budget applies to them.
    const pushPolicy = { ...policy, budgetMs: Infinity };
    const userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    const maxConfigBytes = opts.maxConfigBytes ?? DEFAULT_MAX_CONFIG_BYTES;
    if (!Number.isSafeInteger(maxConfigBytes) || maxConfigBytes <= 0) {
      throw new InvalidOptionError('maxConfigBytes', 'must be a positive integer');
    }
    if (/[\r\n]/.test(userAgent)) throw new InvalidOptionError('userAgent', 'must be one line');
    const figures = this.#figures;
    this.#dispatcher = createDispatcher({
      figures,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.insecureRegistries ? { insecureRegistries: opts.insecureRegistries } : {}),
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      ...(opts.proxy ? { proxy: opts.proxy } : {}),
      ...(opts.registryAllow ? { registryAllow: opts.registryAllow } : {}),
      ...(opts.namedHosts ? { namedHosts: opts.namedHosts } : {}),
      ...(opts.resolver ? { resolver: opts.resolver } : {}),
      ...(opts.onDial ? { onDial: opts.onDial } : {}),
    });
    const { dispatcher, isInsecure } = this.#dispatcher;
    // Loopback and --insecure-registry hosts: plain HTTP allowed, and credentials may travel over it.
    const trustsPlainHttp = (hostPort: string): boolean => isLoopbackRegistry(hostPort) || isInsecure(hostPort);
    const auth = new Authenticator({
      dispatcher,
      credentials: opts.credentials,
      trustsPlainHttp,
      userAgent,
      onTokenFetch: () => figures.tokenFetches++,
    });
    const transport = new Transport({ dispatcher, auth, trustsPlainHttp, sendsWhileProbing: isInsecure, userAgent });
    const locator = new BlobLocator({ onResolve: () => figures.blobResolutions++ });
    this.#blobs = { transport, locator, policy, figures, hooks: { onRetry: () => figures.retries++ }, stalled: new Map() };
    this.#pushes = { ...this.#blobs, policy: pushPolicy };
    this.#manifests = { blobs: this.#blobs, maxConfigBytes };
    this.#referrers = new Referrers(this.#manifests);
    this.#platform = opts.platform ?? hostPlatform();
  }

  /**
   * Resolves a reference to the manifest for `platform` (default: the client's), through an index when
   * the reference names one. NOT_FOUND, UNAUTHORIZED, DENIED, NO_PLATFORM, BAD_DATA (digest) or FORMAT.
   */
  resolve(ref: ImageReference, platform?: Platform, opts: CallOptions = {}): Promise<ResolvedImage> {
    return resolveImage(this.#manifests, ref, platform ?? this.#platform, opts.signal);
  }

  /** One manifest or index by tag or digest, verified; no platform selection. */
  getManifest(repo: RepositoryRef, reference: string, opts: CallOptions = {}): Promise<FetchedManifest> {
    return fetchManifest(this.#manifests, repo, reference, opts.signal);
  }

  /** The image config, verified against the manifest's config descriptor and parsed. */
  getConfig(
    repo: RepositoryRef,
    manifest: ImageManifest | FetchedManifest<ImageManifest>,
    opts: CallOptions = {},
  ): Promise<FetchedConfig> {
    const doc = 'document' in manifest ? manifest.document : manifest;
    return fetchConfig(this.#manifests, repo, doc, opts.signal);
  }

  /** A blob's size: HEAD, or a 1-byte range GET where HEAD is refused. */
  blobSize(repo: RepositoryRef, digest: string, opts: CallOptions = {}): Promise<number> {
    return blobSize(this.#blobs, repo, digest, opts.signal);
  }

  /**
   * Bytes [start, end) of a blob, exactly, or an error: the one range-read function. Not verified (a
   * range has no digest of its own); callers verify what they decode.
   */
  readRange(repo: RepositoryRef, blob: Descriptor | string, range: ByteRange, opts: RangeCallOptions = {}): Promise<Uint8Array> {
    return readRange(this.#blobs, repo, blob, range, opts.signal, opts.onData);
  }

  /**
   * The whole blob as a stream, checked against the descriptor's digest and size. Trust nothing read
   * before the iteration ends without error: a wrong blob is only known at the end (DigestMismatchError).
   */
  streamBlob(repo: RepositoryRef, blob: Descriptor, opts: CallOptions = {}): AsyncIterable<Uint8Array> {
    return streamBlob(this.#blobs, repo, blob, opts.signal);
  }

  blobExists(repo: RepositoryRef, digest: string, opts: CallOptions = {}): Promise<boolean> {
    return blobExists(this.#pushes, repo, digest, opts.signal);
  }

  /** Uploads a blob unless present; `source` is bytes or a factory of fresh streams (one per attempt). */
  pushBlob(
    repo: RepositoryRef,
    digest: string,
    source: Uint8Array | (() => Readable),
    size: number,
    opts: CallOptions = {},
  ): Promise<void> {
    return pushBlob(this.#pushes, repo, digest, source, size, opts.signal);
  }

  /** PUTs a manifest under `reference` (a tag or its digest); returns its digest. */
  putManifest(
    repo: RepositoryRef,
    reference: string,
    mediaType: string,
    bytes: Uint8Array,
    opts: CallOptions = {},
  ): Promise<string> {
    return putManifest(this.#pushes, repo, reference, mediaType, bytes, opts.signal);
  }

  /**
   * Descriptors of the manifests that refer to `subject` (a manifest digest), of `artifactType` when given:
   * the referrers API, else the OCI 1.1 tag schema (referrers.ts); [] when there are none.
   */
  referrers(repo: RepositoryRef, subject: string, artifactType?: string, opts: CallOptions = {}): Promise<Descriptor[]> {
    return this.#referrers.list(repo, subject, artifactType, opts.signal);
  }

  /** Makes a pushed manifest whose subject is `subject` findable as its referrer (referrers.ts). */
  addReferrer(repo: RepositoryRef, subject: string, referrer: Descriptor, opts: CallOptions = {}): Promise<void> {
    return this.#referrers.add(repo, subject, referrer, opts.signal);
  }

  stats(): RegistryStats {
    return this.#figures.snapshot();
  }

  /** Waits for requests in flight, then closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#dispatcher.close();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
