// The eStargz writer: its blob must be a plain tar.gz of the same entries (GNU tar and our reader agree),
// with gzip members exactly where the TOC says, a footer that parses, a TOC whose digest is reported,
// prioritised files first, and bounded memory however large the layer.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { FormatError, InvalidOptionError } from '../../src/errors.js';
import { writeEstargz, writeEstargzFile, type EstargzLayer, type EstargzWriterOptions } from '../../src/convert/estargz-writer.js';
import { estargzCodec } from '../../src/formats/estargz/codec.js';
import { contentBytes, file, dir, hardlink, tarBytes, tarOf, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { FOOTER, gnuExtract, readToc, sha, spans, treeOf, type TocJson } from './estargz-check.js';
import { EVERY, readAll, xattrsHex } from './tar-vectors.js';

interface Converted {
  readonly blob: Buffer;
  readonly layer: EstargzLayer;
  readonly path: string;
  readonly toc: TocJson;
  readonly tocOffset: number;
}

async function convert(t: Test, entries: readonly TarEntry[] | Buffer, opts: EstargzWriterOptions = {}): Promise<Converted> {
  const dirPath = tempDir(t, 'estargz');
  const path = join(dirPath, 'layer.tar.gz');
  const input = Buffer.isBuffer(entries) ? [entries] : tarOf(entries);
  const layer = await writeEstargzFile(input, path, { tempDir: dirPath, ...opts });
  const blob = readFileSync(path);
  const { toc, tocOffset } = readToc(blob);
  return { blob, layer, path, toc, tocOffset };
}

t.test('the blob is a tar.gz of the same entries, headers copied verbatim, landmark first and TOC last', async (t) => {
  const input = tarBytes(EVERY);
  const { blob, layer } = await convert(t, [...EVERY], { chunkSize: 64 });
  const tar = gunzipSync(blob);
  t.equal(layer.digest, sha(blob), 'digest is the sha256 of the blob');
  t.equal(layer.size, blob.length);
  t.equal(layer.diffId, sha(tar), 'diffId is the sha256 of the uncompressed tar');
  t.equal(layer.uncompressedSize, tar.length);
  const out = readAll(tar, 333).records;
  const src = readAll(input).records;
  t.same(out.map((r) => r.header.path), ['.no.prefetch.landmark', ...src.map((r) => r.header.path), 'stargz.index.json']);
  t.equal(out[0]!.data.toString('hex'), '0f', 'the landmark holds one byte 0x0f');
  src.forEach((s, i) => {
    const o = out[i + 1]!;
    t.ok(Buffer.from(o.header.headerBytes).equals(Buffer.from(s.header.headerBytes)), `${s.header.path}: header blocks copied as they were`);
    t.ok(o.data.equals(s.data), `${s.header.path}: same data`);
    t.same(xattrsHex(o.header.xattrs), xattrsHex(s.header.xattrs));
  });
  t.ok(tar.subarray(tar.length - 1024).equals(Buffer.alloc(1024)), 'ends with the two end-of-archive blocks');
});

t.test('GNU tar lists the blob and extracts the same tree as the input tar', async (t) => {
  const { path } = await convert(t, [...EVERY], { chunkSize: 64 });
  const work = tempDir(t, 'extract');
  const inputTar = join(work, 'input.tar');
  writeFileSync(inputTar, tarBytes(EVERY));
  mkdirSync(join(work, 'a'));
  mkdirSync(join(work, 'b'));
  gnuExtract(inputTar, join(work, 'a'), false);
  gnuExtract(path, join(work, 'b'), true);
  const listed = execFileSync('tar', ['-tzvf', path]).toString().trim().split('\n');
  t.equal(listed.length, EVERY.length + 2, 'tar -tzvf lists every entry, the landmark and the TOC');
  t.match(listed.at(-1), /^-\S+ 0\/0 +\d+ \S+ \S+ stargz\.index\.json$/);
  const a = treeOf(join(work, 'a'));
  const b = treeOf(join(work, 'b'));
  t.ok(a.size > 20, `input tree has ${a.size} paths`);
  t.same([...b.keys()], [...a.keys()], 'same paths');
  for (const [p, node] of a) t.same(b.get(p), node, p);
});

t.test('TOC entries carry every metadata field, as the reference writes them', async (t) => {
  const { toc } = await convert(t, [...EVERY], { chunkSize: 64 });
  t.equal(toc.version, 1);
  const by = new Map<string, TocJson['entries'][number]>();
  for (const e of toc.entries) if (e.type !== 'chunk') by.set(e.name, e);
  t.match(by.get('etc/'), { type: 'dir', mode: 0o755, modtime: '2021-02-03T04:05:06Z' });
  t.notOk('uid' in by.get('etc/')!, 'zero fields are omitted (Go omitempty)');
  t.match(by.get('etc/passwd'), { type: 'reg', size: 26, userName: 'root', groupName: 'root', digest: sha(Buffer.from('root:x:0:0::/root:/bin/sh\n')) });
  t.notOk('userName' in by.get('usr/bin/wall')!, 'a uid name already given is not repeated');
  t.equal(by.get('usr/bin/wall')!.groupName, 'tty', 'a changed name for the same gid is written');
  const su = by.get('usr/bin/su')!;
  t.equal(su.mode, 0o4755);
  t.same(
    Object.fromEntries(Object.entries(su.xattrs!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('hex')])),
    xattrsHex(EVERY[4]!.xattrs),
    'xattrs are base64 of the raw bytes',
  );
  t.match(by.get('usr/bin/su-again'), { type: 'hardlink', linkName: 'usr/bin/su' });
  t.match(by.get('etc/localtime'), { type: 'symlink', linkName: '/usr/share/zoneinfo/UTC' });
  t.match(by.get('dev/null'), { type: 'char', devMajor: 1, devMinor: 3, mode: 0o666 });
  t.match(by.get('dev/sda'), { type: 'block', devMajor: 8 });
  t.match(by.get('run/pipe'), { type: 'fifo', mode: 0o600 });
  const empty = by.get('empty')!;
  t.same(Object.keys(empty), ['name', 'type', 'modtime', 'mode'], 'an empty file has no size, offset or digest');
  t.match(by.get('ünïcødé/☃ snow.txt'), { uid: 1_000_000, gid: 2_000_000, userName: 'u'.repeat(40), modtime: '2020-09-13T12:26:40Z' });
  for (const e of EVERY.filter((x) => x.type === 'file' && x.size > 0)) t.equal(by.get(e.path)?.digest, sha(contentBytes(e)), `${e.path} digest`);
  t.equal(toc.entries.at(0)?.name, '.no.prefetch.landmark');
});

