/**
 * Retries with capped exponential backoff and full jitter (delay drawn from [0, min(max, min·2^n)]), so
 * many readers hit by one registry hiccup do not return in lock-step.
 *
 * This runs around a whole request *and* its body, not as an undici interceptor: a truncated body is only
 * seen by the consumer after bytes have been handed over, and undici's RetryHandler resumes with its own
 * Range header, which would collide with our range reads and the 200-instead-of-206 fallback.
 */
import { channel } from 'node:diagnostics_channel';
import { setTimeout as delay } from 'node:timers/promises';
import { InvalidOptionError, TocfsError } from '../errors.js';
import { describe, TransientError, type RequestContext } from './http.js';
import { deadline } from '../util/abort.js';

export interface RetryOptions {
  /** Retries after the first try. Default 4. */
  readonly maxRetries?: number;
  /** Backoff scale for the first retry. Default 100 ms. */
  readonly minDelayMs?: number;
  /** Cap on a backoff delay; a Retry-After longer than this gives up at once. Default 5000 ms. */
  readonly maxDelayMs?: number;
  /**
   * The longest one operation (a range read, a manifest) may take across all its tries, backoffs
   * included (--fetch-timeout). Each try alone could otherwise wait out undici's 30 s headers timeout,
   * five tries over: a registry that accepts and never answers held a read(2) for ~305 s (issue 21).
   * Infinity: no bound (uploads). Default 30 s.
   */
  readonly budgetMs?: number;
}

export type RetryPolicy = Required<RetryOptions>;

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ maxRetries: 4, minDelayMs: 100, maxDelayMs: 5000, budgetMs: 30_000 });

export function retryPolicy(opts: RetryOptions = {}): RetryPolicy {
  const p = { ...DEFAULT_RETRY, ...opts };
  if (!Number.isSafeInteger(p.maxRetries) || p.maxRetries < 0 || p.maxRetries > 100) {
    throw new InvalidOptionError('retry.maxRetries', 'must be an integer from 0 to 100');
  }
  for (const key of ['minDelayMs', 'maxDelayMs'] as const) {
    if (!Number.isFinite(p[key]) || p[key] < 0) throw new InvalidOptionError(`retry.${key}`, 'must be a number >= 0');
  }
  if (p.maxDelayMs < p.minDelayMs) throw new InvalidOptionError('retry.maxDelayMs', 'must be >= retry.minDelayMs');
  if (!(p.budgetMs > 0)) throw new InvalidOptionError('retry.budgetMs', 'must be a number > 0 (Infinity: no bound)');
  return Object.freeze(p);
}

/** Published before each retry's wait: `{ registry, method, path, attempt, delayMs, reason }`. */
export const retryChannel = channel('tocfs:registry:retry');

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** 408/429/5xx and truncated bodies (TransientError), resets, refusals, timeouts and parser errors. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof TocfsError) return false;
  const code = codeOf(err);
  // A response the parser could not read leaves the connection in an unknown state; a new one may do.
  return code !== undefined && (NETWORK_CODES.has(code) || code.startsWith('HPE_'));
}

/** The wait before retry number `retry` (1-based); undefined when a Retry-After asks for more than we allow. */
export function backoffMs(policy: RetryPolicy, retry: number, err: unknown, random = Math.random): number | undefined {
  const cap = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** Math.min(retry - 1, 30));
  const jitter = random() * cap;
  const after = err instanceof TransientError ? err.retryAfterMs : undefined;
  if (after === undefined) return jitter;
  return after > policy.maxDelayMs ? undefined : Math.max(after, jitter);
}

