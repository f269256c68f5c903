// The FUSE ops in-process over a fake Filesystem: stat fields, errno mapping, callbacks answered exactly
// once, xattr size probes, EROFS for every mutation.
import t, { type Test } from 'tap';
import { IsDirectoryError, TocfsError } from '../../src/errors.js';
import { createFuseOps, makedev, type FuseOps } from '../../src/fuse/ops.js';
import { EACCES, EINVAL, EIO, EISDIR, ENODATA, ENOENT, ERANGE, EROFS, toErrno } from '../../src/fuse/errno.js';
import { fakeFilesystem } from './fake-fs.js';

/** Calls an op and resolves with its callback's arguments; fails the test if it answers twice. */
function call(t: Test, fn: (cb: (...args: any[]) => void) => void): Promise<any[]> {
  return new Promise((resolve) => {
    let calls = 0;
    fn((...args) => {
      calls++;
      if (calls > 1) t.fail('callback answered more than once');
      resolve(args);
    });
  });
}

function setup(maxOpenFiles?: number): { ops: FuseOps; fs: ReturnType<typeof fakeFilesystem>; logs: string[] } {
  const fs = fakeFilesystem();
  const logs: string[] = [];
  return { ops: createFuseOps(fs, { log: (l) => logs.push(l), ...(maxOpenFiles !== undefined && { maxOpenFiles }) }), fs, logs };
}

/** `ops.read` of `len` bytes at `pos` through `fd`: [count or -errno, the bytes]. */
async function read(t: Test, ops: FuseOps, path: string, fd: number, pos: number, len: number): Promise<[number, string]> {
  const buf = Buffer.alloc(len);
  const [n] = await call(t, (cb) => ops.read(path, fd, buf, len, pos, cb));
  return [n, n > 0 ? buf.subarray(0, n).toString() : ''];
}

t.test('getattr fills the stat fields', async (t) => {
  const { ops } = setup();
  const [err, st] = await call(t, (cb) => ops.getattr('/etc/hello', cb));
  t.equal(err, 0);
  t.match(st, { mode: 0o100644, uid: 1000, gid: 1001, size: 13, nlink: 2, ino: 10, blocks: 1, blksize: 4096 });
  t.equal(st.mtime, Date.UTC(2024, 0, 2, 3, 4, 5));
  const [, dir] = await call(t, (cb) => ops.getattr('/', cb));
  t.equal(dir.mode, 0o040755);
  t.equal(dir.nlink, 3);
  const [, link] = await call(t, (cb) => ops.getattr('/etc/link', cb));
  t.equal(link.mode, 0o120777);
  t.equal(link.size, 5);
  const [, suid] = await call(t, (cb) => ops.getattr('/etc/suid', cb));
  t.equal(suid.mode, 0o104755);
  const [, chr] = await call(t, (cb) => ops.getattr('/dev/null', cb));
  t.equal(chr.mode, 0o020666);
  t.equal(chr.rdev, makedev(1, 3));
  t.equal(makedev(1, 3), 0x103);
  const [, blk] = await call(t, (cb) => ops.getattr('/dev/sda', cb));
  t.equal(blk.mode, 0o060660);
  t.equal(blk.rdev, (300 & 0xff) | (8 << 8) | ((300 & 0xfff00) << 12));
  const [, fifo] = await call(t, (cb) => ops.getattr('/dev/fifo', cb));
  t.equal(fifo.mode, 0o010644);
});

