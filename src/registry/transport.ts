/**
 * Requests to a registry: picks its scheme, adds the Authorization header, and answers a 401 once (a new
 * challenge, or a cached token that expired or was revoked). Requests to redirect targets go out through
 * `sendUrl`, which never adds registry credentials: signed CDN URLs reject them, and they must not leak
 * to another host.
 */
import type { Readable } from 'node:stream';
import { debuglog } from 'node:util';
import type { Dispatcher } from 'undici';
import type { Authenticator, Authorization } from './auth.js';
import { discard, drop, type HttpMethod, pathOnly, type RequestContext, type HttpResponse, withCredentials } from './http.js';
import { registryEndpoint } from './reference.js';
import { abortable } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';

const debug = debuglog('tocfs');

export interface TransportOptions {
  readonly dispatcher: Dispatcher;
  readonly auth: Authenticator;
  /** Whether `host[:port]` may be reached over plain HTTP (loopback or --insecure-registry). */
  readonly trustsPlainHttp: (hostPort: string) => boolean;
  /**
   * Whether the first GET to `host[:port]` goes out over plain HTTP alongside the scheme probe
   * (`#sendWhileProbing`): --insecure-registry hosts, across a link. Not loopback, where a round trip
   * costs nothing and the early GET of a registry that wants a token would be one more request. Default: none.
   */
  readonly sendsWhileProbing?: (hostPort: string) => boolean;
  readonly userAgent: string;
}

export interface SendOptions {
  readonly method: HttpMethod;
  /** Path and query, e.g. `/v2/library/alpine/blobs/sha256:...`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The token scope the request needs; omitted for requests that need none. */
  readonly scope?: string;
  /** A factory for bodies that cannot be replayed, so the request can be sent again after a 401. */
  readonly body?: Uint8Array | (() => Readable);
  readonly signal?: AbortSignal | undefined;
}

const NO_AUTH: Authorization = { header: undefined, fresh: false };

// Errors that prove the peer speaks TLS but we refuse its certificate: never a reason to try plain HTTP.
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME_MISMATCH/;

export class Transport {
  #o: TransportOptions;
  #origins = new Map<string, string>();
  #probes = new SingleFlight<string>();

  constructor(opts: TransportOptions) {
    this.#o = opts;
  }

  context(registry: string, method: string, pathAndQuery: string, via?: string): RequestContext {
    const path = pathOnly(pathAndQuery);
    return via === undefined ? { registry, method, path } : { registry, method, path, via };
  }

