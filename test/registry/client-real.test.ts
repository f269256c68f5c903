// The registry client against Debian's docker-registry (distribution 2.8) for all three auth variants,
// and through the fault proxy for the failures a real registry does not produce on demand.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DigestMismatchError } from '../../src/errors.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { hostPlatform } from '../../src/registry/platform.js';
import type { Credentials, ImageReference } from '../../src/registry/types.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage, buildIndex, type BuiltImage, type BuiltIndex } from '../support/image-builder.js';
import { pushImage, pushIndex } from '../support/push.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../support/registry.js';
import { file, dir } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { sha256 } from './fake-http.js';

const REPO = 'tocfs/client';
const host = hostPlatform();
const otherArch = host.architecture === 'amd64' ? 'arm64' : 'amd64';

interface Images {
  main: BuiltImage;
  other: BuiltImage;
  index: BuiltIndex;
  layer: Buffer;
}

let images: Images;

t.before(async () => {
  const work = tempDir(t, 'client-real');
  const main = await buildImage(work, {
    layers: [
      { compression: 'gzip', entries: [dir('etc'), file('etc/hello', 'hello\n'), file('data/big.bin', { size: 300_000 })] },
      { compression: 'none', entries: [file('etc/second', 'second layer\n')] },
    ],
    config: { Env: ['PATH=/usr/bin', 'TOCFS=1'], Cmd: ['/bin/sh'] },
    platform: { os: 'linux', architecture: host.architecture },
  });
  const other = await buildImage(work, {
    layers: [{ compression: 'gzip', entries: [file('etc/other', `built for ${otherArch}\n`)] }],
    platform: { os: 'linux', architecture: otherArch },
  });
  const index = buildIndex([{ image: main }, { image: other }]);
  images = { main, other, index, layer: await readFile(main.layers[0]!.path) };
});

async function seed(reg: TestRegistry): Promise<void> {
  await pushImage(reg.seedUrl, REPO, 'v1', images.main);
  await pushIndex(reg.seedUrl, REPO, 'multi', images.index);
}

