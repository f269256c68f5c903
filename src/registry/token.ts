/**
 * Fetching a bearer token from a registry's token service (https://distribution.github.io/distribution/
 * spec/auth/token/ and .../auth/oauth/): GET realm?service=S&scope=..., with Basic credentials when we
 * have a username and password; an identity token (refresh token) is exchanged by POST
 * `grant_type=refresh_token`, falling back to GET when the service has no OAuth2 endpoint.
 * No message built here quotes a credential, a token or a token-service body.
 */
import type { Dispatcher } from 'undici';
import { TocfsError } from '../errors.js';
import { contentLength, discard, drop, pathOnly, readBody, type RequestContext, TransientError } from './http.js';
import type { Credentials } from './types.js';

/** A token as issued, with the lifetime the service gave it (the spec's default is 60 s). */
export interface IssuedToken {
  readonly token: string;
  readonly expiresInSeconds: number;
}

export interface TokenRequest {
  readonly dispatcher: Dispatcher;
  readonly registry: string;
  readonly realm: URL;
  readonly service: string | undefined;
  readonly scopes: readonly string[];
  /** Only given when they may be sent to this realm (see auth.ts). */
  readonly credentials: Credentials | undefined;
  readonly userAgent: string;
  readonly signal?: AbortSignal;
}

const DEFAULT_EXPIRES_IN = 60;
const MAX_TOKEN_RESPONSE = 1024 * 1024;
// The spec requires client_id on the OAuth2 form; it identifies the client, not the user.
const CLIENT_ID = 'tocfs';

export async function fetchToken(req: TokenRequest): Promise<IssuedToken> {
  const creds = req.credentials;
  if (creds?.kind === 'identity-token') {
    const res = await post(req, creds.token);
    // 404/405: the service has no OAuth2 POST endpoint (Docker's own token server answers 405); containerd
    // falls back to GET in the same case, sending the identity token as the Basic password.
    if (res.statusCode !== 404 && res.statusCode !== 405) return answer(req, 'POST', res);
    await discard(res);
    return answer(req, 'GET', await get(req, basicAuthorization('', creds.token)));
  }
  const auth = creds?.kind === 'basic' ? basicAuthorization(creds.username, creds.password) : undefined;
  return answer(req, 'GET', await get(req, auth));
}

/** The `Authorization` value of HTTP Basic auth (RFC 7617). */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

function get(req: TokenRequest, authorization: string | undefined): Promise<Dispatcher.ResponseData> {
  const url = new URL(req.realm);
  if (req.service !== undefined) url.searchParams.set('service', req.service);
  for (const s of req.scopes) url.searchParams.append('scope', s);
  const headers: Record<string, string> = { 'user-agent': req.userAgent, accept: 'application/json' };
  if (authorization !== undefined) headers.authorization = authorization;
  return req.dispatcher.request({
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
    method: 'GET',
    headers,
    signal: req.signal ?? null,
  });
}

function post(req: TokenRequest, refreshToken: string): Promise<Dispatcher.ResponseData> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: CLIENT_ID, refresh_token: refreshToken });
  if (req.service !== undefined) form.set('service', req.service);
  if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
  return req.dispatcher.request({
    origin: req.realm.origin,
    path: `${req.realm.pathname}${req.realm.search}`,
    method: 'POST',
    headers: {
      'user-agent': req.userAgent,
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      accept: 'application/json',
    },
    body: form.toString(),
    signal: req.signal ?? null,
  });
}

async function answer(req: TokenRequest, method: string, res: Dispatcher.ResponseData): Promise<IssuedToken> {
  const ctx: RequestContext = { registry: req.registry, method, path: pathOnly(req.realm.pathname), via: req.realm.host };
  const where = `registry ${req.registry}: token service ${req.realm.host}`;
  const status = res.statusCode;
  if (status !== 200) {
    await discard(res);
    if (status === 408 || status === 429 || status >= 500) {
      throw new TransientError(`token service: HTTP ${status}`, undefined, ctx);
    }
    // OAuth2 answers a refused or expired refresh token with 400 invalid_grant (RFC 6749 §5.2).
    if (status === 401 || status === 403 || (status === 400 && method === 'POST')) {
      const who = req.credentials ? 'the configured credentials' : 'anonymous access';
      throw new TocfsError('UNAUTHORIZED', `${where} refused ${who} (HTTP ${status})`);
    }
    throw new TocfsError('PROTOCOL', `${where}: unexpected HTTP ${status}`);
  }
  const n = contentLength(res);
  if (n !== undefined && n > MAX_TOKEN_RESPONSE) {
    drop(res.body);
    throw new TocfsError('PROTOCOL', `${where}: token response of ${n} bytes is too large`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(await readBody(res.body, MAX_TOKEN_RESPONSE, 'token response')));
  } catch (err) {
    if (err instanceof TocfsError || !(err instanceof SyntaxError)) throw err;
    // No cause: a JSON parser's message quotes the text, which may hold a token.
    throw new TocfsError('PROTOCOL', `${where}: token response is not JSON`);
  }
  const { token, access_token: accessToken, expires_in: expiresIn } = (doc ?? {}) as Record<string, unknown>;
  const value = typeof token === 'string' && token !== '' ? token : accessToken;
  if (typeof value !== 'string' || value === '') throw new TocfsError('PROTOCOL', `${where}: response holds no token`);
  const seconds = typeof expiresIn === 'number' && Number.isFinite(expiresIn) ? expiresIn : DEFAULT_EXPIRES_IN;
  return { token: value, expiresInSeconds: seconds };
}
