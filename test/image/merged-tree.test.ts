// MergedTree against DESIGN.md §1.3 (= `umoci unpack`), one case per rule, on in-memory layers.
import t from 'tap';
import { createInodeCounter } from '../../src/image/layer-tree.js';
import { MergedTree } from '../../src/image/merged-tree.js';
import { fakeLayer, type Spec } from './fake-layers.js';

const tree = (...layers: Spec[][]) => new MergedTree(layers.map((l) => fakeLayer(l)));
const names = (m: MergedTree, path: string) => [...(m.readdir(path) ?? [])].sort();

t.test('upper layers override lower ones by name; reads go to the owning layer', async (t) => {
  const lower = fakeLayer([
    { name: 'etc/', type: 'dir', mode: 0o700, uid: 3 },
    { name: 'etc/a', type: 'reg', content: 'lower a' },
    { name: 'etc/b', type: 'reg', content: 'lower b' },
  ]);
  const upper = fakeLayer([
    { name: 'etc/', type: 'dir', mode: 0o750, uid: 4 },
    { name: 'etc/a', type: 'reg', content: 'upper a!', mode: 0o600 },
  ]);
  const m = new MergedTree([lower, upper]);
  t.same(names(m, 'etc'), ['a', 'b']);
  t.match(m.lookup('etc'), { type: 'dir', mode: 0o750, uid: 4, nlink: 2 }, 'dir over dir: upper metadata wins');
  t.match(m.lookup('etc/a'), { type: 'reg', size: 8, mode: 0o600 });
  t.equal(Buffer.from(await m.read('etc/a', 0, 100)).toString(), 'upper a!');
  t.equal(Buffer.from(await m.read('etc/b', 6, 100)).toString(), 'b');
  t.same(upper.reads, ['etc/a']);
  t.same(lower.reads, ['etc/b']);
  await t.rejects(m.read('etc', 0, 1), { code: 'IS_DIRECTORY' }, 'EISDIR, not EIO');
  await t.rejects(m.read('etc/zz', 0, 1), { code: 'NOT_FOUND' });
});

t.test('open resolves once; its reads go to the owning layer and tell onOpened as path reads do', async (t) => {
  const lower = fakeLayer([{ name: 'bin/app', type: 'reg', content: 'lower' }, { name: 'lib/x', type: 'reg', content: 'x' }]);
  const upper = fakeLayer([{ name: 'bin/app', type: 'reg', content: 'upper app' }, { name: 'link', type: 'symlink', linkName: 'bin/app' }]);
  const opened: [string, string][] = [];
  const m = new MergedTree([lower, upper], { onOpened: (path, head) => opened.push([path, Buffer.from(head).toString()]) });
  const app = m.open('bin/app')!;
  // Equal, not the same object: a file with one name gets a fresh stat per ask (same inode each time).
  t.same(app.node, m.lookup('bin/app'), 'the node lookup shows');
  t.equal(Buffer.from(await app.read(6, 100)).toString(), 'app');
  t.same(opened, [], 'a read past offset 0 opens nothing');
  t.equal(Buffer.from(await app.read(0, 5)).toString(), 'upper');
  t.same(opened, [['bin/app', 'upper']], 'a read at 0 through the handle feeds the prefetches');
  await m.read('lib/x', 0, 1, undefined, { background: true });
  t.same(opened.length, 1, 'a background (prefetch) read does not');
  await m.read('lib/x', 0, 1);
  t.same(opened.at(-1), ['lib/x', 'x'], 'a foreground path read does');
  t.same(upper.reads, ['bin/app', 'bin/app']);
  t.equal(m.open('nothing'), undefined);
  const dir = m.open('bin')!;
  t.match(dir.node, { type: 'dir' });
  await t.rejects(dir.read(0, 1), { code: 'IS_DIRECTORY' });
  await t.rejects(m.open('link')!.read(0, 1), { code: 'FORMAT' }, 'a symlink has no bytes of its own');
});

