// Registry auth against node:http fakes: challenges, bearer tokens (anonymous, Basic, identity token),
// the token cache, the one retry after a 401, Basic auth, and credentials kept out of errors and events.
import t, { type Test } from 'tap';
import { inspect } from 'node:util';
import { MockAgent } from 'undici';
import { Authenticator } from '../../src/registry/auth.js';
import { parseChallenges, pickChallenge } from '../../src/registry/challenge.js';
import type { Credentials } from '../../src/registry/types.js';
import { recordChannels } from '../support/channels.js';
import { blobDesc, blobOf, json, manifestOf, serveBlob, sha256, startFake, testClient, type Fake } from './fake-http.js';

const REPO = 'team/app';
const SERVICE = 'reg.test';
const blob = blobOf(5000);
const desc = blobDesc(blob);
const manifest = manifestOf(desc);

function creds(c: Credentials) {
  return { lookup: (registry: string) => (registry.startsWith('127.0.0.1:') || registry === 'registry.example' ? c : undefined) };
}

interface TokenSetup {
  /** Challenge on `GET /v2/` (true) or only on resources (false). Default true. */
  pingChallenges?: boolean;
  expiresIn?: number;
  /** Issuer answers for POST (OAuth2), else 405. */
  oauth?: boolean;
}

interface TokenRegistry {
  registry: Fake;
  issuer: Fake;
  issued: string[];
  /** Tokens the registry accepts; clear it to revoke. */
  valid: Set<string>;
}

async function tokenRegistry(t: Test, setup: TokenSetup = {}): Promise<TokenRegistry> {
  const issued: string[] = [];
  const valid = new Set<string>();
  const issuer = await startFake(t, (req, res, body) => {
    if (req.method === 'POST' && !setup.oauth) return json(res, 405, {});
    const token = `tok-${issued.length + 1}-${'x'.repeat(20)}`;
    issued.push(token);
    valid.add(token);
    const answer: Record<string, unknown> = req.method === 'POST' ? { access_token: token } : { token };
    if (setup.expiresIn !== undefined) answer.expires_in = setup.expiresIn;
    void body;
    json(res, 200, answer);
  });
  const challenge = (scope?: string): string =>
    `Bearer realm="${issuer.url}/token",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}`;
  const registry = await startFake(t, (req, res) => {
    const auth = req.headers.authorization;
    const ok = auth !== undefined && auth.startsWith('Bearer ') && valid.has(auth.slice(7));
    if (req.url === '/v2/') {
      if (setup.pingChallenges === false || ok) return json(res, 200, {});
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': challenge() });
    }
    if (!ok) {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, {
        'www-authenticate': `${challenge(`repository:${REPO}:pull`)},error="invalid_token"`,
      });
    }
    if (req.url?.includes('/manifests/')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': manifest.length });
      return res.end(manifest);
    }
    serveBlob(req, res, blob);
  });
  return { registry, issuer, issued, valid };
}

t.test('401 then token: the ping brings the challenge, the first request carries the token', async (t) => {
  const r = await tokenRegistry(t);
  const client = testClient(t);
  const got = await client.getManifest({ registry: r.registry.host, repository: REPO }, 'v1');
  t.equal(got.digest, sha256(manifest));
  t.equal(r.issuer.requests.length, 1);
  const tokenUrl = new URL(r.issuer.requests[0]!.url, 'http://x');
  t.equal(tokenUrl.searchParams.get('service'), SERVICE);
  t.same(tokenUrl.searchParams.getAll('scope'), [`repository:${REPO}:pull`]);
  t.equal(r.issuer.requests[0]!.headers.authorization, undefined, 'anonymous');
  const calls = r.registry.calls();
  t.equal(calls.length, 1);
  t.equal(calls[0]!.headers.authorization, `Bearer ${r.issued[0]}`);
});

t.test('an --insecure-registry host: its early plain GET (no credentials) collects a 401, dropped, and the request goes again with the token', async (t) => {
  const r = await tokenRegistry(t);
  const client = testClient(t, { insecureRegistries: [r.registry.host] });
  const got = await client.getManifest({ registry: r.registry.host, repository: REPO }, 'v1');
  t.equal(got.digest, sha256(manifest));
  t.same(
    r.registry.calls().map((c) => c.headers.authorization),
    [undefined, `Bearer ${r.issued[0]}`],
    'the early GET went without credentials; the one that counted carried the token',
  );
  t.equal(r.issuer.requests.length, 1);
});

