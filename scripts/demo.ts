// The README's main job on its embedded default: a loopback registry (Debian's docker-registry, temp
// storage) seeded with a small runnable image made of this host's /bin/sh, ls and cat; tocfs converts it
// to eStargz, mounts the registry's images with `tocfs mount`, runs a command inside the image with
// chroot, shows what moved, and unmounts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { startRegistry } from '../test/support/registry.js';
import { buildImage } from '../test/support/image-builder.js';
import { hostRootfsEntries } from '../test/support/host-rootfs.js';
import { pushImage } from '../test/support/push.js';
import { makeTempDir, removeDir } from '../test/support/tmp.js';
import { dir, file, symlink } from '../test/support/tar-dsl.js';

const tocfs = fileURLToPath(new URL('../bin/tocfs.js', import.meta.url));

// The harness registers its cleanup with a tap test; outside tap we collect and run it ourselves.
const cleanups: (() => unknown)[] = [];
const owner = { teardown: (fn: () => unknown) => void cleanups.push(fn) } as unknown as Test;

async function run(command: string, args: string[]): Promise<void> {
  process.stdout.write(`\n$ ${command === tocfs ? 'tocfs' : command} ${args.join(' ')}\n`);
  const child = spawn(command, args, { stdio: 'inherit' });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`${command} ${args[0]} exited with ${code ?? signal}`);
}

const runTocfs = (...args: string[]) => run(tocfs, args);

async function waitForMount(mountpoint: string, daemon: ReturnType<typeof spawn>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (daemon.exitCode !== null) throw new Error(`tocfs mount exited with ${daemon.exitCode}`);
    if ((await readFile('/proc/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === mountpoint)) return;
    await sleep(50);
  }
  throw new Error(`${mountpoint} did not appear in /proc/mounts`);
}

async function main(): Promise<void> {
  const registry = await startRegistry(owner);
  const work = makeTempDir('demo');
  cleanups.push(() => removeDir(work));
  const image = await buildImage(`${work}/image`, {
    config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/bin/sh', '/app/hello.sh'] },
    layers: [
      { compression: 'gzip', entries: hostRootfsEntries(['/bin/sh', '/bin/ls', '/bin/cat']) },
      {
        compression: 'gzip',
        entries: [
          dir('etc'),
          file('etc/os-release', 'PRETTY_NAME="tocfs demo"\nID=tocfs-demo\n'),
          dir('app'),
          file('app/hello.sh', 'echo "hello from a lazily pulled image"\n', { mode: 0o755 }),
          file('app/data.bin', { size: 64 << 20 }),
          symlink('app/latest', 'hello.sh'),
        ],
      },
    ],
  });
  const host = registry.host;
  await pushImage(registry.seedUrl, 'demo/hello', '1.0', image);
  process.stdout.write(`demo registry at ${registry.url}, image ${host}/demo/hello:1.0 (a 64 MiB data file it never reads)\n`);

  await runTocfs('convert', `${host}/demo/hello:1.0`, `${host}/demo/hello:1.0-estargz`);
  await runTocfs('ls', `${host}/demo/hello:1.0-estargz`, '--layers');

  const mountpoint = `${work}/mnt`;
  const cacheDir = `${work}/cache`;
  process.stdout.write(`\n$ tocfs mount ${mountpoint} --cache-dir ${cacheDir} &\n`);
  const daemon = spawn(tocfs, ['mount', mountpoint, '--cache-dir', cacheDir], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = once(daemon, 'exit');
  cleanups.push(async () => {
    if (daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await exited;
    }
  });
  await waitForMount(mountpoint, daemon);
  const root = `${mountpoint}/images/${host}/demo/hello:1.0-estargz`;
  await run('chroot', [root, '/bin/sh', '-c', '. /app/hello.sh; cat /etc/os-release; ls -l /app']);
  process.stdout.write(`\nthe image's layers hold ${image.layers.reduce((n, l) => n + l.size, 0)} bytes; what moved:\n`);
  await runTocfs('stats', root);
  await runTocfs('unmount', mountpoint);
  const [code] = (await exited) as [number | null];
  if (code !== 0) throw new Error(`tocfs mount exited with ${code} after unmount`);
  process.stdout.write('\ntocfs mount exited cleanly after the unmount\n');
}

try {
  await main();
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
