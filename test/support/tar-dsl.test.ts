// The DSL's tars must read the same in node-tar (what tocfs parses with), GNU tar and Python's tarfile
// (independent readers); umoci's Go reader is covered by image-builder.test.ts.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import t from 'tap';
import { Parser, type ReadEntry } from 'tar';
import {
  blockdev,
  chardev,
  contentBytes,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  symlink,
  tarBytes,
  tarOf,
  whiteout,
  type TarEntry,
} from './tar-dsl.js';
import { CAP_SETUID, LONG_DIR, LONG_NAME, UNICODE } from './vectors.js';

interface Seen {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkpath: string;
  uname: string;
  gname: string;
  devmaj: number;
  devmin: number;
  sha: string;
}

/** Parses with node-tar; `stopAfter` ends the stream early for tars too big to read through. */
async function nodeTarList(source: AsyncIterable<Buffer> | Buffer, stopAfter = Infinity): Promise<Seen[]> {
  const seen: Seen[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry(entry: ReadEntry) {
      const hash = createHash('sha256');
      const h = entry.header;
      const row: Seen = {
        path: entry.path,
        type: entry.type,
        mode: entry.mode ?? -1,
        uid: entry.uid ?? -1,
        gid: entry.gid ?? -1,
        size: entry.size,
        mtime: entry.mtime?.getTime() ?? -1,
        linkpath: entry.linkpath ?? '',
        uname: entry.uname ?? '',
        gname: entry.gname ?? '',
        devmaj: h.devmaj,
        devmin: h.devmin,
        sha: '',
      };
      seen.push(row);
      entry.on('data', (c: Buffer) => hash.update(c));
      entry.on('end', () => (row.sha = hash.digest('hex')));
    },
  });
  const ended = once(parser, 'end');
  if (Buffer.isBuffer(source)) {
    parser.end(source);
  } else {
    let fed = 0;
    for await (const chunk of source) {
      if (!parser.write(chunk)) await once(parser, 'drain');
      if ((fed += chunk.length) >= stopAfter) return seen;
    }
    parser.end();
  }
  await ended;
  return seen;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const every: TarEntry[] = [
  dir('etc', { mode: 0o755, mtime: new Date('2021-02-03T04:05:06Z') }),
  file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', { uid: 0, gid: 0, uname: 'root', gname: 'root' }),
  file('usr/bin/su', 'su', { mode: 0o4755, xattrs: { 'security.capability': CAP_SETUID, 'user.note': 'é' } }),
  file('usr/bin/wall', 'wall', { mode: 0o2755, gid: 5 }),
  dir('tmp', { mode: 0o1777 }),
  file('empty'),
  symlink('etc/localtime', '/usr/share/zoneinfo/UTC'),
  hardlink('usr/bin/su-again', 'usr/bin/su'),
  chardev('dev/null', 1, 3, { mode: 0o666 }),
  blockdev('dev/sda', 8, 0),
  fifo('run/pipe', { mode: 0o600 }),
  whiteout('var/gone'),
  opaque('opt'),
  file(`${LONG_DIR}${LONG_NAME}`, 'long'),
  symlink('long-link', `${LONG_DIR}${LONG_NAME}`),
  file(UNICODE, 'unicode', { uid: 1_000_000, gid: 2_000_000, uname: 'u'.repeat(40), mtime: new Date(1_600_000_000_250) }),
  file('gen/pattern', { size: 3 * 1024 * 1024 + 17 }),
  file('gen/zeros', { size: 100_000, sparse: true }),
  file('gen/ones', { size: 1000, fill: 0xff }),
];

