import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Agent, request, type Dispatcher } from 'undici';
import { startRegistry, type TestRegistry } from './registry.js';
import { tempDir } from './tmp.js';

const REPO = 'tocfs/selftest';

t.test('plain registry answers /v2/ with 200 and serves blobs pushed through seedHost', async (t) => {
  const reg = await startRegistry(t);
  t.match(reg.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(reg.seedHost, reg.host, 'no second process without auth or TLS');
  t.equal((await get(`${reg.url}/v2/`)).status, 200);
  const blob = await pushBlob(reg.seedUrl, REPO, Buffer.from('plain blob'));
  const got = await get(`${reg.url}/v2/${REPO}/blobs/${blob.digest}`);
  t.equal(got.status, 200);
  t.equal(got.body, 'plain blob');
  t.match(reg.logs(), /listening on 127\.0\.0\.1:\d+/);
});

t.test('registries given one storageDir see each other, and a restart can keep the port', async (t) => {
  const storageDir = tempDir(t, 'shared-storage');
  const a = await startRegistry(t, { storageDir });
  const blob = await pushBlob(a.url, REPO, Buffer.from('shared'));
  const b = await startRegistry(t, { storageDir });
  t.equal((await get(`${b.url}/v2/${REPO}/blobs/${blob.digest}`)).body, 'shared');

  await a.stop();
  t.ok(existsSync(storageDir), 'stop() leaves a storageDir it did not create');
  const again = await startRegistry(t, { storageDir, port: a.port });
  t.equal(again.host, a.host);
  t.equal((await get(`${again.url}/v2/${REPO}/blobs/${blob.digest}`)).body, 'shared');
});

t.test('basic auth over TLS', async (t) => {
  const reg = await startRegistry(t, { auth: 'basic' });
  t.match(reg.url, /^https:\/\//);
  t.not(reg.seedHost, reg.host);
  t.ok(reg.caPem && reg.caFile && readFileSync(reg.caFile!, 'utf8') === reg.caPem, 'CA exposed as PEM and file');
  const agent = caAgent(t, reg);
  const blob = await pushBlob(reg.seedUrl, REPO, Buffer.from('basic blob'));

  const anon = await get(`${reg.url}/v2/`, agent);
  t.equal(anon.status, 401);
  t.match(anon.headers['www-authenticate'], /^Basic realm="[^"]+"/);

  const wrong = await get(`${reg.url}/v2/`, agent, basic(reg.username!, 'not-the-password'));
  t.equal(wrong.status, 401);

  const ok = await get(`${reg.url}/v2/`, agent, basic(reg.username!, reg.password!));
  t.equal(ok.status, 200);
  const pulled = await get(`${reg.url}/v2/${REPO}/blobs/${blob.digest}`, agent, basic(reg.username!, reg.password!));
  t.equal(pulled.body, 'basic blob', 'a blob pushed through the seed registry is served by the one under test');

  await t.rejects(get(`${reg.url}/v2/`), 'a client without the test CA refuses the certificate');
});

t.test('token auth: challenge, token from the issuer, pull with it', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  const issuer = reg.tokenIssuer!;
  t.match(issuer.url, /^http:\/\/127\.0\.0\.1:\d+\/token$/);
  const blob = await pushBlob(reg.seedUrl, REPO, Buffer.from('token blob'));

  const challenge = await get(`${reg.url}/v2/`);
  t.equal(challenge.status, 401);
  t.equal(challenge.headers['www-authenticate'], `Bearer realm="${issuer.url}",service="${issuer.service}"`);

  const scope = `repository:${REPO}:pull`;
  const tokenUrl = `${issuer.url}?service=${issuer.service}&scope=${encodeURIComponent(scope)}`;
  t.equal((await get(tokenUrl, undefined, basic(reg.username!, 'wrong'))).status, 401, 'issuer checks passwords');

  const answer = await get(tokenUrl, undefined, basic(reg.username!, reg.password!));
  t.equal(answer.status, 200);
  const body = JSON.parse(answer.body) as { token: string; access_token: string; expires_in: number; issued_at: string };
  t.equal(body.access_token, body.token);
  t.equal(body.expires_in, 300);
  t.ok(Number.isFinite(Date.parse(body.issued_at)));
  t.match(issuer.issued.at(-1), { scope: [scope], account: reg.username, access: [{ type: 'repository', name: REPO, actions: ['pull'] }] });
  t.equal(issuer.requests, 2);

  const bearer = { authorization: `Bearer ${body.token}` };
  t.equal((await get(`${reg.url}/v2/`, undefined, bearer)).status, 200);
  const pulled = await get(`${reg.url}/v2/${REPO}/blobs/${blob.digest}`, undefined, bearer);
  t.equal(pulled.status, 200);
  t.equal(pulled.body, 'token blob');
});

t.test('token auth: anonymous tokens carry pull only, and the registry enforces it', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  const issuer = reg.tokenIssuer!;
  const blob = await pushBlob(reg.seedUrl, REPO, Buffer.from('anon'));
  const scope = encodeURIComponent(`repository:${REPO}:pull,push`);
  const { token } = JSON.parse((await get(`${issuer.url}?service=${issuer.service}&scope=${scope}`)).body) as {
    token: string;
  };
  t.same(issuer.issued.at(-1)?.access, [{ type: 'repository', name: REPO, actions: ['pull'] }]);
  t.equal(issuer.issued.at(-1)?.account, undefined);
  const bearer = { authorization: `Bearer ${token}` };
  t.equal((await get(`${reg.url}/v2/${REPO}/blobs/${blob.digest}`, undefined, bearer)).body, 'anon');
  const push = await send('POST', `${reg.url}/v2/${REPO}/blobs/uploads/`, undefined, bearer);
  t.equal(push.status, 401);
  t.match(push.headers['www-authenticate'], /error="insufficient_scope"/);
});

