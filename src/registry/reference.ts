/**
 * Image references, by the grammar of distribution/reference:
 *   reference := [host[:port]/]path[:tag][@digest]
 * plus Docker Hub normalisation, and the mount layout of DESIGN.md §1.2 (`HOST/PATH...:TAG`).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { InvalidReferenceError } from '../errors.js';
import { digestProblem } from './digest.js';
import type { ImageReference } from './types.js';
import { isSha256Hex } from '../util/sha256-digest.js';

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';
// Every name Docker Hub has been known by; credentials, CVMFS paths (registry.hub.docker.com/...) and
// user habits use all of them for the same repositories, so they must become one registry.
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', DOCKER_HUB_ENDPOINT, 'registry.hub.docker.com']);

/** distribution/reference NameTotalLengthMax: host and path as written. */
export const MAX_NAME_LENGTH = 255;
export const MAX_TAG_LENGTH = 128;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const BRACKETED_HOST = /^\[([^\]]*)\](?::(.*))?$/;
// distribution refuses a bare 64-hex name: Docker reads it as an image ID, so it can never name a repository.

export interface ParseReferenceOptions {
  /** The tag when the reference names neither tag nor digest; `latest` unless given. */
  readonly defaultTag?: string;
}

interface Suffixes {
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
}

/** Parses `[host[:port]/]path[:tag][@digest]`; InvalidReferenceError says what is wrong. */
export function parseReference(input: string, opts: ParseReferenceOptions = {}): ImageReference {
  const { name, tag, digest } = splitSuffixes(input, input);
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasHost = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (isSha256Hex(name)) fail(input, 'a 64-hex name is an image ID, not a repository');
  return build(input, hasHost ? first : undefined, hasHost ? name.slice(slash + 1) : name, tag, digest, opts);
}

/** Canonical text: `host/repo:tag`, `host/repo@digest` or `host/repo:tag@digest`. */
export function formatReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The host[:port] to connect to for a registry: Docker Hub's API lives on another name than its brand. */
export function registryEndpoint(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
// An IPv4-mapped loopback address reaches the same socket as 127.x.
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/**
 * True for registries on this machine (127.0.0.0/8, ::1, localhost), which get plain HTTP by default:
 * traffic that never leaves the host gains nothing from TLS, and local test registries rarely have it.
 */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOf(registry).toLowerCase();
  if (host === 'localhost') return true;
  if (isIPv4(host)) return LOOPBACK.check(host, 'ipv4');
  if (isIPv6(host)) return LOOPBACK.check(host, 'ipv6');
  return false;
}

/** The host of `host[:port]` or `[v6][:port]`, without brackets or port. */
function hostOf(registry: string): string {
  const bracketed = BRACKETED_HOST.exec(registry);
  if (bracketed) return bracketed[1] ?? '';
  const colon = registry.indexOf(':');
  // More than one colon and no brackets: a bare IPv6 address, which has no port.
  if (colon < 0 || registry.indexOf(':', colon + 1) >= 0) return registry;
  return registry.slice(0, colon);
}

/**
 * Parses the mount layout of DESIGN.md §1.2: `components[0]` is always the registry host (never guessed),
 * then repository path components up to and including the first that holds `:TAG` or `@DIGEST`.
 * Returns undefined while no component has ended the reference (an intermediate directory such as
 * `docker.io/library`); throws InvalidReferenceError as soon as a component can never be part of one.
 */
export function parseImagePath(
  components: readonly string[],
): { ref: ImageReference; consumed: number } | undefined {
  const host = components[0];
  if (host === undefined) return undefined;
  checkHost(host, host);
  for (let i = 1; i < components.length; i++) {
    const component = components[i] ?? '';
    const shown = components.slice(0, i + 1).join('/');
    if (component.includes(':') || component.includes('@')) {
      const { name, tag, digest } = splitSuffixes(components.slice(1, i + 1).join('/'), shown);
      return { ref: build(shown, host, name, tag, digest, {}), consumed: i + 1 };
    }
    const problem = componentProblem(component);
    if (problem !== undefined) fail(shown, problem);
  }
  return undefined;
}

