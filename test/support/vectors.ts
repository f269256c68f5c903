// Named layer contents shared by every TOC format's suite (STYLE.md "Vectors are data built with the
// DSL"). Each name is the behaviour it pins; files are small so that tiny chunk sizes (3, 4, 64 bytes)
// cut every one of them into many chunks.
import { blockdev, chardev, dir, fifo, file, hardlink, opaque, symlink, whiteout, type TarEntry } from './tar-dsl.js';

export interface Vector {
  readonly name: string;
  readonly entries: readonly TarEntry[];
  /** Format-independent build options the vector needs (landmarks). */
  readonly build?: { readonly prioritized?: readonly string[]; readonly noPrefetchLandmark?: boolean };
}

/** CAP_NET_RAW as `setcap cap_net_raw+ep` stores it: vfs_cap_data revision 2, not valid UTF-8. */
export const CAP_NET_RAW = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

/** CAP_SETUID (bit 7) makes the permitted mask's first byte 0x80, which is not valid UTF-8 on its own. */
export const CAP_SETUID = Buffer.from([0x01, 0, 0, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
/** 150 bytes: a path under it needs the ustar prefix. */
export const LONG_DIR = 'deep/'.repeat(30);
/** 124 bytes: no ustar split can hold it, so a tar writer needs a PAX path. */
export const LONG_NAME = `${'n'.repeat(120)}.txt`;
export const UNICODE = 'ünïcødé/☃ snow.txt';

const deep = Array.from({ length: 60 }, (_, i) => `d${i}`).join('/');

export const VECTORS: readonly Vector[] = [
  {
    name: 'regfiles and directories',
    entries: [
      dir('etc'),
      file('etc/hosts', '127.0.0.1 localhost\n'),
      file('etc/passwd', { size: 200 }),
      dir('usr', { mode: 0o1755 }),
      dir('usr/bin'),
      file('usr/bin/tool', { size: 131 }, { mode: 0o4755 }),
      symlink('usr/bin/alias', 'tool'),
      file('usr/lib/liba.so', { size: 64 }, { mode: 0o2755 }),
    ],
  },
  {
    name: 'special files',
    entries: [dir('dev'), chardev('dev/null', 1, 3), blockdev('dev/sda', 8, 0), fifo('run/initctl', { mode: 0o600 })],
  },
  {
    name: 'empty files between non-empty',
    entries: [file('a', 'x'), file('b', ''), file('c', 'yy'), file('d', ''), file('e', { size: 70 }), file('f', '')],
  },
  {
    name: 'hardlink to chunked file',
    entries: [
      dir('bin'),
      file('bin/busybox', { size: 150 }, { mode: 0o755 }),
      hardlink('bin/sh', 'bin/busybox'),
      hardlink('./bin/ls', './bin/busybox'),
      file('bin/empty', ''),
      hardlink('bin/empty2', 'bin/empty'),
    ],
  },
  {
    name: 'whiteout + opaque',
    entries: [dir('a'), whiteout('a/b'), opaque('c'), file('c/d', 'kept'), whiteout('gone')],
  },
  {
    name: 'xattrs',
    entries: [
      dir('bin', { xattrs: { 'trusted.overlay.opaque': 'y' } }),
      file('bin/ping', { size: 90 }, { mode: 0o755, xattrs: { 'security.capability': CAP_NET_RAW, 'user.note': 'h\u00e9llo' } }),
      symlink('bin/p', 'ping', { xattrs: { 'user.empty': '' } }),
    ],
  },
  {
    name: 'uid/gid names only on first use',
    entries: [
      file('home/alice/a', 'a', { uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' }),
      file('home/alice/b', 'b', { uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' }),
      file('home/bob/c', 'c', { uid: 1001, gid: 1000, uname: 'bob', gname: 'staff' }),
      file('big-ids', 'd', { uid: 3_000_000, gid: 4_000_000 }),
    ],
  },
  {
    name: './ and / prefixes',
    entries: [
      dir('./', { mode: 0o700 }),
      dir('./etc'),
      file('./etc/motd', 'hello\n'),
      file('/abs/file', 'x'),
      symlink('./etc/link', '/etc/motd'),
      hardlink('./etc/hard', './etc/motd'),
      file('.//etc/./double', 'dd'),
    ],
  },
  {
    name: 'deep tree (maxPathDepth)',
    entries: [file(`${deep}/leaf`, { size: 40 }), dir(`${deep}/sub`)],
  },
  {
    name: 'mtimes',
    entries: [
      file('rounded', 'r', { mtime: new Date('2030-06-01T12:34:56.700Z') }),
      file('before-1970', 'b', { mtime: new Date('1969-07-20T20:17:40Z') }),
      file('epoch', 'e', { mtime: new Date(0) }),
    ],
  },
  {
    name: 'landmarks hidden',
    entries: [dir('etc'), file('etc/hosts', { size: 30 }), file('app/main', { size: 100 }), file('lib/rest', { size: 50 })],
    build: { prioritized: ['app/main'] },
  },
  {
    name: 'no prefetch landmark',
    entries: [file('only', { size: 20 })],
    build: { noPrefetchLandmark: true },
  },
  {
    name: 'file across the default chunk size',
    entries: [file('blob', { size: (4 << 20) + 3 }), file('after', 'z')],
  },
];
