// The streaming tar reader (src/formats/tar): fed in awkward chunk sizes, it must give the same
// headers, data and offsets for tars written by the DSL and by GNU tar, and refuse broken ones with a
// FormatError that names the entry and its offset.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Header } from 'tar';
import { FormatError } from '../../src/errors.js';
import { readTar, TarReader, type TarEvent } from '../../src/formats/tar/reader.js';
import { contentBytes, file, tarBytes } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { CAP_SETUID } from '../support/vectors.js';
import { EVERY, comparable, expectedOf, readAll, xattrsHex } from './tar-vectors.js';

const STEPS = [1, 7, 511, 512, 4096, Infinity];

t.test('DSL tar: every entry type, binary xattrs, long and unicode names, in any chunking', async (t) => {
  const tar = tarBytes(EVERY);
  const whole = readAll(tar);
  t.equal(whole.records.length, EVERY.length);
  EVERY.forEach((e, i) => {
    const r = whole.records[i]!;
    t.same(comparable(r.header), expectedOf(e), `${e.path} header`);
    t.same(xattrsHex(r.header.xattrs), xattrsHex(e.xattrs), `${e.path} xattrs are the raw bytes`);
    if (e.type === 'file') t.ok(r.data.equals(contentBytes(e)), `${e.path} data`);
  });
  t.equal(whole.records[4]!.header.xattrs.get('security.capability')?.[4], 0x80, 'the 0x80 byte survives');
  t.same(whole.end, { kind: 'end', offset: tar.length - 1024, marker: true });
  for (const step of STEPS) {
    const got = readAll(tar, step);
    t.same(
      got.records.map((r) => ({ h: { ...comparable(r.header), at: [r.header.headerOffset, r.header.dataOffset] }, sha: r.data.toString('hex') })),
      whole.records.map((r) => ({ h: { ...comparable(r.header), at: [r.header.headerOffset, r.header.dataOffset] }, sha: r.data.toString('hex') })),
      `chunks of ${step}: same headers, offsets and data`,
    );
  }
});

t.test('offsets: headerBytes and data sit exactly where the header says', async (t) => {
  const tar = tarBytes(EVERY);
  let next = 0;
  for (const { header: h, data } of readAll(tar, 7).records) {
    t.equal(h.headerOffset, next, `${h.path} starts where the previous entry ended`);
    t.ok(Buffer.from(h.headerBytes).equals(tar.subarray(h.headerOffset, h.dataOffset)), `${h.path} raw header blocks`);
    t.ok(data.equals(tar.subarray(h.dataOffset, h.dataOffset + h.size)), `${h.path} data at dataOffset`);
    next = h.dataOffset + Math.ceil(h.size / 512) * 512;
  }
});

