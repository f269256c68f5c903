// HTTP_PROXY / NO_PROXY (DESIGN.md §1.1: worker nodes reach registries through site caches), with a
// tiny forward proxy on loopback that counts what it forwards.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { Socket } from 'node:net';
import { blobDesc, blobOf, listenLoopback, pingOk, serveBlob, startFake, testClient } from './fake-http.js';
import { proxyEnv } from '../support/proxy-env.js';

const REPO = 'team/app';
const blob = blobOf(3000);
const desc = blobDesc(blob);

interface ForwardProxy {
  url: string;
  /** Absolute-form request URLs forwarded. */
  forwarded: string[];
  /** CONNECT targets asked for (refused: this proxy does not tunnel). */
  tunnels: string[];
}

async function startForwardProxy(t: Test): Promise<ForwardProxy> {
  const forwarded: string[] = [];
  const tunnels: string[] = [];
  const server = http.createServer((req, res) => {
    forwarded.push(req.url ?? '');
    const target = new URL(req.url ?? '');
    const upstream = http.request(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, socket: Socket) => {
    tunnels.push(req.url ?? '');
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
  });
  const { port } = await listenLoopback(t, server);
  return { url: `http://127.0.0.1:${port}`, forwarded, tunnels };
}

t.test('HTTP_PROXY is honoured', async (t) => {
  const registry = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const proxy = await startForwardProxy(t);
  proxyEnv(t, { HTTP_PROXY: proxy.url });
  const client = testClient(t);
  const got = await client.readRange({ registry: registry.host, repository: REPO }, desc, { start: 5, end: 50 });
  t.same(Buffer.from(got), blob.subarray(5, 50));
  t.ok(proxy.forwarded.includes(`http://${registry.host}/v2/${REPO}/blobs/${desc.digest}`), 'blob requests went through the proxy');
  t.equal(proxy.forwarded.length, registry.requests.length, 'every registry request came through the proxy');
});

t.test('NO_PROXY is honoured', async (t) => {
  const registry = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const proxy = await startForwardProxy(t);
  proxyEnv(t, { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' });
  const client = testClient(t);
  const got = await client.readRange({ registry: registry.host, repository: REPO }, desc, { start: 0, end: 3000 });
  t.same(Buffer.from(got), blob);
  t.same(proxy.forwarded, []);
  t.same(proxy.tunnels, []);
});

t.test('the proxy option overrides the environment', async (t) => {
  const registry = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const proxy = await startForwardProxy(t);
  proxyEnv(t, {});
  const client = testClient(t, { proxy: { httpProxy: proxy.url } });
  await client.blobSize({ registry: registry.host, repository: REPO }, desc.digest);
  t.ok(proxy.forwarded.length > 0);
});

t.test('a proxy that refuses to tunnel is reported with its own status, not as the registry\'s', async (t) => {
  const proxy = await startForwardProxy(t);
  proxyEnv(t, { HTTPS_PROXY: proxy.url });
  const client = testClient(t);
  // `.invalid` never resolves: only the loopback proxy is ever dialled, and it refuses the CONNECT (403).
  const err = await client.blobSize({ registry: 'registry.invalid', repository: REPO }, desc.digest).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  t.ok(proxy.tunnels.some((target) => target.startsWith('registry.invalid')), 'the CONNECT reached the proxy');
  t.match(err?.message, /the proxy refused to connect to registry\.invalid.*HTTP 403/, String(err?.message));
  t.notMatch(err?.message, /HTTP 400/);
});