t.test('each chunk is its own gzip member at the offset the TOC gives; the header ends the member before', async (t) => {
  const { blob, toc, tocOffset } = await convert(t, [...EVERY], { chunkSize: 64 });
  const all = spans(toc, tocOffset);
  const contents = new Map(EVERY.filter((e) => e.type === 'file').map((e) => [e.path, contentBytes(e)]));
  const headers = new Map(readAll(tarBytes(EVERY)).records.map((r) => [r.header.path, Buffer.from(r.header.headerBytes)]));
  let previous = 0;
  for (const { entry, file: name, end } of all) {
    const at = entry.offset!;
    t.same([...blob.subarray(at, at + 3)], [0x1f, 0x8b, 0x08], `${name}@${entry.chunkOffset ?? 0}: a gzip member starts at its offset`);
    const inflated = gunzipSync(blob.subarray(at, end));
    const content = contents.get(name) ?? Buffer.from([0x0f]);
    const from = entry.chunkOffset ?? 0;
    const length = Math.min(64, content.length - from);
    const chunk = content.subarray(from, from + length);
    t.ok(inflated.subarray(0, length).equals(chunk), `${name}@${from}: the span starts with the chunk's bytes`);
    t.equal(entry.chunkDigest, sha(chunk), `${name}@${from}: chunkDigest`);
    if (from + length < content.length) t.equal(inflated.length, length, `${name}@${from}: a middle chunk's member holds the chunk alone`);
    t.equal(entry.chunkSize, length === 64 ? 64 : undefined, `${name}@${from}: chunkSize only on full chunks`);
    if (from === 0) {
      const before = gunzipSync(blob.subarray(previous, at));
      const header = headers.get(name) ?? Buffer.alloc(0);
      t.ok(before.subarray(before.length - header.length).equals(header), `${name}: its header blocks end the previous member`);
    }
    previous = at;
  }
  const pattern = toc.entries.filter((e) => e.name === 'gen/pattern');
  t.equal(pattern.length, Math.ceil((3 * 4096 + 17) / 64), 'one TOC entry per 64-byte chunk');
  t.same(pattern.slice(0, 2).map((e) => [e.type, e.chunkOffset]), [['reg', undefined], ['chunk', 64]]);
  // Every boundary together: the ranges between them inflate one by one to the whole tar.
  const bounds = [0, ...all.map((s) => s.entry.offset!), tocOffset, blob.length - FOOTER, blob.length];
  const pieces = bounds.slice(1).map((b, i) => gunzipSync(blob.subarray(bounds[i]!, b)));
  t.ok(Buffer.concat(pieces).equals(gunzipSync(blob)), 'member boundaries tile the blob');
});