t.test('401 then token on a resource when the ping is open', async (t) => {
  const r = await tokenRegistry(t, { pingChallenges: false });
  const client = testClient(t);
  await client.getManifest({ registry: r.registry.host, repository: REPO }, 'v1');
  const calls = r.registry.calls();
  t.equal(calls.length, 2);
  t.equal(calls[0]!.headers.authorization, undefined);
  t.equal(calls[1]!.headers.authorization, `Bearer ${r.issued[0]}`);
  t.equal(r.issuer.requests.length, 1);
});

t.test('a token is reused across requests of the same scope', async (t) => {
  const r = await tokenRegistry(t);
  const client = testClient(t);
  const repo = { registry: r.registry.host, repository: REPO };
  await client.getManifest(repo, 'v1');
  await client.getManifest(repo, 'v1');
  await client.readRange(repo, desc, { start: 0, end: 100 });
  await Promise.all([1, 2, 3].map((i) => client.readRange(repo, desc, { start: i, end: i + 100 })));
  t.equal(await client.blobSize(repo, desc.digest), blob.length);
  t.equal(r.issuer.requests.length, 1, 'one token request');
  t.equal(client.stats().tokenFetches, 1);
});

t.test('concurrent first requests share one token fetch', async (t) => {
  const r = await tokenRegistry(t, { pingChallenges: false });
  const client = testClient(t);
  const repo = { registry: r.registry.host, repository: REPO };
  await client.getManifest(repo, 'v1');
  r.valid.clear();
  await Promise.all(Array.from({ length: 8 }, () => client.getManifest(repo, 'v1')));
  t.ok(r.issuer.requests.length <= 3, `few token requests (${r.issuer.requests.length})`);
});

t.test('401 with a cached (expired) token: dropped, a fresh one fetched, the request retried once', async (t) => {
  const r = await tokenRegistry(t);
  const client = testClient(t);
  const repo = { registry: r.registry.host, repository: REPO };
  await client.getManifest(repo, 'v1');
  r.valid.clear(); // the registry now considers the cached token expired
  const got = await client.getManifest(repo, 'v1');
  t.equal(got.digest, sha256(manifest));
  t.equal(r.issuer.requests.length, 2);
  const auths = r.registry.calls().map((c) => c.headers.authorization);
  t.same(auths, [`Bearer ${r.issued[0]}`, `Bearer ${r.issued[0]}`, `Bearer ${r.issued[1]}`]);
});

t.test('a token refused the moment it was issued is not fetched again in a loop', async (t) => {
  const r = await tokenRegistry(t);
  const client = testClient(t);
  const repo = { registry: r.registry.host, repository: REPO };
  const { valid } = r;
  valid.add = function () {
    return this; // the registry accepts nothing
  };
  await t.rejects(client.getManifest(repo, 'v1'), { code: 'UNAUTHORIZED', message: /HTTP 401 \(UNAUTHORIZED: authentication required\)/ });
  t.equal(r.issuer.requests.length, 1);
  t.equal(r.registry.calls().length, 1);
});

t.test('token lifetime: reused until expires_in minus a margin, 60 s when absent', async (t) => {
  let clock = 1_000_000;
  const agent = new MockAgent();
  agent.disableNetConnect();
  t.teardown(() => agent.close());
  const pool = agent.get('https://auth.example');
  let n = 0;
  pool
    .intercept({ path: /^\/token/, method: 'GET' })
    .reply(() => ({ statusCode: 200, data: JSON.stringify(n++ === 0 ? { token: `a${n}`, expires_in: 300 } : { token: `b${n}` }) }))
    .persist();
  const auth = new Authenticator({ dispatcher: agent, trustsPlainHttp: () => false, userAgent: 'test', now: () => clock });
  auth.learn('registry.example', 'Bearer realm="https://auth.example/token",service="s"');
  const origin = new URL('https://registry.example');
  const first = await auth.authorize('registry.example', 'repository:a:pull', origin);
  t.same(first, { header: 'Bearer a1', fresh: true });
  clock += 289_000;
  t.same(await auth.authorize('registry.example', 'repository:a:pull', origin), { header: 'Bearer a1', fresh: false }, 'cached');
  clock += 2_000; // 291 s: inside the 10 s margin
  t.same(await auth.authorize('registry.example', 'repository:a:pull', origin), { header: 'Bearer b2', fresh: true }, 'refreshed early');
  clock += 53_000; // default 60 s lifetime, 6 s margin
  t.equal((await auth.authorize('registry.example', 'repository:a:pull', origin)).fresh, false);
  clock += 2_000;
  t.equal((await auth.authorize('registry.example', 'repository:a:pull', origin)).fresh, true);
  t.equal(n, 3);
});

