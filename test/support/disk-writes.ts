// The daemon writes verified chunks to its disk cache once fetches pause (src/layers/write-behind.ts). A
// test that looks at the cache directory, at statfs, or kills the daemon and expects the cache to hold what
// was read, first waits for the mount's `bytes_disk_pending` figure (what `tocfs stats` reads) to reach 0.
import { readMountFigures } from '../../src/cli/stats.js';

/** Polls the mount's pending disk writes until there are none; throws after `timeoutMs` with the last value. */
export async function waitForDiskWrites(mnt: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  while (Date.now() < deadline) {
    last = (await readMountFigures(mnt)).bytes_disk_pending;
    if (last === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${mnt}: ${last} bytes still wait for the disk cache after ${timeoutMs} ms`);
}
