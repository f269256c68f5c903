/**
 * Registry authentication: remembers each registry's challenge, answers Bearer challenges with tokens
 * cached per (registry, scope) until shortly before `expires_in`, and Basic challenges with the configured
 * username and password.
 *
 * Credentials travel only over TLS or to loopback / `--insecure-registry` hosts. Basic auth puts the
 * reusable password itself in every request, and a token request carries it once; over plain HTTP on a
 * real network anyone on the path could read it. Loopback traffic never leaves the machine, and an
 * insecure registry is the user's explicit choice. Nothing here logs or quotes a credential or token.
 */
import { debuglog } from 'node:util';
import type { Dispatcher } from 'undici';
import { TocfsError } from '../errors.js';
import { pickChallenge, parseChallenges, type Challenge } from './challenge.js';
import { basicAuthorization, fetchToken } from './token.js';
import type { Credentials } from './types.js';
import { abortable } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';

const debug = debuglog('tocfs');

/** Where credentials come from; `loadDockerConfig()`'s CredentialStore is one. */
export interface CredentialLookup {
  lookup(registry: string): Credentials | undefined;
}

export interface AuthenticatorOptions {
  readonly dispatcher: Dispatcher;
  readonly credentials?: CredentialLookup | undefined;
  /** Whether a plain-HTTP `host[:port]` may receive credentials (loopback or --insecure-registry). */
  readonly trustsPlainHttp: (hostPort: string) => boolean;
  readonly userAgent: string;
  readonly now?: () => number;
  readonly onTokenFetch?: () => void;
}

/** The Authorization header for one request, and whether it was obtained just now (not from the cache). */
export interface Authorization {
  readonly header: string | undefined;
  readonly fresh: boolean;
}

interface CachedToken {
  readonly header: string;
  readonly expiresAt: number;
}

const NONE: Authorization = Object.freeze({ header: undefined, fresh: false });
// Refresh a little early so a token does not expire between our check and the registry's.
const MAX_MARGIN_MS = 10_000;
const MAX_CACHED_TOKENS = 1024;

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export class Authenticator {
  #o: AuthenticatorOptions;
  #now: () => number;
  #challenges = new Map<string, Challenge>();
  #tokens = new Map<string, CachedToken>();
  #inflight = new SingleFlight<CachedToken>();

  constructor(opts: AuthenticatorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Records how `registry` wants to be authenticated; false when it offers nothing tocfs can answer. */
  learn(registry: string, wwwAuthenticate: string | readonly string[] | undefined): boolean {
    const challenge = pickChallenge(parseChallenges(wwwAuthenticate));
    if (!challenge) return false;
    this.#challenges.set(registry, challenge);
    return true;
  }

  /** The header for a request to `origin` needing `scope`; none until the registry has challenged us. */
  async authorize(registry: string, scope: string, origin: URL, signal?: AbortSignal): Promise<Authorization> {
    const challenge = this.#challenges.get(registry);
    if (!challenge) return NONE;
    if (challenge.scheme === 'basic') {
      const creds = this.#credentials(registry, origin);
      if (creds?.kind !== 'basic') return NONE;
      return { header: basicAuthorization(creds.username, creds.password), fresh: true };
    }
    const key = `${registry}\n${scope}`;
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > this.#now()) return { header: cached.header, fresh: false };
    const issued = await abortable(
      this.#inflight.run(key, () => this.#fetch(registry, scope, challenge)),
      signal,
    );
    return { header: issued.header, fresh: true };
  }

  /**
   * After a 401: learns the new challenge and forgets the token that was refused. True when one more try
   * can help: we sent nothing, or sent a cached token that may have expired or been revoked. A token or
   * password refused the moment we obtained it would only be refused again.
   */
  rejected(
    registry: string,
    scope: string,
    wwwAuthenticate: string | readonly string[] | undefined,
    used: Authorization,
  ): boolean {
    if (!this.learn(registry, wwwAuthenticate)) return false;
    if (used.header === undefined) return true;
    if (used.fresh) return false;
    const key = `${registry}\n${scope}`;
    if (this.#tokens.get(key)?.header === used.header) this.#tokens.delete(key);
    return true;
  }

  #credentials(registry: string, target: URL): Credentials | undefined {
    const creds = this.#o.credentials?.lookup(registry);
    if (!creds) return undefined;
    if (target.protocol === 'https:' || this.#o.trustsPlainHttp(target.host)) return creds;
    debug('registry %s: not sending credentials over plain HTTP to %s', registry, target.host);
    return undefined;
  }

  async #fetch(registry: string, scope: string, challenge: Challenge): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm ?? '');
    } catch {
      throw new TocfsError('PROTOCOL', `registry ${registry}: bearer challenge has an invalid realm`);
    }
    const started = this.#now();
    this.#o.onTokenFetch?.();
    const issued = await fetchToken({
      dispatcher: this.#o.dispatcher,
      registry,
      realm,
      service: challenge.params.service,
      scopes: [scope],
      credentials: this.#credentials(registry, realm),
      userAgent: this.#o.userAgent,
    });
    const lifetime = issued.expiresInSeconds * 1000;
    const token: CachedToken = {
      header: `Bearer ${issued.token}`,
      expiresAt: started + lifetime - Math.min(MAX_MARGIN_MS, lifetime / 10),
    };
    debug('registry %s: token for %s valid for %ds', registry, scope, issued.expiresInSeconds);
    if (token.expiresAt > this.#now()) this.#remember(`${registry}\n${scope}`, token);
    return token;
  }

  #remember(key: string, token: CachedToken): void {
    if (this.#tokens.size >= MAX_CACHED_TOKENS) {
      const now = this.#now();
      for (const [k, t] of this.#tokens) if (t.expiresAt <= now) this.#tokens.delete(k);
      // Still full: drop the oldest entry (Map order is insertion order).
      if (this.#tokens.size >= MAX_CACHED_TOKENS) this.#tokens.delete(this.#tokens.keys().next().value!);
    }
    this.#tokens.delete(key);
    this.#tokens.set(key, token);
  }
}