t.test('credentials go to the token realm only over TLS or to loopback/insecure hosts', async (t) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  t.teardown(() => agent.close());
  const seen: Array<string | undefined> = [];
  for (const origin of ['http://auth.example', 'https://auth.example']) {
    agent
      .get(origin)
      .intercept({ path: /^\/token/, method: 'GET' })
      .reply((o) => {
        seen.push((o.headers as Record<string, string>)['authorization']);
        return { statusCode: 200, data: JSON.stringify({ token: 't' }) };
      })
      .persist();
  }
  const c = creds({ kind: 'basic', username: 'u', password: 'p' });
  const auth = new Authenticator({ dispatcher: agent, credentials: c, trustsPlainHttp: () => false, userAgent: 'test' });
  auth.learn('registry.example', 'Bearer realm="http://auth.example/token"');
  await auth.authorize('registry.example', 'repository:a:pull', new URL('https://registry.example'));
  auth.learn('registry.example', 'Bearer realm="https://auth.example/token"');
  await auth.authorize('registry.example', 'repository:b:pull', new URL('https://registry.example'));
  t.same(seen, [undefined, `Basic ${Buffer.from('u:p').toString('base64')}`]);

  auth.learn('registry.example', 'Basic realm="r"');
  const plain = await auth.authorize('registry.example', 'x', new URL('http://registry.example'));
  t.same(plain, { header: undefined, fresh: false }, 'no Basic over plain HTTP');
  t.match(await auth.authorize('registry.example', 'x', new URL('https://registry.example')), { header: /^Basic / });
});

t.test('identity token: OAuth2 POST grant_type=refresh_token', async (t) => {
  const r = await tokenRegistry(t, { oauth: true });
  const client = testClient(t, { credentials: creds({ kind: 'identity-token', token: 'refresh-secret-123' }) });
  await client.getManifest({ registry: r.registry.host, repository: REPO }, 'v1');
  const post = r.issuer.requests[0]!;
  t.equal(post.method, 'POST');
  const form = new URLSearchParams(post.body.toString());
  t.equal(form.get('grant_type'), 'refresh_token');
  t.equal(form.get('refresh_token'), 'refresh-secret-123');
  t.equal(form.get('service'), SERVICE);
  t.equal(form.get('scope'), `repository:${REPO}:pull`);
  t.equal(form.get('client_id'), 'tocfs');
});

t.test('identity token: falls back to GET when the service has no OAuth2 endpoint', async (t) => {
  const r = await tokenRegistry(t, { oauth: false });
  const client = testClient(t, { credentials: creds({ kind: 'identity-token', token: 'refresh-secret-123' }) });
  await client.getManifest({ registry: r.registry.host, repository: REPO }, 'v1');
  t.same(r.issuer.requests.map((q) => q.method), ['POST', 'GET']);
  t.equal(r.issuer.requests[1]!.headers.authorization, `Basic ${Buffer.from(':refresh-secret-123').toString('base64')}`);
});

t.test('Basic challenge: credentials sent to a loopback registry', async (t) => {
  const good = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  const fake = await startFake(t, (req, res) => {
    if (req.headers.authorization !== good) return json(res, 401, {}, { 'www-authenticate': 'Basic realm="reg"' });
    if (req.url === '/v2/') return json(res, 200, {});
    serveBlob(req, res, blob);
  });
  const client = testClient(t, { credentials: creds({ kind: 'basic', username: 'alice', password: 's3cret' }) });
  t.equal(await client.blobSize({ registry: fake.host, repository: REPO }, desc.digest), blob.length);
  const anon = testClient(t);
  await t.rejects(anon.blobSize({ registry: fake.host, repository: REPO }, desc.digest), { code: 'UNAUTHORIZED' });
});

