// One tocfs daemon for one measured run: `tocfs mount` as its own process (so its CPU time and peak RSS
// come from /proc and nothing of the bench shares its JS thread), a fresh cache dir unless one is given,
// torn down completely by stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMounted } from '../../src/fuse/mount.js';
import { readMountFigures, readAccessed, type MountFigures } from '../../src/cli/stats.js';
import { cpuSeconds, peakRss, run } from './proc.js';

/** `TOCFS_BENCH_BIN=PATH`: another build's bin/tocfs.js (e.g. a copy of the one before a change, for before/after). */
const BIN = process.env['TOCFS_BENCH_BIN'] ?? fileURLToPath(new URL('../../bin/tocfs.js', import.meta.url));

export interface RunningDaemon {
  /** performance.now() when the mount showed in the mount table. */
  readonly mountedAt: number;
  readonly mnt: string;
  readonly cacheDir: string;
  readonly pid: number;
  figures(): Promise<MountFigures>;
  accessed(imageDir: string): Promise<string[]>;
  cpuSeconds(): number;
  peakRss(): number;
  /** Unmounts and waits for the process; removes the cache dir unless `keepCache`. */
  stop(opts?: { keepCache?: boolean }): Promise<void>;
}

/** The node flags in the first line of bin/tocfs.js (`#!/usr/bin/env -S node FLAGS...`). */
function shebangNodeFlags(): string[] {
  const words = readFileSync(BIN, 'utf8').split('\n', 1)[0]!.split(/\s+/);
  return words.slice(words.indexOf('node') + 1);
}

/** `TOCFS_BENCH_CPU_PROF=DIR`: every daemon writes a V8 CPU profile there (summarise with bench/cpu-profile.ts). */
const CPU_PROF = process.env['TOCFS_BENCH_CPU_PROF'];
/** `TOCFS_BENCH_TRACE=DIR`: every daemon writes its op timeline (src/fuse/op-trace.ts) to DIR/LABEL.jsonl. */
const TRACE = process.env['TOCFS_BENCH_TRACE'];

export async function startDaemon(opts: { registryHost: string; cacheDir?: string; label?: string; log?: (l: string) => void }): Promise<RunningDaemon> {
  const mnt = mkdtempSync(join(tmpdir(), 'tocfs-bench-mnt-'));
  const cacheDir = opts.cacheDir ?? mkdtempSync(join(tmpdir(), 'tocfs-bench-cache-'));
  const args = ['mount', mnt, '--cache-dir', cacheDir, '--cache-size', String(8 * 2 ** 30), '--insecure-registry', opts.registryHost, '--no-cvmfs'];
  // The bin runs itself as users run it (its shebang gives node the daemon's V8 flags); a CPU profile needs
  // node's own flags, which NODE_OPTIONS refuses, so then node is called with the shebang's flags spelled out.
  const [command, argv] = CPU_PROF ? [process.execPath, ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, ...shebangNodeFlags(), BIN, ...args]] : [BIN, args];
  const child: ChildProcess = spawn(
    command,
    argv,
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: TRACE ? { ...process.env, TOCFS_TRACE: join(TRACE, `${opts.label ?? 'daemon'}-${Date.now()}.jsonl`) } : process.env,
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
  });
  const stop = async (stopOpts: { keepCache?: boolean } = {}): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await once(child, 'exit').catch(() => {});
      clearTimeout(timer);
    }
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
    rmSync(mnt, { recursive: true, force: true });
    if (!stopOpts.keepCache) rmSync(cacheDir, { recursive: true, force: true, maxRetries: 3 });
  };
  // The mount is ready once it shows in the mount table.
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`tocfs mount exited before mounting: ${stderr.slice(-2000)}`);
    }
    if (await isMounted(mnt)) break;
    await sleep(5);
  }
  const pid = child.pid!;
  return {
    mountedAt: performance.now(),
    mnt,
    cacheDir,
    pid,
    figures: () => readMountFigures(mnt),
    accessed: (imageDir) => readAccessed(join(mnt, imageDir)),
    cpuSeconds: () => cpuSeconds(pid),
    peakRss: () => peakRss(pid),
    stop,
  };
}
