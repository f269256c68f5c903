// The composition root mounted for real, without a registry: the root, its figures, a close that
// unmounts and disposes everything; and the `tocfs mount` / `tocfs unmount` command lines.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { createDaemon } from '../../src/daemon/daemon.js';
import { isMounted } from '../../src/fuse/mount.js';
import { main } from '../../src/cli/main.js';

const run = promisify(execFile);

t.test('createDaemon mounts the image namespace and close() takes it all down', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-daemon-'));
  const cache = await mkdtemp(join(tmpdir(), 'tocfs-daemon-cache-'));
  const logs: string[] = [];
  const daemon = await createDaemon({ mountpoint: dir, cacheDir: cache, cacheSize: 2 ** 20, handleSignals: false, log: (l) => logs.push(l) });
  t.teardown(async () => {
    await daemon.close();
    await rm(dir, { recursive: true, force: true });
    await rm(cache, { recursive: true, force: true });
  });
  t.same((await readdir(dir)).sort(), ['images', 'layers']);
  t.ok((await stat(join(dir, 'images'))).isDirectory());
  const { stdout } = await run('python3', ['-c', 'import os, sys; print(os.getxattr(sys.argv[1], "user.tocfs.requests").decode())', dir]);
  t.match(stdout.trim(), /^\d+$/);
  await t.rejects(stat(join(dir, 'nothing-here')), { code: 'ENOENT' });
  await daemon.close();
  await daemon.closed;
  t.notOk(await isMounted(dir), 'unmounted');
});

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { io: { stdout, stderr }, err: () => err };
}

t.test('tocfs mount / unmount usage errors', async (t) => {
  let c = io();
  t.equal(await main(['mount'], c.io), 2);
  t.match(c.err(), /missing mount point/);
  c = io();
  t.equal(await main(['mount', '/tmp/x', '--cvmfs', '/cvmfs/unpacked.cern.ch', '--no-cvmfs'], c.io), 2);
  t.match(c.err(), /--cvmfs and --no-cvmfs exclude each other/);
  c = io();
  t.equal(await main(['mount', '/tmp/x', '--cvmfs', '/nonexistent/unpacked.cern.ch'], c.io), 1);
  t.match(c.err(), /invalid option --cvmfs: \/nonexistent\/unpacked.cern.ch is not a directory/);
  c = io();
  t.equal(await main(['mount', '/tmp/x', '--bogus'], c.io), 2);
  c = io();
  t.equal(await main(['unmount'], c.io), 2);
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-notmounted-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  c = io();
  t.equal(await main(['unmount', dir], c.io), 1);
  t.match(c.err(), /is not mounted/);
});