t.test('token auth: expired tokens get 401 once past the registry clock leeway', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  const issuer = reg.tokenIssuer!;
  const fetchToken = async (): Promise<string> => {
    const res = await get(`${issuer.url}?service=${issuer.service}`, undefined, basic(reg.username!, reg.password!));
    return (JSON.parse(res.body) as { token: string }).token;
  };
  // distribution 2.8 accepts a token until exp + 60 s (token.Leeway). Negative lifetimes make that
  // window testable without waiting a minute: 5 s past exp is still inside it, 65 s past is not.
  issuer.ttlSeconds = -5;
  const lenient = await get(`${reg.url}/v2/`, undefined, { authorization: `Bearer ${await fetchToken()}` });
  t.equal(lenient.status, 200, 'within the leeway');

  issuer.ttlSeconds = -65;
  const expiredToken = await fetchToken();
  t.ok(issuer.issued.at(-1)!.expiresAt < Date.now());
  const expired = await get(`${reg.url}/v2/`, undefined, { authorization: `Bearer ${expiredToken}` });
  t.equal(expired.status, 401);
  t.match(expired.headers['www-authenticate'], /error="invalid_token"/);

  const foreign = issuer.mint([], { audience: 'some-other-registry' });
  t.equal((await get(`${reg.url}/v2/`, undefined, { authorization: `Bearer ${foreign}` })).status, 401);
});

t.test('token auth with tls: registry and realm both on HTTPS', async (t) => {
  const reg = await startRegistry(t, { auth: 'token', tls: true, username: 'alice', password: 's3cret' });
  const issuer = reg.tokenIssuer!;
  t.match(reg.url, /^https:/);
  t.match(issuer.url, /^https:/);
  const agent = caAgent(t, reg);
  const res = await get(`${issuer.url}?service=${issuer.service}`, agent, basic('alice', 's3cret'));
  const { token } = JSON.parse(res.body) as { token: string };
  t.equal((await get(`${reg.url}/v2/`, agent, { authorization: `Bearer ${token}` })).status, 200);
});

t.test('stop() leaves no process and no temp dir, and may be called twice', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  t.ok(processesUsing(reg.workDir).length >= 2, 'main and seed registries found while running');
  await reg.stop();
  await reg.stop();
  t.same(processesUsing(reg.workDir), []);
  t.notOk(existsSync(reg.workDir));
  await t.rejects(get(reg.tokenIssuer!.url), 'token issuer closed');
  await t.rejects(get(`${reg.url}/v2/`), 'port closed');
});

t.test('a test process killed with SIGKILL leaves no registry behind', async (t) => {
  // The child gets its own TMPDIR so this test can find (and tempDir can remove) what it leaves.
  const tmp = tempDir(t, 'sigkill');
  const registryModule = fileURLToPath(new URL('./registry.js', import.meta.url)).replace(/\.js$/, '.ts');
  const script = `
    const { startRegistry } = await import(${JSON.stringify(registryModule)});
    const reg = await startRegistry({ teardown() {} }, { auth: 'basic' });
    console.log(reg.workDir);
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const workDir = await firstLine(child);
  t.ok(processesUsing(workDir).length >= 2, 'registries running');
  child.kill('SIGKILL');
  await once(child, 'exit');
  // The watchdog reacts to EOF at once; the deadline only bounds a hang, it asserts nothing about speed.
  const deadline = Date.now() + 10_000;
  while (processesUsing(workDir).length > 0 && Date.now() < deadline) await sleep(20);
  t.same(processesUsing(workDir), [], 'registries died with their parent');
});

async function firstLine(child: ChildProcess): Promise<string> {
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    const nl = out.indexOf('\n');
    if (nl >= 0) return out.slice(0, nl).trim();
  }
  throw new Error(`child exited (${child.exitCode ?? child.signalCode}) before printing its work dir`);
}

/** Pids of live processes whose command line mentions `dir`. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = /^\S+ \(.*\) (\S)/s.exec(readFileSync(`/proc/${entry}/stat`, 'utf8'))?.[1];
      if (cmdline.includes(dir) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function get(url: string, dispatcher?: Dispatcher, headers: Record<string, string> = {}): Promise<Reply> {
  return send('GET', url, dispatcher, headers);
}

async function send(
  method: Dispatcher.HttpMethod,
  url: string,
  dispatcher?: Dispatcher,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<Reply> {
  const res = await request(url, { method, headers, ...(dispatcher ? { dispatcher } : {}), ...(body ? { body } : {}) });
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
  return { status: res.statusCode, headers: flat, body: await res.body.text() };
}

/** Monolithic upload the way distribution 2.8 allows it: POST opens a session, PUT ?digest= closes it. */
async function pushBlob(base: string, repo: string, bytes: Buffer): Promise<{ digest: string }> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const opened = await send('POST', `${base}/v2/${repo}/blobs/uploads/`);
  if (opened.status !== 202) throw new Error(`upload POST answered ${opened.status}: ${opened.body}`);
  const location = new URL(opened.headers['location']!, base);
  location.searchParams.set('digest', digest);
  const put = await send('PUT', location.href, undefined, { 'content-type': 'application/octet-stream' }, bytes);
  if (put.status !== 201) throw new Error(`upload PUT answered ${put.status}: ${put.body}`);
  return { digest };
}

function basic(username: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}

function caAgent(t: Test, reg: TestRegistry): Agent {
  const agent = new Agent({ connect: { ca: reg.caPem! } });
  t.teardown(() => agent.close());
  return agent;
}
