/**
 * Registry credentials from the Docker CLI's config file (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`), read the way every container tool reads it. Credential helpers are not run:
 * `helperFor` only names the helper so the caller can say why a login seems to be missing.
 *
 * Secrets never enter an error message: errors name the file and the `auths` key (a registry name),
 * never a value, and JSON.parse's own message is dropped because V8 quotes the text it failed on.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FormatError, TocfsError } from '../errors.js';
import { DOCKER_HUB } from './reference.js';
import type { Credentials } from './types.js';

/** The key `docker login` writes for Docker Hub, a leftover of the v1 registry API. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export interface LoadDockerConfigOptions {
  /** Environment to read DOCKER_CONFIG and HOME from; process.env by default. */
  readonly env?: NodeJS.ProcessEnv;
  /** Home directory; $HOME, else the OS account's, by default. */
  readonly home?: string;
}

export interface CredentialStore {
  /** The file read, or would have been read when it does not exist. */
  readonly path: string;
  /** Credentials for a registry (`host[:port]`, Docker Hub as `docker.io`) found in `auths`. */
  lookup(registry: string): Credentials | undefined;
  /** The credential helper docker would use for this registry (`credHelpers`, else `credsStore`). */
  helperFor(registry: string): string | undefined;
}

interface Entry {
  readonly host: string;
  /** Lower is preferred when several keys name the same host: the exact key, then URL forms. */
  readonly preference: number;
  readonly credentials: Credentials | undefined;
}

/** Reads the docker config. A missing file is an empty store; a malformed one is a FormatError. */
export async function loadDockerConfig(opts: LoadDockerConfigOptions = {}): Promise<CredentialStore> {
  const env = opts.env ?? process.env;
  const dir = env['DOCKER_CONFIG'] || join(opts.home ?? (env['HOME'] || homedir()), '.docker');
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return parseDockerConfig('{}', path);
    throw new TocfsError('INVALID_OPTION', `cannot read docker config ${path}: ${code ?? String(err)}`);
  }
  return parseDockerConfig(text, path);
}

/** Parses config.json text; `path` only names the file in errors. */
export function parseDockerConfig(text: string, path: string): CredentialStore {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new FormatError(`docker config ${path} is not valid JSON`);
  }
  if (!isObject(doc)) throw new FormatError(`docker config ${path} is not a JSON object`);

  const entries: Entry[] = [];
  const auths = doc['auths'];
  if (auths !== undefined && auths !== null) {
    if (!isObject(auths)) throw new FormatError(`docker config ${path}: "auths" must be an object`);
    for (const [key, value] of Object.entries(auths)) {
      const host = hostOfKey(key);
      if (host === undefined) continue;
      entries.push({ host, preference: keyPreference(key, host), credentials: entryCredentials(value, key, path) });
    }
  }

  const helpers = new Map<string, string>();
  const credHelpers = doc['credHelpers'];
  if (credHelpers !== undefined && credHelpers !== null) {
    if (!isObject(credHelpers)) throw new FormatError(`docker config ${path}: "credHelpers" must be an object`);
    for (const [key, value] of Object.entries(credHelpers)) {
      const host = hostOfKey(key);
      if (typeof value !== 'string') {
        throw new FormatError(`docker config ${path}: credHelpers[${JSON.stringify(key)}] must be a string`);
      }
      if (host !== undefined && value !== '') helpers.set(canonicalHost(host), value);
    }
  }
  const credsStore = doc['credsStore'];
  if (credsStore !== undefined && credsStore !== null && typeof credsStore !== 'string') {
    throw new FormatError(`docker config ${path}: "credsStore" must be a string`);
  }

  return {
    path,
    lookup(registry: string): Credentials | undefined {
      const wanted = canonicalHost(registry);
      let best: Entry | undefined;
      for (const e of entries) {
        if (e.credentials === undefined || canonicalHost(e.host) !== wanted) continue;
        if (best === undefined || e.preference < best.preference) best = e;
      }
      return best?.credentials;
    },
    helperFor(registry: string): string | undefined {
      return helpers.get(canonicalHost(registry)) ?? (credsStore ? credsStore : undefined);
    },
  };
}

/**
 * The `host[:port]` an `auths` key names. Docker accepts bare hosts and URLs with any scheme and path
 * (`https://host/v1/`, `http://host:5000`), and matches on the host alone (registry.ConvertToHostname).
 */
function hostOfKey(key: string): string | undefined {
  let rest = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (scheme) rest = rest.slice(scheme[0].length);
  const slash = rest.indexOf('/');
  const host = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  return host === '' ? undefined : host;
}

/** Docker Hub's many names are one registry; everything else compares as written, lower-cased. */
function canonicalHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_HOSTS.has(lower) ? DOCKER_HUB : lower;
}

function keyPreference(key: string, host: string): number {
  if (key === DOCKER_HUB_AUTH_KEY) return 0;
  if (key.toLowerCase() === host) return 1;
  return 2;
}

function entryCredentials(value: unknown, key: string, path: string): Credentials | undefined {
  const where = `docker config ${path}: auths[${JSON.stringify(key)}]`;
  if (!isObject(value)) throw new FormatError(`${where} must be an object`);
  const field = (name: string): string | undefined => {
    const v = value[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new FormatError(`${where}.${name} must be a string`);
    return v;
  };
  // An identity token is an OAuth refresh token; docker prefers it over the password it replaced.
  const token = field('identitytoken');
  if (token !== undefined) return { kind: 'identity-token', token };
  const auth = field('auth');
  if (auth !== undefined) return decodeAuth(auth, where);
  const username = field('username');
  const password = field('password');
  if (username !== undefined && password !== undefined) return { kind: 'basic', username, password };
  // An empty entry is what `docker login` leaves when a credential helper holds the secret.
  return undefined;
}

/** `auth` is base64 of `user:password`; the password may itself contain ':'. */
function decodeAuth(auth: string, where: string): Credentials {
  const b64 = auth.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 === 1) {
    throw new FormatError(`${where}.auth is not base64`);
  }
  const decoded = Buffer.from(b64, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new FormatError(`${where}.auth does not decode to user:password`);
  const username = decoded.slice(0, colon);
  if (username === '') throw new FormatError(`${where}.auth has an empty user name`);
  return { kind: 'basic', username, password: decoded.slice(colon + 1) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
