import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { signingMaterial, type SigningMaterial, type TlsMaterial } from './certs.js';

/**
 * A Docker token server (https://distribution.github.io/distribution/spec/auth/token/) for the
 * registry's `auth.token` config: GET realm?service=S&scope=repository:NAME:pull,push, optionally with
 * Basic credentials, answers an RS256 JWT whose `x5c` header holds the signing certificate.
 */
export interface TokenIssuer {
  /** The realm URL, e.g. http://127.0.0.1:PORT/token. */
  readonly url: string;
  readonly service: string;
  /** Requests that reached the realm, whatever their outcome. */
  readonly requests: number;
  /** Lifetime of tokens issued from now on; may be negative to issue already-expired tokens. */
  ttlSeconds: number;
  readonly issued: readonly IssuedToken[];
}

export interface TokenAccess {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

export interface IssuedToken {
  /** The scopes asked for, one `type:name:actions` string each. */
  readonly scope: string[];
  /** The authenticated user; absent for anonymous requests. */
  readonly account?: string;
  /** Unix time in milliseconds (comparable with Date.now()); the JWT `exp` is this / 1000. */
  readonly expiresAt: number;
  /** What was granted, which for anonymous requests is less than was asked. */
  readonly access: readonly TokenAccess[];
  readonly token: string;
}

export interface TokenIssuerOptions {
  service: string;
  /** The JWT `iss`, which the registry's `auth.token.issuer` must equal. Default 'tocfs-test-issuer'. */
  issuer?: string;
  /** When set, Basic credentials are checked against these; a wrong pair gets 401. */
  username?: string;
  password?: string;
  /** Anonymous requests get `pull` (and nothing else) when true. Default true. */
  anonymousPull?: boolean;
  /** Default 300. */
  ttlSeconds?: number;
  /** Serve the realm over HTTPS with this certificate. */
  tls?: TlsMaterial;
  /** Default: the per-process shared signing certificate. */
  signing?: SigningMaterial;
}

export interface RunningTokenIssuer extends TokenIssuer {
  readonly issuer: string;
  readonly signing: SigningMaterial;
  anonymousPull: boolean;
  /** Signs a token without an HTTP round trip, e.g. one with a chosen lifetime or a foreign audience. */
  mint(access: readonly TokenAccess[], opts?: MintOptions): string;
  close(): Promise<void>;
}

export interface MintOptions {
  account?: string;
  ttlSeconds?: number;
  audience?: string;
  issuer?: string;
}

export const TOKEN_PATH = '/token';

export async function startTokenIssuer(opts: TokenIssuerOptions): Promise<RunningTokenIssuer> {
  const signing = opts.signing ?? (await signingMaterial());
  const issuer = new Issuer(opts, signing);
  await issuer.listen();
  return issuer;
}

class Issuer implements RunningTokenIssuer {
  readonly service: string;
  readonly issuer: string;
  readonly signing: SigningMaterial;
  ttlSeconds: number;
  anonymousPull: boolean;
  #url = '';
  #requests = 0;
  #issued: IssuedToken[] = [];
  #key: KeyObject;
  #username: string | undefined;
  #password: string | undefined;
  #server: http.Server;

  constructor(opts: TokenIssuerOptions, signing: SigningMaterial) {
    this.service = opts.service;
    this.issuer = opts.issuer ?? 'tocfs-test-issuer';
    this.signing = signing;
    this.ttlSeconds = opts.ttlSeconds ?? 300;
    this.anonymousPull = opts.anonymousPull ?? true;
    this.#key = createPrivateKey(signing.keyPem);
    this.#username = opts.username;
    this.#password = opts.password;
    const handler: http.RequestListener = (req, res) => this.#handle(req, res);
    this.#server = opts.tls
      ? https.createServer({ key: opts.tls.keyPem, cert: opts.tls.certPem }, handler)
      : http.createServer(handler);
    this.#server.keepAliveTimeout = 1000;
  }

  get url(): string {
    return this.#url;
  }
  get requests(): number {
    return this.#requests;
  }
  get issued(): readonly IssuedToken[] {
    return this.#issued;
  }

  async listen(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    const { port } = this.#server.address() as AddressInfo;
    const scheme = this.#server instanceof https.Server ? 'https' : 'http';
    this.#url = `${scheme}://127.0.0.1:${port}${TOKEN_PATH}`;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = once(this.#server, 'close');
    this.#server.close();
    this.#server.closeAllConnections();
    await closed;
  }

  mint(access: readonly TokenAccess[], opts: MintOptions = {}): string {
    return this.#mint(access, opts).token;
  }

  #mint(access: readonly TokenAccess[], opts: MintOptions): { token: string; exp: number; iat: number } {
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + (opts.ttlSeconds ?? this.ttlSeconds);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [this.signing.certDerBase64] };
    const claims = {
      iss: opts.issuer ?? this.issuer,
      sub: opts.account ?? '',
      // A string, not an array: distribution 2.8 declares `aud` as a string and rejects a list.
      aud: opts.audience ?? this.service,
      exp,
      // An already-expired token must not also look "not yet valid".
      nbf: Math.min(iat, exp),
      iat,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), this.#key);
    return { token: `${input}.${b64url(signature)}`, exp, iat };
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== TOKEN_PATH) return void reply(res, 404, { error: 'not found' });
    this.#requests++;
    if (req.method !== 'GET') return void reply(res, 405, { error: 'only GET is supported' });
    const service = url.searchParams.get('service');
    if (service !== null && service !== this.service) {
      return void reply(res, 400, { error: `unknown service ${service}` });
    }

    const creds = basicCredentials(req.headers.authorization);
    if (creds === 'malformed' || (creds && !this.#credentialsOk(creds))) {
      res.setHeader('WWW-Authenticate', 'Basic realm="tocfs-token"');
      return void reply(res, 401, { error: 'bad credentials' });
    }
    const account = creds ? creds.username : undefined;

    const scope = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const access = grant(scope.map(parseScope).filter((a) => a !== undefined), account !== undefined, this.anonymousPull);
    const { token, exp, iat } = this.#mint(access, { account });
    const entry: IssuedToken = { scope, expiresAt: exp * 1000, access, token };
    this.#issued.push(account === undefined ? entry : { ...entry, account });
    reply(res, 200, {
      token,
      access_token: token,
      expires_in: exp - iat,
      issued_at: new Date(iat * 1000).toISOString(),
    });
  }

  #credentialsOk(c: { username: string; password: string }): boolean {
    if (this.#username === undefined || this.#password === undefined) return false;
    return c.username === this.#username && c.password === this.#password;
  }
}

/** `repository:library/alpine:pull,push` → type, name, actions; the name may itself hold colons (host:port). */
export function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const actions = scope.slice(last + 1).split(',').filter(Boolean);
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function grant(asked: TokenAccess[], authenticated: boolean, anonymousPull: boolean): TokenAccess[] {
  const merged = new Map<string, TokenAccess & { actions: string[] }>();
  for (const a of asked) {
    const actions = authenticated
      ? a.actions
      : a.actions.filter((x) => anonymousPull && a.type === 'repository' && x === 'pull');
    if (actions.length === 0) continue;
    const key = `${a.type}\0${a.name}`;
    const prev = merged.get(key);
    if (prev) prev.actions.push(...actions.filter((x) => !prev.actions.includes(x)));
    else merged.set(key, { type: a.type, name: a.name, actions: [...new Set(actions)] });
  }
  return [...merged.values()];
}

function basicCredentials(header: string | undefined): { username: string; password: string } | 'malformed' | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic\s+(\S+)$/i.exec(header);
  if (!m) return 'malformed';
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}
