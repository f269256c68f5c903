// Time to run a command in an image whose layers are all on CVMFS (DUCC's unpacked.cern.ch layout) vs the
// same image from the registry, side by side in one run (issue 5).
//
//   npx tsx bench/cvmfs-vs-registry.ts [ROUNDS]     (root: mounts FUSE, bind mounts, chroots)
//
// Standalone: builds (once, cached under /var/cache/tocfs-test) a two-layer Debian bookworm image (minbase,
// then python3-minimal), pushes it to a real registry (Debian docker-registry) as plain gzip and converted
// to eStargz, lays its layers out as DUCC does (.layers/HEX[0:2]/HEX/layerfs, .metadata record) in a
// directory bind-mounted read-only as CVMFS would be, and times, per variant, a fresh daemon (empty cache)
// from `createDaemon` to the exit of `chroot IMAGE python3 -c 'print(1)'`. Blob bytes are counted by a
// proxy in front of the registry. Variants interleave, order rotating each round.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { convertImage } from '../src/convert/convert-image.js';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { isMounted } from '../src/fuse/mount.js';
import { RegistryClient } from '../src/registry/client.js';
import { parseReference } from '../src/registry/reference.js';
import { buildDuccRepo, duccImageOfLayout, readOnlyBind } from '../test/support/ducc-layout.js';
import { startFaultProxy } from '../test/support/fault-proxy.js';
import { startRegistry } from '../test/support/registry.js';
import { BOOKWORM_MINBASE, cachedRootfsImage, pushLayout, type RootfsSpec } from '../test/support/rootfs.js';
import { makeTempDir, removeDir } from '../test/support/tmp.js';

const run = promisify(execFile);
const ROUNDS = Number(process.argv[2] ?? 5);
const PYTHON_ROOT: RootfsSpec = { name: 'cvmfs-bench-python', suite: 'bookworm', from: BOOKWORM_MINBASE.name, packages: ['python3-minimal'] };
const COMMAND = ['/usr/bin/python3', '-c', 'print(1)'];

type Variant = 'cvmfs' | 'estargz' | 'gzip';
const LABEL: Record<Variant, string> = {
  cvmfs: 'all layers on CVMFS (tag resolved at the registry)',
  estargz: 'registry, eStargz layers (lazy range reads)',
  gzip: 'registry, gzip layers (each layer fetched whole)',
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[], f: (x: number) => string): string => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (FUSE mounts, bind mounts, chroot)');
  const teardowns: (() => unknown)[] = [];
  const fakeT = { teardown: (fn: () => unknown) => teardowns.push(fn) } as unknown as Test;
  const work = makeTempDir('bench-cvmfs');
  teardowns.push(() => removeDir(work));
  try {
    const layout = await cachedRootfsImage('cvmfs-bench', [BOOKWORM_MINBASE, PYTHON_ROOT]);
    const reg = await startRegistry(fakeT);
    const proxy = await startFaultProxy(fakeT, { target: reg.url });
    await pushLayout(layout, 'latest', reg.seedHost, 'bench/cvmfs:gzip');
    const client = new RegistryClient();
    await convertImage(client, parseReference(`${reg.seedHost}/bench/cvmfs:gzip`), parseReference(`${reg.seedHost}/bench/cvmfs:estargz`));
    await client.close();

    const image = await duccImageOfLayout(layout, 'latest');
    const ducc = join(work, 'ducc');
    await buildDuccRepo(ducc, { image, host: proxy.host, repository: 'bench/cvmfs', tag: 'gzip', layers: image.layers.map(() => 'tar' as const) });
    const cvmfs = await readOnlyBind(fakeT, ducc, 'bench-cvmfs');
    const layerBytes = (await Promise.all(image.layers.map(async (l) => Number((await run('stat', ['-c', '%s', l.path])).stdout)))).reduce((a, b) => a + b, 0);

    const once = async (variant: Variant): Promise<{ ms: number; blobBytes: number; requests: number }> => {
      const mnt = makeTempDir('bench-cvmfs-mnt');
      const cacheDir = makeTempDir('bench-cvmfs-cache');
      let daemon: Daemon | undefined;
      try {
        proxy.resetCounters();
        const t0 = process.hrtime.bigint();
        daemon = await createDaemon({
          mountpoint: mnt,
          cacheDir,
          cacheSize: 2 ** 32,
          handleSignals: false,
          cvmfs: variant === 'cvmfs' ? cvmfs : false,
          log: () => {},
        });
        const tag = variant === 'estargz' ? 'estargz' : 'gzip';
        const root = join(mnt, 'images', proxy.host, `bench/cvmfs:${tag}`);
        const { stdout } = await run('/usr/sbin/chroot', [root, ...COMMAND], { env: { PATH: '/usr/bin:/bin' } });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (stdout.trim() !== '1') throw new Error(`${variant}: unexpected output ${JSON.stringify(stdout)}`);
        return { ms, blobBytes: proxy.counters.byKind.blobs.bytes, requests: proxy.counters.total };
      } finally {
        await daemon?.close();
        if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
        if (!(await isMounted(mnt))) removeDir(mnt);
        removeDir(cacheDir);
      }
    };

    const variants: Variant[] = ['cvmfs', 'estargz', 'gzip'];
    for (const v of variants) await once(v); // warm-up: page cache, registry, JIT
    const results: Record<Variant, { ms: number[]; blobBytes: number[]; requests: number[] }> = {
      cvmfs: { ms: [], blobBytes: [], requests: [] },
      estargz: { ms: [], blobBytes: [], requests: [] },
      gzip: { ms: [], blobBytes: [], requests: [] },
    };
    for (let round = 0; round < ROUNDS; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
      for (const v of order) {
        const r = await once(v);
        results[v].ms.push(r.ms);
        results[v].blobBytes.push(r.blobBytes);
        results[v].requests.push(r.requests);
        process.stderr.write(`round ${round + 1} ${v}: ${r.ms.toFixed(0)} ms, ${r.blobBytes} blob bytes, ${r.requests} requests\n`);
      }
    }
    const base = median(results.cvmfs.ms);
    const ms = (x: number): string => x.toFixed(0);
    const lines = [
      `cvmfs vs registry: \`chroot IMAGE ${COMMAND.join(' ')}\` from a fresh daemon (empty cache), ${ROUNDS} interleaved rounds,`,
      `median (min–max); image: ${image.layers.length} gzip layers, ${layerBytes.toLocaleString('en')} bytes; ${new Date().toISOString().slice(0, 10)}, node ${process.version}`,
      '',
      '| variant | time to output, ms | × CVMFS | blob bytes from the registry | requests |',
      '|---|---|---|---|---|',
      ...variants.map((v) => {
        const r = results[v];
        return `| ${LABEL[v]} | ${ms(median(r.ms))} (${spread(r.ms, ms)}) | ${(median(r.ms) / base).toFixed(2)} | ${median(r.blobBytes).toLocaleString('en')} | ${median(r.requests)} |`;
      }),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
