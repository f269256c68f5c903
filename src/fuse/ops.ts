/**
 * The fuse-native operations over a read-only `Filesystem`. Every op answers its callback exactly once and
 * never throws into fuse-native; errors become errno values only through errno.ts.
 *
 * Callback convention (fuse-native's): `cb(errno, ...values)` where errno is 0 or a negative errno. Two ops
 * differ from fuse-native's own signature because it hides the kernel's buffer size, which the xattr
 * size-probe protocol needs: `getxattr(path, name, buf, cb(result))` and `listxattr(path, buf, cb(result))`,
 * where `result` is the length (or the needed length when `buf` is empty) or a negative errno. mount.ts
 * routes fuse-native's xattr calls to these.
 */
import type { Filesystem, FsNode, FsNodeType } from '../image/filesystem.js';
import { EINVAL, ENODATA, ERANGE, EROFS, toErrno, type ErrnoLog } from './errno.js';
import { FileHandles } from './file-handles.js';
import { abortable, deadline } from '../util/abort.js';

// S_IFMT bits (Linux).
const S_IFMT: Record<FsNodeType, number> = {
  dir: 0o040000,
  reg: 0o100000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

const O_ACCMODE = 0o3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;
const W_OK = 2;
const BLOCK_SIZE = 4096;
// statvfs f_flag bits.
const ST_RDONLY = 1;
const ST_NOSUID = 2;
const ST_NODEV = 4;

/** What fuse-native's getStatArray reads. Times are milliseconds since the epoch. */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface FuseStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

type Cb = (errno: number, ...values: any[]) => void;

export interface FuseOps {
  init(cb: Cb): void;
  getattr(path: string, cb: Cb): void;
  readdir(path: string, cb: Cb): void;
  open(path: string, flags: number, cb: Cb): void;
  opendir(path: string, flags: number, cb: Cb): void;
  release(path: string, fd: number, cb: Cb): void;
  releasedir(path: string, fd: number, cb: Cb): void;
  /** `cb(bytesRead)` or `cb(-errno)`: unlike the other ops, the first argument is the count. */
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
  readlink(path: string, cb: Cb): void;
  getxattr(path: string, name: string, buf: Buffer, cb: (result: number) => void): void;
  listxattr(path: string, buf: Buffer, cb: (result: number) => void): void;
  statfs(path: string, cb: Cb): void;
  access(path: string, mode: number, cb: Cb): void;
  write(...args: any[]): void;
  create(...args: any[]): void;
  mknod(...args: any[]): void;
  mkdir(...args: any[]): void;
  unlink(...args: any[]): void;
  rmdir(...args: any[]): void;
  rename(...args: any[]): void;
  link(...args: any[]): void;
  symlink(...args: any[]): void;
  chmod(...args: any[]): void;
  chown(...args: any[]): void;
  truncate(...args: any[]): void;
  ftruncate(...args: any[]): void;
  utimens(...args: any[]): void;
  setxattr(...args: any[]): void;
  removexattr(...args: any[]): void;
}

export interface FuseOpsOptions {
  /** One line per unexpected error or refused lookup (stderr in the daemon). */
  readonly log?: ErrnoLog;
  /** Files open at once with a handle (file-handles.ts); further opens read by path. */
  readonly maxOpenFiles?: number;
  /**
   * The longest one read(2) waits (--fetch-timeout), then EIO. The registry client bounds each fetch by
   * the same budget and names the cause; this deadline, a little later, bounds the reader's own wait
   * whatever it waits on (a fetch another reader started, a layer still opening). Default: none.
   */
  readonly readTimeoutMs?: number;
}

// After the fetch's own budget: a fetch started by this read fails first, with its cause in the message.
const READ_GRACE_MS = 250;

/** Linux makedev() truncated to the 32-bit st_rdev fuse-native carries (the kernel's new_encode_dev). */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

export function toFuseStat(node: FsNode): FuseStat {
  const size = node.type === 'reg' || node.type === 'symlink' ? node.size : node.type === 'dir' ? BLOCK_SIZE : 0;
  return {
    mode: (S_IFMT[node.type] | (node.mode & 0o7777)) >>> 0,
    uid: node.uid,
    gid: node.gid,
    size,
    nlink: node.nlink > 0 ? node.nlink : 1,
    ino: node.ino,
    rdev: node.type === 'char' || node.type === 'block' ? makedev(node.devMajor ?? 0, node.devMinor ?? 0) : 0,
    blksize: BLOCK_SIZE,
    blocks: node.type === 'reg' ? Math.ceil(node.size / 512) : 0,
    atime: node.mtimeMs,
    mtime: node.mtimeMs,
    ctime: node.mtimeMs,
  };
}

/**
 * Drops a line equal to the one logged less than a second ago: the kernel retries a failed page read at
 * once, and the same cause for the same file is worth one line, not one per retry.
 */
function onceASecond(log: ErrnoLog): ErrnoLog {
  let last = '';
  let at = 0;
  return (line) => {
    const now = Date.now();
    if (line === last && now - at < 1000) return;
    last = line;
    at = now;
    log(line);
  };
}

export function createFuseOps(fs: Filesystem, options: FuseOpsOptions = {}): FuseOps {
  const log = onceASecond(options.log ?? ((line) => process.stderr.write(`tocfs: ${line}\n`)));
  const handles = new FileHandles(options.maxOpenFiles);

  /** Runs `work` and answers `cb` exactly once: with its values, or with the errno of what it threw. */
  function run(op: string, path: string, cb: Cb, work: () => Promise<readonly [number, ...unknown[]]>): void {
    let answered = false;
    const answer = (errno: number, ...values: unknown[]): void => {
      if (answered) return;
      answered = true;
      try {
        cb(errno, ...values);
      } catch (err) {
        log(`${op} ${path}: callback threw: ${(err as Error)?.stack ?? String(err)}`);
      }
    };
    let pending: Promise<readonly [number, ...unknown[]]>;
    try {
      pending = work();
    } catch (err) {
      answer(toErrno(err, op, path, log));
      return;
    }
    pending.then(
      (values) => answer(...values),
      (err: unknown) => answer(toErrno(err, op, path, log)),
    );
  }

  const readOnly =
    (op: string) =>
    (...args: any[]): void => {
      const cb = args[args.length - 1];
      if (typeof cb !== 'function') {
        log(`${op}: called without a callback`);
        return;
      }
      try {
        cb(EROFS);
      } catch (err) {
        log(`${op}: callback threw: ${(err as Error)?.stack ?? String(err)}`);
      }
    };

  async function xattr(path: string, name: string): Promise<Uint8Array | undefined> {
    return (await fs.xattrs(path)).get(name);
  }

  return {
    init: (cb) => cb(0),

    getattr: (path, cb) => run('getattr', path, cb, async () => [0, toFuseStat(await fs.lookup(path))]),

    readdir: (path, cb) =>
      run('readdir', path, cb, async () => {
        const names = await fs.readdir(path);
        return [0, ['.', '..', ...names]];
      }),

    open: (path, flags, cb) =>
      run('open', path, cb, async () => {
        if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) return [EROFS];
        return [0, handles.add(await fs.open(path))];
      }),

    opendir: (path, flags, cb) =>
      run('opendir', path, cb, async () => {
        if ((flags & O_ACCMODE) !== O_RDONLY) return [EROFS];
        await fs.lookup(path);
        return [0, 0];
      }),

    release: (_path, fd, cb) => {
      handles.delete(fd);
      cb(0);
    },
    releasedir: (_path, _fd, cb) => cb(0),

    read: (path, fd, buf, len, pos, cb) =>
      run('read', path, cb, async () => {
        const want = Math.min(len, buf.length);
        if (want <= 0) return [0];
        // An fd this table did not hand out (0: a full table, or a carrier that skipped open) reads by path.
        const file = handles.get(fd);
        // Each reader's own deadline: a shared fetch it joined goes on for the others (fetcher.ts).
        const limit = deadline((options.readTimeoutMs ?? Infinity) + READ_GRACE_MS, undefined, 'read got no data');
        const opts = limit.signal ? { signal: limit.signal } : {};
        let bytes: Uint8Array;
        try {
          bytes = await abortable(file !== undefined ? file.read(pos, want, opts) : fs.read(path, pos, want, opts), limit.signal);
        } finally {
          limit.done();
        }
        const n = Math.min(bytes.length, want);
        buf.set(n === bytes.length ? bytes : bytes.subarray(0, n), 0);
        // fuse-native's read callback is cb(bytesRead or -errno): a short count is end of file.
        return [n];
      }),

    readlink: (path, cb) =>
      run('readlink', path, cb, async () => {
        const node = await fs.lookup(path);
        if (node.type !== 'symlink' || node.linkName === undefined) return [EINVAL];
        return [0, node.linkName];
      }),

    getxattr: (path, name, buf, cb) =>
      run('getxattr', path, cb, async () => {
        const value = await xattr(path, name);
        if (value === undefined) return [ENODATA];
        if (buf.length === 0) return [value.length];
        if (value.length > buf.length) return [ERANGE];
        buf.set(value, 0);
        return [value.length];
      }),

    listxattr: (path, buf, cb) =>
      run('listxattr', path, cb, async () => {
        const names = [...(await fs.xattrs(path)).keys()];
        const list = Buffer.from(names.map((n) => `${n}\0`).join(''), 'utf8');
        if (buf.length === 0) return [list.length];
        if (list.length > buf.length) return [ERANGE];
        list.copy(buf, 0);
        return [list.length];
      }),

    statfs: (_path, cb) => {
      const space = fs.space?.() ?? { totalBytes: 0, usedBytes: 0, files: 0 };
      const blocks = Math.ceil(space.totalBytes / BLOCK_SIZE);
      const free = Math.max(0, blocks - Math.ceil(space.usedBytes / BLOCK_SIZE));
      const st: FuseStatfs = {
        bsize: BLOCK_SIZE,
        frsize: BLOCK_SIZE,
        blocks,
        bfree: free,
        bavail: free,
        files: space.files,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: ST_RDONLY | ST_NOSUID | ST_NODEV,
        namemax: 255,
      };
      cb(0, st);
    },

    access: (path, mode, cb) =>
      run('access', path, cb, async () => {
        if ((mode & W_OK) !== 0) return [EROFS];
        await fs.lookup(path);
        return [0];
      }),

    write: readOnly('write'),
    create: readOnly('create'),
    mknod: readOnly('mknod'),
    mkdir: readOnly('mkdir'),
    unlink: readOnly('unlink'),
    rmdir: readOnly('rmdir'),
    rename: readOnly('rename'),
    link: readOnly('link'),
    symlink: readOnly('symlink'),
    chmod: readOnly('chmod'),
    chown: readOnly('chown'),
    truncate: readOnly('truncate'),
    ftruncate: readOnly('ftruncate'),
    utimens: readOnly('utimens'),
    setxattr: readOnly('setxattr'),
    removexattr: readOnly('removexattr'),
  };
}
