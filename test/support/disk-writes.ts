// The daemon writes verified chunks to its disk cache once fetches pause (src/layers/write-behind.ts). A
// test that looks at the cache directory, at statfs, or kills the daemon and expects the cache to hold what
// was read, first waits for `user.tocfs.bytes_disk_pending` on the mount to reach 0.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Polls the mount's pending disk writes until there are none; throws after `timeoutMs` with the last value. */
export async function waitForDiskWrites(mnt: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const { stdout } = await exec('getfattr', ['--only-values', '-n', 'user.tocfs.bytes_disk_pending', mnt]);
    last = stdout.trim();
    if (last === '0') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${mnt}: ${last} bytes still wait for the disk cache after ${timeoutMs} ms`);
}