t.test('GNU tar archives (gnu, pax, ustar, v7) read the same as the files on disk', async (t) => {
  const root = tempDir(t, 'gnu-tar');
  const src = join(root, 'src');
  const longDir = join(src, 'd'.repeat(60), 'e'.repeat(60));
  mkdirSync(longDir, { recursive: true });
  writeFileSync(join(src, 'small'), 'hello\n');
  writeFileSync(join(src, 'empty'), '');
  writeFileSync(join(src, 'big'), Buffer.alloc(70_000, 7));
  writeFileSync(join(longDir, 'f'.repeat(110)), 'deep\n');
  symlinkSync('small', join(src, 'link'));
  symlinkSync('t'.repeat(150), join(src, 'longlink'));
  linkSync(join(src, 'small'), join(src, 'hard'));
  execFileSync('mkfifo', [join(src, 'fifo')]);
  execFileSync('mknod', [join(src, 'null'), 'c', '1', '3']);
  const formats: Record<string, string[]> = {
    gnu: ['--format=gnu'],
    pax: ['--format=pax'],
    // ustar and v7 cannot hold the 110-byte name or the 150-byte link target: leave those out.
    ustar: ['--format=ustar', '--exclude=longlink', `--exclude=${'f'.repeat(110)}`],
    v7: ['--format=v7', '--exclude=longlink', `--exclude=${'d'.repeat(60)}`, '--exclude=null', '--exclude=fifo'],
  };
  for (const [name, args] of Object.entries(formats)) {
    const tarFile = join(root, `${name}.tar`);
    execFileSync('tar', ['-C', src, ...args, '--sort=name', '-cf', tarFile, '.']);
    const tar = readFileSync(tarFile);
    const listing = execFileSync('tar', ['-tf', tarFile]).toString().trim().split('\n');
    for (const step of [1, 7, 511, Infinity]) {
      const { records, end } = readAll(tar, step);
      t.same(records.map((r) => r.header.path), listing, `${name}, chunks of ${step}: same names as GNU tar lists`);
      t.equal(end?.kind, 'end', `${name}: end of archive`);
      const by = new Map(records.map((r) => [r.header.path.replace(/^\.\//, '').replace(/\/$/, ''), r]));
      // Sorted by name, `hard` comes first and holds the data; `small` is the hardlink to it.
      t.match(by.get('hard')?.header, { type: 'file', size: 6 }, `${name} hard`);
      t.equal(by.get('hard')?.data.toString(), 'hello\n', `${name} hard data`);
      t.match(by.get('small')?.header, { type: 'hardlink', size: 0, linkpath: './hard' }, `${name} hardlink`);
      t.ok(by.get('big')?.data.equals(Buffer.alloc(70_000, 7)), `${name} big`);
      t.match(by.get('link')?.header, { type: 'symlink', linkpath: 'small' }, `${name} symlink`);
      t.match(by.get('empty')?.header, { type: 'file', size: 0 });
      if (name !== 'v7') t.match(by.get(`${'d'.repeat(60)}/${'e'.repeat(60)}`)?.header, { type: 'dir' }, `${name}: 121-byte dir name`);
      if (name === 'gnu' || name === 'pax') {
        const deep = by.get(`${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(110)}`);
        t.equal(deep?.data.toString(), 'deep\n', `${name} long name`);
        t.equal(by.get('longlink')?.header.linkpath, 't'.repeat(150), `${name} long link target`);
      }
      if (name !== 'v7') {
        t.match(by.get('null')?.header, { type: 'char', devmajor: 1, devminor: 3 }, `${name} char device`);
        t.match(by.get('fifo')?.header, { type: 'fifo' }, `${name} fifo`);
      }
    }
  }
});

t.test('GNU base-256 numbers: uid over 2^21 and a negative mtime', async (t) => {
  const root = tempDir(t, 'b256');
  writeFileSync(join(root, 'f'), 'x');
  const tarFile = join(root, 'b.tar');
  execFileSync('tar', ['-C', root, '--format=gnu', '--owner=big:3000000', '--group=big:4000000', '--mtime=1900-01-01 00:00:00 UTC', '-cf', tarFile, 'f']);
  const tar = readFileSync(tarFile);
  t.equal(tar[108]! & 0x80, 0x80, 'GNU tar wrote the uid in base-256');
  const [r] = readAll(tar, 3).records;
  t.match(r?.header, { uid: 3_000_000, gid: 4_000_000, mtime: { seconds: -2208988800, nanos: 0 } });
});

/** A raw header block via node-tar, with our own fields poked in after. */
function block(fields: ConstructorParameters<typeof Header>[0], patch?: (b: Buffer) => void): Buffer {
  const h = new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), ...fields });
  h.encode();
  const b = h.block!;
  if (patch) {
    patch(b);
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of b) sum += byte;
    b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  }
  return b;
}

function paxData(records: Record<string, string | Buffer>): Buffer {
  const parts = Object.entries(records).map(([k, v]) => {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
    let n = body.length + String(body.length).length;
    if (String(n).length !== String(body.length).length) n = body.length + String(n).length;
    return Buffer.concat([Buffer.from(String(n)), body]);
  });
  return Buffer.concat(parts);
}

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

function paxEntry(type: 'ExtendedHeader' | 'GlobalExtendedHeader', records: Record<string, string | Buffer>): Buffer {
  const data = paxData(records);
  return Buffer.concat([block({ path: 'PaxHeaders/x', type, size: data.length }), pad(data)]);
}

