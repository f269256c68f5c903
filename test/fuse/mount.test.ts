// A real fuse-native mount of the fake filesystem. Every file operation here is asynchronous: the FUSE ops
// run on this process's JS thread, so a synchronous fs call on the mount would deadlock.
import t, { type Test } from 'tap';
import Fuse from 'fuse-native';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, readlink, rm, stat, statfs, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fuseOptions, isMounted, mountFilesystem, unmountPath, type Mount } from '../../src/fuse/mount.js';
import { fakeFilesystem, type FakeFilesystem } from './fake-fs.js';

const run = promisify(execFile);

async function mounted(t: Test, fs: FakeFilesystem = fakeFilesystem()): Promise<{ dir: string; mount: Mount; fs: FakeFilesystem }> {
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-mount-'));
  const mount = await mountFilesystem(fs, dir, { log: () => {} });
  t.teardown(async () => {
    await mount.unmount();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, mount, fs };
}

t.test('stat, readdir, readFile, readlink, hardlinks through the kernel', async (t) => {
  const { dir } = await mounted(t);
  t.same((await readdir(dir)).sort(), ['dev', 'etc', 'images']);
  t.same((await readdir(join(dir, 'etc'))).sort(), ['big', 'hardlink', 'hello', 'link', 'private', 'slow', 'suid']);
  const st = await stat(join(dir, 'etc/hello'));
  t.match(st, { mode: 0o100644, uid: 1000, gid: 1001, size: 13, nlink: 2, blocks: 1 });
  t.equal(st.mtimeMs, Date.UTC(2024, 0, 2, 3, 4, 5));
  t.equal(st.ino, 10, 'use_ino: the inode is ours, not libfuse\'s');
  t.equal((await stat(join(dir, 'etc/hardlink'))).ino, st.ino, 'hardlinks share an inode');
  t.equal((await stat(join(dir, 'dev/sda'))).rdev, (300 & 0xff) | (8 << 8) | ((300 & 0xfff00) << 12));
  t.equal((await stat(join(dir, 'dev/null'))).mode, 0o020666);
  t.equal((await stat(join(dir, 'etc/suid'))).mode, 0o104755);
  t.equal(await readFile(join(dir, 'etc/hello'), 'utf8'), 'hello, world\n');
  t.equal(await readlink(join(dir, 'etc/link')), 'hello');
  t.equal(await readFile(join(dir, 'etc/link'), 'utf8'), 'hello, world\n');
  const big = await readFile(join(dir, 'etc/big'));
  t.equal(big.length, 1024 * 1024 + 17);
  t.equal(big[1024 * 1024 + 3], ((1024 * 1024 + 3) * 7 + ((1024 * 1024 + 3) >> 10)) & 0xff);
  await t.rejects(stat(join(dir, 'etc/nope')), { code: 'ENOENT' });
});

t.test('the kernel\'s reads of an open file come with its handle: the path is resolved at open, not per read', async (t) => {
  const { dir, fs } = await mounted(t);
  fs.resolved.length = 0;
  const big = await readFile(join(dir, 'etc/big'));
  t.equal(big.length, 1024 * 1024 + 17, 'more than one 128 KiB FUSE read');
  const resolutions = fs.resolved.filter((r) => r.endsWith(' /etc/big') && !r.startsWith('lookup '));
  t.same(resolutions, ['open /etc/big'], 'one open, then every read through the handle');
});

t.test('a directory read as a file answers EISDIR (cat, head, python), never EIO', async (t) => {
  const logs: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-mount-'));
  const mount = await mountFilesystem(fakeFilesystem(), dir, { log: (l) => logs.push(l) });
  t.teardown(async () => {
    await mount.unmount();
    await rm(dir, { recursive: true, force: true });
  });
  const etc = join(dir, 'etc');
  const shell = async (file: string, args: string[]): Promise<string> => {
    try {
      const { stdout } = await run(file, args);
      return stdout.trim();
    } catch (err) {
      return String((err as { stderr?: string }).stderr).trim();
    }
  };
  t.match(await shell('cat', [etc]), /Is a directory/, 'cat DIR');
  t.match(await shell('head', ['-c1', etc]), /Is a directory/, 'head -c1 DIR');
  const errnoOf = (code: string) =>
    shell('python3', ['-c', `import errno, os\ntry:\n  ${code}\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`]);
  t.equal(await errnoOf(`open(${JSON.stringify(etc)}).read()`), 'EISDIR', 'python open(DIR).read()');
  t.equal(await errnoOf(`os.read(os.open(${JSON.stringify(etc)}, os.O_RDONLY), 1)`), 'EISDIR', 'read(2) on a directory fd');
  t.same(logs, [], 'nothing logged: no EIO was answered');
});

t.test('xattrs via the real getxattr/listxattr syscalls', async (t) => {
  const { dir } = await mounted(t);
  const py = (code: string) => run('python3', ['-c', code]).then((r) => r.stdout.trim());
  t.equal(await py(`import os; print(os.getxattr(${JSON.stringify(join(dir, 'etc/hello'))}, 'user.note').decode())`), 'a note');
  t.equal(await py(`import os; print(sorted(os.listxattr(${JSON.stringify(join(dir, 'etc/hello'))})))`), "['security.capability', 'user.note']");
  t.equal(await py(`import os; print(os.getxattr(${JSON.stringify(dir)}, 'user.tocfs.requests').decode())`), '42');
  t.equal(
    await py(`import os, errno\ntry:\n  os.getxattr(${JSON.stringify(join(dir, 'etc/hello'))}, 'user.missing')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`),
    'ENODATA',
  );
});

t.test('writes are refused with EROFS; mounted ro,nodev,nosuid', async (t) => {
  const { dir } = await mounted(t);
  await t.rejects(writeFile(join(dir, 'etc/new'), 'x'), { code: 'EROFS' });
  await t.rejects(open(join(dir, 'etc/hello'), 'r+'), { code: 'EROFS' });
  const line = (await readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === dir);
  t.ok(line, 'listed in /proc/self/mounts');
  const [fsname, , type, options] = line!.split(' ');
  t.equal(fsname, 'tocfs');
  t.equal(type, 'fuse.tocfs');
  const opts = options!.split(',');
  for (const o of ['ro', 'nodev', 'nosuid', 'allow_other', 'default_permissions']) t.ok(opts.includes(o), o);
});

/** `cat PATH` as the unprivileged user nobody (a job on a worker node); never rejects. */
async function catAsNobody(path: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

t.test('other users read the tree by default, and the kernel enforces each file\'s mode', async (t) => {
  const { dir } = await mounted(t);
  t.same(await catAsNobody(join(dir, 'etc/hello')), { code: 0, stdout: 'hello, world\n', stderr: '' }, 'a 0644 file is readable');
  const secret = await catAsNobody(join(dir, 'etc/private'));
  t.not(secret.code, 0, 'a 0600 root file is not');
  t.match(secret.stderr, /Permission denied/);
  t.equal(await readFile(join(dir, 'etc/private'), 'utf8'), 'hello, world\n', 'root still reads it');
});

t.test('allowOther: false keeps the tree to root', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-mount-'));
  const mount = await mountFilesystem(fakeFilesystem(), dir, { log: () => {}, allowOther: false });
  t.teardown(async () => {
    await mount.unmount();
    await rm(dir, { recursive: true, force: true });
  });
  const options = (await readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === dir)!.split(' ')[3]!;
  t.notOk(options.split(',').includes('allow_other'), 'no allow_other');
  const r = await catAsNobody(join(dir, 'etc/hello'));
  t.match(r.stderr, /Permission denied/, 'another user is refused even a 0644 file');
});

t.test('fuse-native\'s per-op timeout is disabled; a 2 s read succeeds', async (t) => {
  const { native, extra } = fuseOptions({});
  t.equal(native.timeout, false);
  t.equal(new Fuse('/nonexistent', {}, native).timeout, 0, 'fuse-native reads timeout:false as no timeout');
  t.ok(native.kernelCache && native.entryTimeout && native.attrTimeout && native.maxRead);
  t.ok(extra.includes('use_ino'));
  t.ok(fuseOptions({ allowSuid: true }).extra.every((o) => o !== 'nosuid'));
  const fs = fakeFilesystem();
  fs.readDelay.set('/etc/slow', 2000);
  const { dir } = await mounted(t, fs);
  const started = Date.now();
  t.equal(await readFile(join(dir, 'etc/slow'), 'utf8'), 'hello, world\n');
  t.ok(Date.now() - started >= 1900, 'the read waited for the filesystem');
});

t.test('a stale mount left by a killed daemon is cleaned before mounting again', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-stale-'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'mount-child.ts'), dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(async () => {
    child.kill('SIGKILL');
    if (await isMounted(dir)) await run('fusermount', ['-uz', dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('mounted') && ok());
    child.on('exit', (code) => fail(new Error(`child exited ${code}`)));
  });
  t.equal((await stat(join(dir, 'etc/hello'))).size, 13, 'the child serves the mount');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  // statfs, not stat: the kernel answers stat from attributes it caches for a day, dead server or not.
  await t.rejects(statfs(dir), { code: 'ENOTCONN' }, 'the mount is stale');

  const mount = await mountFilesystem(fakeFilesystem(), dir, { log: () => {} });
  t.teardown(() => mount.unmount());
  t.equal(await readFile(join(dir, 'etc/hello'), 'utf8'), 'hello, world\n');
  await mount.unmount();
  t.notOk(await isMounted(dir), 'nothing left in /proc/mounts');
});

