// The 1 GiB throughput cases of `npm run bench` alone, with the daemon's CPU time, for profiling the chunk
// path between full runs: cold from a loopback registry, from the disk cache, warm from the page cache.
//
//   npx tsx bench/gib-throughput.ts [--runs N] [--perf FILE] [--perf-disk FILE]
//
// TOCFS_BENCH_CPU_PROF=DIR adds V8 profiles (bench/cpu-profile.ts); --perf records the cold read with
// `perf record -g` (native code: zlib, sha256, the kernel's copies, the GC's threads), --perf-disk the read
// from the disk cache.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from './lib/daemon.js';
import { buildLayout, pushVariants } from './lib/images.js';
import { dropCaches, timed } from './lib/proc.js';
import { startBenchRegistry } from './lib/registry.js';
import { GIB_ROOT } from './lib/workloads.js';

const { values } = parseArgs({ options: { runs: { type: 'string' }, perf: { type: 'string' }, 'perf-disk': { type: 'string' } } });
const runs = Number(values.runs ?? 3);
const GIB = 2 ** 30;
const log = (l: string): void => void process.stderr.write(`gib: ${l}\n`);
const rate = (ms: number): string => `${ms.toFixed(0)} ms, ${(GIB / 1e3 / ms).toFixed(0)} MB/s`;
const perfRecord = (pid: number, out: string | undefined) => {
  if (!out) return async (): Promise<void> => {};
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', out], { stdio: 'ignore' });
  return async (): Promise<void> => {
    perf.kill('SIGINT');
    await once(perf, 'exit');
  };
};
const dd = (file: string) => timed(['dd', `if=${file}`, 'of=/dev/null', 'bs=1M'], performance.now());

const work = mkdtempSync('/var/tmp/tocfs-gib-');
const storage = join(work, 'storage');
mkdirSync(storage);
const registry = await startBenchRegistry({ storageDir: storage, workDir: work, address: '127.0.0.1' });
try {
  await pushVariants(await buildLayout('bench-gib', [GIB_ROOT]), registry.host, 'bench/gib', work, log, ['gzip', 'estargz']);
  const ref = `${registry.host}/bench/gib:estargz`;
  for (let r = 1; r <= runs; r++) {
    await dropCaches();
    const mark = registry.mark();
    let daemon = await startDaemon({ registryHost: registry.host, label: 'gib-cold' });
    const cacheDir = daemon.cacheDir;
    const stopColdPerf = perfRecord(daemon.pid, values.perf);
    const cold = await dd(join(daemon.mnt, 'images', ref, 'data/gib.bin'));
    await stopColdPerf();
    const traffic = await registry.traffic(mark);
    log(`run ${r} cold: ${rate(cold.exitMs)}, daemon cpu ${daemon.cpuSeconds().toFixed(2)} s, ${traffic.requests} requests`);
    await daemon.stop({ keepCache: true });

    await dropCaches();
    daemon = await startDaemon({ registryHost: registry.host, cacheDir, label: 'gib-disk' });
    try {
      const file = join(daemon.mnt, 'images', ref, 'data/gib.bin');
      await timed(['stat', file], performance.now());
      const cpu0 = daemon.cpuSeconds();
      const stopDiskPerf = perfRecord(daemon.pid, values['perf-disk']);
      const disk = await dd(file);
      await stopDiskPerf();
      log(`run ${r} disk cache: ${rate(disk.exitMs)}, daemon cpu ${(daemon.cpuSeconds() - cpu0).toFixed(2)} s`);
      log(`run ${r} warm: ${rate((await dd(file)).exitMs)}`);
    } finally {
      await daemon.stop();
    }
  }
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
