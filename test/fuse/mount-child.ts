// Mounts the fake filesystem at argv[2] and prints "mounted"; the stale-mount test kills it with SIGKILL.
// Run without arguments (tap given the directory) it is no test: it says so in TAP and exits.
import { mountFilesystem } from '../../src/fuse/mount.js';
import { fakeFilesystem } from './fake-fs.js';

const mnt = process.argv[2];
if (mnt === undefined) {
  process.stdout.write('1..0 # SKIP helper for mount.test.ts, not a test\n');
} else {
  await mountFilesystem(fakeFilesystem(), mnt, { handleSignals: true });
  process.stdout.write('mounted\n');
}