t.test('the footer parses and tocDigest is the sha256 of the TOC JSON', async (t) => {
  const { blob, layer } = await convert(t, [...EVERY]);
  const { tocOffset, json } = readToc(blob);
  t.equal(tocOffset, layer.tocOffset);
  t.equal(layer.tocDigest, sha(json));
  t.same([...blob.subarray(blob.length - FOOTER, blob.length - FOOTER + 4)], [0x1f, 0x8b, 0x08, 0x04]);
  t.equal(gunzipSync(blob.subarray(blob.length - FOOTER)).length, 0, 'the footer is an empty gzip member');
  t.match(Buffer.from(json).toString(), /^\{\n\t"version": 1,\n\t"entries": \[\n\t\t\{\n\t\t\t"name": /, 'indented with tabs, as Go MarshalIndent');
});

t.test('round trip through the eStargz reader: every file reads back chunk by chunk', async (t) => {
  for (const chunkSize of [64, 4096, 4 << 20]) {
    const { blob, layer } = await convert(t, [...EVERY], { chunkSize });
    const location = estargzCodec.parseFooter(blob.subarray(blob.length - FOOTER), blob.length);
    const decoded = await estargzCodec.decodeToc(blob.subarray(location.tocOffset, blob.length - FOOTER), location);
    t.equal(decoded.tocDigest, layer.tocDigest, `chunk ${chunkSize}: reader's TOC digest`);
    t.equal(decoded.index.prefetch, undefined, 'no prefetch range with .no.prefetch.landmark');
    t.equal(decoded.index.lookup('.no.prefetch.landmark'), undefined, 'artefacts are hidden');
    for (const e of EVERY.filter((x) => x.type === 'file')) {
      const entry = decoded.index.lookup(e.path.replace(/\/$/, ''));
      if (!entry) {
        t.fail(`${e.path} missing from the index`);
        continue;
      }
      const parts: Uint8Array[] = [];
      for (const c of entry.chunks) {
        const out = await estargzCodec.decompressSpan(blob.subarray(c.compressedOffset, c.compressedEnd), c.innerOffset + c.size);
        parts.push(out.subarray(c.innerOffset, c.innerOffset + c.size));
        t.equal(sha(parts.at(-1)!), c.digest);
      }
      t.ok(Buffer.concat(parts).equals(contentBytes(e)), `chunk ${chunkSize}: ${e.path} reads back`);
    }
    t.equal(decoded.index.lookup('usr/bin/su-again'), decoded.index.lookup('usr/bin/su'), 'hardlink resolved');
  }
});

t.test('prioritized files come first, with parents and hardlink targets, then .prefetch.landmark', async (t) => {
  const prioritize = ['/usr/bin/su-again', './etc/passwd', 'missing/file'];
  const { blob, layer, toc, path } = await convert(t, [...EVERY], { chunkSize: 64, prioritize });
  t.same(layer.missingPrioritized, ['missing/file']);
  const names = readAll(gunzipSync(blob)).records.map((r) => r.header.path);
  const first = ['usr/', 'usr/bin/', 'usr/bin/su', 'usr/bin/su-again', 'etc/', 'etc/passwd', '.prefetch.landmark'];
  t.same(names.slice(0, first.length), first);
  const moved = new Set(first);
  t.same(names.slice(first.length, -1), EVERY.map((e) => e.path).filter((p) => !moved.has(p)), 'the rest in input order');
  t.same([...new Set(toc.entries.map((e) => e.name))].slice(0, first.length), first, 'the TOC in the same order');
  const location = estargzCodec.parseFooter(blob.subarray(blob.length - FOOTER), blob.length);
  const decoded = await estargzCodec.decodeToc(blob.subarray(location.tocOffset, blob.length - FOOTER), location);
  const landmark = toc.entries.find((e) => e.name === '.prefetch.landmark')!;
  t.same(decoded.index.prefetch, { start: 0, end: landmark.offset }, 'the reader sees the prefetch range');
  const work = tempDir(t, 'prio-extract');
  mkdirSync(join(work, 'a'));
  mkdirSync(join(work, 'b'));
  writeFileSync(join(work, 'in.tar'), tarBytes(EVERY));
  gnuExtract(join(work, 'in.tar'), join(work, 'a'), false);
  gnuExtract(path, join(work, 'b'), true);
  // Directory mtimes can differ once entries move; everything else must not.
  t.same(treeOf(join(work, 'b')), treeOf(join(work, 'a')), 'same tree after extraction');
});

t.test('prioritizing a name that occurs twice moves the last one and drops the first', async (t) => {
  const entries = [file('a', 'old'), file('b', 'b'), file('a', 'new')];
  const { blob } = await convert(t, entries, { prioritize: ['a'] });
  const records = readAll(gunzipSync(blob)).records;
  t.same(records.map((r) => [r.header.path, r.data.toString()]).slice(0, 3), [['a', 'new'], ['.prefetch.landmark', '\x0f'], ['b', 'b']]);
  t.equal(records.length, 4, 'the first "a" is gone (it would override the moved one on extraction)');
});

t.test('converting an eStargz again keeps one TOC and one landmark', async (t) => {
  const once = await convert(t, [...EVERY], { chunkSize: 64 });
  const twice = await convert(t, gunzipSync(once.blob), { chunkSize: 64 });
  const names = readAll(gunzipSync(twice.blob)).records.map((r) => r.header.path);
  t.equal(names.filter((n) => n === 'stargz.index.json').length, 1);
  t.equal(names.filter((n) => n.endsWith('landmark')).length, 1);
  t.equal(twice.layer.tocDigest, once.layer.tocDigest, 'the same TOC: conversion is deterministic');
  t.equal(twice.layer.digest, once.layer.digest, 'and the same blob');
  const prio = await convert(t, gunzipSync(once.blob), { prioritize: ['etc/passwd'] });
  t.same(readAll(gunzipSync(prio.blob)).records.filter((r) => r.header.path.endsWith('landmark')).map((r) => r.header.path), ['.prefetch.landmark']);
});

t.test('a broken input tar fails with FormatError and leaves no file behind', async (t) => {
  const dirPath = tempDir(t, 'broken');
  const tar = tarBytes([file('a', 'x'.repeat(1000))]).subarray(0, 1000);
  for (const prioritize of [[], ['a']]) {
    const path = join(dirPath, `out-${prioritize.length}.tar.gz`);
    await t.rejects(writeEstargzFile([tar], path, { prioritize, tempDir: dirPath }), FormatError);
    t.notOk(existsSync(path), 'output removed');
  }
  await t.rejects(writeEstargzFile([Buffer.alloc(600, 1)], join(dirPath, 'junk'), {}), /tar header at offset 0: not a tar header/);
});

t.test('options are validated, naming the option', async (t) => {
  const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
  await t.rejects(writeEstargz([], sink(), { chunkSize: 0 }), InvalidOptionError);
  await t.rejects(writeEstargz([], sink(), { chunkSize: (64 << 20) + 1 }), /chunkSize/);
  await t.rejects(writeEstargz([], sink(), { compressionLevel: 10 }), /compressionLevel/);
  await t.rejects(writeEstargz([], sink(), { prioritize: [''] }), /prioritize/);
});

interface Measured {
  readonly growth: number;
  readonly seconds: number;
  readonly layer: EstargzLayer;
  readonly received: { size: number; digest: string };
}

/** Streams `entries` through the writer into a hashing sink; returns the peak RSS growth. */
async function peakRss(entries: TarEntry[], opts: EstargzWriterOptions, slowSink = false): Promise<Measured> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const hash = createHash('sha256');
  let size = 0;
  const sink = new Writable({
    highWaterMark: slowSink ? 64 << 10 : 1 << 20,
    write: (chunk: Buffer, _e, cb) => {
      hash.update(chunk);
      size += chunk.length;
      if (slowSink) setTimeout(cb, 1);
      else setImmediate(cb);
    },
  });
  const started = process.hrtime.bigint();
  try {
    const layer = await writeEstargz(tarOf(entries), sink, opts);
    peak = Math.max(peak, process.memoryUsage().rss);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { growth: peak - base, seconds, layer, received: { size, digest: `sha256:${hash.digest('hex')}` } };
  } finally {
    clearInterval(timer);
  }
}

t.test('memory stays bounded while streaming a 300 MB layer, and with prioritization', async (t) => {
  const size = 300 << 20;
  const entries = [dir('data'), file('data/big', { size }), file('data/small', 'x'), hardlink('data/again', 'data/big')];
  const plain = await peakRss(entries, {});
  t.comment(`300 MB, 4 MiB chunks: RSS +${(plain.growth / 2 ** 20).toFixed(0)} MB, ${(size / 2 ** 20 / plain.seconds).toFixed(0)} MB/s`);
  t.ok(plain.growth < 150 * 2 ** 20, `RSS grew ${(plain.growth / 2 ** 20).toFixed(0)} MB, under 150 MB`);
  t.equal(plain.layer.uncompressedSize > size, true);
  const prio = await peakRss(entries, { prioritize: ['data/small'], tempDir: tempDir(t, 'rss') });
  t.comment(`300 MB, prioritized (spooled): RSS +${(prio.growth / 2 ** 20).toFixed(0)} MB, ${(size / 2 ** 20 / prio.seconds).toFixed(0)} MB/s`);
  t.ok(prio.growth < 150 * 2 ** 20, `RSS grew ${(prio.growth / 2 ** 20).toFixed(0)} MB with the spool, under 150 MB`);
  t.equal(prio.layer.diffId !== plain.layer.diffId, true, 'a different order, a different diffId');
  t.same(plain.received, { size: plain.layer.size, digest: plain.layer.digest }, 'the sink got the blob the result describes');
});

t.test('a slow sink holds the writer back instead of filling memory', async (t) => {
  const size = 100 << 20;
  const slow = await peakRss([file('big', { size })], {}, true);
  t.comment(`100 MB into a sink taking 1 ms per 64 KiB: RSS +${(slow.growth / 2 ** 20).toFixed(0)} MB`);
  t.ok(slow.growth < 150 * 2 ** 20, `RSS grew ${(slow.growth / 2 ** 20).toFixed(0)} MB, under 150 MB`);
  t.same(slow.received, { size: slow.layer.size, digest: slow.layer.digest }, 'every byte arrived, in order');
});