const EOF = Buffer.alloc(1024);

t.test('PAX global headers apply to later entries; local records override them', async (t) => {
  const tar = Buffer.concat([
    paxEntry('GlobalExtendedHeader', { uname: 'global', mtime: '1234.5', 'SCHILY.xattr.user.g': Buffer.from([0xff, 0]) }),
    block({ path: 'a', type: 'File', size: 0 }),
    paxEntry('ExtendedHeader', { uname: 'local', 'SCHILY.xattr.user.l': 'x' }),
    block({ path: 'b', type: 'File', size: 0 }),
    EOF,
  ]);
  const events: TarEvent[] = [];
  async function* twoChunks(): AsyncGenerator<Uint8Array> {
    yield tar.subarray(0, 100);
    yield tar.subarray(100);
  }
  for await (const ev of readTar(twoChunks())) events.push(ev);
  const global = events.find((e) => e.kind === 'global');
  t.match(global, { kind: 'global', offset: 0 });
  const headers = events.flatMap((e) => (e.kind === 'entry' ? [e.header] : []));
  t.match(headers[0], { path: 'a', uname: 'global', mtime: { seconds: 1234, nanos: 500_000_000 } });
  t.same(xattrsHex(headers[0]!.xattrs), { 'user.g': 'ff00' });
  t.match(headers[1], { path: 'b', uname: 'local', mtime: { seconds: 1234 } });
  t.same(xattrsHex(headers[1]!.xattrs), { 'user.g': 'ff00', 'user.l': '78' });
  t.equal(headers[1]!.headerOffset, 1024 + 512, "b's header starts at its PAX header");
});

t.test('a stream without end-of-archive blocks is accepted at an entry boundary; bytes after them are ignored', async (t) => {
  const tar = tarBytes([file('a', 'aaa')]);
  const cut = readAll(tar.subarray(0, 1024));
  t.same(cut.end, { kind: 'end', offset: 1024, marker: false });
  const trailing = readAll(Buffer.concat([tar, Buffer.from('garbage after the end')]));
  t.equal(trailing.records.length, 1);
  t.equal(trailing.end?.kind, 'end');
  const lone = readAll(Buffer.concat([tar.subarray(0, 1024), Buffer.alloc(512)]));
  t.same(lone.end, { kind: 'end', offset: 1024, marker: true }, 'one zero block then the end');
});

function rejects(t: Test, bytes: Uint8Array, pattern: RegExp, what: string): void {
  for (const step of [1, 512, Infinity]) {
    t.throws(() => readAll(bytes, step), pattern, `${what} (chunks of ${step})`);
    try {
      readAll(bytes, step);
    } catch (err) {
      t.ok(err instanceof FormatError, `${what}: a FormatError`);
    }
  }
}

