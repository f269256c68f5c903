// The cost of failed lookups on a tocfs mount vs the same tree on local disk (DESIGN.md §5: fuse-native
// has no negative_timeout, so every lookup of a missing name reaches the daemon). Interleaved in one run.
//
//   npx tsx bench/negative-lookups.ts        (root: mounts FUSE and chroots; prints a markdown table)
//
// Standalone: starts a real registry (Debian docker-registry), pushes one eStargz image holding the
// host's /usr/bin/python3.11 with its libraries and stdlib, mounts it with createDaemon in this process,
// and writes the same entries to a local directory. Everything is torn down at the end.
// (a) a python3 child doing N `os.stat` calls of missing names (200 names in 4 existing directories,
//     cycled), timed with time.perf_counter, mount vs local;
// (b) `chroot ROOT /usr/bin/python3.11 -c pass` (the image's own python starting up), mount vs local,
//     with the failed lookups of one startup counted by `strace -f -Z` (skipped without python/strace).
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, symlink as fsSymlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { isMounted } from '../src/fuse/mount.js';
import { buildEstargz } from '../test/support/estargz-build.js';
import { hostRootfsEntries } from '../test/support/host-rootfs.js';
import { buildImage } from '../test/support/image-builder.js';
import { pushImage } from '../test/support/push.js';
import { startRegistry } from '../test/support/registry.js';
import { contentBytes, dir, file, type TarEntry } from '../test/support/tar-dsl.js';
import { makeTempDir, removeDir } from '../test/support/tmp.js';

const run = promisify(execFile);
const ROUNDS = 5;
const N = 20_000;
const PYTHON = '/usr/bin/python3.11';
const STDLIB = '/usr/lib/python3.11';
const SKIP = new Set(['test', 'tests', 'idlelib', 'tkinter', 'turtledemo', 'lib2to3', 'ensurepip', 'pydoc_data', 'site-packages', 'dist-packages']);
const STAT_DIRS = ['usr/lib/python3.11', 'usr/lib/python3.11/encodings', 'usr/lib/python3.11/json', 'usr/bin'];

const STAT_LOOP = `
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
dirs = [os.path.join(root, d) for d in sys.argv[3:]]
names = [os.path.join(dirs[i % len(dirs)], 'missing_%d.py' % i) for i in range(200)]
t0 = time.perf_counter()
for i in range(n):
    try:
        os.stat(names[i % 200])
    except FileNotFoundError:
        pass
print(time.perf_counter() - t0)
`;

const START_LOOP = `
import subprocess, sys, time
root, n = sys.argv[1], int(sys.argv[2])
env = {'PATH': '/usr/bin:/bin', 'PYTHONDONTWRITEBYTECODE': '1'}
best = []
for _ in range(n):
    t0 = time.perf_counter()
    subprocess.run(['/usr/sbin/chroot', root, '${PYTHON}', '-c', 'pass'], check=True, env=env)
    best.append(time.perf_counter() - t0)
best.sort()
print(best[len(best) // 2])
`;

/** The stdlib as entries: .py, this interpreter's .pyc, lib-dynload; no tests or GUI. */
function stdlibEntries(): TarEntry[] {
  const sources: string[] = [];
  const sos: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs)) {
      if (SKIP.has(name) || name.startsWith('config-')) continue;
      const p = join(abs, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (!st.isFile()) continue;
      else if (name.endsWith('.so')) sos.push(p);
      else if (/\.py$|\.cpython-311\.pyc$/.test(name)) sources.push(p);
    }
  };
  walk(STDLIB);
  // Binaries with their libraries (ldd); plain files by hand, parents first.
  const entries = hostRootfsEntries([PYTHON, ...sos]);
  const seen = new Set(entries.map((e) => e.path.replace(/\/$/, '')));
  for (const abs of sources) {
    const parts = abs.slice(1).split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!seen.has(d)) {
        seen.add(d);
        entries.push(dir(d));
      }
    }
    entries.push(file(abs.slice(1), readFileSync(abs)));
  }
  return entries;
}

async function writeLocal(root: string, entries: TarEntry[]): Promise<void> {
  for (const e of entries) {
    const p = join(root, e.path);
    if (e.type === 'dir') await mkdir(p, { recursive: true, mode: e.mode });
    else if (e.type === 'symlink') await fsSymlink(e.linkpath!, p);
    else if (e.type === 'file') {
      await writeFile(p, contentBytes(e));
      await chmod(p, e.mode);
    }
  }
}

async function py(args: string[]): Promise<number> {
  const { stdout } = await run('python3', args, { maxBuffer: 1 << 20 });
  return Number(stdout.trim());
}

