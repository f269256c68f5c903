// The open choreography: tail read, TOC read, verification against the annotation, the TOC cache.
import t, { type Test } from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DigestMismatchError, FormatError } from '../../../src/errors.js';
import { ChunkFetcher } from '../../../src/layers/fetch/fetcher.js';
import { MemoryChunkStore } from '../../../src/layers/store/memory-store.js';
import { openLayer, TOC_DIGEST_ANNOTATION, type OpenLayerOptions } from '../../../src/layers/toc/open-layer.js';
import { openTocCache, type TocCache } from '../../../src/layers/store/toc-cache.js';
import type { Descriptor } from '../../../src/registry/types.js';
import { recordChannels } from '../../support/channels.js';
import { recordingSource, type RecordingSource } from '../../support/recording-source.js';
import { tempDir } from '../../support/tmp.js';
import { buildFakeBlob, fakeCodec, noise, sha256, type FakeBlob } from '../fake-blob.js';

const files = Array.from({ length: 40 }, (_, i) => ({ path: `dir/file-${i}`, content: noise(300 + i, i) }));
const fb: FakeBlob = buildFakeBlob(files);
const tocAndFooter = fb.blob.length - fb.tocOffset;

function descriptor(src: RecordingSource, annotations: Record<string, string> | null = { [TOC_DIGEST_ANNOTATION]: fb.tocDigest }): Descriptor {
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: src.id, size: src.size, ...(annotations ? { annotations } : {}) };
}

function options(t: Test, src: RecordingSource, extra: Partial<OpenLayerOptions> = {}): OpenLayerOptions {
  const fetcher = new ChunkFetcher({ memory: new MemoryChunkStore({ maxBytes: 1 << 20 }) });
  t.teardown(() => fetcher.close());
  return { source: src, descriptor: descriptor(src), codecs: [fakeCodec], fetcher, ...extra };
}

t.test('one tail request when the TOC fits in it', async (t) => {
  const src = recordingSource(t, fb.blob);
  // Without read-ahead (neighbours, directory warm): the files after file-3 are in the tail, and fetching
  // them again is its business.
  const layer = await openLayer(options(t, src, { tailBytes: tocAndFooter + 100, readAhead: { adjacentBytes: 0, directoryBytes: 0 } }));
  t.same(src.reads, [{ start: fb.blob.length - tocAndFooter - 100, end: fb.blob.length }]);
  t.equal(layer.tocSource, 'blob');
  t.equal(layer.index.lookup('dir/file-3')?.size, 303);
  t.same(Buffer.from(await layer.read('dir/file-3', 0, 1000)), files[3]!.content);
});

t.test('the default tail reads a small blob whole, once', async (t) => {
  const src = recordingSource(t, fb.blob);
  await openLayer(options(t, src));
  t.same(src.reads, [{ start: 0, end: fb.blob.length }]);
});

t.test('two requests when the TOC starts before the tail: the second reads only what is missing', async (t) => {
  const src = recordingSource(t, fb.blob);
  const layer = await openLayer(options(t, src, { tailBytes: 100 }));
  t.same(src.reads, [
    { start: fb.blob.length - 100, end: fb.blob.length },
    { start: fb.tocOffset, end: fb.blob.length - 100 },
  ]);
  t.equal(layer.index.size, fb.index.size);
});

t.test('a TOC that does not match the annotation is BAD_DATA and is not cached', async (t) => {
  const src = recordingSource(t, fb.blob);
  const dir = tempDir(t, 'toc-mismatch');
  const tocCache = await openTocCache(dir);
  const wrong = sha256(Buffer.from('another TOC'));
  const err = await openLayer(options(t, src, { tocCache, expectedTocDigest: wrong })).catch((e: unknown) => e);
  t.ok(err instanceof DigestMismatchError, String(err));
  t.equal((err as DigestMismatchError).code, 'BAD_DATA');
  t.match((err as Error).message, src.id);
  t.equal((err as DigestMismatchError).expected, wrong);
  t.equal((err as DigestMismatchError).actual, fb.tocDigest);
  t.equal(await tocCache.get(src.id), undefined, 'nothing cached');
});

