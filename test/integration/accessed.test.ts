// The optimise workflow on a real registry and a real mount: files read through the mount are listed by
// `tocfs stats MNT --accessed IMAGE_DIR` in the order they were first read, and `tocfs convert
// --prioritize-from` of that list writes them (with their parents) before `.prefetch.landmark`.
// The stats CLI runs in a child process: getfattr on a mount served by this process's JS thread must not
// block it.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { runTocfs, runTocfsChild } from '../support/cli.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, symlink } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { readAll } from '../convert/tar-vectors.js';

t.test('stats --accessed lists the files read, first read first; convert --prioritize-from puts them first', async (t) => {
  const work = tempDir(t, 'accessed');
  const reg = await startRegistry(t);
  const image = await buildImage(join(work, 'image'), {
    layers: [
      {
        compression: 'gzip',
        entries: [
          dir('a'),
          file('a/one', 'one\n'),
          file('a/unread', 'never read\n'),
          dir('b'),
          file('b/three', 'three\n'),
          dir('c'),
          file('c/four', { size: 300_000 }),
          symlink('c/link', 'four'),
        ],
      },
    ],
  });
  await pushImage(reg.seedUrl, 'opt/app', 'v1', image);
  const { mnt } = await mountDaemon(t, 'accessed');
  const rel = `images/${reg.host}/opt/app:v1`;
  const root = join(mnt, rel);

  const before = await runTocfsChild(['stats', mnt, '--accessed', rel]);
  t.equal(before.code, 0, before.err);
  t.equal(before.text, '', 'nothing read yet');

  t.equal(await readFile(join(root, 'b/three'), 'utf8'), 'three\n');
  t.equal(await readFile(join(root, 'a/one'), 'utf8'), 'one\n');
  t.equal(await readFile(join(root, 'b/three'), 'utf8'), 'three\n', 'read again');
  t.equal((await readFile(join(root, 'c/link'))).length, 300_000, 'through a symlink: the target is read');

  const listed = await runTocfsChild(['stats', mnt, '--accessed', rel]);
  t.equal(listed.code, 0, listed.err);
  t.equal(listed.text, '/b/three\n/a/one\n/c/four\n', 'each file once, in first-read order');
  for (const form of [root, `${reg.host}/opt/app:v1`]) {
    const r = await runTocfsChild(['stats', mnt, '--accessed', form, '--json']);
    t.same(JSON.parse(r.text), ['/b/three', '/a/one', '/c/four'], `IMAGE_DIR given as ${form}`);
  }
  const bad = await runTocfsChild(['stats', mnt, '--accessed', 'images']);
  t.equal(bad.code, 1, 'a directory that is no image root is refused');
  t.match(bad.err, /is not an image root of a tocfs mount/);

  const figures = JSON.parse((await runTocfsChild(['stats', mnt, '--json'])).text) as { fuse_ops: { read: number; lookup: number } };
  t.ok(figures.fuse_ops.read >= 3, `FUSE reads counted: ${JSON.stringify(figures.fuse_ops)}`);
  t.ok(figures.fuse_ops.lookup >= 5, 'and lookups');
  t.match((await runTocfsChild(['stats', mnt])).text, /fuse_ops +lookup=\d+ readdir=\d+ read=\d+ xattrs=\d+/);

  const list = join(work, 'accessed.txt');
  await writeFile(list, `# recorded by tocfs stats --accessed\n${listed.text}\n`);
  const dst = `${reg.host}/opt/app:optimized`;
  const conv = await runTocfs(['convert', `${reg.host}/opt/app:v1`, dst, '--prioritize-from', list]);
  t.equal(conv.code, 0, conv.err);
  t.notMatch(conv.text, /warning/, 'every listed file was found');
  const client = new RegistryClient({});
  t.teardown(() => client.close());
  const ref = parseReference(dst);
  const resolved = await client.resolve(ref);
  const layer = resolved.manifest.document.layers[0]!;
  const chunks: Buffer[] = [];
  for await (const chunk of client.streamBlob(ref, layer)) chunks.push(Buffer.from(chunk));
  const names = readAll(gunzipSync(Buffer.concat(chunks))).records.map((r) => r.header.path);
  t.same(names.slice(0, 7), ['b/', 'b/three', 'a/', 'a/one', 'c/', 'c/four', '.prefetch.landmark'], 'recorded files first, in order, with their parents');

  const missing = await runTocfs(['convert', `${reg.host}/opt/app:v1`, dst, '--prioritize-from', join(work, 'nope.txt')]);
  t.equal(missing.code, 2);
  t.match(missing.err, /--prioritize-from .*nope\.txt: ENOENT/);
});
