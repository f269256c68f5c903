// The three-layer image that the oracle tests (test/image/merged-oracle.test.ts, in process, and
// test/integration/mount-oracle.test.ts, through a real mount) compare with `umoci unpack`: every feature of
// DESIGN.md §1.3 (whiteouts, opaque dirs, type changes, implicit parents, hardlinks, setuid/setgid/sticky,
// devices, fifos, xattrs incl. a binary capability, PAX long/unicode names, multi-MiB and sparse files).
import { blockdev, chardev, dir, fifo, file, hardlink, opaque, symlink, whiteout, type TarEntry } from './tar-dsl.js';

/** security.capability with CAP_SETUID and CAP_NET_BIND_SERVICE permitted: byte 4 is 0x80, not valid UTF-8. */
export const CAP = Buffer.from([0x01, 0, 0, 0x02, 0x80, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
export const OLD = new Date('2001-02-03T04:05:06Z');
export const NEW = new Date('2022-06-07T08:09:10Z');
export const LONG = `long-${'ä'.repeat(40)}-${'x'.repeat(120)}`; // > 100 bytes: a PAX path record
export const UNICODE = 'ünïcødé-名前-🙂';

/** The image both oracle tests build; `big/multi-mb.bin` is what makes a lazy read measurable. */
export const LAYERS: TarEntry[][] = [
  [
    dir('etc', { mtime: OLD, mode: 0o750, gid: 4 }),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
    file('etc/motd', 'old news', { mtime: OLD }),
    file('etc/empty', ''),
    dir('usr'),
    dir('usr/bin'),
    file('usr/bin/su', 'su-binary', { mode: 0o4755, xattrs: { 'security.capability': CAP, 'user.origin': 'layer0' } }),
    hardlink('usr/bin/su-link', 'usr/bin/su'),
    file('usr/bin/wall', 'wall', { mode: 0o2755, gid: 5 }),
    file('usr/bin/sticky', 'sticky', { mode: 0o1755 }),
    dir('tmp', { mode: 0o1777 }),
    dir('var/lib/gone', { uid: 7 }),
    file('var/lib/gone/data', 'x'.repeat(5000)),
    file('var/lib/kept', 'kept'),
    dir('opq', { mode: 0o700, uid: 11, xattrs: { 'user.dir': 'lower' } }),
    file('opq/lower-only', 'lower'),
    dir('opq/lower-dir'),
    file('opq/lower-dir/f', 'f'),
    file('replaced-by-dir', 'i was a file'),
    dir('replaced-by-file'),
    file('replaced-by-file/child', 'c'),
    symlink('lib', 'usr/lib'),
    symlink('etc/abs-link', '/usr/bin/su', { mtime: OLD }),
    chardev('dev/null', 1, 3, { mode: 0o666 }),
    blockdev('dev/loop0', 7, 0, { mode: 0o660, gid: 6 }),
    blockdev('dev/sdq', 259, 300, { mode: 0o640 }),
    fifo('run/fifo', { mode: 0o600 }),
    file('implicit/deep/file', 'implicit parents', { uid: 1000, gid: 1000 }),
  ],
  [
    whiteout('etc/motd'),
    file('etc/motd', 'new news', { mtime: NEW, mode: 0o600 }),
    whiteout('var/lib/gone'),
    opaque('opq'),
    file('opq/upper', 'upper'),
    dir('replaced-by-dir', { mode: 0o711 }),
    file('replaced-by-dir/inside', 'inside'),
    symlink('replaced-by-file', '/etc/passwd'),
    file('usr/bin/new', 'new tool', { uid: 1234, gid: 5678, mtime: NEW, xattrs: { 'user.mime': 'text/plain', 'user.bin': Buffer.from([0, 0xff, 0x80, 7]) } }),
    hardlink('usr/bin/new-link', 'usr/bin/new'),
    hardlink('usr/bin/new-link2', 'usr/bin/new'),
    file('implicit/deep/second', '2'),
    dir('names'),
    file(`names/${LONG}`, 'long name\n'),
    file(`names/${UNICODE}`, 'unicode name\n', { uid: 65534, gid: 65534 }),
    symlink('names/long-target', `/${LONG}/${'y'.repeat(150)}`),
    file('big/multi-mb.bin', { size: 6 * 2 ** 20 + 4321 }),
    file('big/small.txt', 'a small file next to a big one\n'),
    file('big/sparse.img', { size: 3 * 2 ** 20 + 5, sparse: true }),
  ],
  [
    dir('etc', { mode: 0o755, mtime: NEW }),
    whiteout('dev/loop0'),
    file('opq/top', 'top'),
    whiteout('ghost/nothing'),
    whiteout('run'),
    dir('run', { mode: 0o700 }),
    file('etc/.wh.not-a-whiteout-dir/x', 'odd name'),
    file('etc/hostname-ish', 'oracle\n'),
  ],
];