t.test('whiteouts delete a file, a dir and its subtree from lower layers, and never appear', async (t) => {
  const m = tree(
    [
      { name: 'f', type: 'reg' },
      { name: 'd/sub/deep', type: 'reg' },
      { name: 'keep', type: 'reg' },
    ],
    [
      { name: '.wh.f', type: 'reg' },
      { name: '.wh.d', type: 'reg' },
      { name: '.wh.nothing', type: 'reg' },
    ],
  );
  t.same(names(m, ''), ['keep']);
  t.equal(m.lookup('f'), undefined);
  t.equal(m.lookup('d/sub/deep'), undefined);
  t.equal(m.lookup('.wh.f'), undefined);
});

t.test('a whiteout spares its own layer; a higher layer can recreate the name', async (t) => {
  const m = tree(
    [{ name: 'd/old', type: 'reg' }],
    [
      { name: '.wh.d', type: 'reg' },
      { name: 'd/new', type: 'reg' },
    ],
    [{ name: 'd/newer', type: 'reg' }],
  );
  t.same(names(m, 'd'), ['new', 'newer']);
});

t.test('opaque dirs hide lower children but keep the dir and their own layer entries', async (t) => {
  const m = tree(
    [
      { name: 'o/', type: 'dir', mode: 0o711 },
      { name: 'o/lower', type: 'reg' },
      { name: 'o/sub/x', type: 'reg' },
      { name: 'other/y', type: 'reg' },
    ],
    [
      { name: 'o/.wh..wh..opq', type: 'reg' },
      { name: 'o/mine', type: 'reg' },
    ],
    [{ name: 'o/top', type: 'reg' }],
  );
  t.same(names(m, 'o'), ['mine', 'top']);
  t.match(m.lookup('o'), { mode: 0o711 }, 'the opaque layer implies o; the lower real metadata stays');
  t.equal(m.lookup('o/.wh..wh..opq'), undefined);
  t.same(names(m, 'other'), ['y']);
  const rootOpaque = tree([{ name: 'gone', type: 'reg' }], [{ name: '.wh..wh..opq', type: 'reg' }, { name: 'here', type: 'reg' }]);
  t.same(names(rootOpaque, ''), ['here'], 'an opaque root');
});

t.test('a non-dir over a dir replaces the subtree; a dir over a non-dir replaces it', async (t) => {
  const m = tree(
    [
      { name: 'a/x', type: 'reg' },
      { name: 'b', type: 'reg', content: 'file b' },
      { name: 'c/', type: 'dir' },
    ],
    [
      { name: 'a', type: 'symlink', linkName: '/elsewhere' },
      { name: 'b/y', type: 'reg' },
    ],
    [{ name: 'c/z', type: 'reg' }],
  );
  t.match(m.lookup('a'), { type: 'symlink', linkName: '/elsewhere', size: 10 });
  t.equal(m.lookup('a/x'), undefined);
  t.equal(m.readdir('a'), undefined);
  t.match(m.lookup('b'), { type: 'dir', mode: 0o755 });
  t.same(names(m, 'b'), ['y']);
  t.same(names(m, 'c'), ['z']);
  const below = tree([{ name: 'd/', type: 'dir' }, { name: 'd/old', type: 'reg' }], [{ name: 'd', type: 'fifo' }], [{ name: 'd/new', type: 'reg' }]);
  t.same(names(below, 'd'), ['new'], 'a dir over a fifo over a dir: only the top dir');
});

