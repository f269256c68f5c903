// Throughput on loopback: a sequential read of a 1 GiB file (dd, 1 MiB blocks) cold from the registry,
// from tocfs's disk cache (new daemon, same cache dir, page cache dropped), and warm (page cache), against
// the same file on local disk, cold and warm; and a find + stat walk of a whole image tree, cold and warm,
// against the same tree on local disk.
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { dropCaches, timed } from './proc.js';
import type { BenchRegistry } from './registry.js';

export interface ThroughputSample {
  readonly case: string;
  readonly run: number;
  readonly ms: number;
  /** Bytes read by the workload (the file), for rates. */
  readonly bytes: number;
  /** Bytes at the registry. */
  readonly registryBytes: number;
}

const GIB = 2 ** 30;
const dd = (file: string, t0: number) => timed(['dd', `if=${file}`, 'of=/dev/null', 'bs=1M'], t0);
const walk = (root: string, t0: number) => timed(['sh', '-c', 'find "$1" -xdev -exec stat -c %s {} + | wc -l', 'walk', root], t0);

/**
 * Warm reads of a file just read cold: the first pass on its own, then the median of three. The first pass
 * promotes every page it touches to the kernel's active list (a page's second access); on this kernel
 * (6.18) FUSE caches in 4 KiB pages and ext4 in large folios, so that pass costs the mount ~100 ms more
 * for the GiB (perf: the LRU lock and workingset_activation, a third of its samples), once. The passes
 * after it are the warm rate a file read again and again gets (issue 8's warm target), on both sides.
 */
async function warmPasses(file: string, name: string, add: (c: string, ms: number, bytes: number) => void): Promise<void> {
  add(`${name}, first pass`, (await dd(file, performance.now())).exitMs, GIB);
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) ms.push((await dd(file, performance.now())).exitMs);
  add(name, ms.sort((a, b) => a - b)[1]!, GIB);
}

export async function measureThroughput(opts: {
  registry: BenchRegistry;
  gibRef: string;
  /** The same 1 GiB image as plain gzip with a SOCI index: the cold read through zran spans. */
  gibSociRef?: string;
  gibLocal: string;
  walkRef: string;
  walkLocal: string;
  run: number;
  log: (l: string) => void;
}): Promise<ThroughputSample[]> {
  const { registry, run } = opts;
  const out: ThroughputSample[] = [];
  const add = (c: string, ms: number, bytes: number, registryBytes = 0): void => {
    out.push({ case: c, run, ms, bytes, registryBytes });
    opts.log(`  ${c}: ${ms.toFixed(0)} ms${bytes ? `, ${(bytes / 1e6 / (ms / 1e3)).toFixed(0)} MB/s` : ''}`);
  };

  // 1 GiB: cold from the registry (resolution included), then the disk cache, then the page cache.
  await dropCaches();
  let mark = registry.mark();
  let daemon = await startDaemon({ registryHost: registry.host });
  let cacheDir = daemon.cacheDir;
  try {
    const file = join(daemon.mnt, 'images', opts.gibRef, 'data/gib.bin');
    let t0 = performance.now();
    await dd(file, t0).then((r) => add('1GiB cold (registry)', r.exitMs, GIB));
    out[out.length - 1] = { ...out[out.length - 1]!, registryBytes: (await registry.traffic(mark)).bytes };
    await daemon.stop({ keepCache: true });
    await dropCaches();
    daemon = await startDaemon({ registryHost: registry.host, cacheDir });
    cacheDir = daemon.cacheDir;
    mark = registry.mark();
    const file2 = join(daemon.mnt, 'images', opts.gibRef, 'data/gib.bin');
    // Resolve the image first: this case measures the chunk path from disk, not the manifest round trips.
    await timed(['stat', file2], performance.now());
    t0 = performance.now();
    await dd(file2, t0).then((r) => add('1GiB disk cache', r.exitMs, GIB));
    await warmPasses(file2, '1GiB warm (page cache)', add);
  } finally {
    await daemon.stop();
  }
  if (opts.gibSociRef !== undefined) {
    await dropCaches();
    const sociMark = registry.mark();
    const soci = await startDaemon({ registryHost: registry.host });
    try {
      const file = join(soci.mnt, 'images', opts.gibSociRef, 'data/gib.bin');
      await dd(file, performance.now()).then((r) => add('1GiB cold, gzip + SOCI spans (registry)', r.exitMs, GIB));
      out[out.length - 1] = { ...out[out.length - 1]!, registryBytes: (await registry.traffic(sociMark)).bytes };
    } finally {
      await soci.stop();
    }
  }
  await dropCaches();
  await dd(opts.gibLocal, performance.now()).then((r) => add('1GiB local disk cold', r.exitMs, GIB));
  await warmPasses(opts.gibLocal, '1GiB local disk warm', add);

  // Metadata: the whole tree, cold (resolution and TOCs included) and warm (same mount again).
  await dropCaches();
  mark = registry.mark();
  daemon = await startDaemon({ registryHost: registry.host });
  try {
    const root = join(daemon.mnt, 'images', opts.walkRef);
    const t0 = performance.now();
    const cold = await walk(root, t0);
    opts.log(`  walk: ${cold.stdout.trim()} entries`);
    add('walk cold', cold.exitMs, 0, (await registry.traffic(mark)).bytes);
    const warm = await walk(root, performance.now());
    add('walk warm', warm.exitMs, 0);
  } finally {
    await daemon.stop();
  }
  await dropCaches();
  const localCold = await walk(opts.walkLocal, performance.now());
  add('walk local disk cold', localCold.exitMs, 0);
  add('walk local disk warm', (await walk(opts.walkLocal, performance.now())).exitMs, 0);
  return out;
}
