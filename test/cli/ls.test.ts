// `tocfs ls` end to end against Debian's docker-registry: the CLI resolves through the real client, the
// layers come from the real registry, and every failure is a one-line message with the right exit code.
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runTocfs, runTocfsBin } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { buildImage, buildIndex, type BuiltImage } from '../support/image-builder.js';
import { pushImage, pushIndex } from '../support/push.js';
import { tempDir } from '../support/tmp.js';
import { dir, file, symlink, whiteout, chardev } from '../support/tar-dsl.js';

async function demoImage(t: Test, layersCompression: ('gzip' | 'zstd' | 'none')[] = ['gzip', 'zstd', 'none']): Promise<BuiltImage> {
  const contents = [
    [dir('etc'), file('etc/hello', 'hello\n', { mode: 0o644, uid: 1000, gid: 100 }), symlink('etc/link', 'hello'), file('etc/gone', 'x')],
    [whiteout('etc/gone'), chardev('etc/null', 1, 3), file('etc/suid', '#!/bin/sh\n', { mode: 0o4755 })],
    [file('etc/big', { size: 200_000 })],
  ];
  return buildImage(tempDir(t, 'ls-image'), {
    layers: layersCompression.map((compression, i) => ({ compression, entries: contents[i % contents.length]! })),
  });
}

t.test('ls --layers prints the manifest digest and every layer: digest, media type, size', async (t) => {
  const reg = await startRegistry(t);
  const image = await demoImage(t);
  const { digest } = await pushImage(reg.seedUrl, 'demo/app', 'v1', image);
  const res = await runTocfs(['ls', `${reg.host}/demo/app:v1`, '--layers']);
  t.equal(res.code, 0, res.err);
  const [header, ...rows] = res.text.trimEnd().split('\n');
  t.equal(header, `# ${reg.host}/demo/app:v1 ${digest} (3 layers)`);
  t.same(rows, image.layers.map((l) => `${l.digest}\t${l.mediaType}\t${l.size}`));
});

t.test('ls lists every layer entry as in the tar, whiteouts included, for gzip, zstd and plain tar', async (t) => {
  const reg = await startRegistry(t);
  const image = await demoImage(t);
  await pushImage(reg.seedUrl, 'demo/app', 'v1', image);
  const res = await runTocfs(['ls', `${reg.host}/demo/app:v1`]);
  t.equal(res.code, 0, res.err);
  t.match(res.text, /^-rw-r--r-- 1000\/100 +6 2020-01-01T00:00:00Z etc\/hello$/m);
  t.match(res.text, /^lrwxrwxrwx 0\/0 +5 \S+ etc\/link -> hello$/m, "a symlink's size is its target's length, as lstat says");
  t.match(res.text, /^-\S+ 0\/0 +0 \S+ etc\/\.wh\.gone$/m, 'whiteouts are shown as in the tar');
  t.match(res.text, /^crw-rw-rw- 0\/0 +1,3 \S+ etc\/null$/m);
  t.match(res.text, /^-rwsr-xr-x 0\/0 +10 \S+ etc\/suid$/m);
  t.match(res.text, /^-rw-r--r-- 0\/0 +200000 \S+ etc\/big$/m, 'zstd layer read');
  t.equal(res.text.split('\n').filter((l) => l.startsWith('## layer sha256:')).length, 3);
});

t.test('ls picks the platform of a multi-platform index, and says which exist when none matches', async (t) => {
  const reg = await startRegistry(t);
  const amd = await demoImage(t, ['gzip']);
  const arm = await buildImage(tempDir(t, 'arm'), {
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    layers: [{ compression: 'gzip', entries: [file('arm-only', 'arm\n')] }],
  });
  const index = buildIndex([
    { image: amd, platform: { os: 'linux', architecture: 'amd64' } },
    { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  await pushIndex(reg.seedUrl, 'demo/multi', 'v1', index);
  const picked = await runTocfs(['ls', `${reg.host}/demo/multi:v1`, '--platform', 'linux/arm64']);
  t.equal(picked.code, 0, picked.err);
  t.match(picked.text, /arm-only/);
  const none = await runTocfs(['ls', `${reg.host}/demo/multi:v1`, '--platform', 'windows/amd64']);
  t.equal(none.code, 1);
  t.match(none.err, /windows\/amd64/);
  t.match(none.err, /linux\/arm64/, 'names the platforms the index has');
});

t.test('bad input gives one clear line and exit 1, usage errors exit 2', async (t) => {
  const reg = await startRegistry(t);
  const malformed = await runTocfs(['ls', 'Bad//Ref:']);
  t.equal(malformed.code, 1);
  t.match(malformed.err, /^tocfs ls: invalid image reference "Bad\/\/Ref:"/);
  t.equal(malformed.err.trimEnd().split('\n').length, 1, 'one line, no stack');

  const missing = await runTocfs(['ls', `${reg.host}/no/such:tag`]);
  t.equal(missing.code, 1);
  t.match(missing.err, /not found|manifest unknown/i);
  t.match(missing.err, /no\/such/);

  t.equal((await runTocfs(['ls'])).code, 2);
  t.equal((await runTocfs(['ls', 'a/b:c', '--no-such-flag'])).code, 2);
  t.equal((await runTocfs(['ls', 'a/b:c', '--platform', 'nope'])).code, 1);
  t.equal((await runTocfs(['frobnicate'])).code, 2);
});

t.test('the installed bin reads credentials from DOCKER_CONFIG and trusts NODE_EXTRA_CA_CERTS (basic auth over TLS)', async (t) => {
  const reg = await startRegistry(t, { auth: 'basic' });
  const image = await demoImage(t, ['gzip']);
  const { digest } = await pushImage(reg.seedUrl, 'private/app', 'v1', image);
  const configDir = tempDir(t, 'docker-config');
  const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
  await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth } } }));
  const env = { ...process.env, DOCKER_CONFIG: configDir, NODE_EXTRA_CA_CERTS: reg.caFile! };

  const ok = await runTocfsBin(['ls', `${reg.host}/private/app@${digest}`, '--layers'], env);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.text, image.layers[0]!.digest);

  const emptyConfig = tempDir(t, 'no-creds');
  await mkdir(emptyConfig, { recursive: true });
  const denied = await runTocfsBin(['ls', `${reg.host}/private/app:v1`], { ...env, DOCKER_CONFIG: emptyConfig });
  t.equal(denied.code, 1);
  t.match(denied.err, /unauthori[sz]ed|401/i);
  t.notMatch(denied.err + ok.err, reg.password!, 'the password never appears in output');
});