t.test('credentials and tokens never appear in errors or diagnostics events', async (t) => {
  const password = 'hunter2-very-secret';
  const b64 = Buffer.from(`alice:${password}`).toString('base64');
  const events = recordChannels(t, 'tocfs:registry:request', 'tocfs:registry:retry');
  const leaks = (err: unknown): string[] => {
    const text = `${String(err)}\n${inspect(err, { depth: 10 })}\n${JSON.stringify(err)}\n${inspect(events, { depth: 10 })}`;
    return [password, b64, 'alice:', 'tok-'].filter((s) => text.includes(s));
  };

  // Basic refused by the registry.
  const basic = await startFake(t, (_req, res) =>
    json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': 'Basic realm="reg"' }),
  );
  const c1 = testClient(t, { credentials: creds({ kind: 'basic', username: 'alice', password }) });
  const e1 = await c1.getManifest({ registry: basic.host, repository: REPO }, 'v1').catch((e: unknown) => e);
  t.match(e1, { code: 'UNAUTHORIZED' });
  t.same(leaks(e1), []);

  // Credentials refused by the token service.
  const issuer = await startFake(t, (_req, res) => json(res, 401, { details: `bad password ${password}` }));
  const reg = await startFake(t, (_req, res) =>
    json(res, 401, {}, { 'www-authenticate': `Bearer realm="${issuer.url}/token",service="s"` }),
  );
  const e2 = await c1.getManifest({ registry: reg.host, repository: REPO }, 'v1').catch((e: unknown) => e);
  t.match(e2, { code: 'UNAUTHORIZED', message: /token service 127\.0\.0\.1:\d+ refused the configured credentials \(HTTP 401\)/ });
  t.same(leaks(e2), []);

  // Token service answering garbage that echoes the password: not quoted.
  const echo = await startFake(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`not json ${password}`);
  });
  const reg2 = await startFake(t, (_req, res) => json(res, 401, {}, { 'www-authenticate': `Bearer realm="${echo.url}/token"` }));
  const e3 = await c1.getManifest({ registry: reg2.host, repository: REPO }, 'v1').catch((e: unknown) => e);
  t.match(e3, { code: 'PROTOCOL', message: /token response is not JSON/ });
  t.same(leaks(e3), []);

  // Bearer tokens the registry refuses.
  const r = await tokenRegistry(t);
  r.valid.add = function () {
    return this;
  };
  const e4 = await c1.getManifest({ registry: r.registry.host, repository: REPO }, 'v1').catch((e: unknown) => e);
  t.match(e4, { code: 'UNAUTHORIZED' });
  t.same(leaks(e4), []);
  t.ok(events.length > 0, 'events were published');
});

t.test('WWW-Authenticate parsing: quoted commas, escapes, several challenges and headers', async (t) => {
  t.same(
    parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'),
    [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } }],
  );
  t.same(parseChallenges('Basic realm="a \\"quoted\\", realm"'), [{ scheme: 'basic', params: { realm: 'a "quoted", realm' } }]);
  t.same(parseChallenges('Basic realm="x", Bearer realm="https://a/t", service=svc'), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'https://a/t', service: 'svc' } },
  ]);
  t.same(parseChallenges(['Negotiate', 'BEARER Realm=https://a/t']), [
    { scheme: 'negotiate', params: {} },
    { scheme: 'bearer', params: { realm: 'https://a/t' } },
  ]);
  t.same(parseChallenges('Bearer realm="unterminated'), [{ scheme: 'bearer', params: { realm: 'unterminated' } }]);
  t.same(parseChallenges(undefined), []);
  t.same(parseChallenges('Negotiate abc==, Basic realm="r"').map((c) => c.scheme), ['negotiate', 'basic']);
  t.equal(pickChallenge(parseChallenges('Basic realm="x", Bearer realm="https://a/t"'))?.scheme, 'bearer');
  t.equal(pickChallenge(parseChallenges('Bearer service="no realm", Basic realm="x"'))?.scheme, 'basic');
  t.equal(pickChallenge(parseChallenges('Negotiate')), undefined);
});
