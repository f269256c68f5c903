// indexToc on hand-written raw entries: the tree it builds (hardlinks, implicit parents, children order,
// link counts), how chunk spans are derived, landmarks, and every limit.
import t, { type Test } from 'tap';
import { FormatError } from '../../src/errors.js';
import { indexToc } from '../../src/formats/toc-index.js';
import type { RawTocEntry, TocLimits } from '../../src/formats/toc.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;

function index(raw: RawTocEntry[], tocOffset = 10_000, limits?: Partial<TocLimits>) {
  return indexToc(raw, { format: 'estargz-gzip', tocOffset, ...(limits ? { limits } : {}) });
}

function rejects(t: Test, raw: RawTocEntry[], fragment: string | RegExp, opts: { tocOffset?: number; limits?: Partial<TocLimits> } = {}): void {
  try {
    index(raw, opts.tocOffset, opts.limits);
    t.fail(`accepted; expected ${String(fragment)}`);
  } catch (err) {
    const message = (err as Error).message;
    t.ok(err instanceof FormatError && (typeof fragment === 'string' ? message.includes(fragment) : fragment.test(message)), message);
  }
}

t.test('implicit parents: mode 0755, root-owned, epoch, and listed before their children', async (t) => {
  const idx = index([
    { name: 'a/b/c.txt', type: 'reg', size: 0, mode: 0o600, uid: 5, modtime: '2021-02-03T04:05:06Z' },
    { name: 'a/', type: 'dir', mode: 0o700, uid: 7 },
  ]);
  const walked = [...idx.walk()].map(([p]) => p);
  t.same(walked, ['', 'a', 'a/b', 'a/b/c.txt'], 'parents first, in TOC order');
  t.match(idx.lookup('a/b'), { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, implicit: true, nlink: 2 });
  t.match(idx.lookup('a'), { mode: 0o700, uid: 7, implicit: false, nlink: 3 }, 'the explicit entry wins even when it comes later');
  t.match(idx.root, { path: '', type: 'dir', implicit: true, nlink: 3 });
  t.equal(idx.lookup('a/b/c.txt')!.mtimeMs, Date.UTC(2021, 1, 3, 4, 5, 6));
  t.equal(idx.size, 4);
});

t.test('children keep TOC order and exclude grandchildren; non-directories have none', async (t) => {
  const idx = index([
    { name: 'z', type: 'reg' },
    { name: 'd/', type: 'dir' },
    { name: 'a', type: 'symlink', linkName: 'z' },
    { name: 'd/x', type: 'fifo' },
  ]);
  t.same([...idx.children('')!.keys()], ['z', 'd', 'a']);
  t.same([...idx.children('d')!.keys()], ['x']);
  t.equal(idx.children('z'), undefined);
  t.equal(idx.children('missing'), undefined);
  t.equal(idx.children('d/x'), undefined);
  t.equal(idx.lookup('a')!.size, 1, 'symlink size is its target length');
  const empty = index([{ name: 'e/', type: 'dir' }]);
  t.equal(empty.children('e')!.size, 0);
});

t.test('hardlinks: every name maps to one entry; nlink counts names; size counts it once', async (t) => {
  const idx = index([
    { name: 'bin/busybox', type: 'reg', size: 4, offset: 100, digest: D1, chunkDigest: D1 },
    { name: 'bin/sh', type: 'hardlink', linkName: 'bin/busybox' },
    { name: 'bin/ls', type: 'hardlink', linkName: './bin/sh' },
    { name: 'dev/null', type: 'char', devMajor: 1, devMinor: 3 },
    { name: 'dev/null2', type: 'hardlink', linkName: '/dev/null' },
  ]);
  const bb = idx.lookup('bin/busybox')!;
  t.equal(idx.lookup('bin/sh'), bb);
  t.equal(idx.lookup('bin/ls'), bb, 'a hardlink to a hardlink reaches the file');
  t.equal(bb.nlink, 3);
  t.equal(idx.lookup('dev/null2'), idx.lookup('dev/null'));
  t.equal(idx.lookup('dev/null')!.nlink, 2);
  t.equal(idx.size, 5, 'root, bin, dev, busybox, null');
  t.same([...idx.walk()].map(([p]) => p), ['', 'bin', 'bin/busybox', 'bin/sh', 'bin/ls', 'dev', 'dev/null', 'dev/null2']);
});

