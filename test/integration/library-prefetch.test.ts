// Library prefetch on a real mount (src/image/library-prefetch.ts): opening a program in an eStargz image
// served by a real registry fetches its loader and libraries in the background, so that running it
// afterwards sends no request at all; the same image with prefetch off is the control (the run fetches).
// Every command on the mount runs in a child process: FUSE ops are served on this process's JS thread.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { hostRootfsEntries, sharedLibraries } from '../support/host-rootfs.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const quiet = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('opening /bin/ls fetches what the loader needs: running it then sends no request', async (t) => {
  t.ok(sharedLibraries('/bin/ls').length >= 3, `/bin/ls needs ${sharedLibraries('/bin/ls').join(', ')}`);
  const work = tempDir(t, 'library-prefetch');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  // Small chunks and one file per chunk: nothing rides along by accident of layout.
  const layer = await estargzLayerFile(join(work, 'layer'), hostRootfsEntries(['/bin/ls']), { chunkSize: 256 << 10 });
  const image = await buildImage(join(work, 'image'), { layers: [layer] });
  await pushImage(reg.seedUrl, 'prefetch/ls', 'v1', image);
  const { mnt } = await mountDaemon(t, 'library-prefetch');
  const root = join(mnt, 'images', proxy.host, 'prefetch/ls:v1');

  // Open the program the way exec does first: its head, at offset 0.
  const { stdout: magic } = await run('head', ['-c', '4', join(root, 'usr/bin/ls')], { encoding: 'latin1' });
  t.equal(magic, '\x7fELF');
  await quiet(1000);
  const before = proxy.counters.byKind.blobs.requests;
  t.ok(before >= 2, `${before} blob requests: the program, then its libraries`);
  const { stdout } = await run('chroot', [root, '/usr/bin/ls', '/usr']);
  t.match(stdout, /bin/);
  t.equal(proxy.counters.byKind.blobs.requests, before, 'running ls sent no blob request: the loader and every library were here');
});
