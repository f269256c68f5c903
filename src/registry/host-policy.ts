/**
 * Which hosts the root daemon may contact (issue 21). Any local user can name any host under `images/`,
 * and the daemon runs as root on a shared node: without a policy, `images/169.254.169.254/...` would make
 * it fetch from the cloud metadata service, and `images/127.0.0.1:22/...` probe local services.
 * - `--registry-allow PATTERN` (repeatable): once given, no other host is contacted (loopback included),
 *   for registries, token realms and redirect targets alike.
 * - Always: link-local addresses (169.254.0.0/16, fe80::/10, where metadata services live) are refused,
 *   unless the operator named the host exactly (--insecure-registry, --mirror or an exact allow entry);
 *   also when a name *resolves* to one (dial-time check, `lookup`), so DNS cannot be used to get around it.
 * The dispatcher (dispatcher.ts) applies it to every request and every direct connection.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP } from 'node:net';
import { InvalidOptionError, TocfsError } from '../errors.js';

export interface HostPolicyOptions {
  /** `--registry-allow`: host, host:port or glob (`*.cern.ch`, `*` any run of characters). */
  readonly allow?: readonly string[];
  /** `host[:port]` the operator named for other reasons (--insecure-registry, --mirror): may be link-local. */
  readonly named?: readonly string[];
}

/** A host the policy keeps the daemon from contacting. ENOENT under `images/`: to a user it is not there. */
export class HostRefusedError extends TocfsError {
  override name = 'HostRefusedError';
  constructor(
    readonly host: string,
    reason: string,
  ) {
    super('NOT_FOUND', `${host}: not contacted: ${reason}`);
  }
}

interface Pattern {
  readonly host: RegExp;
  /** Undefined: any port. */
  readonly port: number | undefined;
  /** No wildcard: an exact name, which may be link-local because the operator wrote it out. */
  readonly exact: string | undefined;
}

// `host`, `host:port`, `[v6]`, `[v6]:port`; `*` only in a host name.
const ENTRY = /^(\[[0-9a-f:.]+\]|[a-z0-9*._-]+)(?::(\d{1,5}))?$/;

function parsePattern(option: string, text: string): Pattern {
  const v = text.trim().toLowerCase();
  const m = ENTRY.exec(v);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || v.includes('://') || (port !== undefined && (port < 1 || port > 65535)) || m[1] === '*' || m[1]!.startsWith('[') && m[1]!.includes('*')) {
    throw new InvalidOptionError(option, `${JSON.stringify(text)} is not a host, host:port or glob like *.example.org`);
  }
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const source = host.split('*').map((s) => s.replace(/[.?+^$()[\]{}|\\-]/g, '\\$&')).join('[a-z0-9._-]*');
  return { host: new RegExp(`^${source}$`), port, exact: host.includes('*') ? undefined : host };
}

/** 169.254.0.0/16, fe80::/10, and both as IPv4-mapped IPv6 (`::ffff:169.254.x.x`, `::ffff:a9fe:xxxx`). */
export function isLinkLocal(address: string): boolean {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIP(a) === 4) return a.startsWith('169.254.');
  if (isIP(a) !== 6) return false;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(.+)$/.exec(a)?.[1];
  if (mapped !== undefined) {
    if (isIP(mapped) === 4) return mapped.startsWith('169.254.');
    return /^a9fe:/.test(mapped);
  }
  const first = parseInt(a.split(':')[0] || '0', 16);
  return (first & 0xffc0) === 0xfe80;
}

export type Resolver = (hostname: string, options: LookupAllOptions, cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

export class HostPolicy {
  readonly #allow: readonly Pattern[] | undefined;
  readonly #named: readonly Pattern[];

  constructor(opts: HostPolicyOptions = {}) {
    const allow = (opts.allow ?? []).map((p) => parsePattern('--registry-allow', p));
    this.#allow = allow.length > 0 ? allow : undefined;
    this.#named = [...(opts.named ?? []).map((p) => parsePattern('--insecure-registry', p)), ...allow].filter((p) => p.exact !== undefined);
  }

  /** Why `hostname:port` must not be contacted, or undefined when it may be. `hostname` as in a URL. */
  refusal(hostname: string, port: number): string | undefined {
    const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
    if (this.#allow && !this.#allow.some((p) => matches(p, host, port))) return 'not in --registry-allow';
    if (isLinkLocal(host) && !this.#isNamed(host, port)) {
      return 'a link-local address (cloud metadata services live there); name it with --insecure-registry to use it';
    }
    return undefined;
  }

  /** Throws HostRefusedError unless `hostname:port` may be contacted. */
  check(hostname: string, port: number): void {
    const why = this.refusal(hostname, port);
    if (why !== undefined) throw new HostRefusedError(port === 443 || port === 80 ? hostname : `${hostname}:${port}`, why);
  }

  /**
   * A `lookup` for net/tls.connect that refuses a name resolving to a link-local address (unless named),
   * before any packet is sent to it. All answers are checked, not the first: a resolver mixing one
   * harmless and one metadata address must not get the latter dialled on a retry or by happy eyeballs.
   */
  lookup(resolve: Resolver = dnsLookup as unknown as Resolver) {
    return (hostname: string, options: { all?: boolean; family?: number | string }, cb: (...args: unknown[]) => void): void => {
      resolve(hostname, { ...options, all: true } as LookupAllOptions, (err, addresses) => {
        if (err) return cb(err);
        const host = hostname.toLowerCase();
        const bad = addresses.find((a) => isLinkLocal(a.address));
        if (bad !== undefined && !this.#named.some((p) => p.exact === host)) {
          return cb(new HostRefusedError(hostname, `resolves to the link-local address ${bad.address} (cloud metadata services live there)`));
        }
        if (options.all) return cb(null, addresses);
        const first = addresses[0];
        if (first === undefined) return cb(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }));
        cb(null, first.address, first.family);
      });
    };
  }

  #isNamed(host: string, port: number): boolean {
    return this.#named.some((p) => p.exact === host && (p.port === undefined || p.port === port));
  }
}

function matches(p: Pattern, host: string, port: number): boolean {
  return p.host.test(host) && (p.port === undefined || p.port === port);
}

/** The port of an origin URL, filling in the scheme's default. */
export function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'http:' ? 80 : 443;
}
