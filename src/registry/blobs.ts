/**
 * Blob reads: the one range-read function, the blob size, and a verified whole-blob stream. Every read
 * goes to where BlobLocator says the blob lives, with registry credentials only when that is the registry.
 * No function here returns bytes of a length other than the one asked for.
 */
import { FormatError, TocfsError } from '../errors.js';
import { pullScope } from './auth.js';
import { blobPath, type BlobLocation, type BlobLocator, type LocationClaim } from './blob-location.js';
import { parseDigest } from './digest.js';
import {
  consumeBody,
  contentLength,
  describe,
  discard,
  drop,
  header,
  isRedirect,
  parseContentRange,
  statusError,
  TransientError,
  type HttpResponse,
  type RequestContext,
} from './http.js';
import { RangeNotSatisfiableError } from './range-not-satisfiable.js';
import { withRetry, type RetryHooks, type RetryPolicy } from './retry.js';
import type { ClientFigures } from './stats.js';
import type { Transport } from './transport.js';
import type { ByteRange, Descriptor, RepositoryRef } from './types.js';

export interface BlobDeps {
  readonly transport: Transport;
  readonly locator: BlobLocator;
  readonly policy: RetryPolicy;
  readonly figures: ClientFigures;
  readonly hooks: RetryHooks;
  /**
   * Registries whose last read ran out of its time budget, until when: reads to them fail at once with
   * that error meanwhile. The kernel retries a failed page read right away, and each of those would wait
   * out a whole budget again on a registry that accepts and never answers (6 s, not 3, for one read(2)).
   */
  readonly stalled?: Map<string, { readonly error: TocfsError; readonly until: number }>;
}

const STALL_MEMORY_MS = 1000;

export interface OpenedBlob {
  readonly res: HttpResponse;
  readonly ctx: RequestContext;
}

// Refusals a signed URL gives once its signature has expired or been revoked.
const TARGET_REFUSALS = new Set([401, 403, 410]);
const MAX_TARGET_HOPS = 3;
// After the asked-for bytes of a 200, a remainder this small is read to keep the connection; more is dropped.
const DRAIN_LIMIT = 64 * 1024;
// HEAD answers after which the size is asked with a 1-byte GET instead (see blobSize).
const HEAD_UNSUPPORTED = new Set([200, 400, 405, 501]);

/**
 * GET the blob (with `headers`, e.g. a Range) from where it lives; resolves the location again once. The
 * first GET of a blob goes to the registry and resolves its location with its answer (blob-location.ts).
 */
export async function openBlob(
  deps: BlobDeps,
  repo: RepositoryRef,
  digest: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal | undefined,
): Promise<OpenedBlob> {
  const { transport: t, locator } = deps;
  const path = blobPath(repo.repository, digest);
  for (let resolvedAgain = false; ; resolvedAgain = true) {
    const loc = await locator.locate(repo.registry, repo.repository, digest, signal);
    if (isClaim(loc)) return resolving(t, repo, path, headers, signal, loc);
    const opened = loc.target
      ? await fromTarget(t, repo.registry, path, loc.target, headers, signal)
      : { res: await registryGet(t, repo, path, headers, signal), ctx: t.context(repo.registry, 'GET', path) };
    if (!resolvedAgain && mustResolveAgain(loc, opened.res.statusCode)) {
      await discard(opened.res);
      locator.forget(repo.registry, repo.repository, digest, loc);
      deps.figures.reResolutions++;
      continue;
    }
    return opened;
  }
}

const isClaim = (loc: BlobLocation | LocationClaim): loc is LocationClaim => 'answered' in loc;

/** A blob GET to the registry itself, with its pull credentials. */
function registryGet(
  t: Transport,
  repo: RepositoryRef,
  path: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal | undefined,
): Promise<HttpResponse> {
  return t.send(repo.registry, { method: 'GET', path, headers, scope: pullScope(repo.repository), signal });
}

