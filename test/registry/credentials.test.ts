import t, { type Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/errors.js';
import { loadDockerConfig, parseDockerConfig } from '../../src/registry/credentials.js';
import { tempDir } from '../support/tmp.js';

const SECRET = 's3cr3t:with:colons';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Writes `config.json` (object or raw text) into a fresh DOCKER_CONFIG dir; returns the env to load it. */
function configDir(t: Test, content: unknown): NodeJS.ProcessEnv {
  const dir = tempDir(t, 'docker-config');
  writeFileSync(join(dir, 'config.json'), typeof content === 'string' ? content : JSON.stringify(content));
  return { DOCKER_CONFIG: dir };
}

t.test('a missing config file is an empty store', async (t) => {
  const dir = tempDir(t, 'empty');
  const store = await loadDockerConfig({ env: { DOCKER_CONFIG: join(dir, 'nope') } });
  t.equal(store.lookup('docker.io'), undefined);
  t.equal(store.helperFor('docker.io'), undefined);
  t.equal(store.path, join(dir, 'nope', 'config.json'));
});

t.test('without DOCKER_CONFIG the file is ~/.docker/config.json', async (t) => {
  const home = tempDir(t, 'home');
  mkdirSync(join(home, '.docker'));
  writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('u:p') } } }));
  const viaOption = await loadDockerConfig({ env: {}, home });
  t.same(viaOption.lookup('ghcr.io'), { kind: 'basic', username: 'u', password: 'p' });
  const viaHome = await loadDockerConfig({ env: { HOME: home } });
  t.equal(viaHome.path, join(home, '.docker', 'config.json'));
  t.ok(viaHome.lookup('ghcr.io'));
});

t.test('auth is base64 user:password and the password may contain colons', async (t) => {
  const env = configDir(t, { auths: { 'localhost:5000': { auth: b64(`alice:${SECRET}`) } } });
  const store = await loadDockerConfig({ env });
  t.same(store.lookup('localhost:5000'), { kind: 'basic', username: 'alice', password: SECRET });
  t.equal(store.lookup('localhost'), undefined, 'the port is part of the registry');
  t.equal(store.lookup('localhost:5001'), undefined);
});

t.test('keys may be hosts or URLs with scheme and path', async (t) => {
  const env = configDir(t, {
    auths: {
      'https://registry.example.com/v1/': { auth: b64('a:1') },
      'http://plain.example:8080': { auth: b64('b:2') },
      'Mixed.Example.COM': { auth: b64('c:3') },
      'https://with.path.example/some/path': { auth: b64('d:4') },
    },
  });
  const store = await loadDockerConfig({ env });
  t.same(store.lookup('registry.example.com'), { kind: 'basic', username: 'a', password: '1' });
  t.same(store.lookup('plain.example:8080'), { kind: 'basic', username: 'b', password: '2' });
  t.same(store.lookup('mixed.example.com'), { kind: 'basic', username: 'c', password: '3' });
  t.same(store.lookup('with.path.example'), { kind: 'basic', username: 'd', password: '4' });
  t.equal(store.lookup('example.com'), undefined);
});

