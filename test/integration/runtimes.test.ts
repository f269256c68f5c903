// Container runtimes over the mount, as an unprivileged user (issue 7, TESTING.md "Runtimes over a FUSE
// tree"): real Apptainer (Debian sid's, from a cached sid root run with scripts/in-rootfs.sh), bubblewrap
// and rootless podman start a real Debian image from MNT/images/... served by a real registry. The daemon
// runs in this process as root with allow_other + default_permissions; every check runs in a child.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { mountDaemon } from '../support/mount-daemon.js';
import { startRegistry } from '../support/registry.js';
import { BOOKWORM_MINBASE, SID_APPTAINER, SID_MINBASE, cachedRootfs, cachedRootfsImage, pushLayout } from '../support/rootfs.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const IN_ROOTFS = fileURLToPath(new URL('../../scripts/in-rootfs.sh', import.meta.url));
/** The unprivileged user every runtime runs as. */
const NOBODY = 65534;
const IMAGE_PATH = '/opt/tocfs-test/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** podman on this VM: runc (crun fails on hybrid cgroups), no CAP_SYS_RESOURCE for higher ulimits (TESTING.md). */
const PODMAN = ['run', '--rm', '--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', '--network', 'none'];

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command in a child; never rejects, so failures can be asserted on. (Node gives children a socket
 * as stdin, which makes a non-interactive bash read root's ~/.bashrc as if started by rshd: hence
 * `bash --norc` below.)
 */
