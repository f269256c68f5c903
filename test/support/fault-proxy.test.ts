// Each fault of the proxy, in front of the real registry, with the counters it leaves behind.
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { Agent, request, type Dispatcher } from 'undici';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { buildImage, MEDIA_TYPES } from './image-builder.js';
import { pushBlob, pushImage } from './push.js';
import { startRegistry } from './registry.js';
import { file } from './tar-dsl.js';
import { tempDir } from './tmp.js';

const REPO = 'tocfs/proxied';

interface Setup {
  proxy: FaultProxy;
  blob: Buffer;
  blobPath: string;
  manifestPath: string;
  get(path: string, headers?: Record<string, string>, method?: Dispatcher.HttpMethod): Promise<Answer>;
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: Buffer;
  /** Set when the body (or the request) failed; `body` then holds what arrived before. */
  error?: Error;
}

// One registry and image for the whole file; each test gets its own proxy (rules, counters) and agent.
const reg = await startRegistry(t);
// An uncompressed layer of 300 KB of pseudo-random bytes: several socket writes, nothing compressible.
const image = await buildImage(tempDir(t, 'proxy-image'), {
  layers: [{ compression: 'none', entries: [file('data', { size: 300_000 })] }],
});
await pushImage(reg.seedUrl, REPO, 'v1', image);
const layer = image.layers[0]!;
const blobBytes = await readFile(layer.path);

async function setup(t: Test): Promise<Setup> {
  const proxy = await startFaultProxy(t, { target: reg.url });
  // A fresh agent per test: a reset or truncated socket must not be reused by the next test.
  const agent = new Agent({ pipelining: 0 });
  t.teardown(() => agent.close());
  const get = async (path: string, headers: Record<string, string> = {}, method: Dispatcher.HttpMethod = 'GET') => {
    const res = await request(`${proxy.url}${path}`, { method, headers, dispatcher: agent });
    const parts: Buffer[] = [];
    try {
      for await (const chunk of res.body) parts.push(chunk as Buffer);
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) };
    } catch (error) {
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(parts), error: error as Error };
    }
  };
  return {
    proxy,
    blob: blobBytes,
    blobPath: `/v2/${REPO}/blobs/${layer.digest}`,
    manifestPath: `/v2/${REPO}/manifests/v1`,
    get,
  };
}

t.test('forwards Range both ways and counts requests and body bytes by path, method and kind', async (t) => {
  const { proxy, blob, blobPath, manifestPath, get } = await setup(t);
  const ranged = await get(blobPath, { range: 'bytes=1000-4999' });
  t.equal(ranged.status, 206);
  t.equal(ranged.headers['content-range'], `bytes 1000-4999/${blob.length}`);
  t.same(ranged.body, blob.subarray(1000, 5000));
  const manifest = await get(manifestPath, { accept: MEDIA_TYPES.oci.manifest });
  t.equal(manifest.status, 200);
  t.equal(manifest.headers['docker-content-digest'] !== undefined, true, 'registry headers come through');
  await get(blobPath, {}, 'HEAD');
  await get('/v2/');

  const c = proxy.counters;
  t.equal(c.total, 4);
  t.same(c.byPath[blobPath], { requests: 2, bytes: 4000 });
  t.same(c.byMethodPath[`GET ${blobPath}`], { requests: 1, bytes: 4000 });
  t.same(c.byMethodPath[`HEAD ${blobPath}`], { requests: 1, bytes: 0 });
  t.same(c.byKind.blobs, { requests: 2, bytes: 4000 });
  t.same(c.byKind.manifests, { requests: 1, bytes: manifest.body.length });
  t.equal(c.byKind.other.requests, 1);
  t.match(c.requests[0], { method: 'GET', path: blobPath, range: 'bytes=1000-4999', status: 206, bytes: 4000 });
  t.notOk('fault' in c.requests[0]!, 'no rule, no fault');

  proxy.resetCounters();
  t.same(proxy.counters.total, 0);
  t.same(proxy.counters.requests, []);
});

t.test('flipByteAt changes exactly that one byte', async (t) => {
  const { proxy, blob, blobPath, get } = await setup(t);
  const rule = proxy.addRule({ path: blobPath, action: { flipByteAt: 123_457 } });
  const got = await get(blobPath);
  t.equal(got.status, 200);
  t.equal(got.body.length, blob.length);
  const diff = [...got.body.keys()].filter((i) => got.body[i] !== blob[i]);
  t.same(diff, [123_457]);
  t.equal(got.body[123_457], blob[123_457]! ^ 0xff);
  t.equal(rule.hits, 1);
  t.match(proxy.counters.requests[0], { fault: 'flipByteAt', bytes: blob.length });

  const ranged = await get(blobPath, { range: 'bytes=0-9' });
  t.same(ranged.body, blob.subarray(0, 10), 'offset past a short body: nothing flipped');
});

