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

const dd = (file: string, t0: number) => timed(['dd', `if=${file}`, 'of=/dev/null', 'bs=1M'], t0);
const walk = (root: string, t0: number) => timed(['sh', '-c', 'find "$1" -xdev -exec stat -c %s {} + | wc -l', 'walk', root], t0);

export async function measureThroughput(opts: {
  registry: BenchRegistry;
  gibRef: string;
  gibLocal: string;
  walkRef: string;
  walkLocal: string;
  run: number;
  log: (l: string) => void;
}): Promise<ThroughputSample[]> {
  const { registry, run } = opts;
  const out: ThroughputSample[] = [];
  const GIB = 2 ** 30;
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
    t0 = performance.now();
    await dd(file2, t0).then((r) => add('1GiB warm (page cache)', r.exitMs, GIB));
  } finally {
    await daemon.stop();
  }
  await dropCaches();
  await dd(opts.gibLocal, performance.now()).then((r) => add('1GiB local disk cold', r.exitMs, GIB));
  await dd(opts.gibLocal, performance.now()).then((r) => add('1GiB local disk warm', r.exitMs, GIB));

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