t.test('errors map to errno through errno.ts', async (t) => {
  const { ops, fs, logs } = setup();
  t.same(await call(t, (cb) => ops.getattr('/nope', cb)), [ENOENT]);
  t.equal(logs.length, 0, 'a plain NOT_FOUND is not logged');
  fs.failures.set('/images/x', new TocfsError('UNAUTHORIZED', 'no pull access'));
  t.same(await call(t, (cb) => ops.getattr('/images/x', cb)), [ENOENT]);
  t.match(logs[0], /UNAUTHORIZED: no pull access/);
  fs.failures.set('/etc/hello', new TocfsError('BAD_DATA', 'digest mismatch'));
  t.same(await call(t, (cb) => ops.read('/etc/hello', 0, Buffer.alloc(10), 10, 0, cb)), [EIO]);
  fs.failures.set('/etc/hello', new Error('bug'));
  t.same(await call(t, (cb) => ops.getattr('/etc/hello', cb)), [EIO]);
  t.match(logs.at(-1), /unexpected error: Error: bug/);
  fs.failures.set('/etc/hello', 'a string');
  t.same(await call(t, (cb) => ops.readdir('/etc/hello', cb)), [EIO]);
  const l: string[] = [];
  t.equal(toErrno(new TocfsError('NO_PLATFORM', 'x'), 'op', '/p', (x) => l.push(x)), ENOENT);
  t.equal(toErrno(new TocfsError('INVALID_REFERENCE', 'x'), 'op', '/p', (x) => l.push(x)), ENOENT);
  t.equal(toErrno(new TocfsError('DENIED', 'x'), 'op', '/p', (x) => l.push(x)), ENOENT);
  for (const code of ['FORMAT', 'PROTOCOL', 'SOURCE_UNAVAILABLE', 'TIMEOUT'] as const) {
    t.equal(toErrno(new TocfsError(code, 'x'), 'read', '/p', (x) => l.push(x)), EIO, code);
  }
  t.notOk([EACCES].includes(ENOENT));
});

t.test('a callback that throws is answered once and logged, never rethrown', async (t) => {
  const { ops, logs } = setup();
  let calls = 0;
  ops.getattr('/etc/hello', () => {
    calls++;
    throw new Error('boom');
  });
  await new Promise((r) => setTimeout(r, 20));
  t.equal(calls, 1);
  t.match(logs[0], /callback threw/);
});

t.test('readdir, readlink, read', async (t) => {
  const { ops } = setup();
  const [err, names] = await call(t, (cb) => ops.readdir('/', cb));
  t.equal(err, 0);
  t.same(names, ['.', '..', 'images', 'etc', 'dev']);
  t.same(await call(t, (cb) => ops.readlink('/etc/link', cb)), [0, 'hello']);
  t.same(await call(t, (cb) => ops.readlink('/etc/hello', cb)), [EINVAL]);
  const buf = Buffer.alloc(8);
  t.same(await call(t, (cb) => ops.read('/etc/hello', 0, buf, 8, 7, cb)), [6]);
  t.equal(buf.subarray(0, 6).toString(), 'world\n');
  t.same(await call(t, (cb) => ops.read('/etc/hello', 0, buf, 8, 100, cb)), [0], 'past the end reads 0');
});

t.test('open and access refuse write access with EROFS', async (t) => {
  const { ops } = setup();
  const [err, fd] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  t.equal(err, 0);
  t.ok(fd > 0, 'a file handle');
  t.same(await call(t, (cb) => ops.open('/etc/hello', 1, cb)), [EROFS], 'O_WRONLY');
  t.same(await call(t, (cb) => ops.open('/etc/hello', 2, cb)), [EROFS], 'O_RDWR');
  t.same(await call(t, (cb) => ops.open('/etc/hello', 0o1000, cb)), [EROFS], 'O_TRUNC');
  t.same(await call(t, (cb) => ops.open('/nope', 0, cb)), [ENOENT]);
  t.same(await call(t, (cb) => ops.opendir('/etc', 0, cb)), [0, 0]);
  t.same(await call(t, (cb) => ops.access('/etc/hello', 4, cb)), [0]);
  t.same(await call(t, (cb) => ops.access('/etc/hello', 2, cb)), [EROFS]);
});

