/**
 * The one HTTP stack of the registry client (STYLE.md item 6): undici's EnvHttpProxyAgent, so
 * HTTP(S)_PROXY / NO_PROXY work as for every other tool on a worker node (site caches, DESIGN.md §1.1),
 * composed with small interceptors: request figures, the 416 quirk, and routing of `--insecure-registry`
 * hosts to an agent that skips certificate checks. Auth, retries and redirects sit above it, in
 * transport.ts and retry.ts, because they span several requests.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Dispatcher, EnvHttpProxyAgent as EnvHttpProxyAgentClass } from 'undici';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import undiciApi from 'undici/lib/api/index.js';
import { InvalidOptionError } from '../errors.js';
import { countRequests, type RequestFigures } from './figures.js';
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

function agent(
  ca: string[] | undefined,
  verify: boolean,
  t: Required<TimeoutOptions>,
  proxy: ProxyOptions | undefined,
): EnvHttpProxyAgentClass {
  const tls = { timeout: t.connectMs, ...(ca ? { ca } : {}), ...(verify ? {} : { rejectUnauthorized: false }) };
  return new EnvHttpProxyAgent({
    ...proxy,
    // Plain-HTTP registries go to the proxy as ordinary requests, not CONNECT tunnels: a site cache (squid)
    // can only cache what it can see, and many allow CONNECT to port 443 alone.
    proxyTunnel: false,
    connect: tls,
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
  const secure = agent(ca, true, timeouts, opts.proxy);
  const insecure = (opts.insecureRegistries?.length ?? 0) > 0 ? agent(ca, false, timeouts, opts.proxy) : undefined;

  // Innermost: an https origin listed as insecure goes to the agent that skips certificate checks.
  const route: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (o, handler) => {
    if (insecure && o.origin !== undefined) {
      const url = new URL(o.origin);
      if (url.protocol === 'https:' && isInsecure(url.host)) return insecure.dispatch(o, handler);
    }
    return dispatch(o, handler);
  };
  const dispatcher = secure.compose(route, dropRangeNotSatisfiable(), countRequests(opts.figures));
  return {
    dispatcher,
    isInsecure,
    async close() {
      await Promise.all([secure.close(), insecure?.close()]);
    },
  };
}
