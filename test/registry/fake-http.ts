// node:http fakes on 127.0.0.1:0 for the registry protocol tests (STYLE.md tests: undici
// test/interceptors/retry.js style). Each fake records every request and counts connections, so a test
// can tell whether a connection was dropped or reused.
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createHash } from 'node:crypto';
import type { Test } from 'tap';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { xorshift32 } from '../support/prng.js';

export interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

export interface Fake {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly url: string;
  readonly requests: Recorded[];
  /** Requests other than the scheme probe's `GET /v2/`. */
  readonly calls: () => Recorded[];
  readonly connections: () => number;
  close(): Promise<void>;
}

export async function startFake(t: Test, handler: Handler): Promise<Fake> {
  const requests: Recorded[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      requests.push({ method: req.method ?? '', url, path: url.split('?')[0]!, headers: req.headers, body });
      Promise.resolve(handler(req, res, body)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
  });
  server.keepAliveTimeout = 2000;
  server.on('connection', () => connections++);
  const { port, close } = await listenLoopback(t, server);
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    calls: () => requests.filter((r) => r.path !== '/v2/'),
    connections: () => connections,
    close,
  };
}

/**
 * Starts `server` on 127.0.0.1:0 and closes it at teardown (or earlier, by `close`, which may be called
 * again). Closing destroys the sockets still open, or a keep-alive connection would hold it open.
 * `socketEvent` is 'secureConnection' for a TLS server, to track only sockets past the handshake.
 */
export async function listenLoopback(
  t: Test,
  server: Server,
  socketEvent: 'connection' | 'secureConnection' = 'connection',
): Promise<{ readonly port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on(socketEvent, (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const closed = once(server, 'close');
      server.close();
      for (const s of sockets) s.destroy();
      await closed;
    })());
  t.teardown(close);
  return { port: (server.address() as AddressInfo).port, close };
}

/** A client with fast retries, closed at teardown. */
export function testClient(t: Test, opts: RegistryClientOptions = {}): RegistryClient {
  const client = new RegistryClient({ retry: { minDelayMs: 1, maxDelayMs: 20 }, ...opts });
  t.teardown(() => client.close());
  return client;
}

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Deterministic pseudo-random bytes, so slices are distinguishable. */
export function blobOf(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  const next = xorshift32(seed >>> 0 || 1);
  for (let i = 0; i < size; i++) out[i] = next() & 0xff;
  return out;
}

/** The descriptor the client is given for `blob`. */
export function blobDesc(blob: Buffer): { mediaType: string; digest: string; size: number } {
  return { mediaType: 'application/octet-stream', digest: sha256(blob), size: blob.length };
}

/** The bytes of an OCI image manifest with no layers whose config is `config`. */
export function manifestOf(config: { readonly digest: string; readonly size: number }): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [],
    }),
  );
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Serves a blob the way distribution does: 206 for `bytes=a-b` (clamped), 200 otherwise, HEAD with length. */
export function serveBlob(req: IncomingMessage, res: ServerResponse, blob: Buffer): void {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (req.method === 'HEAD') {
    res.writeHead(200, { 'content-length': blob.length, 'docker-content-digest': sha256(blob) });
    res.end();
    return;
  }
  if (!m) {
    res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream' });
    res.end(blob);
    return;
  }
  const start = Number(m[1]);
  const end = Math.min(m[2] === '' ? blob.length - 1 : Number(m[2]), blob.length - 1);
  res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${blob.length}` });
  res.end(blob.subarray(start, end + 1));
}

/** `GET /v2/` answered 200: a registry without auth. */
export function pingOk(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url !== '/v2/') return false;
  json(res, 200, {});
  return true;
}
