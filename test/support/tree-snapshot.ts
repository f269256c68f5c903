// A metadata + content snapshot of a directory tree, taken by a python3 child process so that it can walk
// a FUSE mount served by this very process (FUSE ops run on our JS thread: a synchronous walk here would
// deadlock). Used to compare a mounted image with `umoci unpack` of it (STYLE.md, oracle comparison).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SnapshotEntry {
  readonly type: 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';
  /** Permission bits including setuid/setgid/sticky (no S_IFMT bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  /** Non-directories only: st_size (a directory's size is the backing filesystem's business). */
  readonly size?: number;
  /** Regular files: hex sha256 of the content. */
  readonly sha256?: string;
  /** Symlinks: the target, verbatim. */
  readonly target?: string;
  /** Devices: `MAJOR:MINOR`. */
  readonly rdev?: string;
  /** Name -> hex value, `lgetxattr` / `llistxattr` (no symlink following). */
  readonly xattrs: Readonly<Record<string, string>>;
  /** Non-directories: the first path (in walk order) seen with the same st_ino, i.e. its hardlink group. */
  readonly inode: string;
  /** Non-directories: st_mtime in nanoseconds, as a decimal string. */
  readonly mtimeNs?: string;
}

/** Relative path ('' = the root) -> entry. */
export type TreeSnapshot = Record<string, SnapshotEntry>;

const SCRIPT = String.raw`
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
inodes = {}
def kind(m):
    if stat.S_ISDIR(m): return 'dir'
    if stat.S_ISREG(m): return 'reg'
    if stat.S_ISLNK(m): return 'symlink'
    if stat.S_ISCHR(m): return 'char'
    if stat.S_ISBLK(m): return 'block'
    if stat.S_ISFIFO(m): return 'fifo'
    if stat.S_ISSOCK(m): return 'socket'
    return 'unknown'
def visit(rel):
    path = os.path.join(root, rel) if rel else root
    st = os.lstat(path)
    t = kind(st.st_mode)
    e = {'type': t, 'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid, 'nlink': st.st_nlink}
    if t != 'dir':
        e['size'] = st.st_size
        e['inode'] = inodes.setdefault(st.st_ino, rel)
        e['mtimeNs'] = str(st.st_mtime_ns)
    else:
        e['inode'] = ''
    if t == 'reg':
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            while True:
                b = f.read(1 << 20)
                if not b: break
                h.update(b)
        e['sha256'] = h.hexdigest()
    if t == 'symlink':
        e['target'] = os.readlink(path)
    if t in ('char', 'block'):
        e['rdev'] = '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    xs = {}
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        xs[name] = os.getxattr(path, name, follow_symlinks=False).hex()
    e['xattrs'] = xs
    out[rel] = e
    if t == 'dir':
        for name in sorted(os.listdir(path)):
            visit(os.path.join(rel, name) if rel else name)
visit('')
json.dump(out, sys.stdout, sort_keys=True)
`;

/** Walks `root` (not following symlinks) in a python3 child and returns every path's metadata and content hash. */
export async function snapshotTree(root: string): Promise<TreeSnapshot> {
  try {
    const { stdout } = await run('python3', ['-c', SCRIPT, root], { maxBuffer: 256 << 20, env: { ...process.env, PYTHONIOENCODING: 'utf-8' } });
    return JSON.parse(stdout) as TreeSnapshot;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`snapshot of ${root} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/**
 * Field-by-field differences, one line each (`/path: field: got X, want Y`; `/path: missing` / `unexpected`).
 * `skip` drops fields from the comparison for every path, e.g. directory mtimes are never compared.
 */
export function diffSnapshots(got: TreeSnapshot, want: TreeSnapshot): string[] {
  const lines: string[] = [];
  for (const path of Object.keys(want).sort()) if (!(path in got)) lines.push(`/${path}: missing (${want[path]!.type})`);
  for (const path of Object.keys(got).sort()) if (!(path in want)) lines.push(`/${path}: unexpected (${got[path]!.type})`);
  for (const path of Object.keys(want).sort()) {
    const g = got[path];
    const w = want[path]!;
    if (!g) continue;
    const keys = new Set([...Object.keys(g), ...Object.keys(w)]);
    for (const key of [...keys].sort()) {
      const a = JSON.stringify((g as unknown as Record<string, unknown>)[key]);
      const b = JSON.stringify((w as unknown as Record<string, unknown>)[key]);
      if (a !== b) lines.push(`/${path}: ${key}: got ${a}, want ${b}`);
    }
  }
  return lines;
}