/** The GET that resolves the blob's location: to the registry, its redirect (if any) then followed. */
async function resolving(
  t: Transport,
  repo: RepositoryRef,
  path: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal | undefined,
  claim: LocationClaim,
): Promise<OpenedBlob> {
  let res: HttpResponse;
  try {
    res = await registryGet(t, repo, path, headers, signal);
  } catch (err) {
    // A range past the end proves that the registry serves the blob itself.
    if (err instanceof RangeNotSatisfiableError) claim.direct(err.totalSize);
    else claim.abandon();
    throw err;
  }
  let loc: BlobLocation | undefined;
  try {
    loc = claim.answered(res, await t.origin(repo.registry));
  } catch (err) {
    claim.abandon();
    drop(res.body);
    throw err;
  }
  if (loc?.target === undefined) return { res, ctx: t.context(repo.registry, 'GET', path) };
  await discard(res);
  return fromTarget(t, repo.registry, path, loc.target, headers, signal);
}

function mustResolveAgain(loc: BlobLocation, status: number): boolean {
  // A direct registry that starts redirecting, or a target that refuses an expired or revoked signature.
  return loc.target === undefined ? isRedirect(status) : TARGET_REFUSALS.has(status);
}

/** A redirect target may itself redirect (CDN edges); those hops are followed but not remembered. */
async function fromTarget(
  t: Transport,
  registry: string,
  path: string,
  target: URL,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal | undefined,
): Promise<OpenedBlob> {
  let url = target;
  for (let hop = 0; ; hop++) {
    const res = await t.sendUrl(url, { method: 'GET', headers, signal });
    const location = header(res, 'location');
    if (!isRedirect(res.statusCode) || location === undefined || hop >= MAX_TARGET_HOPS) {
      return { res, ctx: t.context(registry, 'GET', path, url.host) };
    }
    await discard(res);
    url = new URL(location, url);
  }
}

function checkRange(digest: string, range: ByteRange, size: number | undefined): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new FormatError(`blob ${digest}: invalid range [${start}, ${end})`);
  }
  if (size !== undefined && end > size) {
    throw new FormatError(`blob ${digest}: range [${start}, ${end}) is past its end (${size} bytes)`);
  }
}

/**
 * Progress of a range read: `received` bytes of the range have arrived and are final in `bytes` (the
 * buffer the read fills, and resolves with). A retried read starts again from 0 in a new buffer. Lets a
 * caller use the head of a long range before its tail arrives.
 */
export type OnRangeData = (received: number, bytes: Uint8Array) => void;

/**
 * Reads bytes [start, end) of a blob with one `Range: bytes=start-(end-1)` GET, retried on transient
 * failures. Returns exactly end - start bytes or throws. The bytes are not verified here: a range cannot
 * be checked against the blob digest, so callers verify what they decode (chunk digests).
 */
export async function readRange(
  deps: BlobDeps,
  repo: RepositoryRef,
  blob: Descriptor | string,
  range: ByteRange,
  signal?: AbortSignal,
  onData?: OnRangeData,
): Promise<Uint8Array> {
  const digest = typeof blob === 'string' ? blob : blob.digest;
  parseDigest(digest);
  const size = typeof blob === 'string' ? deps.locator.sizeOf(repo.registry, repo.repository, digest) : blob.size;
  checkRange(digest, range, size);
  if (range.start === range.end) return new Uint8Array(0);
  const ctx = deps.transport.context(repo.registry, 'GET', blobPath(repo.repository, digest));
  const headers = { range: `bytes=${range.start}-${range.end - 1}` };
  const stall = deps.stalled?.get(repo.registry);
  if (stall !== undefined && stall.until > Date.now()) throw stall.error;
  return withRetry(
    ctx,
    deps.policy,
    signal,
    async (_n, bounded) => {
      let opened: OpenedBlob;
      try {
        opened = await openBlob(deps, repo, digest, headers, bounded);
      } catch (err) {
        if (!(err instanceof RangeNotSatisfiableError)) throw err;
        const what = `${headers.range} not satisfiable${sizeNote(err.totalSize)}`;
        // Past the end the registry says the blob has: the range is wrong, no retry makes it right.
        if (err.totalSize !== undefined && range.end > err.totalSize) {
          throw new FormatError(`${describe(ctx)}: ${what}`, { cause: err });
        }
        // Inside the blob (checked above against its known size): a cache or CDN edge that answers 416
        // for bytes it has not got yet, or a registry mid-upload. Retried like a 5xx, within the budget.
        throw new TransientError(`HTTP 416, ${what}`, undefined, ctx, { cause: err });
      }
      return receiveRange(deps, opened, digest, range, size, onData);
    },
    deps.hooks,
  ).catch((err: unknown) => {
    if (err instanceof TocfsError && err.code === 'TIMEOUT' && !signal?.aborted && deps.stalled) {
      deps.stalled.delete(repo.registry);
      if (deps.stalled.size > 1000) deps.stalled.clear(); // bounded: names come from users
      deps.stalled.set(repo.registry, { error: err, until: Date.now() + STALL_MEMORY_MS });
    }
    throw err;
  });
}

