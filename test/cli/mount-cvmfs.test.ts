// `tocfs mount MNT --cvmfs DIR` as users run it, with no registry at all: the image's tag is recorded by
// DUCC under DIR/.metadata and every layer is unpacked under DIR/.layers, so the image mounts and its files
// read while its registry host refuses every connection.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { buildDuccRepo, readOnlyBind } from '../support/ducc-layout.js';
import { buildImage } from '../support/image-builder.js';
import { dir, file, whiteout } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { isMounted, unmountPath } from '../../src/fuse/mount.js';

/** Port 9 (discard) on loopback: nothing listens, every connection is refused at once. */
const NOWHERE = '127.0.0.1:9';

t.test('tocfs mount --cvmfs DIR serves an image from DUCC\'s layout with its registry unreachable', async (t) => {
  const work = tempDir(t, 'cli-cvmfs');
  const mnt = tempDir(t, 'cli-cvmfs-mnt');
  const image = await buildImage(join(work, 'image'), {
    layers: [
      { entries: [dir('etc'), file('etc/hostname', 'from-cvmfs\n'), file('etc/gone', 'x')], compression: 'gzip' },
      { entries: [dir('etc'), whiteout('etc/gone'), file('etc/motd', 'hello\n')], compression: 'gzip' },
    ],
  });
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: NOWHERE, repository: 'app/x', tag: 'v1', layers: ['tar', 'overlay'] });
  const cvmfs = await readOnlyBind(t, ducc, 'cli-cvmfs');

  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'tocfs-child.ts'), 'mount', mnt, '--cvmfs', cvmfs, '--cache-dir', join(work, 'cache')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', ok));
  t.teardown(async () => {
    if (await isMounted(mnt)) await unmountPath(mnt).catch(() => {});
    child.kill('SIGKILL');
  });
  await new Promise<void>((ok, fail) => {
    child.stderr!.on('data', () => stderr.includes('mounted at') && ok());
    void exited.then((code) => fail(new Error(`tocfs mount exited ${code}: ${stderr}`)));
  });
  t.match(stderr, `CVMFS: serving layers and images published under ${cvmfs}`);
  const root = join(mnt, 'images', NOWHERE, 'app/x:v1');
  t.equal(await readFile(join(root, 'etc/hostname'), 'utf8'), 'from-cvmfs\n');
  t.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'hello\n');
  await t.rejects(readFile(join(root, 'etc/gone')), { code: 'ENOENT' }, 'an overlayfs whiteout deletes the lower file');
  t.match(stderr, /registry unreachable .*using DUCC's manifest record/);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM unmounts and exits 0');
  t.notOk(await isMounted(mnt));
});