function clientFor(t: Test, reg: TestRegistry, extra: RegistryClientOptions = {}, registry = reg.host): RegistryClient {
  const creds: Credentials | undefined =
    reg.username !== undefined && reg.password !== undefined ? { kind: 'basic', username: reg.username, password: reg.password } : undefined;
  const client = new RegistryClient({
    retry: { minDelayMs: 1, maxDelayMs: 50 },
    ...(reg.caPem ? { ca: [reg.caPem] } : {}),
    ...(creds ? { credentials: { lookup: (r: string) => (r === registry ? creds : undefined) } } : {}),
    ...extra,
  });
  t.teardown(() => client.close());
  return client;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
  t.test(`auth ${auth}`, async (t) => {
    const reg = await startRegistry(t, { auth });
    await seed(reg);
    const client = clientFor(t, reg);
    const ref = (s: Partial<ImageReference>): ImageReference => ({ registry: reg.host, repository: REPO, ...s });

    t.test('resolve by tag and by digest', async (t) => {
      const byTag = await client.resolve(ref({ tag: 'v1' }));
      t.equal(byTag.digest, images.main.manifest.digest);
      t.equal(byTag.manifest.digest, images.main.manifest.digest);
      t.same(byTag.ref, ref({ tag: 'v1', digest: images.main.manifest.digest }), 'the reference comes back pinned');
      t.equal(byTag.index, undefined);
      t.equal(byTag.manifest.document.layers.length, 2);
      const byDigest = await client.resolve(ref({ digest: images.main.manifest.digest }));
      t.same(Buffer.from(byDigest.manifest.bytes), images.main.manifest.bytes);
      const config = await client.getConfig(byTag.ref, byTag.manifest);
      t.equal(config.digest, images.main.config.digest);
      t.same(config.document.config?.Env, ['PATH=/usr/bin', 'TOCFS=1']);
    });

    t.test('an index: the wanted platform is selected, a missing one is NO_PLATFORM', async (t) => {
      const mine = await client.resolve(ref({ tag: 'multi' }), { os: 'linux', architecture: host.architecture });
      t.equal(mine.digest, images.index.digest, 'pinned to the index');
      t.equal(mine.index?.digest, images.index.digest);
      t.equal(mine.manifest.digest, images.main.manifest.digest);
      const theirs = await client.resolve(ref({ tag: 'multi' }), { os: 'linux', architecture: otherArch });
      t.equal(theirs.manifest.digest, images.other.manifest.digest);
      await t.rejects(client.resolve(ref({ tag: 'multi' }), { os: 'linux', architecture: 's390x' }), { code: 'NO_PLATFORM' });
    });

    t.test('a missing manifest is NOT_FOUND naming the reference', async (t) => {
      await t.rejects(client.resolve(ref({ tag: 'nope' })), {
        code: 'NOT_FOUND',
        message: new RegExp(`^manifest ${reg.host}/${REPO}:nope: `),
      });
      await t.rejects(client.resolve(ref({ digest: sha256('no such manifest') })), { code: 'NOT_FOUND' });
    });

    t.test('readRange, blobSize and streamBlob of a layer', async (t) => {
      const layer = images.main.layers[0]!;
      const size = images.layer.length;
      t.equal(await client.blobSize(ref({}), layer.digest), size);
      for (const [start, end] of [
        [0, 1],
        [0, 512],
        [1000, 70_000],
        [size - 1, size],
        [0, size],
      ] as const) {
        const got = await client.readRange(ref({}), layer, { start, end });
        t.same(Buffer.from(got), images.layer.subarray(start, end), `[${start}, ${end})`);
      }
      t.same(await collect(client.streamBlob(ref({}), layer)), images.layer);
      t.equal(client.stats().quirks.rangeIgnored, 0, 'distribution honours Range');

      // onData: the head of a range is usable, and final, before its tail arrives.
      const seen: number[] = [];
      const whole = await client.readRange(ref({}), layer, { start: 0, end: size }, {
        onData: (received, bytes) => {
          t.ok(Buffer.from(bytes.subarray(0, received)).equals(images.layer.subarray(0, received)), `the first ${received} bytes are final`);
          seen.push(received);
        },
      });
      t.same(Buffer.from(whole), images.layer);
      t.same([...seen].sort((a, b) => a - b), seen, 'received only grows');
      t.equal(seen.at(-1), size, 'the last call has every byte');
      t.ok(seen.length > 1, `the body came in ${seen.length} pieces, each reported`);
    });

    t.test('push a blob and a manifest, then read them back', async (t) => {
      const repo = { registry: reg.host, repository: 'tocfs/pushed' };
      const bytes = Buffer.from(`pushed through ${auth}`);
      const digest = sha256(bytes);
      t.equal(await client.blobExists(repo, digest), false);
      await client.pushBlob(repo, digest, bytes, bytes.length);
      t.equal(await client.blobExists(repo, digest), true);
      const config = images.main.config;
      await client.pushBlob(repo, config.digest, config.bytes, config.bytes.length);
      for (const l of images.main.layers) {
        const path = l.path;
        const { createReadStream } = await import('node:fs');
        await client.pushBlob(repo, l.digest, () => createReadStream(path), l.size);
      }
      const pushed = await client.putManifest(repo, 'copied', images.main.manifest.mediaType, images.main.manifest.bytes);
      t.equal(pushed, images.main.manifest.digest);
      const back = await client.resolve({ ...repo, tag: 'copied' });
      t.equal(back.digest, images.main.manifest.digest);
      t.same(Buffer.from(await client.readRange(repo, digest, { start: 0, end: bytes.length })), bytes);
    });

    if (auth === 'token') {
      t.test('tokens: reused, then refreshed once past expiry', async (t) => {
        const issuer = reg.tokenIssuer!;
        const c = clientFor(t, reg);
        const before = issuer.requests;
        await c.resolve(ref({ tag: 'v1' }));
        await c.blobSize(ref({}), images.main.layers[0]!.digest);
        t.equal(issuer.requests - before, 1, 'one token for both requests');
        issuer.ttlSeconds = 1;
        const short = clientFor(t, reg);
        const mid = issuer.requests;
        await short.resolve(ref({ tag: 'v1' }));
        await sleep(1200);
        await short.resolve(ref({ tag: 'v1' }));
        t.equal(issuer.requests - mid, 2, 'the expired token was replaced');
        issuer.ttlSeconds = 300;
      });
    }
  });
}