function sizeNote(total: number | undefined): string {
  return total === undefined ? '' : ` (blob size ${total})`;
}

async function receiveRange(
  deps: BlobDeps,
  { res, ctx }: OpenedBlob,
  digest: string,
  { start, end }: ByteRange,
  known: number | undefined,
  onData: OnRangeData | undefined,
): Promise<Uint8Array> {
  const want = end - start;
  if (res.statusCode === 206) {
    const raw = header(res, 'content-range');
    const cr = parseContentRange(raw);
    const n = contentLength(res);
    if (cr && known !== undefined && cr.total !== undefined && cr.total !== known) {
      drop(res.body);
      throw new TocfsError('BAD_DATA', `${describe(ctx)}: blob of ${cr.total} bytes, its descriptor says ${known}`);
    }
    if (!cr || cr.start !== start || cr.end !== end - 1 || (n !== undefined && n !== want)) {
      // The connection's framing can no longer be trusted either: drop it rather than drain it. Retried
      // like a 5xx: a cache that mixed up two answers, or an edge mid-fill, usually answers right next time.
      drop(res.body);
      const got = raw === undefined ? 'no Content-Range' : `Content-Range ${JSON.stringify(raw)}`;
      const asked = `bytes ${start}-${end - 1}${sizeNote(known)}`;
      throw new TransientError(`asked for ${asked}, got ${got}`, undefined, ctx);
    }
    return readExactly(res, want, ctx, onData);
  }
  if (res.statusCode === 200) {
    // Quirk: a registry or cache that ignores Range sends the whole blob. JFrog Artifactory does
    // (oras-project/oras-go#368, 2022), and RFC 9110 §14.2 lets any server. Take our slice from the
    // stream and drop the rest, so a multi-GB layer is never buffered or read to its end.
    deps.figures.rangeIgnored++;
    const total = contentLength(res);
    if (known !== undefined && total !== undefined && total !== known) {
      drop(res.body);
      throw new TocfsError('BAD_DATA', `${describe(ctx)}: blob of ${total} bytes, its descriptor says ${known}`);
    }
    const size = known ?? total;
    if (size !== undefined && end > size) {
      drop(res.body);
      throw new FormatError(`blob ${digest}: range [${start}, ${end}) is past its end (${size} bytes)`);
    }
    return sliceOfWhole(res, start, end, size, ctx, onData);
  }
  throw await statusError(ctx, res, `blob ${digest}`);
}

/**
 * Not zeroed (a 4 MiB memset per chunk): every byte is written before a reader is told it is there
 * (onData's count). A plain Uint8Array, not a Buffer, whose `slice` would share instead of copy.
 */
function unzeroedBytes(n: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
}

async function readExactly(res: HttpResponse, want: number, ctx: RequestContext, onData?: OnRangeData): Promise<Uint8Array> {
  const out = unzeroedBytes(want);
  let got = 0;
  await consumeBody(res.body, (chunk) => {
    if (got + chunk.length > want) throw new TocfsError('PROTOCOL', `${describe(ctx)}: body longer than the ${want} bytes of its range`);
    out.set(chunk, got);
    got += chunk.length;
    onData?.(got, out);
    return true;
  });
  if (got < want) throw new TransientError(`body ended after ${got} of ${want} bytes`, undefined, ctx);
  return out;
}

