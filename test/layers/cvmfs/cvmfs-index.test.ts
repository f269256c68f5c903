// CvmfsDirIndex and CvmfsLayer over real directories (as root): what a listing shows, that it lists one
// directory at a time, both whiteout forms, and reads with their per-file registry fallback.
import { execFile } from 'node:child_process';
import { link, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { indexToc } from '../../../src/formats/toc-index.js';
import type { TocEntry } from '../../../src/formats/toc.js';
import { MergedTree } from '../../../src/image/merged-tree.js';
import { CvmfsDirIndex } from '../../../src/layers/cvmfs/cvmfs-index.js';
import { CvmfsBackedLayer, CvmfsLayer } from '../../../src/layers/cvmfs/cvmfs-layer.js';
import type { Layer } from '../../../src/layers/layer.js';
import { CvmfsFileError, CvmfsSource } from '../../../src/layers/cvmfs/cvmfs-source.js';
import { tempDir } from '../../support/tmp.js';
import { noFigures } from '../../support/layers.js';

const run = promisify(execFile);
const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** A layerfs with every kind of entry, overlayfs whiteouts in `ovl/`, tar whiteouts in `tarwh/`. */
async function makeLayerfs(root: string): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await writeFile(join(root, 'usr/bin/tool'), 'tool bytes');
  await link(join(root, 'usr/bin/tool'), join(root, 'usr/bin/tool-2'));
  await run('setfattr', ['-n', 'user.kind', '-v', 'binary', join(root, 'usr/bin/tool')]);
  await symlink('../lib/x', join(root, 'usr/bin/link'));
  await mkdir(join(root, 'deep/a/b/c'), { recursive: true });
  await writeFile(join(root, 'deep/a/b/c/leaf'), 'leaf');
  await mkdir(join(root, 'ovl/opaque-dir'), { recursive: true });
  await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(root, 'ovl/opaque-dir')]);
  await writeFile(join(root, 'ovl/opaque-dir/kept'), 'k');
  await run('mknod', [join(root, 'ovl/deleted'), 'c', '0', '0']);
  await mkdir(join(root, 'tarwh/opq'), { recursive: true });
  await writeFile(join(root, 'tarwh/opq/.wh..wh..opq'), '');
  await writeFile(join(root, 'tarwh/.wh.gone'), '');
  await mkdir(join(root, 'dev'));
  await run('mknod', ['-m', '640', join(root, 'dev/sdq'), 'b', '259', '300']);
  await run('mknod', [join(root, 'dev/null'), 'c', '1', '3']);
  await run('mkfifo', [join(root, 'dev/fifo')]);
}

t.test('lists one directory at a time and shows entries as a TOC would', async (t) => {
  const root = tempDir(t, 'cvmfs-index');
  await makeLayerfs(root);
  const index = await CvmfsDirIndex.open(root, { whiteouts: true, format: 'cvmfs' });
  t.throws(() => index.children(''), /before it was listed/, 'nothing is listed up front');
  await index.listDir('');
  t.same([...index.children('')!.keys()].sort(), ['deep', 'dev', 'ovl', 'tarwh', 'usr']);
  t.notOk(index.listed('usr'), 'a subdirectory is listed only when asked for');
  await index.listDir('usr');
  await index.listDir('usr/bin');
  t.notOk(index.listed('deep') || index.listed('deep/a'), 'untouched directories stay unlisted');
  const tool = index.lookup('usr/bin/tool')!;
  t.equal(index.lookup('usr/bin/tool-2'), tool, 'hardlinks share one entry (one inode)');
  t.match(tool, { type: 'reg', size: 10, nlink: 2 });
  t.equal(Buffer.from(tool.xattrs!['user.kind']!).toString(), 'binary');
  t.match(index.lookup('usr/bin/link'), { type: 'symlink', linkName: '../lib/x', size: 8 });
  await index.listDir('dev');
  t.match(index.lookup('dev/sdq'), { type: 'block', devMajor: 259, devMinor: 300, mode: 0o640 });
  t.match(index.lookup('dev/null'), { type: 'char', devMajor: 1, devMinor: 3 });
  t.match(index.lookup('dev/fifo'), { type: 'fifo' });
});