t.test('a layer without the toc.digest annotation is refused before any read', async (t) => {
  const src = recordingSource(t, fb.blob);
  await t.rejects(openLayer(options(t, src, { descriptor: descriptor(src, null) })), {
    code: 'FORMAT',
    message: `layer ${src.id} has no containerd.io/snapshot/stargz/toc.digest or io.github.containers.zstd-chunked.manifest-checksum annotation: cannot verify its TOC`,
  });
  await t.rejects(openLayer(options(t, src, { descriptor: descriptor(src, { [TOC_DIGEST_ANNOTATION]: 'sha256:nothex' }) })), { code: 'FORMAT' });
  t.equal(src.requests, 0);
});

t.test('a TOC cache hit needs no request at all', async (t) => {
  const dir = tempDir(t, 'toc-hit');
  const first = recordingSource(t, fb.blob);
  await openLayer(options(t, first, { tocCache: await openTocCache(dir) }));
  t.equal(first.requests, 1);
  const hex = first.id.slice(7);
  t.ok((await readdir(join(dir, 'tocs', hex.slice(0, 2)))).includes(hex), 'DIR/tocs/HEX[0:2]/HEX');

  const second = recordingSource(t, fb.blob);
  const tocCache = await openTocCache(dir);
  const layer = await openLayer(options(t, second, { tocCache }));
  t.equal(second.requests, 0, 'zero requests');
  t.equal(layer.tocSource, 'cache');
  t.equal(tocCache.stats().hits, 1);
  t.same(Buffer.from(await layer.read('dir/file-0', 0, 10)), files[0]!.content.subarray(0, 10));
});

t.test('a corrupt cached TOC is deleted, reported, and read again from the blob', async (t) => {
  const dir = tempDir(t, 'toc-corrupt');
  const src = recordingSource(t, fb.blob, { allowRefetch: true });
  await openLayer(options(t, src, { tocCache: await openTocCache(dir) }));
  const hex = src.id.slice(7);
  const file = join(dir, 'tocs', hex.slice(0, 2), hex);
  const bytes = await readFile(file);
  bytes[bytes.length - 10]! ^= 0xff;
  await writeFile(file, bytes);

  const corrupt = recordChannels(t, 'tocfs:cache:corrupt');
  const tocCache = await openTocCache(dir);
  const layer = await openLayer(options(t, src, { tocCache }));
  t.equal(layer.tocSource, 'blob');
  t.equal(src.requests, 2);
  t.equal(corrupt.length, 1);
  t.match(corrupt[0], { store: 'tocs', digest: src.id });
  t.ok(await tocCache.get(src.id), 'rewritten after verification');
});

t.test('a cached TOC that does not match the annotation is dropped; the blob decides', async (t) => {
  const dir = tempDir(t, 'toc-cache-mismatch');
  const src = recordingSource(t, fb.blob, { allowRefetch: true });
  await openLayer(options(t, src, { tocCache: await openTocCache(dir) }));
  const tocCache: TocCache = await openTocCache(dir);
  const wrong = sha256(Buffer.from('x'));
  await t.rejects(openLayer(options(t, src, { tocCache, expectedTocDigest: wrong })), { code: 'BAD_DATA' });
  t.equal(src.requests, 2, 'the blob was asked after the cache disagreed');
  t.equal(await tocCache.get(src.id), undefined, 'the disagreeing cache entry is gone');
});

t.test('no footer any codec understands: FormatError keeping every reason', async (t) => {
  const junk = noise(5000, 77);
  const src = recordingSource(t, junk);
  const err = await openLayer(options(t, src)).catch((e: unknown) => e);
  t.ok(err instanceof FormatError, String(err));
  t.ok((err as Error).cause instanceof AggregateError);
});

t.test('a footer pointing outside the blob is FORMAT', async (t) => {
  const blob = Buffer.concat([noise(100, 1), Buffer.from(`TOCF${(99).toString(16).padStart(16, '0')}`)]);
  const src = recordingSource(t, blob);
  const tooBig = await openLayer(options(t, src, { maxTocBytes: 0.5 as unknown as number })).catch((e: unknown) => e);
  t.ok(tooBig instanceof FormatError, String(tooBig));
});
