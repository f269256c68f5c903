// Scheme and TLS choice: loopback registries try TLS first and fall back to plain HTTP only when the
// peer does not speak TLS; a certificate we cannot verify is an error, never a silent downgrade;
// --insecure-registry hosts skip verification; `ca` adds to the trusted roots.
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