t.test('implicit parents: 0755 root unless a lower layer has the real dir', async (t) => {
  const m = tree(
    [{ name: 'real/', type: 'dir', mode: 0o1777, uid: 9, gid: 8, modtime: '2022-01-01T00:00:00Z', xattrs: { 'user.k': Buffer.from('v') } }],
    [
      { name: 'real/child', type: 'reg' },
      { name: 'new/child', type: 'reg' },
    ],
  );
  t.match(m.lookup('real'), { mode: 0o1777, uid: 9, gid: 8, mtimeMs: Date.UTC(2022, 0, 1) });
  t.same([...m.xattrs('real')!.keys()], ['user.k']);
  t.match(m.lookup('new'), { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
  t.same(m.xattrs('new'), new Map());
  t.match(m.root, { type: 'dir', mode: 0o755, nlink: 4 });
});

t.test('a dir implied only by whiteouts is not created (umoci skips missing whiteout targets)', async (t) => {
  const m = tree([{ name: 'x', type: 'reg' }], [{ name: 'ghost/.wh.y', type: 'reg' }, { name: 'deep/er/.wh..wh..opq', type: 'reg' }]);
  t.same(names(m, ''), ['x']);
  t.equal(m.lookup('ghost'), undefined);
  const withLower = tree([{ name: 'g/y', type: 'reg' }, { name: 'g/z', type: 'reg' }], [{ name: 'g/.wh.y', type: 'reg' }]);
  t.same(names(withLower, 'g'), ['z'], 'its whiteouts still apply to a real lower dir');
  const odd = tree([{ name: 'w', type: 'reg' }], [{ name: '.wh.w/x', type: 'reg' }]);
  t.same(names(odd, ''), ['.wh.w', 'w'], 'an implied `.wh.w` dir is a plain dir, not a whiteout (umoci looks at base names)');
});

t.test('hardlinks: every name one inode, nlink from the entry', async (t) => {
  const m = tree([
    { name: 'bin/busybox', type: 'reg', content: 'BB', mode: 0o4755 },
    { name: 'bin/sh', type: 'hardlink', linkName: 'bin/busybox' },
    { name: 'bin/ls', type: 'hardlink', linkName: 'bin/busybox' },
  ]);
  const a = m.lookup('bin/busybox')!;
  t.equal(m.lookup('bin/sh')!.ino, a.ino);
  t.equal(m.lookup('bin/ls')!.ino, a.ino);
  t.match(a, { nlink: 3, mode: 0o4755, size: 2 });
  t.equal(Buffer.from(await m.read('bin/ls', 0, 10)).toString(), 'BB');
});

t.test('cross-layer hardlink: resolved below its layer, one inode, nlink of both names, reads from the owner', async (t) => {
  // The bug: layer 2's `hardlink('etc/passwd-again', 'etc/passwd')` with etc/passwd from layer 0 failed the image.
  const l0 = fakeLayer([
    { name: 'etc/passwd', type: 'reg', content: 'root:x:0:0\n', mode: 0o644, uid: 0, xattrs: { 'user.k': Buffer.from('v') } },
    { name: 'bin/bb', type: 'reg', content: 'BB' },
    { name: 'bin/sh', type: 'hardlink', linkName: 'bin/bb' },
  ]);
  const l1 = fakeLayer([{ name: 'other', type: 'reg' }]);
  const l2 = fakeLayer([
    { name: 'etc/passwd-again', type: 'hardlink', linkName: 'etc/passwd' },
    { name: 'bin/ls', type: 'hardlink', linkName: '/bin/sh' },
    { name: 'bin/ls2', type: 'hardlink', linkName: 'bin/ls' },
  ]);
  const logs: string[] = [];
  const m = new MergedTree([l0, l1, l2], { log: (l) => logs.push(l) });
  t.same(names(m, 'etc'), ['passwd', 'passwd-again']);
  const target = m.lookup('etc/passwd')!;
  const link = m.lookup('etc/passwd-again')!;
  t.equal(link, target, 'the same stat object: same inode and metadata');
  t.match(target, { type: 'reg', size: 11, nlink: 2 }, 'nlink 2, as umoci unpack');
  t.equal(Buffer.from(await m.read('etc/passwd-again', 0, 100)).toString(), 'root:x:0:0\n');
  t.same(l0.reads, ['etc/passwd'], 'read from the layer that owns the target');
  t.same(l2.reads, []);
  t.same(m.owner('etc/passwd-again')?.layer, l0);
  t.same([...m.xattrs('etc/passwd-again')!.keys()], ['user.k']);
  t.equal(m.lookup('bin/ls')!.ino, m.lookup('bin/bb')!.ino, 'a link to a lower in-layer hardlink joins that file');
  t.equal(m.lookup('bin/ls2')!.ino, m.lookup('bin/bb')!.ino);
  t.equal(m.lookup('bin/bb')!.nlink, 4, 'bb, sh, ls, ls2');
  t.same(logs, []);
});

t.test('cross-layer hardlink: a missing or directory target leaves the name out, logged once, the image still works', async (t) => {
  const logs: string[] = [];
  const m = new MergedTree(
    [
      fakeLayer([{ name: 'd/', type: 'dir' }, { name: 'gone', type: 'reg' }, { name: 'f', type: 'reg', content: 'F' }]),
      fakeLayer([{ name: '.wh.gone', type: 'reg' }]),
      fakeLayer([
        { name: 'to-missing', type: 'hardlink', linkName: 'nowhere' },
        { name: 'to-dir', type: 'hardlink', linkName: 'd' },
        { name: 'to-deleted', type: 'hardlink', linkName: 'gone' },
        { name: 'sub/to-above', type: 'hardlink', linkName: 'later' },
        { name: 'ok', type: 'reg' },
      ]),
      fakeLayer([{ name: 'later', type: 'reg' }]),
    ],
    { log: (l) => logs.push(l) },
  );
  t.same(names(m, ''), ['d', 'f', 'later', 'ok', 'sub'], 'only the bad names are missing');
  t.same(names(m, 'sub'), []);
  for (const name of ['to-missing', 'to-dir', 'to-deleted', 'sub/to-above']) t.equal(m.lookup(name), undefined, name);
  m.readdir('');
  m.lookup('to-dir');
  t.equal(logs.length, 4, 'one line per left-out link');
  t.match(logs.join('\n'), /"to-dir" left out: its target "d" is a directory/);
  t.match(logs.join('\n'), /"to-missing" left out: its target "nowhere" is missing/);
  t.equal(Buffer.from(await m.read('f', 0, 10)).toString(), 'F');
});

t.test('cross-layer hardlink: whiteouts and upper names count in nlink; an upper layer can delete the link', async (t) => {
  const m = tree(
    [{ name: 'a', type: 'reg', content: 'A' }],
    [{ name: 'link', type: 'hardlink', linkName: 'a' }, { name: 'link2', type: 'hardlink', linkName: 'a' }],
    [{ name: '.wh.a', type: 'reg' }, { name: '.wh.link2', type: 'reg' }],
  );
  t.same(names(m, ''), ['link']);
  t.match(m.lookup('link'), { type: 'reg', size: 1, nlink: 1 }, 'the target name was deleted above; the inode lives on under the link');
  t.equal(Buffer.from(await m.read('link', 0, 10)).toString(), 'A');
  const replaced = tree([{ name: 'a', type: 'reg', content: 'old' }], [{ name: 'l', type: 'hardlink', linkName: 'a' }], [{ name: 'a', type: 'reg', content: 'new!' }]);
  t.match(replaced.lookup('l'), { size: 3, nlink: 1 }, 'a replaced target: the link keeps the old file, as on disk');
  t.match(replaced.lookup('a'), { size: 4, nlink: 1 });
  t.not(replaced.lookup('a')!.ino, replaced.lookup('l')!.ino);
});

t.test('symlinks, devices, fifos, xattrs, uid/gid and mtime pass through', async (t) => {
  const cap = Buffer.from([1, 0, 0, 2, 0x80, 0, 0, 0]);
  const m = tree([
    { name: 'l', type: 'symlink', linkName: '../../x y' },
    { name: 'dev/null', type: 'char', devMajor: 1, devMinor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block', devMajor: 8, devMinor: 0, mode: 0o660, gid: 6 },
    { name: 'p', type: 'fifo', mode: 0o600 },
    { name: 'ping', type: 'reg', uid: 1000, gid: 1001, modtime: '2023-05-06T07:08:09Z', xattrs: { 'security.capability': cap } },
  ]);
  t.match(m.lookup('l'), { type: 'symlink', linkName: '../../x y', size: 9 });
  t.match(m.lookup('dev/null'), { type: 'char', devMajor: 1, devMinor: 3, mode: 0o666 });
  t.match(m.lookup('dev/sda'), { type: 'block', devMajor: 8, devMinor: 0, gid: 6 });
  t.match(m.lookup('p'), { type: 'fifo', mode: 0o600 });
  t.match(m.lookup('ping'), { uid: 1000, gid: 1001, mtimeMs: Date.UTC(2023, 4, 6, 7, 8, 9) });
  t.same(m.xattrs('ping')!.get('security.capability'), cap);
  t.equal(m.xattrs('nope'), undefined);
});

t.test('format artefacts are hidden at the root only', async (t) => {
  const m = tree([
    { name: 'stargz.index.json', type: 'reg' },
    { name: 'sub/stargz.index.json', type: 'reg' },
  ]);
  t.same(names(m, ''), ['sub']);
  t.same(names(m, 'sub'), ['stargz.index.json']);
});

t.test('inodes: stable, unique, shared counter; merged dirs take the owning entry', async (t) => {
  const inodes = createInodeCounter(100);
  const l1 = fakeLayer([{ name: 'd/', type: 'dir', mode: 0o700 }, { name: 'd/a', type: 'reg' }]);
  const l2 = fakeLayer([{ name: 'd/b', type: 'reg' }, { name: 'e', type: 'reg' }]);
  const m = new MergedTree([l1, l2], { inodes });
  const first = ['', 'd', 'd/a', 'd/b', 'e'].map((p) => m.lookup(p)!.ino);
  t.equal(new Set(first).size, 5);
  t.ok(first.every((i) => i >= 100));
  t.same(['', 'd', 'd/a', 'd/b', 'e'].map((p) => m.lookup(p)!.ino), first, 'stable');
  const other = new MergedTree([l1], { inodes });
  t.notOk(first.includes(other.lookup('d/a')!.ino), 'a second tree on the same counter never reuses a number');
  t.equal(m.lookup('d'), m.lookup('d'), 'the same frozen stat object');
});

t.test('negative lookups and non-dir traversal', async (t) => {
  const specs: Spec[] = [];
  for (let i = 0; i < 2000; i++) specs.push({ name: `lib/python3/m${i}.py`, type: 'reg' });
  const m = tree(specs, [{ name: 'lib/python3/m0.py', type: 'reg' }]);
  t.equal(m.readdir('lib/python3')!.length, 2000);
  // Their cost is measured by bench/negative-lookups.ts, not asserted here (no timings in tests).
  let found = 0;
  for (let i = 0; i < 100_000; i++) if (m.lookup(`lib/python3/missing${i}.so`) !== undefined) found++;
  t.equal(found, 0, '100k distinct missing names are all missing');
  t.equal(m.readdir('lib/python3')!.length, 2000, 'and failed lookups add nothing to the directory');
  t.equal(m.lookup('lib/python3/m1.py/x'), undefined);
  t.equal(m.lookup('nope/x'), undefined);
  t.equal(m.readdir('lib/python3/m1.py'), undefined);
});

t.test('an image without layers is an empty root', async (t) => {
  const m = new MergedTree([]);
  t.match(m.root, { type: 'dir', nlink: 2 });
  t.same(m.readdir(''), []);
});
