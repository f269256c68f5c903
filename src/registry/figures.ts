/**
 * Interceptor that counts every request and response body byte through one dispatcher (the client's
 * `stats()`), and publishes each finished request on `tocfs:registry:request` as
 * `{ origin, method, path, statusCode, bytes, startedMs, durationMs, error? }` (`startedMs`: performance.now()). Paths lose their query: signed CDN
 * URLs carry their signature there.
 */
import { channel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { pathOnly } from './http.js';

export interface RequestFigures {
  requests: number;
  bytesReceived: number;
}

export const requestChannel = channel('tocfs:registry:request');

export function countRequests(figures: RequestFigures): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    figures.requests++;
    return dispatch(opts, new CountingHandler(opts, handler, figures));
  };
}

class CountingHandler implements Dispatcher.DispatchHandler {
  #opts: Dispatcher.DispatchOptions;
  #next: Dispatcher.DispatchHandler;
  #figures: RequestFigures;
  #started = performance.now();
  #status = 0;
  #bytes = 0;

  constructor(opts: Dispatcher.DispatchOptions, next: Dispatcher.DispatchHandler, figures: RequestFigures) {
    this.#opts = opts;
    this.#next = next;
    this.#figures = figures;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#next.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>): void {
    this.#next.onRequestUpgrade?.(...args);
  }

  onResponseStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>): void {
    this.#status = args[1];
    this.#next.onResponseStart?.(...args);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length;
    this.#figures.bytesReceived += chunk.length;
    this.#next.onResponseData?.(controller, chunk);
  }

  onResponseEnd(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>): void {
    this.#publish(undefined);
    this.#next.onResponseEnd?.(...args);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#publish(error);
    this.#next.onResponseError?.(controller, error);
  }

  #publish(error: Error | undefined): void {
    if (!requestChannel.hasSubscribers) return;
    const origin = this.#opts.origin;
    requestChannel.publish({
      origin: typeof origin === 'string' ? origin : origin?.origin,
      method: this.#opts.method,
      path: pathOnly(this.#opts.path),
      statusCode: this.#status,
      bytes: this.#bytes,
      startedMs: this.#started,
      durationMs: performance.now() - this.#started,
      ...(error ? { error } : {}),
    });
  }
}
