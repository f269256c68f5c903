/**
 * Interceptor for one registry quirk. Distribution v2.8.2 (2023; Debian 12's docker-registry, reproduced
 * in TESTING.md "Registry") answers an unsatisfiable range with 416 and a Content-Length of
 * the *whole blob* but no body.
 * Reading that body waits for bytes that never come; keeping the connection makes undici read the next
 * response as the rest of this one. So on any 416 the request is aborted at the headers, which destroys
 * the socket, and the caller gets a RangeNotSatisfiableError instead of a body.
 */
import type { Dispatcher } from 'undici';
import { TocfsError } from '../errors.js';
import { pathOnly, unsatisfiedRangeTotal } from './http.js';

type ResponseHeaders = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2];

export class RangeNotSatisfiableError extends TocfsError {
  override name = 'RangeNotSatisfiableError';
  constructor(
    message: string,
    /** From `Content-Range: bytes *\/T`, when the server sent it. */
    readonly totalSize: number | undefined,
  ) {
    super('PROTOCOL', message);
  }
}

export function dropRangeNotSatisfiable(): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => dispatch(opts, new DroppingHandler(opts, handler));
}

class DroppingHandler implements Dispatcher.DispatchHandler {
  #opts: Dispatcher.DispatchOptions;
  #next: Dispatcher.DispatchHandler;
  #dropped = false;

  constructor(opts: Dispatcher.DispatchOptions, next: Dispatcher.DispatchHandler) {
    this.#opts = opts;
    this.#next = next;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#next.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>): void {
    this.#next.onRequestUpgrade?.(...args);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode !== 416) return this.#next.onResponseStart?.(controller, statusCode, headers, statusMessage);
    this.#dropped = true;
    const cr = headers['content-range'];
    const total = unsatisfiedRangeTotal(Array.isArray(cr) ? cr[0] : cr);
    const range = rangeOf(this.#opts.headers);
    const what = `${this.#opts.method} ${pathOnly(this.#opts.path)}: HTTP 416, range ${range ?? '?'} not satisfiable`;
    controller.abort(new RangeNotSatisfiableError(total === undefined ? what : `${what} (blob size ${total})`, total));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#dropped) this.#next.onResponseData?.(controller, chunk);
  }

  onResponseEnd(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>): void {
    if (!this.#dropped) this.#next.onResponseEnd?.(...args);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#next.onResponseError?.(controller, error);
  }
}

function rangeOf(headers: Dispatcher.DispatchOptions['headers']): string | undefined {
  if (headers && !Array.isArray(headers) && typeof headers === 'object' && !(Symbol.iterator in headers)) {
    const h = headers as Record<string, unknown>;
    const v = h.range ?? h.Range;
    return typeof v === 'string' ? v : undefined;
  }
  return undefined;
}
