// Issue 21, "honest retries": a wrong Content-Range, a 416 and a truncated body are retried like a 5xx,
// within the same budget, on Debian's docker-registry behind the fault proxy (each failed the read on its
// first try before). And the time budget: a registry that accepts and never answers ends a read with
// TIMEOUT after --fetch-timeout, naming the request, instead of 5 tries x 30 s headers timeout.
import net from 'node:net';
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { startRegistry } from '../support/registry.js';
import { blobDesc, blobOf } from '../registry/fake-http.js';

const REPO = 'issue21/retries';
const blob = blobOf(64 * 1024, 21);
const desc = blobDesc(blob);

t.test('Content-Range, 416 and truncation are retried; the bytes are right', async (t) => {
  const reg = await startRegistry(t);
  const seed = new RegistryClient();
  t.teardown(() => seed.close());
  await seed.pushBlob({ registry: reg.host, repository: REPO }, desc.digest, blob, blob.length);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const repo = { registry: proxy.host, repository: REPO };
  const range = { start: 1000, end: 9000 };
  const want = blob.subarray(range.start, range.end);
  const faults = {
    'a Content-Range for other bytes': { status: 206, headers: { 'content-range': `bytes 0-9/${blob.length}`, 'content-length': '10' }, body: blob.subarray(0, 10) },
    'a 416': { status: 416, headers: { 'content-range': `bytes */${blob.length}` } },
    'a body cut short': { truncateAfter: 100 },
  } as const;
  for (const [name, action] of Object.entries(faults)) {
    const client = new RegistryClient({ retry: { minDelayMs: 1, maxDelayMs: 5 } });
    t.teardown(() => client.close());
    await client.blobSize(repo, desc.digest); // the location is known: the faulty answer is the read's own
    proxy.resetCounters();
    proxy.addRule({ method: 'GET', path: /\/blobs\//, times: 1, action });
    const got = await client.readRange(repo, desc, range).catch((err: Error) => err);
    t.same(got instanceof Error ? got.message : Buffer.from(got).equals(want), true, `${name}: retried, right bytes`);
    t.equal(proxy.counters.requests.filter((r) => r.method === 'GET' && /\/blobs\//.test(r.path)).length, 2, `${name}: two GETs`);
    t.equal(client.stats().retries, 1, `${name}: counted as one retry`);
    proxy.clearRules();
  }
});

t.test('a 416 past the blob end is not retried (the range is wrong, not the answer)', async (t) => {
  const reg = await startRegistry(t);
  const seed = new RegistryClient();
  t.teardown(() => seed.close());
  await seed.pushBlob({ registry: reg.host, repository: REPO }, desc.digest, blob, blob.length);
  const client = new RegistryClient({ retry: { minDelayMs: 1, maxDelayMs: 5 } });
  t.teardown(() => client.close());
  // Given by digest alone, the size is unknown until the registry says.
  await t.rejects(client.readRange({ registry: reg.host, repository: REPO }, desc.digest, { start: blob.length + 10, end: blob.length + 20 }), {
    code: 'FORMAT',
  });
  t.equal(client.stats().retries, 0);
});

t.test('a registry that accepts and never answers: TIMEOUT after the budget, naming the request', async (t) => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const { port } = server.address() as net.AddressInfo;
  const client = new RegistryClient({ retry: { budgetMs: 1500 } });
  t.teardown(() => client.close());
  const started = Date.now();
  const err = (await client.readRange({ registry: `127.0.0.1:${port}`, repository: REPO }, desc, { start: 0, end: 10 }).catch((e: unknown) => e)) as Error & { code?: string };
  const waited = Date.now() - started;
  t.equal(err.code, 'TIMEOUT', err.message);
  t.match(err.message, /127\.0\.0\.1:\d+.*no answer within 1\.5 s \(--fetch-timeout\)/);
  t.ok(waited >= 1400 && waited < 2500, `waited ${waited} ms for a 1.5 s budget`);
});
