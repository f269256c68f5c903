/**
 * The one HTTP stack of the registry client (STYLE.md item 6): undici's EnvHttpProxyAgent, so
 * HTTP(S)_PROXY / NO_PROXY work as for every other tool on a worker node (site caches, DESIGN.md §1.1),
 * composed with small interceptors: the host policy (host-policy.ts), request figures, the 416 quirk, and
 * routing of `--insecure-registry` hosts to an agent that skips certificate checks. The host policy is
 * applied twice, both here because this is where every request and connection passes: to each request's
 * origin (registries, token realms and redirect targets all come through here, also through a proxy), and
 * at the dial of each direct connection (the connector below, with a `lookup` that checks resolved
 * addresses), so that nothing built on top can bypass it. Auth, retries and redirects sit above it, in
 * transport.ts and retry.ts, because they span several requests.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { buildConnector as BuildConnector, Dispatcher, EnvHttpProxyAgent as EnvHttpProxyAgentClass } from 'undici';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';
import buildConnector from 'undici/lib/core/connect.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import undiciApi from 'undici/lib/api/index.js';
import { InvalidOptionError } from '../errors.js';
import { countRequests, type RequestFigures } from './figures.js';
import { HostPolicy, portOf, type Resolver } from './host-policy.js';
import { dropRangeNotSatisfiable } from './range-not-satisfiable.js';

// undici's index loads fetch, WebSocket, the caches and the mocks: ~85 ms of every daemon start (inside
// every time to first command, issue 8). The agent and the request API alone cost a third of that; the
// index does no more than this to give dispatchers their `request()` (undici 7, pinned by the lockfile;
// every registry test goes through it). Static imports, so that the daemon's bundle (scripts/bundle.mjs)
// holds them too. Types: undici-internals.d.ts.
if (!('request' in DispatcherBase.prototype)) Object.assign(DispatcherBase.prototype, undiciApi);

export interface TimeoutOptions {
  /** TCP + TLS connect. Default 10 s. */
  readonly connectMs?: number;
  /** From request sent to response headers. Default 30 s. */
  readonly headersMs?: number;
  /** Longest silence between body chunks. Default 30 s. */
  readonly bodyMs?: number;
}

/** Overrides of the proxy environment variables (tests, config files). */
export interface ProxyOptions {
  readonly httpProxy?: string;
  readonly httpsProxy?: string;
  readonly noProxy?: string;
}

export interface DispatcherOptions {
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots, not replacing them. */
  readonly ca?: readonly string[];
  /** `host[:port]` entries whose TLS certificates are not verified (and which may use plain HTTP). */
  readonly insecureRegistries?: readonly string[];
  readonly timeouts?: TimeoutOptions;
  readonly proxy?: ProxyOptions;
  readonly figures: RequestFigures;
  /** `--registry-allow` patterns: when given, the only hosts ever contacted. */
  readonly registryAllow?: readonly string[];
  /** Hosts the operator named besides (mirrors): like --insecure-registry ones, they may be link-local. */
  readonly namedHosts?: readonly string[];
  /** Name resolution for direct connections (tests). Default: dns.lookup. */
  readonly resolver?: Resolver;
  /** Called just before each direct connection is opened, after the policy let it through (tests, figures). */
  readonly onDial?: (hostname: string, port: number) => void;
}

export interface RegistryDispatcher {
  readonly dispatcher: Dispatcher;
  /** Whether `host[:port]` was listed in insecureRegistries (a bare host matches every port). */
  readonly isInsecure: (hostPort: string) => boolean;
  close(): Promise<void>;
}

export const DEFAULT_TIMEOUTS: Required<TimeoutOptions> = Object.freeze({
  connectMs: 10_000,
  headersMs: 30_000,
  bodyMs: 30_000,
});

export function resolveTimeouts(t: TimeoutOptions = {}): Required<TimeoutOptions> {
  const out = { ...DEFAULT_TIMEOUTS, ...t };
  for (const key of ['connectMs', 'headersMs', 'bodyMs'] as const) {
    if (!Number.isSafeInteger(out[key]) || out[key] <= 0) {
      throw new InvalidOptionError(`timeouts.${key}`, 'must be a positive integer');
    }
  }
  return Object.freeze(out);
}

export function insecureMatcher(entries: readonly string[] = []): (hostPort: string) => boolean {
  const set = new Set<string>();
  for (const e of entries) {
    const v = e.trim().toLowerCase();
    if (v === '' || /[/\s@]/.test(v) || v.includes('://')) {
      throw new InvalidOptionError('insecureRegistries', `${JSON.stringify(e)} is not host[:port]`);
    }
    set.add(v);
  }
  return (hostPort) => {
    const hp = hostPort.toLowerCase();
    if (set.has(hp)) return true;
    const host = /^(\[[^\]]*\]|[^:]+):\d+$/.exec(hp)?.[1];
    return host !== undefined && set.has(host);
  };
}

