// Layer entries for a tiny runnable root filesystem made of this host's own binaries and the shared
// libraries `ldd` names for them, with every symlink on the way kept as a symlink (Debian's merged
// /usr: /bin -> usr/bin, /lib64/ld-linux… -> /lib/…), so `chroot ROOT /bin/sh` works with no download.
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { dir, file, symlink, type TarEntry } from './tar-dsl.js';

/** The absolute paths of the shared libraries (and the loader) that `binary` needs. */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const found: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) found.push(m[1]!);
  }
  return found;
}

/** Entries for `paths` (absolute, on this host) plus their libraries, parents first, each path once. */
export function hostRootfsEntries(paths: readonly string[]): TarEntry[] {
  const entries: TarEntry[] = [];
  const seen = new Set<string>();
  const emit = (path: string, make: () => TarEntry): void => {
    if (seen.has(path)) return;
    seen.add(path);
    entries.push(make());
  };

  const add = (absolute: string, depth = 0): void => {
    if (depth > 40) throw new Error(`host-rootfs: too many symlinks resolving ${absolute}`);
    const parts = absolute.split('/').filter(Boolean);
    let current = '';
    for (let i = 0; i < parts.length; i++) {
      const next = `${current}/${parts[i]}`;
      const st = lstatSync(next);
      const rel = next.slice(1);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(next);
        emit(rel, () => symlink(rel, target));
        add(resolve(dirname(next), target, ...parts.slice(i + 1)), depth + 1);
        return;
      }
      if (st.isDirectory()) {
        emit(rel, () => dir(rel, { mode: st.mode & 0o7777 }));
      } else {
        emit(rel, () => file(rel, readFileSync(next), { mode: st.mode & 0o7777 }));
      }
      current = next;
    }
  };

  for (const path of paths) {
    add(path);
    if (lstatSync(resolve(path)).isFile()) for (const lib of sharedLibraries(path)) add(lib);
  }
  return entries;
}