/** Failed path lookups (ENOENT) of one python startup in the chroot. */
async function failedLookups(root: string): Promise<number> {
  const r = await run('strace', ['-f', '-Z', '-e', 'trace=%file', '/usr/sbin/chroot', root, PYTHON, '-c', 'pass'], {
    env: { PATH: '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1' },
    maxBuffer: 16 << 20,
  });
  return r.stderr.split('\n').filter((l) => /ENOENT/.test(l)).length;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[], f: (x: number) => string): string => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

async function main(): Promise<void> {
  const teardowns: (() => unknown)[] = [];
  const fakeT = { teardown: (fn: () => unknown) => teardowns.push(fn) } as unknown as Test;
  const work = makeTempDir('bench-neg');
  const mnt = makeTempDir('bench-neg-mnt');
  const cacheDir = makeTempDir('bench-neg-cache');
  let daemon: Daemon | undefined;
  try {
    const withPython = existsSync(PYTHON) && existsSync(STDLIB);
    const entries: TarEntry[] = withPython ? stdlibEntries() : [];
    for (const d of STAT_DIRS) if (!entries.some((e) => e.path.replace(/\/$/, '') === d)) entries.unshift(dir(d));
    const esgz = await buildEstargz(entries, { chunkSize: 1 << 20 });
    const blobPath = join(work, 'layer');
    await writeFile(blobPath, esgz.blob);
    const image = await buildImage(join(work, 'image'), {
      layers: [{ blobPath, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: esgz.diffId, annotations: { 'containerd.io/snapshot/stargz/toc.digest': esgz.tocDigest } }],
    });
    const reg = await startRegistry(fakeT);
    await pushImage(reg.seedUrl, 'bench/neg', 'v1', image);
    const local = join(work, 'local');
    await writeLocal(local, entries);

    daemon = await createDaemon({ mountpoint: mnt, cacheDir, cacheSize: 2 ** 30, handleSignals: false, log: (l) => process.stderr.write(`tocfs: ${l}\n`) });
    const root = join(mnt, 'images', reg.host, 'bench/neg:v1');
    // Warm: resolve the image, the directories, and (b) the files python reads, so only lookups are timed.
    await py(['-c', STAT_LOOP, root, '200', ...STAT_DIRS]);
    await py(['-c', STAT_LOOP, local, '200', ...STAT_DIRS]);
    let hasStrace = false;
    const doB = withPython;
    if (doB) {
      await py(['-c', START_LOOP, root, '2']);
      await py(['-c', START_LOOP, local, '2']);
      hasStrace = await run('strace', ['-V']).then(() => true, () => false);
    }

    const a = { mount: [] as number[], local: [] as number[] };
    const b = { mount: [] as number[], local: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['mount', 'local'] as const) : (['local', 'mount'] as const);
      for (const which of order) {
        const where = which === 'mount' ? root : local;
        a[which].push(await py(['-c', STAT_LOOP, where, String(N), ...STAT_DIRS]));
        if (doB) b[which].push(await py(['-c', START_LOOP, where, '5']));
      }
    }
    const failedMount = doB && hasStrace ? await failedLookups(root) : undefined;
    const failedLocal = doB && hasStrace ? await failedLookups(local) : undefined;

    const us = (s: number): string => `${((s / N) * 1e6).toFixed(2)}`;
    const ms = (s: number): string => `${(s * 1e3).toFixed(1)}`;
    const lines = [
      `negative lookups, ${ROUNDS} interleaved rounds, median (min–max); ${new Date().toISOString().slice(0, 10)}, ${process.platform} node ${process.version}`,
      '',
      '| measure | tocfs mount | local dir | mount/local |',
      '|---|---|---|---|',
      `| (a) ${N} failed os.stat, µs each | ${us(median(a.mount))} (${range(a.mount, us)}) | ${us(median(a.local))} (${range(a.local, us)}) | ${(median(a.mount) / median(a.local)).toFixed(1)}× |`,
    ];
    if (doB) {
      lines.push(`| (b) chroot python3.11 -c pass, ms (median of 5 per round) | ${ms(median(b.mount))} (${range(b.mount, ms)}) | ${ms(median(b.local))} (${range(b.local, ms)}) | ${(median(b.mount) / median(b.local)).toFixed(2)}× |`);
      if (failedMount !== undefined) {
        const share = (failedMount * median(a.mount)) / N;
        const gap = median(b.mount) - median(b.local);
        lines.push(
          `| (b) failed lookups (ENOENT) per startup (strace) | ${failedMount} | ${failedLocal} | ${failedMount} × (a) ≈ ${ms(share)} ms of the ${ms(gap)} ms gap |`,
        );
      }
    } else {
      lines.push('| (b) python startup | skipped: no /usr/bin/python3.11 to put in the image | | |');
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await daemon?.close();
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
    if (!(await isMounted(mnt))) removeDir(mnt);
    for (const fn of teardowns.reverse()) await fn();
    removeDir(cacheDir);
    removeDir(work);
  }
}

await main();
