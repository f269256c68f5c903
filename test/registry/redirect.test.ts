// Blob redirects to a CDN / S3-style signed URL: resolved once per blob, used without registry
// credentials, resolved again when the target refuses the signature or it expires.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { blobDesc, blobOf, json, serveBlob, startFake, testClient, type Fake } from './fake-http.js';

const REPO = 'team/app';
const blob = blobOf(50_000);
const desc = blobDesc(blob);
const TOKEN = 'Bearer registry-token';

interface Setup {
  /** Query parameters of the signed URL. */
  query?: (n: number) => string;
  /** Answers a blob GET instead of the redirect when it returns true. */
  instead?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Which signature generations the CDN still accepts. */
  accepts?: (generation: number) => boolean;
}

async function cdnSetup(t: Test, setup: Setup = {}): Promise<{ registry: Fake; cdn: Fake; resolutions: () => Fake['requests'] }> {
  let generation = 0;
  const accepts = setup.accepts ?? (() => true);
  const cdn = await startFake(t, (req, res) => {
    const sig = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('sig'));
    if (req.headers.authorization !== undefined) return json(res, 400, { error: 'signed URLs reject Authorization' });
    if (!accepts(sig)) return json(res, 403, { error: 'Request has expired' });
    serveBlob(req, res, blob);
  });
  const issuer = await startFake(t, (_req, res) => json(res, 200, { token: TOKEN.slice(7) }));
  const registry = await startFake(t, (req, res) => {
    if (req.headers.authorization !== TOKEN) {
      return json(res, 401, {}, { 'www-authenticate': `Bearer realm="${issuer.url}/token",service="reg"` });
    }
    if (req.url === '/v2/') return json(res, 200, {});
    if (setup.instead?.(req, res)) return;
    generation++;
    const query = setup.query?.(generation) ?? '';
    res.writeHead(307, { location: `${cdn.url}/blobs/${desc.digest}?sig=${generation}${query}`, 'content-length': 0 });
    res.end();
  });
  const resolutions = (): Fake['requests'] => registry.calls().filter((r) => r.path.includes('/blobs/'));
  return { registry, cdn, resolutions };
}

t.test('a redirect is resolved once, by the first read, then range reads go to the target without credentials', async (t) => {
  const { registry, cdn, resolutions } = await cdnSetup(t);
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  for (const [start, end] of [
    [0, 10],
    [100, 5000],
    [blob.length - 1, blob.length],
  ] as const) {
    t.same(Buffer.from(await client.readRange(repo, desc, { start, end })), blob.subarray(start, end));
  }
  t.equal(resolutions().length, 1, 'one resolution');
  t.equal(resolutions()[0]!.headers.range, 'bytes=0-9', 'the first read resolved it');
  t.same(cdn.requests.map((r) => r.headers.range), ['bytes=0-9', 'bytes=100-4999', 'bytes=49999-49999']);
  t.ok(cdn.requests.every((r) => r.headers.authorization === undefined), 'no Authorization to the CDN');
  t.equal(client.stats().blobResolutions, 1);
});

// Another blob of the same registry: reading it first teaches the client that the registry redirects.
const other = blobDesc(blobOf(50_000, 2));

t.test('on a registry known to redirect, concurrent first reads of a blob share one resolution', async (t) => {
  const { registry, resolutions } = await cdnSetup(t);
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  await client.readRange(repo, other, { start: 0, end: 10 });
  const reads = await Promise.all(
    Array.from({ length: 16 }, (_, i) => client.readRange(repo, desc, { start: i * 100, end: i * 100 + 50 })),
  );
  reads.forEach((got, i) => t.same(Buffer.from(got), blob.subarray(i * 100, i * 100 + 50)));
  t.equal(resolutions().filter((r) => r.path.includes(desc.digest)).length, 1);
});

t.test('on a registry not heard from yet, concurrent first reads each follow their own redirect', async (t) => {
  const { registry, resolutions } = await cdnSetup(t);
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  const reads = await Promise.all(Array.from({ length: 4 }, (_, i) => client.readRange(repo, desc, { start: i * 100, end: i * 100 + 50 })));
  reads.forEach((got, i) => t.same(Buffer.from(got), blob.subarray(i * 100, i * 100 + 50)));
  t.equal(resolutions().length, 4, 'the price of not waiting: one redirect per read');
  await client.readRange(repo, desc, { start: 0, end: 10 });
  t.equal(resolutions().length, 4, 'then the location is known');
});

