// The zstd:chunked writer: `zstd -dc | tar -x` of its blob gives the input's tree (headers copied
// verbatim), every frame sits where the TOC says and decompresses alone to a chunk that verifies, the
// footer and annotations agree with the blob, and memory stays bounded however large the layer.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { decompress } from 'zstd-napi';
import { Crc64 } from '../../src/convert/crc64.js';
import { writeZstdChunked, writeZstdChunkedFile, type ZstdChunkedWriterOptions } from '../../src/convert/zstd-chunked-writer.js';
import type { ZstdChunkedBlob } from '../../src/convert/zstd-chunked-encoder.js';
import { zstdChunkedCodec } from '../../src/formats/zstd/codec.js';
import { parseZstdAnnotations } from '../../src/formats/zstd/annotations.js';
import { decodeBlob, readRange } from '../support/format-suite.js';
import { contentBytes, dir, file, tarBytes, tarOf, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { VECTORS } from '../support/vectors.js';
import { gnuExtract, sha, treeOf } from './estargz-check.js';
import { EVERY, readAll } from './tar-vectors.js';

async function convert(t: Test, entries: readonly TarEntry[], opts: ZstdChunkedWriterOptions = {}): Promise<{ blob: Buffer; layer: ZstdChunkedBlob; path: string }> {
  const path = join(tempDir(t, 'zstd'), 'layer.tar.zst');
  const layer = await writeZstdChunkedFile(tarOf(entries), path, opts);
  return { blob: readFileSync(path), layer, path };
}

t.test('crc64 is Go ISO (tar-split checksums)', async (t) => {
  t.equal(new Crc64().update(Buffer.from('123456789')).digest().toString('hex'), 'b90956c775a41001');
  t.equal(new Crc64().update(Buffer.from('1234')).update(Buffer.from('56789')).digest().toString('hex'), 'b90956c775a41001', 'in pieces');
});

t.test('the blob is a tar+zstd of the same entries; digests, diffId and annotations agree', async (t) => {
  const { blob, layer } = await convert(t, EVERY, { chunkSize: 64, minChunkSize: 16 });
  const tar = decompress(blob);
  t.equal(layer.digest, sha(blob));
  t.equal(layer.size, blob.length);
  t.equal(layer.diffId, sha(tar), 'diffId is the sha256 of the decompressed stream');
  t.equal(layer.uncompressedSize, tar.length);
  const src = readAll(tarBytes(EVERY)).records;
  const out = readAll(tar, 333).records;
  t.same(out.map((r) => r.header.path), src.map((r) => r.header.path), 'same entries in the same order');
  src.forEach((s, i) => {
    t.ok(Buffer.from(out[i]!.header.headerBytes).equals(Buffer.from(s.header.headerBytes)), `${s.header.path}: header copied`);
    t.ok(out[i]!.data.equals(s.data), `${s.header.path}: data`);
  });
  const ann = parseZstdAnnotations(layer.annotations)!;
  t.equal(ann.generation, 'current');
  const loc = ann.location!;
  t.equal(sha(blob.subarray(loc.tocOffset, loc.tocOffset + loc.tocLength!)), layer.compressedTocDigest, 'manifest-position + checksum name the TOC');
  const { index, compressedTocDigest, tocDigest } = await decodeBlob(blob, zstdChunkedCodec);
  t.equal(compressedTocDigest, layer.compressedTocDigest, 'the footer finds the same TOC');
  t.equal(tocDigest, layer.tocDigest);
  for (const e of EVERY.filter((x) => x.type === 'file')) {
    const entry = index.lookup(e.path.replace(/^\.?\//, '').replace(/\/$/, ''))!;
    const got = await readRange(zstdChunkedCodec, blob, entry, 0, e.size + 1, new Map());
    t.ok(got.equals(contentBytes(e)), `${e.path}: every chunk reads back and verifies`);
    for (const c of entry.chunks) if (!c.zeros) t.ok(c.compressedEnd - c.compressedOffset > 0 && c.size <= 64, 'chunk within bounds, its own frame');
  }
  const [, tsOff, tsLen] = /^(\d+):(\d+):(\d+)$/.exec(layer.annotations['io.github.containers.zstd-chunked.tarsplit-position']!)!.map(Number) as number[];
  const lines = decompress(blob.subarray(tsOff!, tsOff! + tsLen!)).toString().trim().split('\n').map((l) => JSON.parse(l) as { type: number; payload?: string; name?: string });
  const rebuilt = Buffer.concat(lines.filter((l) => l.type === 2).map((l) => Buffer.from(l.payload!, 'base64')));
  const files = lines.filter((l) => l.type === 1).map((l) => l.name);
  t.same(files, src.map((r) => r.header.path), 'tar-split lists every entry');
  t.ok(rebuilt.length > 0 && rebuilt.length + src.reduce((n, r) => n + r.data.length, 0) === tar.length, 'tar-split segments + payloads = the tar');
});

t.test('zstd -dc | tar -x gives the same tree as the input tar', async (t) => {
  const { path } = await convert(t, EVERY, { chunkSize: 64, minChunkSize: 8 });
  const work = tempDir(t, 'extract');
  mkdirSync(join(work, 'a'));
  mkdirSync(join(work, 'b'));
  writeFileSync(join(work, 'in.tar'), tarBytes(EVERY));
  gnuExtract(join(work, 'in.tar'), join(work, 'a'), false);
  execFileSync('sh', ['-c', `zstd -dc < '${path}' | tar --numeric-owner --same-permissions -xf - -C '${join(work, 'b')}'`]);
  t.same(treeOf(join(work, 'b')), treeOf(join(work, 'a')));
});

t.test('every shared vector converts and reads back at default chunking', async (t) => {
  for (const v of VECTORS) {
    const { blob } = await convert(t, v.entries);
    const { index } = await decodeBlob(blob, zstdChunkedCodec);
    for (const e of v.entries.filter((x) => x.type === 'file' && !x.path.includes('landmark'))) {
      const got = await readRange(zstdChunkedCodec, blob, index.lookup(e.path.split('/').filter((p) => p && p !== '.').join('/'))!, 0, e.size, new Map());
      if (!got.equals(contentBytes(e))) t.fail(`${v.name}: ${e.path}`);
    }
  }
  t.pass('all vectors');
});

t.test('content-defined chunks of 64 KiB..4 MiB; zero runs are zeros chunks; a shifted file keeps most chunk digests', async (t) => {
  const rnd = Buffer.alloc(12 << 20);
  let x = 1;
  for (let i = 0; i < rnd.length; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    rnd.writeUInt32LE(x, i);
  }
  const withZeros = Buffer.concat([rnd.subarray(0, 5 << 20), Buffer.alloc(9 << 20), rnd.subarray(5 << 20)]);
  const { blob } = await convert(t, [dir('d'), file('d/a', withZeros), file('d/b', Buffer.concat([Buffer.from('shift!'), rnd]))]);
  const { index } = await decodeBlob(blob, zstdChunkedCodec);
  const a = index.lookup('d/a')!.chunks;
  const b = index.lookup('d/b')!.chunks;
  for (const c of [...a, ...b].slice(0, -1)) t.ok(c.size >= 64 << 10 && c.size <= 4 << 20, `chunk of ${c.size} within bounds`);
  t.ok(a.filter((c) => c.zeros).reduce((n, c) => n + c.size, 0) >= 4 << 20, 'most of the 9 MiB zero run is zeros chunks');
  const digestsA = new Set(a.map((c) => c.digest));
  t.ok(b.filter((c) => digestsA.has(c.digest)).length >= 2, 'content-defined: chunks after an insertion are shared');
});

t.test('memory stays bounded for a large layer (streamed, never buffered whole)', async (t) => {
  const size = 96 << 20;
  const big: TarEntry = file('big', { size });
  let peak = 0;
  const sink = new Writable({
    write(_c, _e, cb) {
      peak = Math.max(peak, process.memoryUsage().rss);
      cb();
    },
  });
  const before = process.memoryUsage().rss;
  const layer = await writeZstdChunked(tarOf([big]), sink);
  t.ok(layer.uncompressedSize > size);
  t.ok(peak - before < 80 << 20, `rss grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB for a ${size >> 20} MiB layer`);
});
