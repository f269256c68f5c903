// The floor under the time to first command: the same workload on a mount whose daemon already holds
// every chunk in memory, with the kernel's page cache dropped before each run. What is left is Python's
// own work plus the FUSE round trips of its ~1,200 calls (no fetch, no decompression, no verification).
//
//   npx tsx bench/warm-floor.ts [--runs N] [--workload app-numpy] [--variant estargz]
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from './lib/daemon.js';
import { buildLayout, pushVariants } from './lib/images.js';
import { dropCaches, timed } from './lib/proc.js';
import { startBenchRegistry } from './lib/registry.js';
import { ENV, IMAGES, WORKLOADS } from './lib/workloads.js';

const { values } = parseArgs({ options: { runs: { type: 'string' }, workload: { type: 'string' }, variant: { type: 'string' } } });
const runs = Number(values.runs ?? 5);
const w = WORKLOADS.find((x) => x.name === (values.workload ?? 'app-numpy'))!;
const variant = values.variant ?? 'estargz';
const work = mkdtempSync('/var/tmp/tocfs-floor-');
const log = (l: string): void => void process.stderr.write(`floor: ${l}\n`);
const registry = await startBenchRegistry({ storageDir: join(work, 'storage'), workDir: work, address: '127.0.0.1' });
try {
  const img = IMAGES.find((i) => i.name === 'small')!;
  const layout = await buildLayout('bench-small', img.roots);
  await pushVariants(layout, registry.host, 'bench/small', work, log, ['gzip', variant]);
  const daemon = await startDaemon({ registryHost: registry.host });
  try {
    const root = join(daemon.mnt, 'images', registry.host, `bench/small:${variant}`);
    const first = await timed(['chroot', root, ...w.argv], performance.now(), ENV);
    log(`cold (loopback): ${first.exitMs.toFixed(0)} ms`);
    for (let r = 1; r <= runs; r++) {
      await dropCaches();
      const x = await timed(['chroot', root, ...w.argv], performance.now(), ENV);
      log(`page cache dropped, chunks in the daemon's memory: ${x.exitMs.toFixed(0)} ms`);
    }
    const local = join(work, 'local');
    log(`(compare: the same command on the unpacked rootfs, page cache dropped, with bench/run.ts's full pull)`);
    void local;
  } finally {
    await daemon.stop();
  }
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