t.test('a resolving GET that fails leaves the reads waiting on it to resolve afresh', async (t) => {
  let failed = false;
  const { registry, resolutions } = await cdnSetup(t, {
    instead: (req, res) => {
      if (failed || !req.url?.includes(desc.digest)) return false;
      failed = true;
      setTimeout(() => json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] }), 50);
      return true;
    },
  });
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  await client.readRange(repo, other, { start: 0, end: 10 });
  const first = client.readRange(repo, desc, { start: 0, end: 10 });
  await sleep(10);
  const second = client.readRange(repo, desc, { start: 10, end: 20 });
  await t.rejects(first, { code: 'NOT_FOUND' });
  t.same(Buffer.from(await second), blob.subarray(10, 20));
  t.equal(resolutions().filter((r) => r.path.includes(desc.digest)).length, 2, 'the waiting read resolved it itself');
});

t.test('a resolving GET aborted by its caller leaves the reads waiting on it to resolve afresh', async (t) => {
  let held = false;
  const { registry } = await cdnSetup(t, {
    instead: (req) => {
      if (held || !req.url?.includes(desc.digest)) return false;
      held = true;
      return true; // never answered
    },
  });
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  await client.readRange(repo, other, { start: 0, end: 10 });
  const abort = new AbortController();
  const first = client.readRange(repo, desc, { start: 0, end: 10 }, { signal: abort.signal });
  await sleep(20);
  const second = client.readRange(repo, desc, { start: 10, end: 20 });
  await sleep(20);
  abort.abort();
  await t.rejects(first);
  t.same(Buffer.from(await second), blob.subarray(10, 20));
});

t.test('403 from the redirect target: resolved again, then read', async (t) => {
  let newest = 0;
  const { registry, cdn, resolutions } = await cdnSetup(t, { accepts: (g) => g >= newest });
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  await client.readRange(repo, desc, { start: 0, end: 10 });
  newest = 2; // the first signature has expired
  t.same(Buffer.from(await client.readRange(repo, desc, { start: 10, end: 20 })), blob.subarray(10, 20));
  t.equal(resolutions().length, 2);
  t.equal(client.stats().reResolutions, 1);
  t.same(cdn.requests.map((r) => new URL(r.url, 'http://x').searchParams.get('sig')), ['1', '1', '2']);
});

t.test('a target that refuses a signature fresh from the registry: DENIED, not resolved again', async (t) => {
  const { registry, resolutions } = await cdnSetup(t, { accepts: () => false });
  const client = testClient(t);
  await t.rejects(client.readRange({ registry: registry.host, repository: REPO }, desc, { start: 0, end: 10 }), {
    code: 'DENIED',
    message: new RegExp(`blob ${desc.digest}: registry ${registry.host}: GET /v2/${REPO}/blobs/${desc.digest} \\(via 127\\.0\\.0\\.1:\\d+\\): HTTP 403`),
  });
  t.equal(resolutions().length, 1);
});

t.test('a signed URL is resolved again once its X-Amz-Expires has passed', async (t) => {
  const { registry, resolutions } = await cdnSetup(t, { query: () => '&X-Amz-Expires=0' });
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  await client.readRange(repo, desc, { start: 0, end: 10 });
  await client.readRange(repo, desc, { start: 0, end: 10 });
  t.equal(resolutions().length, 2, 'an expired location is not reused');
});

t.test('streamBlob and blobSize follow the redirect', async (t) => {
  const { registry } = await cdnSetup(t);
  const client = testClient(t);
  const repo = { registry: registry.host, repository: REPO };
  const parts: Uint8Array[] = [];
  for await (const c of client.streamBlob(repo, desc)) parts.push(c);
  t.same(Buffer.concat(parts), blob);
  t.equal(await client.blobSize(repo, desc.digest), blob.length, 'HEAD redirected: size from a range GET on the target');
});