t.test('overlayfs whiteouts are shown in the tar form; tar whiteouts as they are', async (t) => {
  const root = tempDir(t, 'cvmfs-index-wh');
  await makeLayerfs(root);
  const index = await CvmfsDirIndex.open(root, { whiteouts: true, format: 'cvmfs' });
  await index.listDir('');
  await index.listDir('ovl');
  t.same([...index.children('ovl')!.keys()].sort(), ['.wh.deleted', 'opaque-dir']);
  t.match(index.lookup('ovl/.wh.deleted'), { type: 'reg', size: 0 }, 'char 0/0 -> .wh.NAME');
  t.ok(index.lookup('ovl/opaque-dir/.wh..wh..opq'), 'opaque by xattr is known before the dir is listed');
  t.notOk(index.lookup('ovl/opaque-dir')!.xattrs, 'trusted.overlay.* is not an image xattr');
  await index.listDir('ovl/opaque-dir');
  t.same([...index.children('ovl/opaque-dir')!.keys()].sort(), ['.wh..wh..opq', 'kept']);
  await index.listDir('tarwh');
  t.ok(index.lookup('tarwh/opq/.wh..wh..opq'), 'a .wh..wh..opq file marks its dir before it is listed');
  t.ok(index.lookup('tarwh/.wh.gone'));
  const order = [...index.walk()].map(([path]) => path);
  const late = order.filter((path, i) => path !== '' && !order.slice(0, i).includes(path.slice(0, Math.max(0, path.lastIndexOf('/')))));
  t.same(late, [], 'walk() lists parents before children, opaque markers noted early included');

  const flat = await CvmfsDirIndex.open(root, { whiteouts: false, format: 'cvmfs-flat' });
  await flat.listDir('');
  await flat.listDir('ovl');
  t.match(flat.lookup('ovl/deleted'), { type: 'char', devMajor: 0, devMinor: 0 }, 'a flat tree takes names literally');
});

/** A registry copy of the layer: a TOC with the same files, bytes from a table; counts reads. */
function registryCopy(files: Record<string, string>): Layer & { reads: string[] } {
  const raw = Object.entries(files).map(([name, content], i) => ({ name, type: 'reg' as const, mode: 0o644, size: content.length, offset: i * 10, digest: `sha256:${'0'.repeat(64)}`, chunkDigest: `sha256:${'0'.repeat(64)}` }));
  const index = indexToc(raw, { format: 'estargz-gzip', tocOffset: raw.length * 10 + 10 });
  const reads: string[] = [];
  return {
    digest: DIGEST,
    index,
    tocSource: 'blob',
    figures: noFigures('estargz-gzip'),
    reads,
    async read(entry: TocEntry, off: number, len: number) {
      reads.push(entry.path);
      return Buffer.from(files[entry.path]!).subarray(off, off + len);
    },
  };
}