t.test('every mutating op answers EROFS', async (t) => {
  const { ops } = setup();
  const calls: Record<string, (cb: (...a: any[]) => void) => void> = {
    write: (cb) => ops.write('/etc/hello', 0, Buffer.alloc(1), 1, 0, cb),
    create: (cb) => ops.create('/etc/new', 0o644, cb),
    mknod: (cb) => ops.mknod('/etc/n', 0o644, 0, cb),
    mkdir: (cb) => ops.mkdir('/etc/d', 0o755, cb),
    unlink: (cb) => ops.unlink('/etc/hello', cb),
    rmdir: (cb) => ops.rmdir('/etc', cb),
    rename: (cb) => ops.rename('/etc/hello', '/etc/x', cb),
    link: (cb) => ops.link('/etc/hello', '/etc/x', cb),
    symlink: (cb) => ops.symlink('hello', '/etc/x', cb),
    chmod: (cb) => ops.chmod('/etc/hello', 0o600, cb),
    chown: (cb) => ops.chown('/etc/hello', 1, 1, cb),
    truncate: (cb) => ops.truncate('/etc/hello', 0, cb),
    ftruncate: (cb) => ops.ftruncate('/etc/hello', 0, 0, cb),
    utimens: (cb) => ops.utimens('/etc/hello', 0, 0, cb),
    setxattr: (cb) => ops.setxattr('/etc/hello', 'user.x', Buffer.alloc(1), 0, 0, cb),
    removexattr: (cb) => ops.removexattr('/etc/hello', 'user.note', cb),
  };
  for (const [name, fn] of Object.entries(calls)) t.same(await call(t, fn), [EROFS], name);
});

t.test('getxattr and listxattr follow the size-probe protocol', async (t) => {
  const { ops } = setup();
  t.same(await call(t, (cb) => ops.getxattr('/etc/hello', 'user.note', Buffer.alloc(0), cb)), [6], 'size 0 asks the length');
  t.same(await call(t, (cb) => ops.getxattr('/etc/hello', 'user.note', Buffer.alloc(3), cb)), [ERANGE]);
  const buf = Buffer.alloc(64);
  t.same(await call(t, (cb) => ops.getxattr('/etc/hello', 'user.note', buf, cb)), [6]);
  t.equal(buf.subarray(0, 6).toString(), 'a note');
  t.same(await call(t, (cb) => ops.getxattr('/etc/hello', 'user.missing', buf, cb)), [ENODATA]);
  t.same(await call(t, (cb) => ops.getxattr('/etc/link', 'user.note', buf, cb)), [ENODATA]);
  t.same(await call(t, (cb) => ops.getxattr('/nope', 'user.note', buf, cb)), [ENOENT]);
  const want = Buffer.from('user.note\0security.capability\0');
  t.same(await call(t, (cb) => ops.listxattr('/etc/hello', Buffer.alloc(0), cb)), [want.length]);
  t.same(await call(t, (cb) => ops.listxattr('/etc/hello', Buffer.alloc(5), cb)), [ERANGE]);
  const list = Buffer.alloc(100);
  t.same(await call(t, (cb) => ops.listxattr('/etc/hello', list, cb)), [want.length]);
  t.same(list.subarray(0, want.length), want);
  t.same(await call(t, (cb) => ops.listxattr('/etc/link', Buffer.alloc(0), cb)), [0]);
});

t.test('statfs reports a read-only filesystem', async (t) => {
  const { ops } = setup();
  const [err, st] = await call(t, (cb) => ops.statfs('/', cb));
  t.equal(err, 0);
  t.equal(st.flag & 1, 1, 'ST_RDONLY');
  t.equal(st.bsize, 4096);
  t.equal(st.namemax, 255);
  t.match(st, { blocks: 0, bfree: 0, files: 0 }, 'zeros from a filesystem that does not say');

  const fs = fakeFilesystem();
  const withSpace = createFuseOps(Object.assign(fs, { space: () => ({ totalBytes: 10 * 4096 + 1, usedBytes: 3 * 4096, files: 77 }) }), { log: () => {} });
  const [, sized] = await call(t, (cb) => withSpace.statfs('/', cb));
  t.match(sized, { blocks: 11, bfree: 8, bavail: 8, files: 77 }, 'the cache budget as the size, its use as used');
});