t.test('Docker Hub: the v1 URL key serves docker.io and all its aliases', async (t) => {
  const env = configDir(t, { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
  const store = await loadDockerConfig({ env });
  for (const r of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']) {
    t.same(store.lookup(r), { kind: 'basic', username: 'hub', password: 'pw' }, r);
  }
});

t.test('Docker Hub: other spellings of the key are found too, the v1 key preferred', async (t) => {
  for (const key of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://registry-1.docker.io']) {
    const store = parseDockerConfig(JSON.stringify({ auths: { [key]: { auth: b64('x:y') } } }), 'c.json');
    t.same(store.lookup('docker.io'), { kind: 'basic', username: 'x', password: 'y' }, key);
  }
  const both = parseDockerConfig(
    JSON.stringify({ auths: { 'docker.io': { auth: b64('old:1') }, 'https://index.docker.io/v1/': { auth: b64('new:2') } } }),
    'c.json',
  );
  t.same(both.lookup('docker.io'), { kind: 'basic', username: 'new', password: '2' });
});

t.test('identitytoken wins over auth; username/password fields are read', async (t) => {
  const store = parseDockerConfig(
    JSON.stringify({
      auths: {
        'a.example': { auth: b64('<token>:'), identitytoken: 'refresh-token' },
        'b.example': { username: 'bob', password: 'pw' },
        'c.example': { auth: b64('carol:1'), username: 'ignored', password: 'ignored' },
        'd.example': {},
        'e.example': { auth: '' },
        'f.example': { username: 'only-user' },
      },
    }),
    'c.json',
  );
  t.same(store.lookup('a.example'), { kind: 'identity-token', token: 'refresh-token' });
  t.same(store.lookup('b.example'), { kind: 'basic', username: 'bob', password: 'pw' });
  t.same(store.lookup('c.example'), { kind: 'basic', username: 'carol', password: '1' });
  t.equal(store.lookup('d.example'), undefined, 'empty entry, as docker leaves with a helper');
  t.equal(store.lookup('e.example'), undefined);
  t.equal(store.lookup('f.example'), undefined);
});

t.test('helperFor names credHelpers first, then credsStore', async (t) => {
  const store = parseDockerConfig(
    JSON.stringify({
      credsStore: 'desktop',
      credHelpers: { 'gcr.io': 'gcloud', '123.dkr.ecr.us-east-1.amazonaws.com': 'ecr-login', 'index.docker.io': 'hubhelper' },
      auths: { 'gcr.io': {} },
    }),
    'c.json',
  );
  t.equal(store.helperFor('gcr.io'), 'gcloud');
  t.equal(store.helperFor('123.dkr.ecr.us-east-1.amazonaws.com'), 'ecr-login');
  t.equal(store.helperFor('docker.io'), 'hubhelper', 'Docker Hub aliases apply');
  t.equal(store.helperFor('quay.io'), 'desktop');
  t.equal(store.lookup('gcr.io'), undefined);
  const none = parseDockerConfig('{"credsStore": ""}', 'c.json');
  t.equal(none.helperFor('quay.io'), undefined);
});

t.test('malformed JSON is a FormatError naming the file, never quoting it', async (t) => {
  const text = `{"auths": {"r.example": {"auth": "${b64(`u:${SECRET}`)}"}}, oops ${SECRET}`;
  const env = configDir(t, text);
  const err = await loadDockerConfig({ env }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, FormatError);
  const e = err as FormatError;
  t.equal(e.code, 'FORMAT');
  t.match(e.message, join(env['DOCKER_CONFIG'] ?? '', 'config.json'));
  t.notMatch(e.message, SECRET);
  t.notMatch(e.message, b64(`u:${SECRET}`));
  t.equal(e.cause, undefined, 'no cause carrying the parser message');
});

t.test('no error about a bad entry contains the secret', async (t) => {
  const secretB64 = b64(`user:${SECRET}`);
  const bad: Array<[string, unknown, RegExp]> = [
    ['auth not base64', { auths: { 'r.example': { auth: `${SECRET}!!` } } }, /auths\["r\.example"\]\.auth is not base64/],
    ['auth without colon', { auths: { 'r.example': { auth: b64(SECRET.replace(/:/g, '')) } } }, /does not decode to user:password/],
    ['auth with empty user', { auths: { 'r.example': { auth: b64(`:${SECRET}`) } } }, /empty user name/],
    ['auth not a string', { auths: { 'r.example': { auth: [secretB64] } } }, /auth must be a string/],
    ['password not a string', { auths: { 'r.example': { username: 'u', password: { v: SECRET } } } }, /password must be a string/],
    ['entry not an object', { auths: { 'r.example': secretB64 } }, /must be an object/],
    ['auths not an object', { auths: [secretB64] }, /"auths" must be an object/],
    ['credHelpers value', { credHelpers: { 'r.example': 1 }, auths: { 'x.example': { auth: secretB64 } } }, /credHelpers/],
    ['credsStore type', { credsStore: 1, auths: { 'x.example': { auth: secretB64 } } }, /credsStore/],
    ['not an object', [secretB64], /not a JSON object/],
  ];
  for (const [name, doc, re] of bad) {
    const env = configDir(t, doc);
    const err = await loadDockerConfig({ env }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, FormatError, name);
    const message = (err as Error).message;
    t.match(message, re, name);
    t.match(message, 'config.json', `${name}: names the file`);
    t.notMatch(message, SECRET, `${name}: no password`);
    t.notMatch(message, secretB64, `${name}: no encoded password`);
    t.notMatch(message, SECRET.replace(/:/g, ''), `${name}: no password fragment`);
  }
});

t.test('an unreadable config (a directory) is an error naming the file', async (t) => {
  const dir = tempDir(t, 'dir-config');
  mkdirSync(join(dir, 'config.json'));
  await t.rejects(loadDockerConfig({ env: { DOCKER_CONFIG: dir } }), { code: 'INVALID_OPTION', message: /config\.json: EISDIR/ });
});