t.test('every entry type reads back through node-tar with its metadata', async (t) => {
  const seen = await nodeTarList(tarBytes(every));
  t.same(
    seen.map((s) => s.path),
    every.map((e) => e.path),
  );
  const by = new Map(seen.map((s) => [s.path, s]));
  t.match(by.get('etc/'), { type: 'Directory', mode: 0o755, mtime: Date.parse('2021-02-03T04:05:06Z') });
  t.match(by.get('etc/passwd'), { type: 'File', uname: 'root', gname: 'root', size: 26 });
  t.match(by.get('usr/bin/su'), { mode: 0o4755 });
  t.match(by.get('usr/bin/wall'), { mode: 0o2755, gid: 5 });
  t.match(by.get('tmp/'), { mode: 0o1777 });
  t.match(by.get('empty'), { type: 'File', size: 0 });
  t.match(by.get('etc/localtime'), { type: 'SymbolicLink', linkpath: '/usr/share/zoneinfo/UTC' });
  t.match(by.get('usr/bin/su-again'), { type: 'Link', linkpath: 'usr/bin/su', size: 0 });
  t.match(by.get('dev/null'), { type: 'CharacterDevice', devmaj: 1, devmin: 3, mode: 0o666 });
  t.match(by.get('dev/sda'), { type: 'BlockDevice', devmaj: 8, devmin: 0 });
  t.match(by.get('run/pipe'), { type: 'FIFO', mode: 0o600 });
  t.ok(by.has('var/.wh.gone'), 'whiteout is a .wh. file in the same directory');
  t.ok(by.has('opt/.wh..wh..opq'), 'opaque marker inside the directory');
  t.match(by.get(`${LONG_DIR}${LONG_NAME}`), { sha: sha(Buffer.from('long')) });
  t.match(by.get('long-link'), { linkpath: `${LONG_DIR}${LONG_NAME}` });
  t.match(by.get(UNICODE), { uid: 1_000_000, gid: 2_000_000, uname: 'u'.repeat(40), mtime: 1_600_000_000_250 });
  for (const e of every.filter((x) => x.type === 'file')) {
    t.equal(by.get(e.path)?.sha, sha(contentBytes(e)), `${e.path} content`);
  }
});

t.test('GNU tar and Python tarfile agree, including binary xattr values', async (t) => {
  const tar = tarBytes(every);
  const gnu = spawn('tar', ['--xattrs', "--xattrs-include=*", '--numeric-owner', '-tvvf', '-']);
  gnu.stdin.end(tar);
  let listing = '';
  gnu.stdout.on('data', (c: Buffer) => (listing += c.toString()));
  const [code] = (await once(gnu, 'close')) as [number];
  t.equal(code, 0, 'GNU tar reads it without complaint');
  t.match(listing, /^-rwsr-xr-x\* 0\/0 +2 [^\n]* usr\/bin\/su\n +x: +20 security\.capability\n +x: +2 user\.note$/m);
  t.match(listing, /^crw-rw-rw- +0\/0 +1,3 /m);
  t.match(listing, /1000000\/2000000 .*ünïcødé\/☃ snow\.txt/);

  const py = spawn('python3', [
    '-c',
    `import sys, tarfile, json
t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|')
out = {m.name: {k: v.encode('utf-8', 'surrogateescape').hex() for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')} for m in t}
print(json.dumps(out))`,
  ]);
  py.stdin.end(tar);
  let json = '';
  py.stdout.on('data', (c: Buffer) => (json += c.toString()));
  await once(py, 'close');
  const xattrs = JSON.parse(json) as Record<string, Record<string, string>>;
  t.same(xattrs['usr/bin/su'], {
    'SCHILY.xattr.security.capability': CAP_SETUID.toString('hex'),
    'SCHILY.xattr.user.note': Buffer.from('é').toString('hex'),
  });
});