t.test('through the fault proxy', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  await seed(reg);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const client = clientFor(t, reg, {}, proxy.host);
  const repo: ImageReference = { registry: proxy.host, repository: REPO };
  const layer = images.main.layers[0]!;
  const blobPath = `/v2/${REPO}/blobs/${layer.digest}`;
  await client.readRange(repo, layer, { start: 0, end: 10 }); // resolves the blob location

  t.test('200 instead of 206: the right slice', async (t) => {
    proxy.addRule({ path: blobPath, times: 2, action: { replaceStatus: 200 } });
    const got = await client.readRange(repo, layer, { start: 5000, end: 9000 });
    t.same(Buffer.from(got), images.layer.subarray(5000, 9000));
    const tail = await client.readRange(repo, layer, { start: images.layer.length - 3, end: images.layer.length });
    t.same(Buffer.from(tail), images.layer.subarray(images.layer.length - 3));
    t.equal(client.stats().quirks.rangeIgnored, 2);
    proxy.clearRules();
  });

  t.test('a truncated body is retried', async (t) => {
    const retries = client.stats().retries;
    proxy.addRule({ path: blobPath, times: 1, action: { truncateAfter: 100 } });
    const got = await client.readRange(repo, layer, { start: 0, end: 50_000 });
    t.same(Buffer.from(got), images.layer.subarray(0, 50_000));
    t.equal(client.stats().retries - retries, 1);
    proxy.clearRules();
  });

  t.test('a reset mid-body is retried; streamBlob resumes', async (t) => {
    proxy.addRule({ path: blobPath, times: 1, action: { reset: 'mid-body', afterBytes: 40_000 } });
    t.same(await collect(client.streamBlob(repo, layer)), images.layer);
    const ranges = proxy.counters.requests.filter((r) => r.path === blobPath).map((r) => r.range);
    t.match(ranges.at(-1), /^bytes=\d+-\d+$/, 'the last request resumed with a Range');
    proxy.clearRules();
  });

  t.test('500 then success', async (t) => {
    const retries = client.stats().retries;
    proxy.addRule({ path: `/v2/${REPO}/manifests/v1`, times: 1, action: { status: 500, body: 'oops' } });
    const got = await client.resolve({ ...repo, tag: 'v1' });
    t.equal(got.digest, images.main.manifest.digest);
    t.equal(client.stats().retries - retries, 1);
    proxy.clearRules();
  });

  t.test('401 with a cached token: a fresh token, one retry', async (t) => {
    const issuer = reg.tokenIssuer!;
    await client.resolve({ ...repo, tag: 'v1' });
    const before = issuer.requests;
    proxy.addRule({
      path: `/v2/${REPO}/manifests/v1`,
      times: 1,
      action: {
        status: 401,
        headers: { 'www-authenticate': `Bearer realm="${issuer.url}",service="${issuer.service}",scope="repository:${REPO}:pull",error="invalid_token"` },
        body: '{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}',
      },
    });
    const got = await client.resolve({ ...repo, tag: 'v1' });
    t.equal(got.digest, images.main.manifest.digest);
    t.equal(issuer.requests - before, 1);
    proxy.clearRules();
  });

  t.test('a flipped byte: DigestMismatchError for manifests (by digest and by tag) and blobs', async (t) => {
    proxy.addRule({ path: new RegExp(`/manifests/`), action: { flipByteAt: 20 } });
    await t.rejects(client.resolve({ ...repo, digest: images.main.manifest.digest }), DigestMismatchError);
    await t.rejects(client.resolve({ ...repo, tag: 'v1' }), { code: 'BAD_DATA', message: /Docker-Content-Digest|expected/ });
    proxy.clearRules();
    proxy.addRule({ path: blobPath, action: { flipByteAt: 1234 } });
    await t.rejects(collect(client.streamBlob(repo, layer)), { code: 'BAD_DATA', expected: layer.digest });
    proxy.clearRules();
  });

  t.test('5xx forever: SOURCE_UNAVAILABLE naming the registry, request and cause', async (t) => {
    const c = clientFor(t, reg, { retry: { maxRetries: 2, minDelayMs: 1, maxDelayMs: 5 } }, proxy.host);
    proxy.addRule({ path: `/v2/${REPO}/manifests/v1`, action: { status: 503 } });
    await t.rejects(c.resolve({ ...repo, tag: 'v1' }), {
      code: 'SOURCE_UNAVAILABLE',
      message: `registry ${proxy.host}: GET /v2/${REPO}/manifests/v1: failed after 3 tries: HTTP 503`,
    });
    proxy.clearRules();
  });
});
