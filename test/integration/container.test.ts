// deploy/Dockerfile end to end (issue 7): the image built by the README's offline route
// (scripts/container-image.sh) runs `tocfs mount` with /dev/fuse and SYS_ADMIN; its mount propagates to
// the host through an rshared bind, a host process reads a demo image through it, and `podman stop`
// (SIGTERM) unmounts cleanly: the container exits 0 and the host sees no mount left.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { buildImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { makeTempDir, removeDir, tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL('../../scripts/container-image.sh', import.meta.url));
/** podman on this VM (TESTING.md): runc, and no CAP_SYS_RESOURCE for raising ulimits. */
const PODMAN_VM = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

async function fuseMountsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([, where, type]) => where !== undefined && where.startsWith(dir) && type?.startsWith('fuse'))
    .map(([, where]) => where!);
}

t.test('the container mounts images that a host process reads, and unmounts on podman stop', async (t) => {
  // Prebuilt by scripts/test.sh; quick here when nothing changed (podman's layer cache).
  const image = process.env['TOCFS_TEST_CONTAINER_IMAGE'] ?? (await run('bash', [BUILD], { timeout: 900_000 })).stdout.trim();
  const work = tempDir(t, 'container');
  const reg = await startRegistry(t);
  const built = await buildImage(join(work, 'demo'), {
    layers: [{ entries: [dir('etc'), file('etc/message', 'read on the host through the container\n')], compression: 'gzip' }],
  });
  await pushImage(reg.seedUrl, 'demo/app', 'v1', built);

  // The host side of the bind must be a shared mount for the container's mount to propagate back.
  const srv = makeTempDir('container-srv');
  const name = `tocfs-test-${process.pid}`;
  t.teardown(async () => {
    await run('podman', ['rm', '-f', '-t', '5', name]).catch(() => {});
    for (const where of (await fuseMountsUnder(srv)).reverse()) await run('umount', ['-l', where]).catch(() => {});
    await run('umount', ['-l', srv]).catch(() => {});
    removeDir(srv);
  });
  await run('mount', ['--bind', srv, srv]);
  await run('mount', ['--make-shared', srv]);

  await run('podman', [
    'run', '-d', '--name', name, ...PODMAN_VM,
    '--device', '/dev/fuse', '--cap-add', 'SYS_ADMIN', '--security-opt', 'apparmor=unconfined',
    '--network', 'host', '-v', `${srv}:/srv/tocfs:rshared`, image,
  ]);
  let mounted: string[] = [];
  for (let i = 0; i < 300 && mounted.length === 0; i++) {
    await sleep(100);
    mounted = await fuseMountsUnder(srv);
  }
  t.same(mounted, [srv], 'the FUSE mount made in the container shows on the host');

  const path = join(srv, 'images', reg.host, 'demo/app:v1/etc/message');
  const read = await run('cat', [path]);
  t.equal(read.stdout, 'read on the host through the container\n', 'a host process reads the image');
  const listed = await run('ls', ['-a', join(srv, 'images', reg.host, 'demo/app:v1')]);
  t.match(listed.stdout, /\.singularity\.d/, 'with the Singularity entries synthesised');

  await run('podman', ['stop', '-t', '20', name]);
  const state = (await run('podman', ['inspect', '--format', '{{.State.ExitCode}}', name])).stdout.trim();
  t.equal(state, '0', 'SIGTERM: tocfs exits 0');
  const logs = await run('podman', ['logs', name]);
  t.match(`${logs.stdout}${logs.stderr}`, /unmounted \/srv\/tocfs/, 'after unmounting');
  t.same(await fuseMountsUnder(srv), [], 'and the host sees no mount left');
});
