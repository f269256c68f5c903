/**
 * What every registry request shares: how a request is named in errors and events, how statuses become
 * TocfsErrors, and bounded body reads. Messages name the registry, method and path, never a query string
 * (signed CDN URLs carry their signature there) and never a header.
 */
import type { Dispatcher } from 'undici';
import { FormatError, TocfsError, type TocfsErrorCode } from '../errors.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type HttpResponse = Dispatcher.ResponseData;

/** Names one request for errors and diagnostics. */
export interface RequestContext {
  readonly registry: string;
  readonly method: string;
  /** URL path without the query. */
  readonly path: string;
  /** Host of a redirect target (CDN) when the request did not go to the registry itself. */
  readonly via?: string;
}

export function describe(ctx: RequestContext): string {
  const via = ctx.via === undefined ? '' : ` (via ${ctx.via})`;
  return `registry ${ctx.registry}: ${ctx.method} ${ctx.path}${via}`;
}

/** The path of a URL or `path?query` string, without the query. */
export function pathOnly(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf('?');
  return q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
}

/**
 * A failure worth another try: 408, 429, 5xx, or a body that ended early. The message names the failure
 * only; retry.ts adds the request when it gives up, so the context is not repeated.
 */
export class TransientError extends TocfsError {
  override name = 'TransientError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    readonly context?: RequestContext,
    options?: ErrorOptions,
  ) {
    super('SOURCE_UNAVAILABLE', message, options);
  }
}

/** A definite answer from a registry, carrying the HTTP status for callers that branch on it. */
export class RegistryStatusError extends TocfsError {
  override name = 'RegistryStatusError';
  constructor(
    code: TocfsErrorCode,
    message: string,
    readonly status: number,
  ) {
    super(code, message);
  }
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Responses to requests that carried registry credentials (marked by transport.ts), for 401 messages. */
export const withCredentials = new WeakSet<HttpResponse>();

export function header(res: Pick<HttpResponse, 'headers'>, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Content-Length as a safe integer, or undefined when absent or malformed. */
export function contentLength(res: Pick<HttpResponse, 'headers'>): number | undefined {
  const v = header(res, 'content-length');
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Turns an unwanted response into an error and releases its connection. Reads at most 4 KiB of the body
 * for the distribution error code (`{"errors":[{"code","message"}]}`); a body that fails to arrive
 * changes nothing, the status alone decides.
 */
export async function statusError(ctx: RequestContext, res: HttpResponse, subject?: string): Promise<TocfsError> {
  const status = res.statusCode;
  const detail = await errorDetail(res);
  const what = `${describe(ctx)}: HTTP ${status}${detail}`;
  if (RETRYABLE_STATUS.has(status)) {
    return new TransientError(`HTTP ${status}${detail}`, retryAfterMs(header(res, 'retry-after')), ctx);
  }
  const named = subject === undefined ? what : `${subject}: ${what}`;
  if (status === 404) return new RegistryStatusError('NOT_FOUND', named, status);
  if (status === 401) {
    // Issue 21: "HTTP 401" alone did not tell a wrong password from a missing login.
    const why = withCredentials.has(res) ? `credentials rejected by ${ctx.registry}` : `${ctx.registry} needs credentials (docker login ${ctx.registry})`;
    return new RegistryStatusError('UNAUTHORIZED', `${named}: ${why}`, status);
  }
  if (status === 403) return new RegistryStatusError('DENIED', named, status);
  return new RegistryStatusError('PROTOCOL', `${named}: unexpected status`, status);
}

async function errorDetail(res: HttpResponse): Promise<string> {
  if (res.statusCode === 416) return '';
  let text: string;
  try {
    text = new TextDecoder().decode(await readBody(res.body, 4096, 'error body', true));
  } catch {
    return '';
  }
  try {
    const doc = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = Array.isArray(doc.errors) ? doc.errors[0] : undefined;
    if (first && typeof first.code === 'string') {
      const msg = typeof first.message === 'string' ? `: ${first.message.slice(0, 200)}` : '';
      return ` (${first.code}${msg})`;
    }
  } catch {
    // Not the distribution error format: the status says enough.
  }
  return '';
}

/**
 * Reads a whole body of at most `limit` bytes. Over the limit: FormatError (or, with `truncate`, the first
 * `limit` bytes), and the connection is dropped rather than drained.
 */
export async function readBody(
  body: HttpResponse['body'],
  limit: number,
  what: string,
  truncate = false,
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  await consumeBody(body, (chunk) => {
    if (total + chunk.length > limit) {
      if (!truncate) throw new FormatError(`${what} is larger than ${limit} bytes`);
      chunks.push(chunk.subarray(0, limit - total));
      total = limit;
      return false;
    }
    chunks.push(chunk);
    total += chunk.length;
    return true;
  });
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/**
 * Feeds a body's chunks to `take` as they arrive, until the body ends or `take` answers false (the body is
 * then dropped). A throw from `take` drops the body and rejects with it. Listeners, not an async iterator:
 * a 1 GiB read arrives in ~16k socket reads, and the iterator's promises per chunk cost ~0.5 s of the JS
 * thread's ~4.5 s (V8 profile of bench/gib-throughput.ts).
 */
export function consumeBody(body: HttpResponse['body'], take: (chunk: Buffer) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const stop = (err?: unknown): void => {
      if (done) return;
      done = true;
      body.off('data', onData);
      body.off('end', onEnd);
      // The error listener stays: an error after the end must not go unheard (an unheard one kills the daemon).
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (chunk: Buffer): void => {
      let more: boolean;
      try {
        more = take(chunk);
      } catch (err) {
        drop(body);
        return stop(err);
      }
      if (!more) {
        drop(body);
        stop();
      }
    };
    const onEnd = (): void => stop();
    body.on('data', onData);
    body.once('end', onEnd);
    body.on('error', stop);
  });
}

/**
 * Ends a response early: undici then destroys the socket, which is what we want after a protocol error or
 * a whole blob we need only part of. The body would emit an abort error nobody listens for; swallow it.
 */
export function drop(body: HttpResponse['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Lets go of a body we do not want; small ones are read so the connection can be reused. */
export async function discard(res: HttpResponse): Promise<void> {
  const n = contentLength(res);
  if (n !== undefined && n <= 16 * 1024) {
    await res.body.dump({ limit: 16 * 1024 }).catch(() => undefined);
  } else {
    drop(res.body);
  }
}

export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** `bytes A-B/T` or `bytes A-B/*`; undefined when malformed. `total` is undefined for `*`. */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
  return { start, end, total };
}

/** The total size from an unsatisfied-range `Content-Range: bytes *\/T`. */
export function unsatisfiedRangeTotal(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value);
  const n = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}
