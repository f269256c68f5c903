// Retries: which failures are retried, how long we wait, and the error after the last try.
import t, { type Test } from 'tap';
import { TocfsError } from '../../src/errors.js';
import { TransientError } from '../../src/registry/http.js';
import { backoffMs, isRetryable, retryPolicy, withRetry } from '../../src/registry/retry.js';
import { recordChannels } from '../support/channels.js';
import { blobDesc, blobOf, json, manifestOf, pingOk, serveBlob, sha256, startFake, testClient } from './fake-http.js';

const REPO = 'team/app';
const blob = blobOf(10_000);
const desc = blobDesc(blob);
const manifest = manifestOf(desc);
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

function serveManifest(res: import('node:http').ServerResponse): void {
  res.writeHead(200, { 'content-type': MANIFEST_TYPE, 'content-length': manifest.length, 'docker-content-digest': sha256(manifest) });
  res.end(manifest);
}

function retryEvents(t: Test): Array<Record<string, unknown>> {
  return recordChannels(t, 'tocfs:registry:retry');
}

t.test('500 then success', async (t) => {
  let n = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (n++ === 0) return json(res, 500, { errors: [{ code: 'UNKNOWN', message: 'boom' }] });
    serveManifest(res);
  });
  const client = testClient(t);
  const got = await client.getManifest({ registry: fake.host, repository: REPO }, 'v1');
  t.equal(got.digest, sha256(manifest));
  t.equal(client.stats().retries, 1);
});

t.test('429 with Retry-After: waits as asked, then succeeds', async (t) => {
  const events = retryEvents(t);
  let n = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (n++ === 0) return json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS' }] }, { 'retry-after': '1' });
    serveManifest(res);
  });
  const client = testClient(t, { retry: { minDelayMs: 1, maxDelayMs: 2000 } });
  await client.getManifest({ registry: fake.host, repository: REPO }, 'v1');
  t.equal(events.length, 1);
  t.ok((events[0]!.delayMs as number) >= 1000, 'the wait honours Retry-After');
  t.match(events[0], { registry: fake.host, method: 'GET', path: `/v2/${REPO}/manifests/v1`, attempt: 1, reason: /HTTP 429/ });
});

t.test('a Retry-After beyond maxDelayMs gives up at once', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    json(res, 429, {}, { 'retry-after': '3600' });
  });
  const client = testClient(t, { retry: { minDelayMs: 1, maxDelayMs: 100 } });
  await t.rejects(client.getManifest({ registry: fake.host, repository: REPO }, 'v1'), {
    code: 'SOURCE_UNAVAILABLE',
    message: /failed after 1 try \(Retry-After beyond retry.maxDelayMs\): HTTP 429/,
  });
  t.equal(fake.calls().length, 1);
});

t.test('5xx forever: a clear error after maxRetries + 1 tries naming registry, request and cause', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'maintenance' }] });
  });
  const client = testClient(t, { retry: { maxRetries: 3, minDelayMs: 1, maxDelayMs: 5 } });
  const err = await client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 10 }).catch((e: unknown) => e);
  t.type(err, TocfsError);
  t.equal((err as TocfsError).code, 'SOURCE_UNAVAILABLE');
  t.equal(
    (err as TocfsError).message,
    `registry ${fake.host}: GET /v2/${REPO}/blobs/${desc.digest}: failed after 4 tries: HTTP 503 (UNAVAILABLE: maintenance)`,
  );
  t.equal(fake.calls().length, 4);
  t.equal(client.stats().retries, 3);
});

t.test('a connection refused is retried, then named in the error', async (t) => {
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveManifest(res));
  const client = testClient(t, { retry: { maxRetries: 2, minDelayMs: 1, maxDelayMs: 5 } });
  await client.getManifest({ registry: fake.host, repository: REPO }, 'v1');
  await fake.close();
  await t.rejects(client.getManifest({ registry: fake.host, repository: REPO }, 'v2'), {
    code: 'SOURCE_UNAVAILABLE',
    message: new RegExp(`registry ${fake.host}: GET /v2/${REPO}/manifests/v2: failed after 3 tries: ECONNREFUSED`),
  });
});