/** Splits off and validates `@digest` and `:tag`; `shown` is what error messages quote. */
function splitSuffixes(text: string, shown: string): Suffixes {
  if (text === '') fail(shown, 'empty reference');
  if (/\s/.test(text)) fail(shown, 'contains whitespace');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest === '') fail(shown, "empty digest after '@'");
    if (digest.includes('@')) fail(shown, "more than one '@'");
    const problem = digestProblem(digest);
    if (problem !== undefined) fail(shown, problem);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  // A colon before the last '/' is a port, not a tag.
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    const problem = tagProblem(tag);
    if (problem !== undefined) fail(shown, problem);
  }
  if (rest === '') fail(shown, 'empty repository name');
  return { name: rest, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

function build(
  shown: string,
  host: string | undefined,
  path: string,
  tag: string | undefined,
  digest: string | undefined,
  opts: ParseReferenceOptions,
): ImageReference {
  const registry = host === undefined ? DOCKER_HUB : checkHost(host, shown);
  const components = path.split('/');
  for (const component of components) {
    const problem = componentProblem(component);
    if (problem !== undefined) fail(shown, problem);
  }
  const written = host === undefined ? path : `${host}/${path}`;
  if (written.length > MAX_NAME_LENGTH) fail(shown, `name is longer than ${MAX_NAME_LENGTH} characters`);
  // Docker Hub's official images live under library/; `python` and `library/python` are one repository.
  const repository = registry === DOCKER_HUB && components.length === 1 ? `library/${path}` : path;
  if (tag === undefined && digest === undefined) {
    const fallback = opts.defaultTag ?? 'latest';
    const problem = tagProblem(fallback);
    if (problem !== undefined) fail(shown, `default ${problem}`);
    return { registry, repository, tag: fallback };
  }
  return { registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** Validates `host[:port]` or `[v6][:port]` and returns it lower-cased, with Docker Hub's aliases folded. */
function checkHost(hostPort: string, shown: string): string {
  if (hostPort === '') fail(shown, 'empty registry host');
  let host: string;
  let port: string | undefined;
  const bracketed = BRACKETED_HOST.exec(hostPort);
  if (bracketed) {
    host = bracketed[1] ?? '';
    port = bracketed[2];
    // Zone ids (fe80::1%eth0) cannot be written in a URL host without escaping; refuse them.
    if (!/^[0-9a-fA-F:.]+$/.test(host) || !isIPv6(host)) fail(shown, `invalid IPv6 address [${host}]`);
    host = `[${host}]`;
  } else {
    if (hostPort.startsWith('[')) fail(shown, `invalid IPv6 host ${JSON.stringify(hostPort)}`);
    const colon = hostPort.indexOf(':');
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    port = colon < 0 ? undefined : hostPort.slice(colon + 1);
    if (host === '') fail(shown, 'empty registry host');
    for (const label of host.split('.')) {
      if (label === '') fail(shown, `empty label in registry host ${JSON.stringify(host)}`);
      if (!DOMAIN_COMPONENT.test(label)) fail(shown, `invalid registry host ${JSON.stringify(host)}`);
    }
  }
  if (port !== undefined) {
    if (port === '') fail(shown, "empty port after ':'");
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      fail(shown, `invalid port ${JSON.stringify(port)} (1-65535)`);
    }
  }
  const registry = (port === undefined ? host : `${host}:${port}`).toLowerCase();
  return DOCKER_HUB_ALIASES.has(registry) ? DOCKER_HUB : registry;
}

function componentProblem(component: string): string | undefined {
  if (component === '') return 'empty path component';
  if (PATH_COMPONENT.test(component)) return undefined;
  const quoted = JSON.stringify(component);
  if (PATH_COMPONENT.test(component.toLowerCase())) return `repository path must be lower-case: ${quoted}`;
  const bad = /[^a-z0-9._-]/.exec(component);
  if (bad) return `invalid character ${JSON.stringify(bad[0])} in path component ${quoted}`;
  return `path component ${quoted} must start and end with a letter or digit, separated by '.', '_', '__' or dashes`;
}

function tagProblem(tag: string): string | undefined {
  if (tag === '') return "empty tag after ':'";
  if (!TAG.test(tag)) return `invalid tag ${JSON.stringify(tag)}`;
  if (tag.length > MAX_TAG_LENGTH) return `tag is longer than ${MAX_TAG_LENGTH} characters`;
  return undefined;
}

function fail(shown: string, reason: string): never {
  throw new InvalidReferenceError(shown, reason);
}
