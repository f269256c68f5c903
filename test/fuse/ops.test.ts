// The FUSE ops in-process over a fake Filesystem: stat fields, errno mapping, callbacks answered exactly
// once, xattr size probes, EROFS for every mutation.
import t, { type Test } from 'tap';
import { TocfsError } from '../../src/errors.js';
import { createFuseOps, makedev, type FuseOps } from '../../src/fuse/ops.js';
import { EACCES, EINVAL, EIO, ENODATA, ENOENT, ERANGE, EROFS, toErrno } from '../../src/fuse/errno.js';
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

function setup(): { ops: FuseOps; fs: ReturnType<typeof fakeFilesystem>; logs: string[] } {
  const fs = fakeFilesystem();
  const logs: string[] = [];
  return { ops: createFuseOps(fs, { log: (l) => logs.push(l) }), fs, logs };
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
  t.same(await call(t, (cb) => ops.open('/etc/hello', 0, cb)), [0, 0]);
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