t.test('SIGTERM as soon as the mount shows, before the daemon has heard of it: a clean unmount, exit 0', async (t) => {
  // The kernel lists the mount before fuse-native's callback runs; a signal in that window used to end the
  // process with the mount left behind. Three tries: each sends SIGTERM the moment the mount is listed.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'tocfs-early-term-'));
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'mount-child.ts'), dir], { stdio: ['ignore', 'ignore', 'inherit'] });
    t.teardown(async () => {
      child.kill('SIGKILL');
      if (await isMounted(dir)) await run('fusermount', ['-uz', dir]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((ok) => child.once('exit', (code, signal) => ok([code, signal])));
    while (!(await isMounted(dir))) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setImmediate(r));
    }
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    t.same({ code, signal }, { code: 0, signal: null }, `try ${attempt}: the daemon exits 0, not by the signal`);
    t.notOk(await isMounted(dir), `try ${attempt}: no mount left behind`);
  }
});

t.test('unmount leaves nothing in /proc/mounts; a live mount is not taken over; unmountPath', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-unmount-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mount = await mountFilesystem(fakeFilesystem(), dir, { log: () => {}, watchMs: 50 });
  t.teardown(() => mount.unmount());
  t.ok(await isMounted(dir));
  await t.rejects(mountFilesystem(fakeFilesystem(), dir, { log: () => {} }), { code: 'INVALID_OPTION' });
  const handle = await open(join(dir, 'etc/hello'));
  await unmountPath(dir); // busy: detached lazily
  await handle.close();
  t.notOk(await isMounted(dir), 'gone from /proc/mounts');
  await mount.closed; // the watch noticed and stopped the FUSE thread
  await mount.unmount();
  await t.rejects(unmountPath(dir), { code: 'INVALID_OPTION' });
});

t.test('a mount at MNT of another filesystem (a container volume) is mounted over and left in place', async (t) => {
  // In a container the mountpoint is a bind mount from the host, on another device than its parent: exactly
  // what fuse-native's own open refused ("Mountpoint in use"). A tmpfs there has the same shape.
  const dir = await mkdtemp(join(tmpdir(), 'tocfs-volume-'));
  await run('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
  t.teardown(async () => {
    await run('umount', [dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  t.notOk(await isMounted(dir), 'a tmpfs is no FUSE mount');
  const mount = await mountFilesystem(fakeFilesystem(), dir, { log: () => {}, watchMs: 50 });
  t.teardown(() => mount.unmount());
  t.ok(await isMounted(dir));
  t.same((await readdir(dir)).sort(), ['dev', 'etc', 'images'], 'serves the filesystem, not the volume');
  await unmountPath(dir);
  await mount.closed; // the watch noticed the FUSE mount went, though the volume is still there
  t.notOk(await isMounted(dir));
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  t.ok(mounts.split('\n').some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'tmpfs'), 'the volume stays mounted');
});