t.test('open resolves the path once: N reads through its handle resolve nothing', async (t) => {
  const { ops, fs } = setup();
  const [err, fd] = await call(t, (cb) => ops.open('/etc/big', 0, cb));
  t.equal(err, 0);
  t.same(fs.resolved, ['open /etc/big'], 'open: one resolution');
  const big = fs.entries.get('/etc/big')!.content!;
  for (let i = 0; i < 10; i++) {
    const [n, bytes] = await read(t, ops, '/etc/big', fd, i * 4096, 4096);
    t.equal(n, 4096);
    t.equal(bytes, Buffer.from(big.subarray(i * 4096, (i + 1) * 4096)).toString());
  }
  t.same(fs.resolved, ['open /etc/big'], 'one open then 10 reads: still one resolution');
  t.same(await read(t, ops, '/etc/big', fd, big.length - 1, 100), [1, Buffer.from(big.subarray(-1)).toString()], 'clamped at the end');
});

t.test('handles: distinct while open, freed on release, an unknown fd reads by path', async (t) => {
  const { ops, fs } = setup();
  const [, a] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  const [, b] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  const [, c] = await call(t, (cb) => ops.open('/etc/private', 0, cb));
  t.ok(a > 0 && b > 0 && c > 0 && new Set([a, b, c]).size === 3, 'a number per open, never one still open');
  t.same(await read(t, ops, '/etc/hello', a, 0, 5), [5, 'hello']);
  t.same(await call(t, (cb) => ops.release('/etc/hello', a, cb)), [0]);
  fs.resolved.length = 0;
  t.same(await read(t, ops, '/etc/hello', a, 7, 5), [5, 'world'], 'a released fd still reads, by path');
  t.same(fs.resolved, ['read /etc/hello'], 'released: the path is resolved again');
  t.same(await read(t, ops, '/etc/hello', b, 7, 5), [5, 'world']);
  t.same(fs.resolved, ['read /etc/hello'], 'the other open of the same file keeps its handle');
  t.same(await read(t, ops, '/etc/hello', 0, 0, 5), [5, 'hello'], 'fd 0: a carrier that did not open');
  t.same(await read(t, ops, '/etc/hello', 987654, 0, 5), [5, 'hello'], 'an fd never handed out');
  t.same(fs.resolved, ['read /etc/hello', 'read /etc/hello', 'read /etc/hello'], 'each by path');
  t.same(await call(t, (cb) => ops.release('/etc/hello', 987654, cb)), [0], 'releasing an unknown fd is harmless');
  const [, d] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  t.ok(d !== b && d !== c, 'a new open never gets a number still open');
});

t.test('the handle table is bounded: past it, open answers fd 0 and reads go by path', async (t) => {
  const { ops, fs } = setup(2);
  const [, a] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  const [, b] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  t.same(await call(t, (cb) => ops.open('/etc/hello', 0, cb)), [0, 0], 'full: no handle, still opened');
  fs.resolved.length = 0;
  t.same(await read(t, ops, '/etc/hello', 0, 0, 5), [5, 'hello']);
  t.same(fs.resolved, ['read /etc/hello']);
  await call(t, (cb) => ops.release('/etc/hello', a, cb));
  const [, c] = await call(t, (cb) => ops.open('/etc/hello', 0, cb));
  t.ok(c > 0 && c !== b, 'a released slot is used again');
});

t.test('a directory read as a file answers EISDIR, not EIO, and is not logged', async (t) => {
  const { ops, logs } = setup();
  t.same(await call(t, (cb) => ops.open('/etc', 0, cb)), [EISDIR], 'open of a directory through the file op');
  t.same(await read(t, ops, '/etc', 0, 0, 10), [EISDIR, ''], 'a read by path of a directory');
  t.same(logs, [], 'a program\'s mistake, not a fault of the mount');
  const l: string[] = [];
  t.equal(toErrno(new IsDirectoryError('/x'), 'read', '/x', (x) => l.push(x)), EISDIR);
  t.equal(toErrno(new TocfsError('IS_DIRECTORY', 'x'), 'read', '/x', (x) => l.push(x)), EISDIR);
  t.same(l, []);
});
