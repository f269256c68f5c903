// Small process helpers for the benchmark: spawn and time to first output, page-cache drops, /proc figures.
import { spawn, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export interface Timed {
  /** ms from `t0` to the first byte on stdout (to exit when the command prints nothing). */
  readonly firstOutputMs: number;
  /** ms from `t0` to exit. */
  readonly exitMs: number;
  readonly stdout: string;
}

/** Runs argv, timing from `t0` (performance.now()); rejects on a non-zero exit with its stderr. */
export function timed(argv: readonly string[], t0: number, env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    let first: number | undefined;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      first ??= performance.now() - t0;
      if (stdout.length < 1 << 16) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 16) stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const exitMs = performance.now() - t0;
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ firstOutputMs: first ?? exitMs, exitMs, stdout });
    });
  });
}

/** Cold caches: write back, then drop the page cache, dentries and inodes (the whole machine's). */
export async function dropCaches(): Promise<void> {
  await run('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** CPU seconds (user + system) a live process has used, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3 (index 0 here); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Peak resident set of a live process in bytes (VmHWM). */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
