// The demo image's root filesystem: host binaries with their libraries run under chroot once unpacked.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { hostRootfsEntries } from './host-rootfs.js';
import { buildImage } from './image-builder.js';
import { writeOciLayout, umociUnpack } from './oci-layout.js';
import { tempDir } from './tmp.js';
import { file } from './tar-dsl.js';

t.test('host binaries and their libraries make a root filesystem that runs under chroot', async (t) => {
  const entries = hostRootfsEntries(['/bin/sh', '/bin/cat', '/bin/ls']);
  const paths = entries.map((e) => e.path.replace(/\/$/, ''));
  t.ok(paths.includes('bin') || paths.includes('usr/bin'), 'bin directory');
  t.ok(paths.some((p) => p.endsWith('libc.so.6')), 'libc');
  t.ok(new Set(paths).size === paths.length, 'each path once');

  const work = tempDir(t, 'host-rootfs');
  const image = await buildImage(`${work}/image`, { layers: [{ compression: 'gzip', entries: [...entries, file('hello.txt', 'hi\n')] }] });
  const layout = await writeOciLayout(`${work}/layout`, 'v1', image);
  const rootfs = await umociUnpack(layout, 'v1', `${work}/bundle`);
  const out = execFileSync('chroot', [rootfs, '/bin/sh', '-c', 'echo hello from $0 && ls -d /usr && cat /hello.txt'], { encoding: 'utf8' });
  t.equal(out, 'hello from /bin/sh\n/usr\nhi\n');
});