t.test('PAX record lengths are right on both sides of every digit-count boundary', async (t) => {
  // A record's length counts its own digits, so values whose records are 9/10 and 99/100/101 bytes
  // long are where a miscount shows; Python reads each record by that length.
  const entries = Array.from({ length: 120 }, (_, n) => file(`v${n}`, '', { xattrs: { 'user.x': 'y'.repeat(n) } }));
  const py = spawn('python3', [
    '-c',
    `import sys, tarfile
t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|')
print(','.join(str(len(m.pax_headers['SCHILY.xattr.user.x'])) for m in t))`,
  ]);
  py.stdin.end(tarBytes(entries));
  let out = '';
  py.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await once(py, 'close');
  t.equal(out.trim(), entries.map((_, n) => n).join(','));
});

t.test('whiteout and opaque keep the path prefix verbatim', async (t) => {
  t.equal(whiteout('a').path, '.wh.a');
  t.equal(whiteout('./a/b').path, './a/.wh.b');
  t.equal(whiteout('/a/b/').path, '/a/.wh.b');
  t.equal(opaque('a').path, 'a/.wh..wh..opq');
  t.equal(opaque('./a/').path, './a/.wh..wh..opq');
  t.equal(dir('x').path, 'x/');
});

t.test('rejects options that would write a different tar than asked', async (t) => {
  t.throws(() => file('f', '', { mode: 0o100644 }), /permission bits only/);
  t.throws(() => file('f', { size: -1 }), /non-negative/);
  t.throws(() => file('f', { size: 1, fill: 256 }), /not a byte/);
  t.throws(() => file(''), /empty path/);
});

t.test('generated content is deterministic and streams equal to contentBytes', async (t) => {
  const a = file('p', { size: 5000 });
  t.same(contentBytes(a), contentBytes(file('p', { size: 5000 })), 'same path, same bytes');
  t.not(sha(contentBytes(a)), sha(contentBytes(file('q', { size: 5000 }))), 'another path, other bytes');
  t.same(contentBytes(file('z', { size: 3, sparse: true })), Buffer.alloc(3));
  t.same(contentBytes(file('f', { size: 3, fill: 7 })), Buffer.alloc(3, 7));
  const streamed: Buffer[] = [];
  for await (const c of tarOf(every)) streamed.push(c as Buffer);
  t.same(Buffer.concat(streamed), tarBytes(every), 'tarOf and tarBytes write the same bytes');
});

t.test('sizes past 8 GiB get a PAX size record that readers take', async (t) => {
  const huge = 9 * 2 ** 30 + 3;
  const entries = [file('huge', { size: huge, sparse: true })];
  // Only the headers are read: 9 GiB of zeros is not worth streaming here.
  const seen = await nodeTarList(tarOf(entries), 4096);
  t.match(seen[0], { path: 'huge', size: huge });
  const firstBlocks = await firstBytes(tarOf(entries), 3 * 512);
  t.match(firstBlocks.subarray(512, 1024).toString('latin1'), new RegExp(`\\d+ size=${huge}\\n`));
  t.equal(firstBlocks[1024 + 124], 0x80, 'ustar size field is base-256 as well');
});

async function firstBytes(stream: AsyncIterable<Buffer>, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const c of stream) {
    parts.push(c);
    if ((got += c.length) >= n) break;
  }
  return Buffer.concat(parts).subarray(0, n);
}

t.test('a 5 GiB sparse file streams through GNU tar, and the entry after it is intact', async (t) => {
  const big = 5 * 2 ** 30;
  const gnu = spawn('tar', ['-tvf', '-']);
  let listing = '';
  gnu.stdout.on('data', (c: Buffer) => (listing += c.toString()));
  const closed = once(gnu, 'close');
  for await (const chunk of tarOf([file('big', { size: big, sparse: true }), file('after', 'x')])) {
    if (!gnu.stdin.write(chunk)) await once(gnu.stdin, 'drain');
  }
  gnu.stdin.end();
  const [code] = (await closed) as [number];
  t.equal(code, 0);
  t.match(listing, new RegExp(`^-rw-r--r-- 0/0 +${big} .* big\\n-rw-r--r-- 0/0 +1 .* after\\n$`, 'm'));
});
