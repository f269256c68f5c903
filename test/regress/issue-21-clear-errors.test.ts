// Issue 21, "clear errors": what a new user meets says what is wrong and how to fix it, without a stack.
import https from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runTocfs } from '../support/cli.js';
import { generateTlsMaterial } from '../support/certs.js';
import { tempDir } from '../support/tmp.js';
import { blobDesc, blobOf, json, listenLoopback, pingOk, serveBlob, startFake, testClient } from '../registry/fake-http.js';

const REPO = 'issue21/errors';
const blob = blobOf(1000, 7);
const desc = blobDesc(blob);

t.test('a mount point that is a file says so', async (t) => {
  const dir = tempDir(t, 'mnt-file');
  const path = join(dir, 'not-a-dir');
  writeFileSync(path, 'x');
  const r = await runTocfs(['mount', path, '--cache-dir', join(dir, 'cache'), '--no-cvmfs']);
  t.equal(r.code, 1);
  t.match(r.err, /mount point .*not-a-dir is a file, not a directory/);
  t.notMatch(r.err, /EEXIST|\n\s+at /, 'no errno jargon, no stack');
});

t.test('an unwritable cache dir says so, without a stack', async (t) => {
  const dir = tempDir(t, 'cache-file');
  const blocker = join(dir, 'file');
  writeFileSync(blocker, 'x'); // even root cannot make a directory under a file
  const r = await runTocfs(['ls', '127.0.0.1:1/x/y:z', '--cache-dir', join(blocker, 'cache')]);
  t.not(r.code, 0);
  t.match(r.err, /invalid option --cache-dir: cannot write to .*file\/cache \(ENOTDIR\): choose a writable directory/);
  t.notMatch(r.err, /\n\s+at /, 'no stack');
});

t.test('Basic auth: "credentials rejected by HOST" versus "HOST needs credentials"', async (t) => {
  const good = `Basic ${Buffer.from('alice:right').toString('base64')}`;
  const fake = await startFake(t, (req, res) => {
    if (req.headers.authorization !== good) return json(res, 401, {}, { 'www-authenticate': 'Basic realm="reg"' });
    if (req.url === '/v2/') return json(res, 200, {});
    serveBlob(req, res, blob);
  });
  const repo = { registry: fake.host, repository: REPO };
  const wrong = testClient(t, { credentials: { lookup: () => ({ kind: 'basic', username: 'alice', password: 'wrong' }) } });
  await t.rejects(wrong.blobSize(repo, desc.digest), { code: 'UNAUTHORIZED', message: new RegExp(`credentials rejected by ${fake.host}`) });
  const none = testClient(t);
  await t.rejects(none.blobSize(repo, desc.digest), { code: 'UNAUTHORIZED', message: new RegExp(`${fake.host} needs credentials`) });
});

t.test('an untrusted certificate says what it means and how to fix it', async (t) => {
  const m = await generateTlsMaterial();
  const server = https.createServer({ key: m.keyPem, cert: m.certPem }, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const { port } = await listenLoopback(t, server, 'secureConnection');
  const client = testClient(t);
  await t.rejects(client.blobSize({ registry: `127.0.0.1:${port}`, repository: REPO }, desc.digest), {
    code: 'SOURCE_UNAVAILABLE',
    message: /TLS certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|[A-Z_]+)\); if it uses a private CA, pass its certificate with --ca-file FILE or set NODE_EXTRA_CA_CERTS=FILE/,
  });
  // And --ca-file is the fix it names.
  const dir = tempDir(t, 'ca-file');
  writeFileSync(join(dir, 'ca.pem'), m.caPem);
  const r = await runTocfs(['ls', `127.0.0.1:${port}/${REPO}:v1`, '--ca-file', join(dir, 'ca.pem'), '--cache-dir', join(dir, 'cache')]);
  t.match(r.err, /errors:v1: resolving: manifest/, `with --ca-file the registry is reached over TLS: ${r.err}`);
  t.notMatch(r.err, /not trusted|Unknown option/);
});