/** A short text for an error, for messages and events: the TocfsError message or `CODE: message`. */
export function causeText(err: unknown): string {
  if (err instanceof TocfsError) return err.message;
  if (err instanceof Error) {
    const code = codeOf(err);
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

function abortedError(ctx: RequestContext, signal: AbortSignal, tries = 0, last?: unknown): TocfsError {
  const reason: unknown = signal.reason;
  if (reason instanceof TocfsError && reason.code === 'TIMEOUT') {
    // The cause is the last failure that was not the timeout itself: what a user needs to see once.
    const real = last === undefined || last === reason || (last as { cause?: unknown }).cause === reason ? undefined : last;
    const tried = tries === 1 ? '1 try' : `${tries} tries`;
    const why = real === undefined ? '' : `; last: ${causeText(real)}`;
    return new TocfsError('TIMEOUT', `${describe(ctx)}: ${reason.message}, ${tried}${why}`, { cause: real ?? reason });
  }
  return new TocfsError('ABORTED', `${describe(ctx)}: aborted`, { cause: reason });
}

// Errors that prove the peer speaks TLS but we refuse its certificate (Node's OpenSSL codes).
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;
// undici's words when a proxy answers CONNECT with anything but 200 (proxy-agent.js).
const PROXY_REFUSED = /Proxy response \((\d+)\) !== 200/;

/**
 * Lets TocfsErrors through; anything else becomes SOURCE_UNAVAILABLE, said so that a user knows what to
 * do: an untrusted certificate names its fixes, a proxy refusing the tunnel its real status (issue 21).
 */
function asTocfsError(ctx: RequestContext, err: unknown): TocfsError {
  if (err instanceof TocfsError) return err;
  const code = codeOf(err);
  if (code !== undefined && CERTIFICATE_ERROR.test(code)) {
    const how = 'if it uses a private CA, pass its certificate with --ca-file FILE or set NODE_EXTRA_CA_CERTS=FILE';
    return new TocfsError('SOURCE_UNAVAILABLE', `${describe(ctx)}: the registry's TLS certificate is not trusted (${code}); ${how}`, { cause: err });
  }
  const proxy = err instanceof Error ? PROXY_REFUSED.exec(err.message) : null;
  if (proxy) {
    return new TocfsError('SOURCE_UNAVAILABLE', `${describe(ctx)}: the proxy refused to connect to ${ctx.via ?? ctx.registry}: HTTP ${proxy[1]} (HTTPS_PROXY, NO_PROXY)`, { cause: err });
  }
  return new TocfsError('SOURCE_UNAVAILABLE', `${describe(ctx)}: ${causeText(err)}`, { cause: err });
}

function gaveUp(ctx: RequestContext, tries: number, err: unknown, why = ''): TocfsError {
  const at = err instanceof TransientError && err.context ? err.context : ctx;
  const tried = tries === 1 ? '1 try' : `${tries} tries`;
  return new TocfsError('SOURCE_UNAVAILABLE', `${describe(at)}: failed after ${tried}${why}: ${causeText(err)}`, {
    cause: err,
  });
}

export interface RetryHooks {
  /** Called once per retry, before its wait. */
  onRetry?(attempt: number, delayMs: number, err: unknown): void;
  random?: () => number;
}

/**
 * Runs `attempt(n, signal)` (n from 0) until it succeeds, fails for good, the policy is spent, the
 * policy's time budget is spent (TIMEOUT naming the last cause), or `signal` aborts. `attempt` must use
 * the signal it is given, which carries the budget. Non-retryable TocfsErrors pass through unchanged; a
 * spent policy ends in SOURCE_UNAVAILABLE naming the request and the last cause.
 */
export async function withRetry<T>(
  ctx: RequestContext,
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  attempt: (n: number, signal: AbortSignal | undefined) => Promise<T>,
  hooks: RetryHooks = {},
): Promise<T> {
  const bounded = deadline(policy.budgetMs, signal);
  const s = bounded.signal;
  let last: unknown;
  try {
    for (let n = 0; ; n++) {
      if (s?.aborted) throw abortedError(ctx, s, n, last);
      try {
        return await attempt(n, s);
      } catch (err) {
        if (s?.aborted) throw abortedError(ctx, s, n + 1, last ?? err);
        last = err;
        try {
          await afterFailure(ctx, policy, n + 1, err, s, hooks);
        } catch (e) {
          // The budget ran out during the backoff: name the failure that led to it.
          if (s?.aborted) throw abortedError(ctx, s, n + 1, err);
          throw e;
        }
      }
    }
  } finally {
    bounded.done();
  }
}

/**
 * The decision after failure number `failures` (1-based): waits out the backoff when another try is
 * worth it, else throws what the caller should see. For loops that cannot be a single `attempt`, such
 * as a stream that resumes where it broke.
 */
export async function afterFailure(
  ctx: RequestContext,
  policy: RetryPolicy,
  failures: number,
  err: unknown,
  signal: AbortSignal | undefined,
  hooks: RetryHooks = {},
): Promise<void> {
  if (signal?.aborted) throw abortedError(ctx, signal);
  if (!isRetryable(err)) throw asTocfsError(ctx, err);
  if (failures > policy.maxRetries) throw gaveUp(ctx, failures, err);
  const wait = backoffMs(policy, failures, err, hooks.random);
  if (wait === undefined) throw gaveUp(ctx, failures, err, ' (Retry-After beyond retry.maxDelayMs)');
  await pause(ctx, failures, wait, err, signal, hooks);
}

/** Announces and waits out one retry's backoff; ABORTED when the signal fires meanwhile. */
async function pause(
  ctx: RequestContext,
  attempt: number,
  wait: number,
  err: unknown,
  signal: AbortSignal | undefined,
  hooks: RetryHooks = {},
): Promise<void> {
  hooks.onRetry?.(attempt, wait, err);
  if (retryChannel.hasSubscribers) {
    retryChannel.publish({ ...ctx, attempt, delayMs: Math.round(wait), reason: causeText(err) });
  }
  try {
    await delay(wait, undefined, signal ? { signal } : undefined);
  } catch (e) {
    if (signal?.aborted) throw abortedError(ctx, signal);
    throw e;
  }
}
