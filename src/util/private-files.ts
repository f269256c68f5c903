/**
 * Modes of everything tocfs writes (DESIGN.md §2, last paragraph). The daemon runs as root on worker nodes
 * shared by many users, and its disk cache holds bytes of files an image keeps private: chunks of a 0600
 * `/etc/shadow` once any permitted reader read it, the whole tar of a plain gzip layer once anyone listed
 * its image. The mount enforces the image's modes; the cache must not undo that, so nothing in it may be
 * readable by another user. Every create passes these modes explicitly AND the process umask is 077, so a
 * create that forgets its mode is still private.
 */
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** Clears the group and other bits of every mode the process creates with. */
export const PRIVATE_UMASK = 0o077;
/** Bits that make a file or directory reachable by someone other than its owner. */
const SHARED_BITS = 0o077;

/** Sets the process umask to 077 (main thread only: workers may not change it). Returns the old one. */
export function usePrivateUmask(): number {
  return process.umask(PRIVATE_UMASK);
}

/**
 * Makes `dir` (0700, with missing parents 0700 too) if needed, then takes the group and other bits off it
 * and everything under it: a cache written by an older tocfs (0755/0644) holds private bytes readable by
 * every user of the node. Symlinks are skipped (chmod would follow them out of the tree), nothing else is
 * changed. Returns how many entries were tightened.
 */
export async function tightenPrivateTree(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  return tighten(dir);
}

async function tighten(path: string): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0; // removed meanwhile (a temp file)
    throw err;
  }
  if (st.isSymbolicLink()) return 0;
  let changed = 0;
  if ((st.mode & SHARED_BITS) !== 0) {
    await chmod(path, st.mode & 0o7777 & ~SHARED_BITS);
    changed++;
  }
  if (!st.isDirectory()) return changed;
  const names = await readdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  // One directory's entries at a time, in parallel: a chunk directory holds thousands of files.
  for (let at = 0; at < names.length; at += 256) {
    const counts = await Promise.all(names.slice(at, at + 256).map((name) => tighten(join(path, name))));
    for (const n of counts) changed += n;
  }
  return changed;
}