function trustedCas(extra: readonly string[]): string[] | undefined {
  if (extra.length === 0) return undefined;
  for (const pem of extra) {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new InvalidOptionError('ca', 'each entry must be a PEM certificate');
    }
  }
  // `ca` replaces Node's trust store rather than extending it, which would lose the public roots (and
  // NODE_EXTRA_CA_CERTS, which Node 20 has no API to list), so both are added back explicitly.
  const env = process.env.NODE_EXTRA_CA_CERTS;
  let fromEnv: string[] = [];
  if (env) {
    try {
      fromEnv = [readFileSync(env, 'utf8')];
    } catch {
      // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS at startup.
    }
  }
  return [...rootCertificates, ...fromEnv, ...extra];
}

interface Guard {
  readonly policy: HostPolicy;
  readonly resolver: Resolver | undefined;
  readonly onDial: ((hostname: string, port: number) => void) | undefined;
}

/** undici's connector behind the host policy: the last point before a socket to the peer is opened. */
function guardedConnector(tls: object, guard: Guard): BuildConnector.connector {
  const base = buildConnector({ ...tls, lookup: guard.policy.lookup(guard.resolver) } as BuildConnector.BuildOptions);
  return (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === 'http:' ? 80 : 443);
    try {
      guard.policy.check(opts.hostname, port);
    } catch (err) {
      // Not a throw: undici expects the connector to answer through its callback.
      callback(err as Error, null);
      return;
    }
    guard.onDial?.(opts.hostname, port);
    return base(opts, callback);
  };
}

function agent(
  ca: string[] | undefined,
  verify: boolean,
  t: Required<TimeoutOptions>,
  proxy: ProxyOptions | undefined,
  guard: Guard,
): EnvHttpProxyAgentClass {
  const tls = { timeout: t.connectMs, ...(ca ? { ca } : {}), ...(verify ? {} : { rejectUnauthorized: false }) };
  return new EnvHttpProxyAgent({
    ...proxy,
    // Plain-HTTP registries go to the proxy as ordinary requests, not CONNECT tunnels: a site cache (squid)
    // can only cache what it can see, and many allow CONNECT to port 443 alone.
    proxyTunnel: false,
    // Direct connections only: through a proxy, undici dials the proxy with `proxyTls` (the request
    // interceptor in createDispatcher still vets each target).
    connect: guardedConnector(tls, guard),
    // Used when a proxy tunnels to the registry: the registry's TLS runs inside the CONNECT tunnel.
    requestTls: tls,
    proxyTls: { timeout: t.connectMs, ...(ca ? { ca } : {}) },
    headersTimeout: t.headersMs,
    bodyTimeout: t.bodyMs,
  });
}

export function createDispatcher(opts: DispatcherOptions): RegistryDispatcher {
  const timeouts = resolveTimeouts(opts.timeouts);
  const isInsecure = insecureMatcher(opts.insecureRegistries);
  const ca = trustedCas(opts.ca ?? []);
  const policy = new HostPolicy({
    allow: opts.registryAllow ?? [],
    named: [...(opts.insecureRegistries ?? []), ...(opts.namedHosts ?? [])],
  });
  const guard: Guard = { policy, resolver: opts.resolver, onDial: opts.onDial };
  const secure = agent(ca, true, timeouts, opts.proxy, guard);
  const insecure = (opts.insecureRegistries?.length ?? 0) > 0 ? agent(ca, false, timeouts, opts.proxy, guard) : undefined;

  // Outermost: a request to a host the policy refuses never reaches an agent (a throw here rejects the
  // request() call before anything is sent).
  const vet: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (o, handler) => {
    if (o.origin !== undefined) {
      const url = new URL(o.origin);
      policy.check(url.hostname, portOf(url));
    }
    return dispatch(o, handler);
  };

  // Innermost: an https origin listed as insecure goes to the agent that skips certificate checks.
  const route: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (o, handler) => {
    if (insecure && o.origin !== undefined) {
      const url = new URL(o.origin);
      if (url.protocol === 'https:' && isInsecure(url.host)) return insecure.dispatch(o, handler);
    }
    return dispatch(o, handler);
  };
  const dispatcher = secure.compose(route, dropRangeNotSatisfiable(), countRequests(opts.figures), vet);
  return {
    dispatcher,
    isInsecure,
    async close() {
      await Promise.all([secure.close(), insecure?.close()]);
    },
  };
}