async function sh(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }): Promise<Result> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 << 20, timeout: 120_000, env, cwd: '/' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** `cmd args` as the unprivileged user, with a clean environment. */
function asNobody(cmd: string, args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  const vars = Object.entries({ PATH: '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`);
  return sh('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'env', '-i', ...vars, cmd, ...args]);
}

/** The cached minbase bookworm image with a config of its own: a PATH, an Env entry, Entrypoint and Cmd. */
async function runtimeImage(work: string): Promise<string> {
  const cached = await cachedRootfsImage('bookworm-minbase', [BOOKWORM_MINBASE]);
  // Blobs are content-addressed and umoci only adds new ones: hardlink them, copy the rest.
  const layout = join(work, 'layout');
  await mkdir(join(layout, 'blobs'), { recursive: true });
  await run('cp', ['-al', join(cached, 'blobs/sha256'), join(layout, 'blobs/sha256')]);
  await run('cp', [join(cached, 'index.json'), join(cached, 'oci-layout'), layout]);
  await run('umoci', [
    'config', '--image', `${layout}:latest`, '--tag', 'runtimes',
    '--config.env', `PATH=${IMAGE_PATH}`, '--config.env', 'GREETING=hello from the image config',
    '--config.entrypoint', '/bin/echo', '--config.entrypoint', 'entrypoint says',
    '--config.cmd', 'the default cmd',
  ]);
  return layout;
}

t.test('Apptainer, bwrap and podman run an image from the mount as an unprivileged user', async (t) => {
  const work = tempDir(t, 'runtimes');
  const reg = await startRegistry(t);
  await pushLayout(await runtimeImage(work), 'runtimes', reg.seedHost, 'test/runtimes:v1');
  // allow_other + default_permissions: the default, stated here since everything below depends on it.
  const { mnt, logs } = await mountDaemon(t, 'runtimes', { allowOther: true });
  const image = join(mnt, 'images', reg.host, 'test/runtimes:v1');
  const probe = 'echo "$PATH"; cat /etc/debian_version; echo "$GREETING"';
  const debianVersion = (await readFile(join(await cachedRootfs(BOOKWORM_MINBASE), 'etc/debian_version'), 'utf8')).trim();
  const probed = `${IMAGE_PATH}\n${debianVersion}\nhello from the image config\n`;

  await t.test('files the image keeps private stay private; the rest is readable', async (t) => {
    const shadow = await sh('stat', ['-c', '%a %U %G', join(image, 'etc/shadow')]);
    t.equal(shadow.stdout, '640 root shadow\n');
    const denied = await asNobody('cat', [join(image, 'etc/shadow')]);
    t.not(denied.code, 0, 'nobody cannot read /etc/shadow');
    t.match(denied.stderr, /Permission denied/);
    t.same(await asNobody('cat', [join(image, 'etc/debian_version')]), { code: 0, stdout: `${debianVersion}\n`, stderr: '' });
    t.same(await asNobody('ls', [join(image, 'root')]), { code: 2, stdout: '', stderr: `ls: cannot open directory '${join(image, 'root')}': Permission denied\n` }, '/root 0700 stays closed');
    const write = await asNobody('touch', [join(image, 'tmp/x')]);
    t.match(write.stderr, /Read-only file system|Permission denied/, 'and nothing can be written');
  });

  await t.test('Apptainer: singularity exec and run', async (t) => {
    let root: string;
    try {
      // scripts/test.sh tried to build it already and says why it could not.
      const failed = process.env['TOCFS_TEST_NO_APPTAINER'];
      if (failed) throw new Error(failed);
      await cachedRootfs(SID_MINBASE);
      root = await cachedRootfs(SID_APPTAINER);
      const version = await sh('bash', ['--norc', IN_ROOTFS, root, String(NOBODY), '--', 'apptainer', '--version']);
      if (version.code !== 0) throw new Error(`apptainer --version: ${version.stderr}`);
      t.comment(`using ${version.stdout.trim()} from ${root}`);
    } catch (err) {
      const why = `APPTAINER IS NOT AVAILABLE ON THIS MACHINE, its cases did not run: ${(err as Error).message}`;
      process.stderr.write(`\n*** ${why}\n\n`);
      t.comment(why);
      t.pass(why, { skip: why });
      return;
    }
    const singularity = (args: string[]) =>
      sh('bash', ['--norc', IN_ROOTFS, root, String(NOBODY), '--bind', mnt, '--', 'env', 'PATH=/usr/bin:/bin', 'HOME=/tmp', 'singularity', ...args]);
    const exec = await singularity(['exec', image, 'sh', '-c', probe]);
    t.same(exec, { code: 0, stdout: probed, stderr: '' }, "singularity exec: the image's PATH, Env and files");
    const id = await singularity(['exec', image, 'sh', '-c', 'id -u; cat /etc/shadow']);
    t.equal(id.stdout, `${NOBODY}\n`, 'runs as the user');
    t.match(id.stderr, /Permission denied/, '/etc/shadow stays private inside the container');
    t.same(await singularity(['run', image]), { code: 0, stdout: 'entrypoint says the default cmd\n', stderr: '' }, 'singularity run: Entrypoint + Cmd');
    t.same(await singularity(['run', image, 'one', 'two words']), { code: 0, stdout: 'entrypoint says one two words\n', stderr: '' }, 'arguments replace Cmd');
    const inspect = await singularity(['exec', image, 'sh', '-c', 'ls /.singularity.d/env; readlink /singularity']);
    t.match(inspect.stdout, /10-docker2singularity\.sh[\s\S]*\.singularity\.d\/runscript/);
  });

  await t.test('bubblewrap: the image root as /, with the synthesised environment and runscript', async (t) => {
    const bwrap = (args: string[]) =>
      asNobody('bwrap', ['--unshare-all', '--ro-bind', image, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...args]);
    t.same(await bwrap(['/.singularity.d/actions/exec', 'sh', '-c', probe]), { code: 0, stdout: probed, stderr: '' });
    t.same(await bwrap(['/singularity', 'one', 'two words']), { code: 0, stdout: 'entrypoint says one two words\n', stderr: '' });
    t.same(await bwrap(['/.singularity.d/actions/run']), { code: 0, stdout: 'entrypoint says the default cmd\n', stderr: '' });
  });

  await t.test('podman run --rootfs, rootless and read-only', async (t) => {
    // The user must reach its HOME: mkdtemp made `work` 0700.
    await chmod(work, 0o755);
    const home = join(work, 'podman-home');
    const runtimeDir = join(work, 'podman-run');
    await mkdir(home, { mode: 0o700 });
    await mkdir(runtimeDir, { mode: 0o700 });
    await chown(home, NOBODY, NOBODY);
    await chown(runtimeDir, NOBODY, NOBODY);
    // Rootless podman keeps a pause process holding its namespaces: stop it, then its files can go.
    t.teardown(async () => {
      const pid = await readFile(join(runtimeDir, 'libpod/tmp/pause.pid'), 'utf8').catch(() => '');
      if (/^\d+$/.test(pid.trim())) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    const env = { HOME: home, XDG_RUNTIME_DIR: runtimeDir };
    const podman = (args: string[]) => asNobody('podman', [...PODMAN, '--read-only', '--read-only-tmpfs=false', '--rootfs', image, ...args], env);
    const exec = await podman(['/.singularity.d/actions/exec', 'sh', '-c', probe]);
    t.equal(exec.code, 0, `podman exited 0 (${exec.stderr.trim()})`);
    t.equal(exec.stdout, probed);
    t.same((await podman(['/singularity', 'one', 'two words'])).stdout, 'entrypoint says one two words\n');
  });

  await t.test('podman as root over an overlay (`--rootfs DIR:O`), the way worker nodes often run it', async (t) => {
    const r = await sh('podman', [...PODMAN, '--rootfs', `${image}:O`, '/.singularity.d/actions/exec', 'sh', '-c', `${probe}; touch /tmp/writable`]);
    t.equal(r.code, 0, `podman exited 0 (${r.stderr.trim()})`);
    t.equal(r.stdout, probed);
  });

  t.notMatch(logs.join('\n'), /error/i, 'nothing logged as an error');
});

t.teardown(async () => {
  const mounts = await readFile('/proc/mounts', 'utf8');
  if (/tocfs-runtimes/.test(mounts)) throw new Error(`a mount was left behind:\n${mounts}`);
});
