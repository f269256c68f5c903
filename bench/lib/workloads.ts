// The workloads of issue 8, each run in the image's root with chroot (as root; the same command for the
// mounted image and for the full pull's unpacked rootfs), and the images they run in.
import type { RootfsSpec } from '../../test/support/rootfs.js';

export interface Workload {
  readonly name: string;
  /** argv inside the root. */
  readonly argv: readonly string[];
  /** Only images that have what it needs. */
  readonly images?: readonly string[];
}

const SH = (cmd: string): string[] => ['/bin/sh', '-c', cmd];

export const WORKLOADS: readonly Workload[] = [
  { name: 'true', argv: ['/bin/true'] },
  { name: 'python-print', argv: ['/usr/bin/python3', '-c', 'print(1)'] },
  { name: 'app-numpy', argv: ['/usr/bin/python3', '/app/app.py'] },
  // Prints once, at the end: its "first output" is its completion.
  { name: 'find-stat-walk', argv: SH('find / -xdev -exec stat -c %s {} + | wc -l') },
  { name: 'sha256-128MiB', argv: ['/usr/bin/sha256sum', '/data/blob.bin'], images: ['large'] },
];

/** What the optimized variant is prioritised for: the reads of these workloads, in this order. */
export const RECORDED_WORKLOADS = ['true', 'python-print', 'app-numpy'];

export const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root' };

export interface BenchImage {
  readonly name: 'small' | 'large';
  readonly description: string;
  /** Name of the cached image layout; default `bench-NAME`. A new name rebuilds it (the cache never is). */
  readonly cacheName?: string;
  /** Cached roots, bottom layer first (scripts/rootfs.sh, bench/app-root.sh). */
  readonly roots: readonly (RootfsSpec | AppRoot)[];
}

export interface AppRoot {
  readonly name: string;
  readonly base: string;
  readonly args: readonly string[];
}

/** Built first, not a layer: what bench-minbase is copied from. */
export const DEBOOTSTRAP: RootfsSpec = { name: 'bookworm-minbase', suite: 'bookworm' };
// debootstrap leaves its .debs and apt lists in the tree (about 80 MB); an image base would not ship them.
const minbase: AppRoot = { name: 'bench-minbase', base: 'bookworm-minbase', args: ['--clean-apt'] };
const python: RootfsSpec = { name: 'bench-python', suite: 'bookworm', from: 'bench-minbase', packages: ['python3', 'python3-numpy'] };
const toolchain: RootfsSpec = { name: 'bench-toolchain', suite: 'bookworm', from: 'bench-python', packages: ['build-essential', 'python3-scipy'] };

export const IMAGES: readonly BenchImage[] = [
  {
    name: 'small',
    description: 'Debian bookworm minbase + python3 + python3-numpy + app (3 layers)',
    roots: [minbase, python, { name: 'bench-app', base: 'bench-python', args: ['--app'] }],
  },
  {
    name: 'large',
    description: 'the small image + build-essential + python3-scipy, app + data files of 128 and 80 MiB (4 layers)',
    cacheName: 'bench-large-505',
    roots: [minbase, python, toolchain, { name: 'bench-large-app-505', base: 'bench-toolchain', args: ['--app', '--data', 'data/blob.bin', '128', '--data', 'data/model.bin', '80'] }],
  },
];

/** One layer holding /data/gib.bin, 1 GiB of random bytes: the throughput file. */
export const GIB_ROOT: AppRoot = { name: 'bench-gib', base: '-', args: ['--data', 'data/gib.bin', '1024'] };