t.test('CvmfsLayer reads from CVMFS and falls back per file, logged once per layer', async (t) => {
  const root = tempDir(t, 'cvmfs-layer');
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/a'), 'alpha');
  await writeFile(join(root, 'etc/b'), 'bravo');
  await writeFile(join(root, 'etc/c'), 'charlie');
  const source = new CvmfsSource(root);
  const index = await CvmfsDirIndex.open(root, { whiteouts: true, format: 'cvmfs' });
  const logs: string[] = [];
  const copy = registryCopy({ 'etc/a': 'alpha', 'etc/b': 'bravo', 'etc/c': 'charlie' });
  let opened = 0;
  const layer = new CvmfsLayer({ digest: DIGEST, index, source, fallback: async () => (opened++, copy), log: (l) => logs.push(l) });
  await layer.listDir('');
  await layer.listDir('etc');
  const entry = (p: string): TocEntry => index.lookup(p)!;
  t.equal(Buffer.from(await layer.read(entry('etc/a'), 1, 3)).toString(), 'lph');
  t.equal(Buffer.from(await layer.read(entry('etc/a'), 3, 100)).toString(), 'ha', 'clamped at the end');
  t.equal(opened, 0, 'the registry copy is not opened while CVMFS serves');
  await truncate(join(root, 'etc/b'), 2);
  const { rm } = await import('node:fs/promises');
  await rm(join(root, 'etc/c'));
  t.equal(Buffer.from(await layer.read(entry('etc/b'), 0, 100)).toString(), 'bravo', 'wrong size on CVMFS: registry bytes');
  t.equal(Buffer.from(await layer.read(entry('etc/c'), 0, 100)).toString(), 'charlie', 'gone from CVMFS: registry bytes');
  t.equal(opened, 1, 'the registry copy is opened once');
  t.equal(logs.length, 1, 'logged once for the layer');
  t.match(logs[0], /etc\/b: 2 bytes, the image's file has 5/);
  t.match(layer.stats(), { source: 'cvmfs+registry', bytesCvmfs: 5, bytesRegistry: 12, filesFromRegistry: 2 });
});

t.test('CvmfsSource.readFile: missing, wrong size, symlink, short: CvmfsFileError; layer states', async (t) => {
  const root = tempDir(t, 'cvmfs-source');
  const source = new CvmfsSource(root);
  await writeFile(join(root, 'f'), '12345');
  await symlink('f', join(root, 'l'));
  t.equal(Buffer.from(await source.readFile(join(root, 'f'), 5, 0, 5)).toString(), '12345');
  await t.rejects(source.readFile(join(root, 'f'), 6, 0, 6), CvmfsFileError);
  await t.rejects(source.readFile(join(root, 'l'), 5, 0, 5), CvmfsFileError, 'never follows a symlink');
  await t.rejects(source.readFile(join(root, 'none'), 5, 0, 5), CvmfsFileError);
  t.match(source.stats(), { bytesRead: 5, reads: 4, failedReads: 3 });

  const hex = 'cd'.repeat(32);
  t.equal(await source.layerState(`sha256:${hex}`), 'absent');
  t.equal(await source.layerState('sha512:00'), 'absent', 'only sha256 digests name paths');
  await mkdir(join(root, '.layers', 'cd', hex, 'layerfs'), { recursive: true });
  t.equal(await source.layerState(`sha256:${hex}`), 'unconfirmed');
  await mkdir(join(root, '.layers', 'cd', hex, '.metadata'));
  await writeFile(join(root, '.layers', 'cd', hex, '.metadata', 'origin.json'), '{"origin":[]}');
  t.equal(await source.layerState(`sha256:${hex}`), 'published');
  t.equal(await source.metadataManifest('registry.hub.docker.com', 'library/x', 'v1'), undefined);
});

t.test('CVMFS reads take only the layer\'s own regular files: a FIFO never blocks, another layer\'s entry is refused', async (t) => {
  const root = tempDir(t, 'cvmfs-own-files');
  const other = tempDir(t, 'cvmfs-other-layer');
  for (const dir of [root, other]) {
    await writeFile(join(dir, 'same'), dir === root ? 'mine' : 'them');
    await run('mkfifo', [join(dir, 'fifo')]);
  }
  const source = new CvmfsSource('/');
  // open(2) of a FIFO waits for a writer: without O_NONBLOCK this read would never settle.
  await t.rejects(source.readFile(join(root, 'fifo'), 0, 0, 1), CvmfsFileError, 'readFile refuses a FIFO at once');
  const indexes = await Promise.all([root, other].map((dir) => CvmfsDirIndex.open(dir, { whiteouts: true, format: 'cvmfs' })));
  for (const index of indexes) await index.listDir('');
  const [mine, theirs] = indexes as [CvmfsDirIndex, CvmfsDirIndex];
  const copy = registryCopy({ same: 'mine' });
  let opened = 0;
  const layer = new CvmfsLayer({ digest: DIGEST, index: mine, source, fallback: async () => (opened++, copy), log: () => {} });
  t.equal(Buffer.from(await layer.read(mine.lookup('same')!, 0, 10)).toString(), 'mine');
  await t.rejects(layer.read(theirs.lookup('same')!, 0, 10), { code: 'NOT_FOUND' }, "another layer's file at the same path is not read from this one");
  await t.rejects(layer.read(mine.lookup('fifo')!, 0, 1), { code: 'FORMAT' }, 'a FIFO entry is not a file to read');
  t.equal(opened, 0, 'neither went to the registry');
  const tocIndex = indexToc([{ name: 'same', type: 'reg', size: 4, offset: 0, endOffset: 1, chunkOffset: 0, chunkSize: 4 }, { name: 'fifo', type: 'fifo' }], { format: 'estargz-gzip', tocOffset: 1 });
  const inner: Layer = { ...copy, index: tocIndex };
  const backed = new CvmfsBackedLayer({ inner, layerfs: root, source, log: () => {} });
  t.equal(Buffer.from(await backed.read(tocIndex.lookup('same')!, 0, 10)).toString(), 'mine', 'the backed layer reads its file from layerfs');
  await t.rejects(backed.read(theirs.lookup('same')!, 0, 10), { code: 'NOT_FOUND' }, "the backed layer refuses another layer's entry");
  await t.rejects(backed.read(tocIndex.lookup('fifo')!, 0, 1), { code: 'FORMAT' }, 'the backed layer refuses a FIFO entry');
});

t.test("an overlayfs whiteout (no file on layerfs) and reads past EOF are empty, without the registry's copy", async (t) => {
  const root = tempDir(t, 'cvmfs-empty-reads');
  await makeLayerfs(root);
  const index = await CvmfsDirIndex.open(root, { whiteouts: true, format: 'cvmfs' });
  let opened = 0;
  const layer = new CvmfsLayer({ digest: DIGEST, index, source: new CvmfsSource(root), fallback: async () => (opened++, registryCopy({})), log: () => {} });
  for (const dir of ['', 'ovl', 'ovl/opaque-dir', 'usr', 'usr/bin']) await layer.listDir(dir);
  for (const path of ['ovl/.wh.deleted', 'ovl/opaque-dir/.wh..wh..opq']) t.same(await layer.read(index.lookup(path)!, 0, 10), new Uint8Array(0), `${path}: empty`);
  t.same(await layer.read(index.lookup('usr/bin/tool')!, 10, 5), new Uint8Array(0), 'a read at EOF is empty');
  t.same(await layer.read(index.lookup('usr/bin/tool')!, 2, 0), new Uint8Array(0), 'a read of 0 bytes is empty');
  t.equal(opened, 0, "the registry's copy is never opened");
  t.match(layer.stats(), { source: 'cvmfs', filesFromRegistry: 0 });
});

t.test('the merged tree over CVMFS layers lists only the directories on the path asked for', async (t) => {
  const lower = tempDir(t, 'cvmfs-merge-lower');
  const upper = tempDir(t, 'cvmfs-merge-upper');
  await makeLayerfs(lower);
  await mkdir(join(upper, 'usr/bin'), { recursive: true });
  await writeFile(join(upper, 'usr/bin/tool'), 'new tool');
  await mkdir(join(upper, 'tarwh'));
  await run('mknod', [join(upper, 'tarwh/opq'), 'c', '0', '0']);
  const source = new CvmfsSource('/');
  const layers = await Promise.all(
    [lower, upper].map(async (dir, i) => new CvmfsLayer({ digest: `sha256:${String(i).repeat(64)}`, index: await CvmfsDirIndex.open(dir, { whiteouts: true, format: 'cvmfs' }), source, log: () => {} })),
  );
  const tree = new MergedTree(layers);
  await tree.load('usr/bin/tool');
  t.equal(tree.lookup('usr/bin/tool')?.size, 8, 'the upper layer wins');
  t.equal(tree.lookup('usr/bin/tool-2')?.size, 10, 'the lower layer\'s hardlink stays');
  t.notOk(layers[0]!.index.listed('deep'), 'deep/ was never listed');
  t.notOk(layers[0]!.index.listed('dev'), 'dev/ was never listed');
  await tree.load('tarwh');
  t.same(tree.readdir('tarwh'), [], 'a char 0/0 whiteout in the upper layer deletes the lower directory');
  t.equal(Buffer.from(await tree.read('usr/bin/tool', 0, 100)).toString(), 'new tool');
});

t.test('a TOC layer\'s hardlink to a file of a CVMFS layer below resolves (its target is listed first)', async (t) => {
  const lower = tempDir(t, 'cvmfs-merge-link');
  await makeLayerfs(lower);
  const cvmfsLayer = new CvmfsLayer({ digest: DIGEST, index: await CvmfsDirIndex.open(lower, { whiteouts: true, format: 'cvmfs' }), source: new CvmfsSource('/'), log: () => {} });
  const { fakeLayer } = await import('../../image/fake-layers.js');
  const upper = fakeLayer([{ name: 'etc/', type: 'dir' }, { name: 'etc/tool-again', type: 'hardlink', linkName: 'usr/bin/tool' }]);
  const tree = new MergedTree([cvmfsLayer, upper]);
  await tree.load('etc/tool-again');
  const link = tree.lookup('etc/tool-again');
  t.equal(link?.ino, tree.lookup('usr/bin/tool')?.ino, 'one inode');
  t.equal(link?.nlink, 3, 'its two names below and the link');
  t.equal(Buffer.from(await tree.read('etc/tool-again', 0, 100)).toString(), 'tool bytes');
});