t.test('4xx other than 408/429 are not retried', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.url?.endsWith('/missing')) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    json(res, 400, { errors: [{ code: 'NAME_INVALID' }] });
  });
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  await t.rejects(client.getManifest(repo, 'missing'), {
    code: 'NOT_FOUND',
    message: `manifest ${fake.host}/${REPO}:missing: registry ${fake.host}: GET /v2/${REPO}/manifests/missing: HTTP 404 (MANIFEST_UNKNOWN: manifest unknown)`,
  });
  await t.rejects(client.getManifest(repo, 'bad'), { code: 'PROTOCOL' });
  t.equal(fake.calls().length, 2);
  t.equal(client.stats().retries, 0);
});

t.test('408 is retried', async (t) => {
  let n = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (n++ === 0) return json(res, 408, {});
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  t.equal(await client.blobSize({ registry: fake.host, repository: REPO }, desc.digest), blob.length);
});

t.test('an AbortSignal stops the retries', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    json(res, 503, {});
  });
  const client = testClient(t, { retry: { maxRetries: 10, minDelayMs: 60_000, maxDelayMs: 60_000 } });
  const ac = new AbortController();
  const events = retryEvents(t);
  const pending = client.getManifest({ registry: fake.host, repository: REPO }, 'v1', { signal: ac.signal });
  while (events.length === 0) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  await t.rejects(pending, { code: 'ABORTED', message: `registry ${fake.host}: GET /v2/${REPO}/manifests/v1: aborted` });
  t.equal(fake.calls().length, 1);
});

t.test('an AbortSignal aborts a request in flight', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    // Never answers.
  });
  const client = testClient(t);
  const ac = new AbortController();
  const pending = client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 10 }, { signal: ac.signal });
  while (fake.calls().length === 0) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  await t.rejects(pending, { code: 'ABORTED' });
});

t.test('backoff: full jitter under a capped exponential, Retry-After as a floor', async (t) => {
  const p = retryPolicy({ minDelayMs: 100, maxDelayMs: 1000 });
  t.equal(backoffMs(p, 1, new Error('x'), () => 0.999999) ?? 0, 99.9999);
  t.equal(Math.round(backoffMs(p, 3, new Error('x'), () => 1) ?? 0), 400);
  t.equal(backoffMs(p, 20, new Error('x'), () => 1), 1000, 'capped');
  t.equal(backoffMs(p, 1, new Error('x'), () => 0), 0, 'full jitter reaches 0');
  t.equal(backoffMs(p, 1, new TransientError('429', 700), () => 0), 700, 'Retry-After is the least wait');
  t.equal(backoffMs(p, 1, new TransientError('429', 5000), () => 0), undefined, 'too long: give up');
});

t.test('retry options are validated with named errors', async (t) => {
  t.throws(() => retryPolicy({ maxRetries: -1 }), { code: 'INVALID_OPTION', option: 'retry.maxRetries' });
  t.throws(() => retryPolicy({ minDelayMs: 10, maxDelayMs: 5 }), { code: 'INVALID_OPTION', option: 'retry.maxDelayMs' });
  t.throws(() => retryPolicy({ budgetMs: 0 }), { code: 'INVALID_OPTION', option: 'retry.budgetMs' });
  t.same(retryPolicy(), { maxRetries: 4, minDelayMs: 100, maxDelayMs: 5000, budgetMs: 30_000 });
});

t.test('classification', async (t) => {
  t.ok(isRetryable(Object.assign(new Error('reset'), { code: 'ECONNRESET' })));
  t.ok(isRetryable(Object.assign(new Error('closed'), { code: 'UND_ERR_SOCKET' })));
  t.ok(isRetryable(new TransientError('HTTP 502')));
  t.notOk(isRetryable(new TocfsError('NOT_FOUND', 'x')));
  t.notOk(isRetryable(Object.assign(new Error('cert'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })));
  const ctx = { registry: 'r.example', method: 'GET', path: '/v2/x' };
  let n = 0;
  const flaky = async (): Promise<number> => (++n < 3 ? Promise.reject(new TransientError('x')) : n);
  t.equal(await withRetry(ctx, retryPolicy({ minDelayMs: 0, maxDelayMs: 0 }), undefined, flaky), 3);
});
