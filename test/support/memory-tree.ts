// An in-memory image tree for the prefetch tests (library-prefetch.ts, python-prefetch.ts): files (bytes),
// symlinks (targets), directories implied by the paths under them; every read recorded, and which of
// them came from the workload rather than a prefetch.
import type { FsNode } from '../../src/image/filesystem.js';
import type { PrefetchTree } from '../../src/image/tree-paths.js';

export type MemoryTree = PrefetchTree & { readonly reads: string[]; readonly foreground: string[] };

export function memoryTree(files: Record<string, Buffer | { link: string }>): MemoryTree {
  const reads: string[] = [];
  const foreground: string[] = [];
  const node = (path: string): FsNode | undefined => {
    const f = files[path];
    const base = { ino: 1, mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, nlink: 1 };
    if (f === undefined) return Object.keys(files).some((k) => k.startsWith(`${path}/`)) ? { ...base, type: 'dir', size: 0 } : undefined;
    return Buffer.isBuffer(f) ? { ...base, type: 'reg', size: f.length } : { ...base, type: 'symlink', size: f.link.length, linkName: f.link };
  };
  return {
    reads,
    foreground,
    lookup: node,
    read: async (path, offset, length, _signal, opts) => {
      reads.push(path);
      if (!opts?.background) foreground.push(path);
      const f = files[path];
      if (!Buffer.isBuffer(f)) throw new Error(`not a file: ${path}`);
      return f.subarray(offset, offset + length);
    },
  };
}
