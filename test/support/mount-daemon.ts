// A real `createDaemon` mount for integration tests, torn down with `t`: unmounted first (a sync rm on a
// live mount served by this thread would hang), then its mountpoint and cache dir removed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { createDaemon, type Daemon, type DaemonConfig } from '../../src/daemon/daemon.js';
import { isMounted } from '../../src/fuse/mount.js';
import { makeTempDir, removeDir } from './tmp.js';

const run = promisify(execFile);

/**
 * Mounts a daemon on a fresh temp dir named after `name`; `logs` collects every line it logs. `options`
 * override the daemon config (e.g. `allowOther` for runtimes run as another user).
 */
export async function mountDaemon(
  t: Test,
  name: string,
  options: Partial<Omit<DaemonConfig, 'mountpoint' | 'log'>> = {},
): Promise<{ mnt: string; daemon: Daemon; logs: string[]; cacheDir: string }> {
  const mnt = makeTempDir(`${name}-mnt`);
  // A cache dir given by the test (a restart reusing another mount's) is the test's to remove.
  const ownCache = options.cacheDir === undefined;
  const cacheDir = options.cacheDir ?? makeTempDir(`${name}-cache`);
  const logs: string[] = [];
  let daemon: Daemon | undefined;
  t.teardown(async () => {
    await daemon?.close();
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
    if (!(await isMounted(mnt))) removeDir(mnt);
    if (ownCache) removeDir(cacheDir);
  });
  // No CVMFS unless a test asks for one, whatever this machine has at /cvmfs.
  daemon = await createDaemon({ mountpoint: mnt, cacheSize: 2 ** 30, handleSignals: false, cvmfs: false, ...options, cacheDir, log: (l) => logs.push(l) });
  return { mnt, daemon, logs, cacheDir };
}
