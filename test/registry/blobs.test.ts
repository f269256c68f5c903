// Range reads, blob size and the verified blob stream against node:http fakes: every protocol edge case
// of STYLE.md's registry list that concerns blob bytes.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { DigestMismatchError, TocfsError } from '../../src/errors.js';
import { recordChannels } from '../support/channels.js';
import { blobDesc, blobOf, pingOk, serveBlob, sha256, startFake, testClient } from './fake-http.js';

const REPO = 'team/app';
const blob = blobOf(100_000);
const digest = sha256(blob);
const desc = blobDesc(blob);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

t.test('206 single range: returns exactly the asked bytes, including the last byte', async (t) => {
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  for (const [start, end] of [
    [0, 1],
    [0, 4096],
    [12_345, 54_321],
    [blob.length - 1, blob.length],
    [0, blob.length],
  ] as const) {
    const got = await client.readRange(repo, desc, { start, end });
    t.same(Buffer.from(got), blob.subarray(start, end), `bytes [${start}, ${end})`);
  }
  const ranges = fake.calls().map((r) => r.headers.range);
  const expected = ['bytes=0-0', 'bytes=0-4095', 'bytes=12345-54320', 'bytes=99999-99999', 'bytes=0-99999'];
  t.same(ranges, expected, 'one GET per read, the first resolving where the blob lives');
  t.equal(client.stats().blobResolutions, 1);
  t.same(Buffer.from(await client.readRange(repo, desc, { start: 5, end: 5 })), Buffer.alloc(0), 'an empty range');
  t.equal(fake.calls().length, 5, 'an empty range sends nothing');
});

t.test('a range past the descriptor size is a FORMAT error without a request', async (t) => {
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const client = testClient(t);
  await t.rejects(client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 10, end: blob.length + 1 }), {
    code: 'FORMAT',
  });
  t.equal(fake.calls().length, 0);
});

t.test('200 instead of 206: the requested slice is cut from the stream, the rest dropped', async (t) => {
  const big = blobOf(4 << 20, 7);
  const bigDesc = { ...desc, digest: sha256(big), size: big.length };
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    res.writeHead(200, { 'content-length': big.length });
    res.end(big);
  });
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  const got = await client.readRange(repo, bigDesc, { start: 1000, end: 3000 });
  t.same(Buffer.from(got), big.subarray(1000, 3000));
  const tail = await client.readRange(repo, bigDesc, { start: big.length - 10, end: big.length });
  t.same(Buffer.from(tail), big.subarray(big.length - 10));
  const stats = client.stats();
  t.equal(stats.quirks.rangeIgnored, 2, 'counted as a registry quirk');
  t.ok(stats.bytesReceived < 2 * big.length, `did not read the whole blob for the first slice (${stats.bytesReceived} bytes)`);
});

t.test('200 whose length disagrees with the descriptor size is BAD_DATA', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    res.writeHead(200, { 'content-length': blob.length - 1 });
    res.end(blob.subarray(1));
  });
  const client = testClient(t);
  await t.rejects(client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 10 }), {
    code: 'BAD_DATA',
    message: /blob of 99999 bytes, its descriptor says 100000/,
  });
});

t.test('416 with a broken body (whole-blob Content-Length, no body) past the blob end: FORMAT at once, socket dropped', async (t) => {
  // distribution 2.8.2 behaviour (TESTING.md): never read this body.
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    // The first read says no blob size, so that the client does not refuse the range past the end itself.
    if (req.headers.range === 'bytes=0-3') {
      res.writeHead(206, { 'content-length': 4, 'content-range': 'bytes 0-3/*' });
      res.end(blob.subarray(0, 4));
      return;
    }
    if (req.headers.range === 'bytes=200000-200009') {
      res.writeHead(416, { 'content-length': blob.length, 'content-range': `bytes */${blob.length}` });
      res.flushHeaders();
      return; // the body never comes
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t, { timeouts: { bodyMs: 60_000, headersMs: 60_000 } });
  const repo = { registry: fake.host, repository: REPO };
  await client.readRange(repo, digest, { start: 0, end: 4 });
  const before = fake.connections();
  await t.rejects(client.readRange(repo, digest, { start: 200_000, end: 200_010 }), {
    code: 'FORMAT',
    message: /bytes=200000-200009 not satisfiable \(blob size 100000\)/,
  });
  const after = await client.readRange(repo, digest, { start: 10, end: 20 });
  t.same(Buffer.from(after), blob.subarray(10, 20), 'the next read works');
  t.ok(fake.connections() > before, 'the next read used a new connection');
});