async function sliceOfWhole(
  res: HttpResponse,
  start: number,
  end: number,
  size: number | undefined,
  ctx: RequestContext,
  onData?: OnRangeData,
): Promise<Uint8Array> {
  const out = unzeroedBytes(end - start);
  let pos = 0;
  let cutShort = false;
  await consumeBody(res.body, (chunk) => {
    const from = Math.max(start, pos);
    const to = Math.min(end, pos + chunk.length);
    if (from < to) {
      out.set(chunk.subarray(from - pos, to - pos), from - start);
      onData?.(to - start, out);
    }
    pos += chunk.length;
    if (size !== undefined && pos > size) throw new TocfsError('BAD_DATA', `${describe(ctx)}: blob longer than its ${size} bytes`);
    cutShort = pos >= end && (size === undefined || size - pos > DRAIN_LIMIT);
    return !cutShort;
  });
  if (cutShort) return out;
  if (pos < end) throw new TransientError(`body ended after ${pos} bytes, before byte ${end}`, undefined, ctx);
  if (size !== undefined && pos !== size) {
    throw new TransientError(`whole-blob body ended after ${pos} of ${size} bytes`, undefined, ctx);
  }
  return out;
}

/**
 * The size of a blob from HEAD. Quirk: object stores that registries redirect to answer HEAD with 501
 * or 405 (S3-compatible VAST, google/neuroglancer#704, 2025), redirecting registries send a HEAD to the
 * CDN, and chunked answers carry no Content-Length. Then a `Range: bytes=0-0` GET, through the same
 * location logic as every read, gives the size as its Content-Range total.
 */
export async function blobSize(deps: BlobDeps, repo: RepositoryRef, digest: string, signal?: AbortSignal): Promise<number> {
  parseDigest(digest);
  const { transport: t } = deps;
  const path = blobPath(repo.repository, digest);
  const ctx = t.context(repo.registry, 'HEAD', path);
  const size = await withRetry(
    ctx,
    deps.policy,
    signal,
    async (_n, bounded) => {
      const res = await t.send(repo.registry, { method: 'HEAD', path, scope: pullScope(repo.repository), signal: bounded });
      const n = contentLength(res);
      if (res.statusCode === 200 && n !== undefined) {
        const claimed = header(res, 'docker-content-digest');
        await discard(res);
        if (claimed !== undefined && claimed !== digest) {
          throw new TocfsError('PROTOCOL', `${describe(ctx)}: answered for ${claimed}`);
        }
        return n;
      }
      if (!HEAD_UNSUPPORTED.has(res.statusCode) && !isRedirect(res.statusCode)) {
        throw await statusError(ctx, res, `blob ${digest}`);
      }
      await discard(res);
      deps.figures.headUnsupported++;
      return sizeByRange(deps, repo, digest, bounded);
    },
    deps.hooks,
  );
  deps.locator.noteSize(repo.registry, repo.repository, digest, size);
  return size;
}

async function sizeByRange(deps: BlobDeps, repo: RepositoryRef, digest: string, signal?: AbortSignal): Promise<number> {
  let opened: OpenedBlob;
  try {
    opened = await openBlob(deps, repo, digest, { range: 'bytes=0-0' }, signal);
  } catch (err) {
    // Only an empty blob has no byte 0.
    if (err instanceof RangeNotSatisfiableError && err.totalSize === 0) return 0;
    throw err;
  }
  const { res, ctx } = opened;
  if (res.statusCode === 206) {
    const total = parseContentRange(header(res, 'content-range'))?.total;
    await discard(res);
    if (total !== undefined) return total;
    throw new TocfsError('PROTOCOL', `${describe(ctx)}: 206 without a blob size in Content-Range`);
  }
  if (res.statusCode === 200) {
    const n = contentLength(res);
    drop(res.body);
    if (n !== undefined) return n;
    throw new TocfsError('PROTOCOL', `${describe(ctx)}: neither HEAD nor GET gave the blob size`);
  }
  throw await statusError(ctx, res, `blob ${digest}`);
}
