// Link profiles for the benchmark (TESTING.md, "Shaping the link"). Loopback is the registry on 127.0.0.1.
// A shaped profile puts the registry in a network namespace of its own, joined to the root namespace
// (where the tocfs daemon, skopeo and the workloads stay) by two TUN devices with bench/delayline.c
// between them: every packet is paced to the profile's rate and delayed by half its RTT in each
// direction, so TCP sees the real RTT (slow start, window growth) as on a WAN.
//
// Everything is torn down by close(), and on SIGINT/SIGTERM of the bench: the delay line (its TUN devices
// vanish with it: they are not persistent), then the namespace. Namespaces left by a bench that was
// SIGKILLed are removed at the next start (their name carries the dead process's pid).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('../delayline.c', import.meta.url));
const NS_PREFIX = 'tocfsbench-';

export interface LinkProfile {
  readonly name: string;
  /** Bits per second each way; undefined: loopback, unshaped. */
  readonly rateBps?: number;
  readonly rttMs?: number;
  /** MTU of the TUN pair (1500 like the internet; 9000 for the datacenter profile). */
  readonly mtu?: number;
}

export const PROFILES: readonly LinkProfile[] = [
  { name: 'loopback' },
  { name: '100mbit-20ms', rateBps: 100e6, rttMs: 20, mtu: 1500 },
  { name: '1gbit-2ms', rateBps: 1e9, rttMs: 2, mtu: 9000 },
];

export interface Link {
  readonly profile: LinkProfile;
  /** Where the registry listens (127.0.0.1, or its address inside the namespace). */
  readonly registryAddress: string;
  /** The namespace the registry runs in, for shaped links. */
  readonly netns?: string;
  /** Forget TCP metrics (cached ssthresh/RTT) so every run starts TCP cold. */
  resetTcp(): Promise<void>;
  close(): Promise<void>;
}

/** `cc -O2` of bench/delayline.c into `dir`, once per bench run. */
export async function buildDelayLine(dir: string): Promise<string> {
  const out = join(dir, 'delayline');
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    await run('cc', ['-O2', '-Wall', '-o', out, SOURCE]);
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces of earlier bench runs whose process is gone. */
export async function removeStaleNamespaces(log: (l: string) => void): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (!name.startsWith(NS_PREFIX)) continue;
    const pid = Number(name.slice(NS_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && alive(pid)) continue;
    log(`removing stale network namespace ${name}`);
    await run('ip', ['netns', 'del', name]).catch(() => {});
  }
}

async function ip(args: string[], netns?: string): Promise<void> {
  await run('ip', netns ? ['netns', 'exec', netns, 'ip', ...args] : args);
}

export async function openLink(profile: LinkProfile, workDir: string): Promise<Link> {
  if (profile.rateBps === undefined) {
    return {
      profile,
      registryAddress: '127.0.0.1',
      resetTcp: () => run('ip', ['tcp_metrics', 'flush', '127.0.0.1']).then(() => {}, () => {}),
      close: async () => {},
    };
  }
  const binary = await buildDelayLine(join(workDir, 'bin'));
  const pid = process.pid;
  const netns = `${NS_PREFIX}${pid}-${profile.name}`;
  const devA = `tfb${pid}a`;
  const devB = `tfb${pid}b`;
  const subnet = `10.231.${pid % 250}`;
  const [local, remote] = [`${subnet}.1`, `${subnet}.2`];
  let line: ChildProcess | undefined;
  const close = async (): Promise<void> => {
    if (line && line.exitCode === null && line.signalCode === null) {
      line.kill('SIGTERM');
      await once(line, 'exit').catch(() => {});
    }
    await run('ip', ['netns', 'del', netns]).catch(() => {});
  };
  try {
    await run('ip', ['netns', 'add', netns]);
    const oneWayUs = Math.round(((profile.rttMs ?? 0) * 1000) / 2);
    line = spawn(binary, [devA, devB, `/run/netns/${netns}`, String(profile.rateBps), String(oneWayUs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((ok, fail) => {
      line!.once('exit', (code) => fail(new Error(`delayline exited ${code} before it was ready`)));
      line!.stdout!.once('data', (d: Buffer) => (d.toString().startsWith('ready') ? ok() : fail(new Error(`delayline: ${d.toString()}`))));
    });
    const mtu = String(profile.mtu ?? 1500);
    await ip(['addr', 'add', local, 'peer', remote, 'dev', devA]);
    await ip(['link', 'set', devA, 'mtu', mtu, 'up']);
    await ip(['link', 'set', 'lo', 'up'], netns);
    await ip(['addr', 'add', remote, 'peer', local, 'dev', devB], netns);
    await ip(['link', 'set', devB, 'mtu', mtu, 'up'], netns);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    profile,
    registryAddress: remote,
    netns,
    async resetTcp() {
      await run('ip', ['tcp_metrics', 'flush', remote]).catch(() => {});
      await run('ip', ['netns', 'exec', netns, 'ip', 'tcp_metrics', 'flush', 'all']).catch(() => {});
    },
    close,
  };
}