// Issue 21: retried like a 5xx (it failed the read on the first try before), each time on a new connection.
t.test('a Content-Range that disagrees with the request is retried, then fails naming it, and drops the connection', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.headers.range === 'bytes=100-199') {
      res.writeHead(206, { 'content-length': 100, 'content-range': `bytes 101-200/${blob.length}` });
      res.end(blob.subarray(101, 201));
      return;
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  await t.rejects(client.readRange(repo, desc, { start: 100, end: 200 }), {
    code: 'SOURCE_UNAVAILABLE',
    message: /failed after 5 tries: asked for bytes 100-199 \(blob size 100000\), got Content-Range "bytes 101-200\/100000"/,
  });
  t.equal(fake.calls().filter((r) => r.headers.range === 'bytes=100-199').length, 5, 'retried as a 5xx is');
  const before = fake.connections();
  await client.readRange(repo, desc, { start: 0, end: 10 });
  t.ok(fake.connections() > before, 'connection was dropped');
});

t.test('a Content-Range with another total than the descriptor size is BAD_DATA', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    res.writeHead(206, { 'content-length': 10, 'content-range': 'bytes 0-9/5000' });
    res.end(blob.subarray(0, 10));
  });
  const client = testClient(t);
  await t.rejects(client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 10 }), {
    code: 'BAD_DATA',
    message: /blob of 5000 bytes, its descriptor says 100000/,
  });
});

t.test('a reset mid-body is retried', async (t) => {
  let broken = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.headers.range === 'bytes=0-49999' && broken++ === 0) {
      res.writeHead(206, { 'content-length': 50_000, 'content-range': `bytes 0-49999/${blob.length}` });
      res.write(blob.subarray(0, 1000));
      setTimeout(() => res.socket?.resetAndDestroy(), 20);
      return;
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  const got = await client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 50_000 });
  t.same(Buffer.from(got), blob.subarray(0, 50_000));
  t.equal(client.stats().retries, 1);
});

t.test('a truncated body (fewer bytes than Content-Length or the range) is retried, then succeeds', async (t) => {
  let tries = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.headers.range === 'bytes=10-1009' && tries++ < 2) {
      if (tries === 1) {
        // Content-Length intact, then a clean close after half the body.
        res.writeHead(206, { 'content-length': 1000, 'content-range': `bytes 10-1009/${blob.length}` });
        res.write(blob.subarray(10, 510));
        setTimeout(() => res.socket?.end(), 5);
      } else {
        // Chunked, so the framing itself looks complete: only the range says bytes are missing.
        res.writeHead(206, { 'content-range': `bytes 10-1009/${blob.length}` });
        res.end(blob.subarray(10, 510));
      }
      return;
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  const got = await client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 10, end: 1010 });
  t.equal(got.length, 1000, 'never wrong-length bytes');
  t.same(Buffer.from(got), blob.subarray(10, 1010));
  t.equal(client.stats().retries, 2);
});

t.test('a body truncated on every try ends in SOURCE_UNAVAILABLE, never short bytes', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.headers.range === 'bytes=0-1') return serveBlob(req, res, blob);
    res.writeHead(206, { 'content-length': 1000, 'content-range': `bytes 0-999/${blob.length}` });
    res.write(blob.subarray(0, 10));
    setTimeout(() => res.socket?.end(), 5);
  });
  const client = testClient(t, { retry: { maxRetries: 2, minDelayMs: 1, maxDelayMs: 5 } });
  await t.rejects(client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 1000 }), {
    code: 'SOURCE_UNAVAILABLE',
    message: new RegExp(`registry ${fake.host}: GET /v2/${REPO}/blobs/${digest}: failed after 3 tries`),
  });
});

t.test('blobSize: HEAD, and GET bytes=0-0 where HEAD is not allowed (quirk)', async (t) => {
  let headAllowed = true;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.method === 'HEAD' && !headAllowed) {
      res.writeHead(405, { allow: 'GET' });
      res.end();
      return;
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  t.equal(await client.blobSize(repo, digest), blob.length, 'from HEAD');
  headAllowed = false;
  const other = { registry: fake.host, repository: 'team/other' };
  t.equal(await client.blobSize(other, digest), blob.length, 'from Content-Range');
  t.equal(client.stats().quirks.headUnsupported, 1);
  t.ok(fake.calls().some((r) => r.method === 'GET' && r.headers.range === 'bytes=0-0'));
  // A size learnt this way lets a digest-only read be checked against the blob end.
  await t.rejects(client.readRange(other, digest, { start: 0, end: blob.length + 5 }), { code: 'FORMAT' });
});

t.test('blobSize of a missing blob is NOT_FOUND', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  });
  const client = testClient(t);
  await t.rejects(client.blobSize({ registry: fake.host, repository: REPO }, digest), { code: 'NOT_FOUND' });
});

