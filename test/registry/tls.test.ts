// Scheme and TLS choice: loopback registries try TLS first and fall back to plain HTTP only when the
// peer does not speak TLS; a certificate we cannot verify is an error, never a silent downgrade;
// --insecure-registry hosts skip verification, and their first GET goes out over plain HTTP with the pings
// (used only when the registry turns out to speak nothing else); `ca` adds to the trusted roots.
import t, { type Test } from 'tap';
import https from 'node:https';
import { generateTlsMaterial, tlsMaterial, type TlsMaterial } from '../support/certs.js';
import { blobOf, listenLoopback, serveBlob, sha256, startFake, testClient, pingOk } from './fake-http.js';

const REPO = 'team/app';
const blob = blobOf(2000);
const digest = sha256(blob);

async function startTlsFake(t: Test, m: TlsMaterial): Promise<{ host: string; requests: string[] }> {
  const requests: string[] = [];
  const server = https.createServer({ key: m.keyPem, cert: m.certPem }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (pingOk(req, res)) return;
    serveBlob(req, res, blob);
  });
  const { port } = await listenLoopback(t, server, 'secureConnection');
  return { host: `127.0.0.1:${port}`, requests };
}

t.test('a loopback registry that speaks TLS is used over TLS with the given CA', async (t) => {
  const m = await tlsMaterial();
  const fake = await startTlsFake(t, m);
  const client = testClient(t, { ca: [m.caPem] });
  t.equal(await client.blobSize({ registry: fake.host, repository: REPO }, digest), blob.length);
  t.same(fake.requests, ['GET /v2/', `HEAD /v2/${REPO}/blobs/${digest}`]);
});

t.test('an unverifiable certificate is an error, not a fallback to plain HTTP', async (t) => {
  const m = await generateTlsMaterial();
  const fake = await startTlsFake(t, m);
  const client = testClient(t);
  await t.rejects(client.blobSize({ registry: fake.host, repository: REPO }, digest), {
    code: 'SOURCE_UNAVAILABLE',
    message: new RegExp(`registry ${fake.host}: HEAD /v2/${REPO}/blobs/${digest}: .*(CERT|certificate)`, 'i'),
  });
  t.same(fake.requests, [], 'no request got through');
});

t.test('--insecure-registry skips certificate verification for that host only', async (t) => {
  const m = await generateTlsMaterial();
  const fake = await startTlsFake(t, m);
  const other = await startTlsFake(t, m);
  const client = testClient(t, { insecureRegistries: [fake.host] });
  t.equal(await client.blobSize({ registry: fake.host, repository: REPO }, digest), blob.length);
  await t.rejects(client.blobSize({ registry: other.host, repository: REPO }, digest), { code: 'SOURCE_UNAVAILABLE' });
});

t.test('an --insecure-registry host that speaks TLS: the first GET sent early over plain HTTP is dropped, and sent over TLS', async (t) => {
  const m = await generateTlsMaterial();
  const fake = await startTlsFake(t, m);
  const client = testClient(t, { insecureRegistries: [fake.host] });
  const got = await client.readRange({ registry: fake.host, repository: REPO }, digest, { start: 0, end: 100 });
  t.same(Buffer.from(got), blob.subarray(0, 100));
  t.same(fake.requests, ['GET /v2/', `GET /v2/${REPO}/blobs/${digest}`], 'over TLS: the ping, then the GET');
});

t.test('a loopback registry without TLS is reached over plain HTTP', async (t) => {
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const client = testClient(t);
  t.equal(await client.blobSize({ registry: fake.host, repository: REPO }, digest), blob.length);
});

t.test('options are validated with named errors', async (t) => {
  t.throws(() => testClient(t, { insecureRegistries: ['http://x.example'] }), { code: 'INVALID_OPTION', option: 'insecureRegistries' });
  t.throws(() => testClient(t, { ca: ['not a pem'] }), { code: 'INVALID_OPTION', option: 'ca' });
  t.throws(() => testClient(t, { timeouts: { connectMs: 0 } }), { code: 'INVALID_OPTION', option: 'timeouts.connectMs' });
  t.throws(() => testClient(t, { maxConfigBytes: -1 }), { code: 'INVALID_OPTION', option: 'maxConfigBytes' });
});

/**
 * One port, two behaviours: a TLS ClientHello is held unanswered until the plain ping has been served (or
 * 5 s have passed: a client that waits for TLS to fail before it pings plain HTTP), then the connection is
 * closed (no TLS here); a plain request is a registry answering over HTTP.
 */
async function plainBehindTlsAttempt(t: Test, events: string[]): Promise<string> {
  let releaseTls: () => void = () => {};
  const plainServed = new Promise<void>((resolve) => (releaseTls = resolve));
  const http = await import('node:http');
  const net = await import('node:net');
  const web = http.createServer((req, res) => {
    events.push(`plain ${req.method} ${req.url}`);
    if (req.url === '/v2/') releaseTls();
    if (pingOk(req, res)) return;
    serveBlob(req, res, blob);
  });
  const server = net.createServer((socket) => {
    socket.once('data', (first) => {
      if (first[0] === 0x16) {
        events.push('tls hello');
        const timer = setTimeout(releaseTls, 5000);
        void plainServed.then(() => {
          clearTimeout(timer);
          events.push('tls refused');
          socket.destroy();
        });
        return;
      }
      socket.pause();
      socket.unshift(first);
      web.emit('connection', socket);
      socket.resume();
    });
  });
  const { port } = await listenLoopback(t, server, 'connection');
  return `127.0.0.1:${port}`;
}

t.test('TLS and plain pings go out together: a registry without TLS costs one round of pings', async (t) => {
  const events: string[] = [];
  const host = await plainBehindTlsAttempt(t, events);
  const client = testClient(t);
  t.equal(await client.blobSize({ registry: host, repository: REPO }, digest), blob.length);
  t.same(events.slice(0, 3).sort(), ['plain GET /v2/', 'tls hello', 'tls refused'].sort());
  t.ok(events.indexOf('plain GET /v2/') < events.indexOf('tls refused'), `the plain ping was answered while the TLS attempt was pending: ${events.join(', ')}`);
  t.equal(events.at(-1), `plain HEAD /v2/${REPO}/blobs/${digest}`, 'and the registry is used over plain HTTP');
});

t.test('an --insecure-registry host without TLS: the first GET goes out with the pings, and its answer is used', async (t) => {
  const events: string[] = [];
  const host = await plainBehindTlsAttempt(t, events);
  const client = testClient(t, { insecureRegistries: [host] });
  const got = await client.readRange({ registry: host, repository: REPO }, digest, { start: 0, end: 100 });
  t.same(Buffer.from(got), blob.subarray(0, 100));
  const get = `plain GET /v2/${REPO}/blobs/${digest}`;
  t.ok(events.indexOf(get) >= 0 && events.indexOf(get) < events.indexOf('tls refused'), `the GET was served before the TLS attempt failed: ${events.join(', ')}`);
  t.equal(events.filter((e) => e === get).length, 1, 'and not sent again');
});