t.test('cross-layer hardlink: a target this layer lacks is kept as an external link, not a failure', async (t) => {
  // Layer 2 of an image: `hardlink('etc/passwd-again', 'etc/passwd')`, etc/passwd coming from layer 0.
  const idx = index([
    { name: 'etc/passwd-again', type: 'hardlink', linkName: 'etc/passwd' },
    { name: 'etc/also', type: 'hardlink', linkName: './etc/passwd-again' },
    { name: 'usr/local/abs', type: 'hardlink', linkName: '/usr/bin/su' },
    { name: 'f', type: 'reg' },
    { name: 'g', type: 'hardlink', linkName: 'f' },
  ]);
  t.same(
    [...idx.externalLinks()],
    [
      ['etc/passwd-again', 'etc/passwd'],
      ['etc/also', 'etc/passwd'],
      ['usr/local/abs', 'usr/bin/su'],
    ],
    'normalised targets; a link to an earlier external link names the same lower file',
  );
  t.equal(idx.lookup('etc/passwd-again'), undefined, 'not an entry of this layer: TocEntry.type stays a real file type');
  t.same([...idx.children('etc')!.keys()], [], 'nor a child');
  t.same([...idx.walk()].map(([p]) => p), ['', 'f', 'g', 'etc', 'usr', 'usr/local'], 'its parents are implied like any entry\'s');
  t.equal(idx.lookup('g'), idx.lookup('f'), 'same-layer links are unchanged');
  t.equal(idx.lookup('f')!.nlink, 2);
  t.equal(index([{ name: 'a', type: 'reg' }]).externalLinks().size, 0);
  rejects(t, [{ name: 'l', type: 'hardlink', linkName: '../etc/passwd' }], 'path traversal');
  rejects(t, [{ name: 'l', type: 'hardlink', linkName: '/../../etc/passwd' }], 'path traversal');
  rejects(t, [{ name: 'l', type: 'hardlink', linkName: 'f' }, { name: 'f', type: 'reg' }], /TOC entry #0 "l": .*is not an earlier entry/);
  rejects(t, [{ name: 'l', type: 'hardlink', linkName: 'x' }, { name: 'l', type: 'reg' }], 'duplicate name');
  rejects(t, [{ name: 'd/', type: 'dir' }, { name: 'l', type: 'hardlink', linkName: 'd' }], 'is a directory');
  rejects(t, [{ name: 'f', type: 'reg' }, { name: 'f/l', type: 'hardlink', linkName: 'x' }], 'is a reg, not a directory');
});

t.test('directory link counts are 2 + subdirectories', async (t) => {
  const idx = index([{ name: 'a/', type: 'dir' }, { name: 'a/b/', type: 'dir' }, { name: 'a/c/d/e', type: 'reg' }, { name: 'a/f', type: 'reg' }]);
  t.equal(idx.root.nlink, 3);
  t.equal(idx.lookup('a')!.nlink, 4);
  t.equal(idx.lookup('a/b')!.nlink, 2);
  t.equal(idx.lookup('a/c')!.nlink, 3);
});

t.test('an explicit root entry (./ or /) gives the root its attributes', async (t) => {
  const idx = index([{ name: './', type: 'dir', mode: 0o40700, uid: 3 }, { name: './x', type: 'reg' }]);
  t.match(idx.root, { mode: 0o700, uid: 3, implicit: false });
  t.equal(idx.lookup('x')!.path, 'x');
});

t.test('modes are masked to permission bits; modtime accepts RFC 3339 forms', async (t) => {
  const idx = index([
    { name: 'a', type: 'reg', mode: 0o104755, modtime: '2021-01-01T00:00:00.123456789Z' },
    { name: 'b', type: 'reg', modtime: '2021-01-01T02:00:00+02:00' },
    { name: 'c', type: 'reg', modtime: '0001-01-01T00:00:00Z' },
    { name: 'd', type: 'reg', modtime: '' },
    { name: 'e', type: 'reg', modtime: '2024-02-29T23:59:59-00:30' },
  ]);
  t.equal(idx.lookup('a')!.mode, 0o4755);
  t.equal(idx.lookup('a')!.mtimeMs, Date.UTC(2021, 0, 1) + 123);
  t.equal(idx.lookup('b')!.mtimeMs, Date.UTC(2021, 0, 1));
  t.equal(idx.lookup('c')!.mtimeMs, -62135596800000, "Go's zero time");
  t.equal(idx.lookup('d')!.mtimeMs, 0);
  t.equal(idx.lookup('e')!.mtimeMs, Date.UTC(2024, 2, 1, 0, 29, 59));
  for (const bad of ['2021-13-01T00:00:00Z', '2021-02-29T00:00:00Z', '2021-01-01 00:00:00Z', '2021-01-01T24:00:00Z', 'yesterday', '2021-01-01T00:00:00', '2021-01-01T00:00:00+24:00']) {
    rejects(t, [{ name: 'x', type: 'reg', modtime: bad }], 'modtime');
  }
});

t.test('chunks: spans end at the next greater offset, shared members by innerOffset, the last at the TOC', async (t) => {
  const idx = index(
    [
      { name: 'small1', type: 'reg', size: 3, offset: 0, innerOffset: 512, chunkDigest: D1 },
      { name: 'small2', type: 'reg', size: 2, offset: 0, innerOffset: 1027, chunkDigest: D2 },
      { name: 'big', type: 'reg', size: 10, offset: 300, chunkSize: 4, chunkDigest: D1, digest: D3 },
      { name: 'big', type: 'chunk', offset: 400, chunkOffset: 4, chunkSize: 4, chunkDigest: D2 },
      { name: 'big', type: 'chunk', offset: 500, chunkOffset: 8, chunkDigest: D3 },
      { name: 'empty', type: 'reg', size: 0 },
      { name: 'dir/', type: 'dir' },
      { name: 'last', type: 'reg', size: 1, offset: 600, digest: D1 },
    ],
    700,
  );
  t.same(
    idx.lookup('small1')!.chunks.map((c) => [c.compressedOffset, c.compressedEnd, c.innerOffset, c.size]),
    [[0, 300, 512, 3]],
  );
  t.same(idx.lookup('small2')!.chunks.map((c) => [c.compressedOffset, c.compressedEnd, c.innerOffset]), [[0, 300, 1027]]);
  t.same(
    idx.lookup('big')!.chunks.map((c) => [c.fileOffset, c.size, c.compressedOffset, c.compressedEnd, c.digest]),
    [
      [0, 4, 300, 400, D1],
      [4, 4, 400, 500, D2],
      [8, 2, 500, 600, D3],
    ],
  );
  t.same(idx.lookup('last')!.chunks.map((c) => [c.compressedEnd, c.digest]), [[700, D1]], 'ends at the TOC; whole-file digest guards a one-chunk file');
  t.equal(idx.lookup('empty')!.chunks.length, 0);
  t.equal(idx.lookup('empty')!.chunks, idx.lookup('dir')!.chunks, 'one shared empty array');
  t.ok(Object.isFrozen(idx.lookup('empty')!.chunks));
});

t.test('zstd:chunked fields: endOffset and zeros chunks', async (t) => {
  const idx = indexToc(
    [
      { name: 'sparse', type: 'reg', size: 100, offset: 10, endOffset: 20, chunkSize: 40, chunkDigest: D1 },
      { name: 'sparse', type: 'chunk', chunkOffset: 40, chunkSize: 50, chunkType: 'zeros' },
      { name: 'sparse', type: 'chunk', offset: 20, endOffset: 30, chunkOffset: 90, chunkDigest: D2 },
    ],
    { format: 'zstd-chunked', tocOffset: 50 },
  );
  t.same(
    idx.lookup('sparse')!.chunks.map((c) => [c.fileOffset, c.size, c.compressedOffset, c.compressedEnd, c.zeros]),
    [
      [0, 40, 10, 20, false],
      [40, 50, 0, 0, true],
      [90, 10, 20, 30, false],
    ],
  );
});

t.test('a file larger than 2^32 at offsets beyond 2^32 (synthetic TOC numbers)', async (t) => {
  const chunk = 64 << 20;
  const size = 2 ** 32 + 5;
  const raw: RawTocEntry[] = [{ name: 'huge', type: 'reg', size, offset: 2 ** 32 + 100, chunkSize: chunk, digest: D1, chunkDigest: D2 }];
  for (let off = chunk; off < size; off += chunk) {
    raw.push({ name: 'huge', type: 'chunk', offset: 2 ** 32 + 100 + off / 1024, chunkOffset: off, ...(size - off >= chunk ? { chunkSize: chunk } : {}), chunkDigest: D2 });
  }
  const idx = index(raw, 2 ** 33);
  const chunks = idx.lookup('huge')!.chunks;
  t.equal(chunks.length, 65);
  t.equal(chunks.at(-1)!.size, 5);
  t.equal(chunks.at(-1)!.fileOffset, 2 ** 32);
  t.equal(chunks.at(-1)!.compressedEnd, 2 ** 33);
  t.equal(chunks.reduce((n, c) => n + c.size, 0), size);
  t.equal(idx.lookup('huge')!.size, size);
});

t.test('prefetch: [0, landmark offset) with .prefetch.landmark; none with .no.prefetch.landmark; landmarks hidden', async (t) => {
  const idx = index([
    { name: 'app', type: 'reg', size: 5, offset: 10, chunkDigest: D1 },
    { name: '.prefetch.landmark', type: 'reg', size: 1, offset: 90, chunkDigest: D2 },
    { name: 'rest', type: 'reg', size: 5, offset: 120, chunkDigest: D3 },
  ]);
  t.same(idx.prefetch, { start: 0, end: 90 });
  t.equal(idx.lookup('app')!.chunks[0]!.compressedEnd, 90, 'the landmark still ends the span before it');
  t.equal(idx.lookup('.prefetch.landmark'), undefined);
  t.notOk(idx.children('')!.has('.prefetch.landmark'));
  t.same([...idx.walk()].map(([p]) => p), ['', 'app', 'rest']);
  t.equal(idx.size, 3);

  const none = index([
    { name: './.no.prefetch.landmark', type: 'reg', size: 1, offset: 0, chunkDigest: D2 },
    { name: 'stargz.index.json', type: 'reg' },
    { name: 'a', type: 'reg' },
  ]);
  t.equal(none.prefetch, undefined);
  t.same([...none.walk()].map(([p]) => p), ['', 'a'], 'stargz.index.json is hidden too');
  t.ok(index([{ name: 'sub/.prefetch.landmark', type: 'reg' }]).lookup('sub/.prefetch.landmark'), 'only root-level names are landmarks');
});

t.test('limits are enforced and validated', async (t) => {
  rejects(t, [{ name: 'a', type: 'reg' }, { name: 'b', type: 'reg' }], 'maxEntries', { limits: { maxEntries: 1 } });
  rejects(t, [{ name: 'a/b/c/d', type: 'reg' }], 'implies', { limits: { maxEntries: 2 } });
  rejects(t, [{ name: 'a/b/c', type: 'reg' }], 'deep', { limits: { maxPathDepth: 2 } });
  rejects(t, [{ name: 'x'.repeat(30), type: 'reg' }], 'longer', { limits: { maxPathLength: 20 } });
  rejects(t, [{ name: 'l', type: 'symlink', linkName: 'x'.repeat(30) }], 'longer', { limits: { maxPathLength: 20 } });
  rejects(t, [{ name: 'f', type: 'reg', size: 100, offset: 1 }], 'maxChunkBytes', { limits: { maxChunkBytes: 99 } });
  rejects(t, [{ name: 'f', type: 'reg', size: 10, offset: 1, innerOffset: 95 }], 'maxChunkBytes', { limits: { maxChunkBytes: 100 } });
  rejects(t, [{ name: 'f', type: 'reg', size: 101 }], 'maxFileBytes', { limits: { maxFileBytes: 100 } });
  t.ok(index([{ name: 'f', type: 'reg', size: 100, offset: 1 }], 10_000, { maxChunkBytes: 100 }), 'exactly at the limit');
  for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
    t.throws(() => index([], 10, { maxEntries: bad }), { code: 'INVALID_OPTION' }, `maxEntries ${bad}`);
  }
  t.throws(() => indexToc([], { format: 'estargz-gzip', tocOffset: -1 }), FormatError);
});

t.test('an empty TOC is a layer with only its root', async (t) => {
  const idx = index([]);
  t.same([...idx.walk()].map(([p]) => p), ['']);
  t.equal(idx.size, 1);
  t.equal(idx.format, 'estargz-gzip');
  t.equal(idx.tocOffset, 10_000);
});