t.test('streamBlob yields the verified blob', async (t) => {
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const client = testClient(t);
  t.same(await collect(client.streamBlob({ registry: fake.host, repository: REPO }, desc)), blob);
});

t.test('streamBlob throws DigestMismatchError at the end when the bytes are wrong', async (t) => {
  const bad = Buffer.from(blob);
  bad[5000] = bad[5000]! ^ 0xff;
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, bad));
  const client = testClient(t);
  let seen = 0;
  const err = await (async () => {
    try {
      for await (const c of client.streamBlob({ registry: fake.host, repository: REPO }, desc)) seen += c.length;
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.type(err, DigestMismatchError);
  t.equal((err as TocfsError).code, 'BAD_DATA');
  t.equal(seen, blob.length, 'the mismatch is only known at the end');
});

t.test('streamBlob resumes with a Range after a reset mid-body', async (t) => {
  let resets = 0;
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (!req.headers.range && resets++ === 0) {
      res.writeHead(200, { 'content-length': blob.length });
      res.write(blob.subarray(0, 30_000));
      setTimeout(() => res.socket?.resetAndDestroy(), 20);
      return;
    }
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  t.same(await collect(client.streamBlob({ registry: fake.host, repository: REPO }, desc)), blob);
  const resumed = fake.calls().find((r) => r.headers.range !== undefined && r.headers.range !== 'bytes=0-1');
  t.match(resumed?.headers.range, /^bytes=\d+-99999$/, 'resumed where it stopped');
});

t.test('streamBlob stops the request when the consumer stops early', async (t) => {
  const big = blobOf(8 << 20, 3);
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, big));
  const client = testClient(t);
  const bigDesc = { ...desc, digest: sha256(big), size: big.length };
  for await (const _ of client.streamBlob({ registry: fake.host, repository: REPO }, bigDesc)) {
    break;
  }
  await sleep(50);
  t.ok(client.stats().bytesReceived < big.length, 'did not download the rest');
});

t.test('every request is published on tocfs:registry:request and counted in stats()', async (t) => {
  const events = recordChannels<Record<string, unknown>>(t, 'tocfs:registry:request');
  const fake = await startFake(t, (req, res) => pingOk(req, res) || serveBlob(req, res, blob));
  const client = testClient(t);
  await client.readRange({ registry: fake.host, repository: REPO }, desc, { start: 0, end: 1000 });
  const mine = events.filter((e) => e.origin === fake.url);
  t.match(mine.at(-1), { origin: fake.url, method: 'GET', path: `/v2/${REPO}/blobs/${digest}`, statusCode: 206, bytes: 1000 });
  t.ok(mine.every((e) => typeof e.durationMs === 'number'));
  const stats = client.stats();
  t.equal(stats.requests, fake.requests.length + 1, 'the failed TLS probe counts as a request too');
  t.equal(stats.bytesReceived, mine.reduce((n, e) => n + (e.bytes as number), 0));
});

t.test('a registry that serves blobs itself: no probe, and the reads sent before its first answer do not wait for it', async (t) => {
  let firstAnswered = false;
  const sentBeforeIt: string[] = [];
  const fake = await startFake(t, (req, res) => {
    if (pingOk(req, res)) return;
    if (req.headers.range === 'bytes=0-9') {
      return void setTimeout(() => {
        firstAnswered = true;
        serveBlob(req, res, blob);
      }, 150);
    }
    if (!firstAnswered) sentBeforeIt.push(String(req.headers.range));
    serveBlob(req, res, blob);
  });
  const client = testClient(t);
  const repo = { registry: fake.host, repository: REPO };
  const first = client.readRange(repo, desc, { start: 0, end: 10 });
  await sleep(20);
  const rest = Array.from({ length: 4 }, (_, i) => client.readRange(repo, desc, { start: 100 * (i + 1), end: 100 * (i + 1) + 50 }));
  (await Promise.all(rest)).forEach((got, i) => t.same(Buffer.from(got), blob.subarray(100 * (i + 1), 100 * (i + 1) + 50)));
  t.same(Buffer.from(await first), blob.subarray(0, 10));
  t.same(sentBeforeIt, ['bytes=100-149', 'bytes=200-249', 'bytes=300-349', 'bytes=400-449'], 'answered before the first read was');
  t.equal(fake.calls().length, 5, 'one GET per read, no probe');
  const later = await client.readRange(repo, desc, { start: 7, end: 9 });
  t.same(Buffer.from(later), blob.subarray(7, 9));
  t.equal(client.stats().blobResolutions, 5, 'the reads sent before the answer each resolved; the later one did not');
});