t.test('truncateAfter sends the promised Content-Length, then N bytes, then closes', async (t) => {
  const { proxy, blob, blobPath, get } = await setup(t);
  proxy.addRule({ path: blobPath, times: 1, action: { truncateAfter: 70_000 } });
  const cut = await get(blobPath);
  t.equal(cut.status, 200);
  t.equal(cut.headers['content-length'], String(blob.length), 'Content-Length left intact');
  t.ok(cut.error, 'the client sees the body fail');
  t.same(cut.body, blob.subarray(0, 70_000), 'exactly the first N bytes arrived');
  t.match(proxy.counters.requests[0], { status: 200, bytes: 70_000, fault: 'truncateAfter' });

  const whole = await get(blobPath);
  t.same(whole.body, blob, 'times: 1, so the next request is untouched');
});

t.test('reset before headers and mid-body both fail the client', async (t) => {
  const { proxy, blobPath, get } = await setup(t);
  proxy.addRule({ method: 'get', path: blobPath, times: 1, action: { reset: 'before-headers' } });
  await t.rejects(get(blobPath), 'no response at all');
  t.match(proxy.counters.requests[0], { status: 0, bytes: 0, fault: 'reset' });

  proxy.addRule({ path: blobPath, times: 1, action: { reset: 'mid-body', afterBytes: 1000 } });
  const mid = await get(blobPath);
  t.equal(mid.status, 200);
  t.ok(mid.error, 'body fails');
  t.ok(mid.body.length <= 1000);
  t.match(proxy.counters.requests[1], { status: 200, bytes: 1000, fault: 'reset' });
});

t.test('a 500 rule for times: 1, then success; first match wins; clearRules', async (t) => {
  const { proxy, blob, blobPath, get } = await setup(t);
  const fail = proxy.addRule({ path: /\/blobs\//, times: 1, action: { status: 500, body: 'boom' } });
  const never = proxy.addRule({ path: blobPath, action: { status: 503 } });
  const first = await get(blobPath);
  t.equal(first.status, 500);
  t.equal(first.body.toString(), 'boom');
  const second = await get(blobPath);
  t.equal(second.status, 503, 'the exhausted rule is skipped, the next one matches');
  t.same([fail.hits, never.hits], [1, 1]);
  proxy.clearRules();
  t.same((await get(blobPath)).body, blob);
  t.same(
    proxy.counters.requests.map((r) => [r.status, r.fault]),
    [
      [500, 'respond'],
      [503, 'respond'],
      [200, undefined],
    ],
  );

  proxy.addRule({ method: 'HEAD', path: blobPath, action: { status: 429, headers: { 'retry-after': '1' } } });
  const limited = await get(blobPath, {}, 'HEAD');
  t.equal(limited.status, 429);
  t.equal(limited.headers['retry-after'], '1');
  t.equal((await get(blobPath)).status, 200, 'method filter: GET passes');
});

t.test('replaceStatus 200 drops Range so the whole blob comes back', async (t) => {
  const { proxy, blob, blobPath, get } = await setup(t);
  proxy.addRule({ path: blobPath, action: { replaceStatus: 200 } });
  const got = await get(blobPath, { range: 'bytes=10-19' });
  t.equal(got.status, 200);
  t.same(got.body, blob);
  t.match(proxy.counters.requests[0], { range: 'bytes=10-19', status: 200, bytes: blob.length });
});

t.test('delayMs forwards the request unchanged after the delay', async (t) => {
  const { proxy, blob, blobPath, get } = await setup(t);
  proxy.addRule({ path: blobPath, times: 1, action: { delayMs: 50 } });
  const got = await get(blobPath, { range: 'bytes=0-99' });
  t.equal(got.status, 206);
  t.same(got.body, blob.subarray(0, 100));
  t.match(proxy.counters.requests[0], { fault: 'delayMs', status: 206, bytes: 100 });
});

t.test('uploads go through: absolute Location headers point back at the proxy', async (t) => {
  const { proxy, get } = await setup(t);
  const opened = await get(`/v2/${REPO}/blobs/uploads/`, {}, 'POST');
  t.equal(opened.status, 202);
  t.match(opened.headers.location, new RegExp(`^${proxy.url}/v2/${REPO}/blobs/uploads/`));

  const pushed = await pushBlob(proxy.url, REPO, { bytes: Buffer.from('through the proxy') });
  t.notOk(pushed.existed);
  const put = Object.keys(proxy.counters.byMethodPath).filter((k) => k.startsWith('PUT '));
  t.equal(put.length, 1, 'the PUT went to the proxy, not straight to the registry');
  t.equal((await get(`/v2/${REPO}/blobs/${pushed.digest}`)).body.toString(), 'through the proxy');
});

t.test('WWW-Authenticate challenges come through untouched', async (t) => {
  const reg = await startRegistry(t, { auth: 'token' });
  const proxy = await startFaultProxy(t, { target: reg.url });
  const res = await request(`${proxy.url}/v2/`, { reset: true });
  await res.body.dump();
  t.equal(res.statusCode, 401);
  t.match(res.headers['www-authenticate'], /^Bearer realm="[^"]+",service="tocfs-test-registry"/);
  t.equal(proxy.counters.byKind.other.requests, 1);
});
