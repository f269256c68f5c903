// The README's main job on its embedded default: a loopback registry (Debian's docker-registry, temp
// storage) seeded with a small demo image, then tocfs reads that image the way it reads any registry.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { startRegistry } from '../test/support/registry.js';
import { buildImage } from '../test/support/image-builder.js';
import { pushImage } from '../test/support/push.js';
import { makeTempDir, removeDir } from '../test/support/tmp.js';
import { dir, file, hardlink, symlink, whiteout } from '../test/support/tar-dsl.js';

const tocfs = fileURLToPath(new URL('../bin/tocfs.js', import.meta.url));

// The harness registers its cleanup with a tap test; outside tap we collect and run it ourselves.
const cleanups: (() => unknown)[] = [];
const owner = { teardown: (fn: () => unknown) => void cleanups.push(fn) } as unknown as Test;

function run(args: string[]): void {
  process.stdout.write(`\n$ tocfs ${args.join(' ')}\n`);
  const res = spawnSync(process.execPath, [tocfs, ...args], { stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`tocfs ${args[0]} exited with ${res.status ?? res.signal}`);
}

async function main(): Promise<void> {
  const registry = await startRegistry(owner);
  const work = makeTempDir('demo');
  cleanups.push(() => removeDir(work));
  const image = await buildImage(work, {
    config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/bin/sh', '/app/hello.sh'] },
    layers: [
      {
        compression: 'gzip',
        entries: [
          dir('etc'),
          file('etc/os-release', 'PRETTY_NAME="tocfs demo"\nID=tocfs-demo\n'),
          dir('app'),
          file('app/hello.sh', 'echo "hello from a lazily pulled image"\n', { mode: 0o755 }),
          file('app/data.bin', { size: 3 << 20 }),
          file('app/obsolete.txt', 'removed by the next layer\n'),
        ],
      },
      {
        compression: 'gzip',
        entries: [whiteout('app/obsolete.txt'), symlink('app/latest', 'hello.sh'), hardlink('app/hello-again.sh', 'app/hello.sh')],
      },
      { compression: 'zstd', entries: [file('etc/motd', 'layer three is zstd-compressed\n')] },
    ],
  });
  const ref = `${registry.host}/demo/hello:1.0`;
  await pushImage(registry.seedUrl, 'demo/hello', '1.0', image);
  process.stdout.write(`demo registry at ${registry.url}, image ${ref}\n`);
  run(['ls', ref, '--layers']);
  run(['ls', ref]);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