t.test('broken tars are FormatErrors that name the entry and the offset', async (t) => {
  const good = tarBytes([file('first', 'one'), file('second/file', 'two')]);
  const badSum = Buffer.from(good);
  badSum[1034] = badSum[1034]! ^ 1; // a name byte of the second header
  rejects(t, badSum, /tar entry "second\/fild" at offset 1024: bad header checksum/, 'bad checksum');
  rejects(t, good.subarray(0, 1024 + 512 + 1), /truncated at offset 1537: 2 data bytes of entry "second\/file" \(header at 1024\) missing/, 'cut in data');
  rejects(t, good.subarray(0, 1024 + 100), /truncated at offset 1124: partial header block at offset 1024/, 'cut in a header');
  rejects(t, good.subarray(0, 1024 + 512 + 3 + 4), /padding after entry "second\/file" missing/, 'cut in padding');
  rejects(t, Buffer.concat([good.subarray(0, 1024), Buffer.alloc(512), good.subarray(0, 512)]), /offset 1536: a zero block followed by a non-zero one/, 'zero then non-zero');

  const sparse = Buffer.concat([paxEntry('ExtendedHeader', { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' }), block({ path: 'sp', type: 'File', size: 0 }), EOF]);
  rejects(t, sparse, /tar entry "sp" at offset 1024: GNU sparse files are not supported/, 'GNU sparse');
  const huge = Buffer.concat([paxEntry('ExtendedHeader', { size: String(2 ** 52) }), block({ path: 'huge', type: 'File', size: 0 }), EOF]);
  rejects(t, huge, /tar entry "huge" at offset 1024: size 4503599627370496 is over the 1125899906842624-byte limit/, 'absurd PAX size');
  const notNumber = Buffer.concat([paxEntry('ExtendedHeader', { size: '99999999999999999999' }), block({ path: 'nan', type: 'File', size: 0 }), EOF]);
  rejects(t, notNumber, /"nan" at offset 1024: PAX size=.* is not a non-negative integer/, 'PAX size beyond 2^53');
  const negative = Buffer.concat([block({ path: 'neg', type: 'File', size: 0 }, (b) => b.fill(0xff, 124, 136)), EOF]);
  rejects(t, negative, /tar entry "neg" at offset 0: negative size/, 'negative base-256 size');
  const badOctal = Buffer.concat([block({ path: 'oct', type: 'File', size: 0 }, (b) => b.write('12x4', 100, 'latin1')), EOF]);
  rejects(t, badOctal, /tar entry "oct" at offset 0: mode field is not octal/, 'garbage in a number');
  const unknownType = Buffer.concat([block({ path: 'weird', type: 'File', size: 0 }, (b) => (b[156] = 0x53)), EOF]);
  rejects(t, unknownType, /tar entry "weird" at offset 0: unsupported entry type "S"/, 'unsupported type');
  const dangling = Buffer.concat([paxEntry('ExtendedHeader', { path: 'x' }), EOF]);
  rejects(t, dangling, /offset 0: extended header without the entry it describes/, 'PAX header before the end');
  const malformed = Buffer.concat([block({ path: 'PaxHeaders/x', type: 'ExtendedHeader', size: 10 }), pad(Buffer.from('99 a=b\n\n\n\n')), EOF]);
  rejects(t, malformed, /PAX record at byte 0 is malformed/, 'PAX record length past its data');
});

t.test('limits: extended headers and entries over the configured sizes', async (t) => {
  const tar = Buffer.concat([paxEntry('ExtendedHeader', { path: 'p'.repeat(3000) }), block({ path: 'x', type: 'File', size: 0 }), EOF]);
  const reader = new TarReader({ limits: { maxMetaBytes: 1024 } });
  t.throws(() => reader.push(tar), /3\d{3}-byte extended header is over the 1024-byte limit/);
  const big = tarBytes([file('big', { size: 5000 })]);
  t.throws(() => new TarReader({ limits: { maxEntryBytes: 4096 } }).push(big), /"big" at offset 0: size 5000 is over the 4096-byte limit/);
});

t.test('base-256 size beyond 8 GiB, read header-first (data never needed)', async (t) => {
  const size = 2 ** 33 + 5;
  const header = block({ path: 'large', type: 'File', size: 0 }, (b) => {
    b.fill(0, 124, 136);
    b[124] = 0x80;
    b.writeUIntBE(size, 136 - 6, 6);
  });
  const reader = new TarReader();
  const events = reader.push(header);
  t.match(events, [{ kind: 'entry', header: { path: 'large', size } }]);
  t.throws(() => reader.end(), /8589934597 data bytes of entry "large" \(header at 0\) missing/);
});

t.test('binary xattr values are kept byte for byte, even invalid UTF-8', async (t) => {
  const value = Buffer.from([0x80, 0xff, 0x00, 0x0a, 0x3d, 0xc3]);
  const tar = tarBytes([file('f', 'x', { xattrs: { 'security.capability': CAP_SETUID, 'user.raw': value } })]);
  const r = readAll(tar, 1).records[0]!;
  t.same(xattrsHex(r.header.xattrs), { 'security.capability': CAP_SETUID.toString('hex'), 'user.raw': value.toString('hex') });
  t.same([...r.header.pax.keys()].sort(), ['SCHILY.xattr.security.capability', 'SCHILY.xattr.user.raw']);
});