  /** `https://host[:port]` or, for a loopback or insecure registry that does not speak TLS, `http://...`. */
  async origin(registry: string, signal?: AbortSignal): Promise<string> {
    const known = this.#origins.get(registry);
    if (known !== undefined) return known;
    return abortable(this.#probes.run(registry, () => this.#probe(registry)), signal);
  }

  /** Sends to the registry with its credentials; returns the response whatever its status. */
  async send(registry: string, o: SendOptions): Promise<HttpResponse> {
    const early = this.#origins.has(registry) ? undefined : this.#sendWhileProbing(registry, o);
    if (early !== undefined) {
      const res = await early;
      if (res !== undefined) return res;
    }
    const origin = await this.origin(registry, o.signal);
    const target = new URL(origin);
    const used = o.scope === undefined ? NO_AUTH : await this.#o.auth.authorize(registry, o.scope, target, o.signal);
    const res = await this.#request(origin, o, used.header);
    if (res.statusCode !== 401 || o.scope === undefined) return res;
    if (!this.#o.auth.rejected(registry, o.scope, res.headers['www-authenticate'], used)) return res;
    let again: Authorization;
    try {
      again = await this.#o.auth.authorize(registry, o.scope, target, o.signal);
    } catch (err) {
      drop(res.body);
      throw err;
    }
    // Nothing new to offer (e.g. Basic without a password on file): the 401 stands.
    if (again.header === undefined || again.header === used.header) return res;
    await discard(res);
    return this.#request(origin, o, again.header);
  }

  /**
   * The first request to an insecure registry goes out over plain HTTP at once, alongside the
   * scheme probe, instead of after it: a registry that does answer over plain HTTP (the probe finds no TLS)
   * has answered the request in the same round trip as the pings (issue 8: the ping was ~70 ms of every
   * mount at 20 ms RTT). It carries no credentials (none are known before the probe's challenge, and
   * they must not go out in the clear to a registry that speaks TLS). Its answer is used only when the
   * probe settles on plain HTTP and it is no 401; otherwise it is dropped and the request sent as usual.
   * Only GETs without a body: anything else must not be sent twice. Undefined: not sent early.
   */
  #sendWhileProbing(registry: string, o: SendOptions): Promise<HttpResponse | undefined> | undefined {
    if (o.method !== 'GET' || o.body !== undefined || this.#o.sendsWhileProbing?.(registry) !== true) return undefined;
    const plain = `http://${registryEndpoint(registry)}`;
    const answer: Promise<HttpResponse | undefined> = this.#request(plain, o, undefined).catch(() => undefined);
    return (async () => {
      let origin: string;
      try {
        origin = await this.origin(registry, o.signal);
      } catch (err) {
        void answer.then((res) => res && drop(res.body));
        throw err;
      }
      const res = await answer;
      if (res === undefined) return undefined;
      if (origin === plain && res.statusCode !== 401) return res;
      await discard(res);
      return undefined;
    })();
  }

  /** Sends to an absolute URL (a redirect target) with no registry credentials. */
  sendUrl(url: URL, o: Omit<SendOptions, 'path' | 'scope'>): Promise<HttpResponse> {
    return this.#request(url.origin, { ...o, path: `${url.pathname}${url.search}` }, undefined);
  }

  async #request(origin: string, o: SendOptions, authorization: string | undefined): Promise<HttpResponse> {
    const res = await this.#send(origin, o, authorization);
    // Basic carries the user's own password: a 401 to it is a rejection. (A refused bearer token is
    // reported by the token service's answer, token.ts.)
    if (authorization?.startsWith('Basic ')) withCredentials.add(res);
    return res;
  }

  #send(origin: string, o: SendOptions, authorization: string | undefined): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'user-agent': this.#o.userAgent, ...o.headers };
    if (authorization !== undefined) headers.authorization = authorization;
    const body = typeof o.body === 'function' ? o.body() : o.body;
    return this.#o.dispatcher.request({
      origin,
      path: o.path,
      method: o.method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: o.signal ?? null,
    });
  }

  /**
   * Like Docker for insecure registries: TLS when the peer speaks it, plain HTTP only when it does not at
   * all. Both pings go out together (the plain one aborted once TLS answers), so a plain registry costs
   * one round trip of pings, not two. The ping (`GET /v2/`) also brings the registry's auth challenge, so
   * the first real request can carry a token instead of collecting a 401 first.
   */
  async #probe(registry: string): Promise<string> {
    const endpoint = registryEndpoint(registry);
    const secure = `https://${endpoint}`;
    if (!this.#o.trustsPlainHttp(registry)) return this.#remember(registry, secure);
    const plain = `http://${endpoint}`;
    const stopPlain = new AbortController();
    const plainPing = this.#ping(registry, plain, stopPlain.signal).then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      await this.#ping(registry, secure);
      stopPlain.abort();
      return this.#remember(registry, secure);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && CERTIFICATE_ERROR.test(code)) {
        stopPlain.abort();
        throw err;
      }
      debug('registry %s: no TLS (%s), using plain HTTP', registry, typeof code === 'string' ? code : String(err));
    }
    const failed = await plainPing;
    if (failed !== undefined) throw failed;
    return this.#remember(registry, plain);
  }

  async #ping(registry: string, origin: string, signal?: AbortSignal): Promise<void> {
    const res = await this.#request(origin, { method: 'GET', path: '/v2/', ...(signal && { signal }) }, undefined);
    if (res.statusCode === 401) this.#o.auth.learn(registry, res.headers['www-authenticate']);
    await discard(res);
  }

  #remember(registry: string, origin: string): string {
    this.#origins.set(registry, origin);
    return origin;
  }
}
