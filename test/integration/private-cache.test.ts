// Issue 21, "private bytes stay private": the daemon runs as root on a shared node, and its disk cache holds
// bytes of files the image keeps private. On a real mount of a Debian root filesystem, after a root reader
// read /etc/shadow (eStargz: its chunks land in cache/chunks/) and after a plain gzip layer was pulled whole
// (its tar lands in cache/layers/), no file under the cache dir is readable by `nobody`, and everything there
// is 0700/0600. The cache dir starts as systemd's `CacheDirectory=` makes it without a mode (0755) and holds
// entries an older tocfs wrote 0755/0644: they are tightened at start, with one log line.
import { execFile } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { isMounted } from '../../src/fuse/mount.js';
import { runTocfs } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { BOOKWORM_MINBASE, cachedRootfsImage, pushLayout } from '../support/rootfs.js';
import { makeTempDir, removeDir } from '../support/tmp.js';

const run = promisify(execFile);
t.setTimeout(15 * 60_000);

const AS_NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

async function sh(cmd: string, args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, [...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.on('error', () => {}); // a command that reads no input may close it first (EPIPE)
    child.stdin!.end(input ?? '');
  });
}

/** Every path under `dir` (itself included) with its mode, walked by root. */
function walk(dir: string): { path: string; dir: boolean; mode: number }[] {
  const found: { path: string; dir: boolean; mode: number }[] = [];
  const visit = (path: string): void => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return;
    found.push({ path, dir: st.isDirectory(), mode: st.mode & 0o7777 });
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
  };
  visit(dir);
  return found;
}

/** The files of `paths` that `nobody` can open and read, tried by one shell running as nobody. */
async function readableByNobody(paths: readonly string[]): Promise<string[]> {
  const script = 'while IFS= read -r f; do if head -c 1 -- "$f" > /dev/null 2>&1; then printf "%s\\n" "$f"; fi; done';
  const r = await sh(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'sh', '-c', script], paths.join('\n') + '\n');
  return r.stdout.split('\n').filter((l) => l !== '');
}

function loose(entries: readonly { path: string; dir: boolean; mode: number }[]): string[] {
  return entries.filter((e) => (e.mode & 0o077) !== 0).map((e) => `${e.path} ${e.mode.toString(8)}`);
}

t.test('as nobody, nothing under the cache dir is readable after root read /etc/shadow and a gzip layer pull', async (t) => {
  const layout = await cachedRootfsImage(BOOKWORM_MINBASE.name, [BOOKWORM_MINBASE]);
  const reg = await startRegistry(t);
  await pushLayout(layout, 'latest', reg.seedHost, 'debian/minbase:gzip');
  const converted = await runTocfs(['convert', `${reg.seedHost}/debian/minbase:gzip`, `${reg.seedHost}/debian/minbase:estargz`]);
  t.equal(converted.code, 0, `tocfs convert exits 0 ${converted.err}`);

  const mnt = makeTempDir('private-cache-mnt');
  const cacheDir = makeTempDir('private-cache');
  // As systemd makes `CacheDirectory=tocfs` without `CacheDirectoryMode`, with what an older tocfs left in it.
  chmodSync(cacheDir, 0o755);
  const oldChunk = join(cacheDir, 'chunks', 'ab', `ab${'0'.repeat(62)}`);
  mkdirSync(join(cacheDir, 'chunks', 'ab'), { recursive: true, mode: 0o755 });
  chmodSync(join(cacheDir, 'chunks'), 0o755);
  chmodSync(join(cacheDir, 'chunks', 'ab'), 0o755);
  writeFileSync(oldChunk, 'bytes of a private file', { mode: 0o644 });
  chmodSync(oldChunk, 0o644);
  t.same(await readableByNobody([oldChunk]), [oldChunk], 'before the daemon starts, the old cache is readable by nobody');

  const logs: string[] = [];
  let daemon: Daemon | undefined;
  t.teardown(async () => {
    await daemon?.close();
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
    if (!(await isMounted(mnt))) removeDir(mnt);
    removeDir(cacheDir);
  });
  daemon = await createDaemon({ mountpoint: mnt, cacheDir, cacheSize: 2 ** 30, handleSignals: false, cvmfs: false, prefetch: false, log: (l) => logs.push(l) });
  t.match(logs.join('\n'), /cache .*: removed group\/other access from [34] files and directories/, 'one log line says the old cache was tightened');
  t.equal(logs.filter((l) => /removed group\/other access/.test(l)).length, 1);

  const images = join(mnt, 'images', reg.host);
  for (const tag of ['estargz', 'gzip']) {
    const shadow = join(images, `debian/minbase:${tag}`, 'etc/shadow');
    const asRoot = await sh('cat', [shadow]);
    t.equal(asRoot.code, 0, `${tag}: root reads /etc/shadow ${asRoot.stderr}`);
    t.match(asRoot.stdout, /^root:/, `${tag}: the shadow file's bytes`);
    const mode = (await sh('stat', ['-c', '%a', shadow])).stdout.trim();
    t.equal(mode, '640', `${tag}: /etc/shadow is 0640 root:shadow in the image`);
    const asNobody = await sh(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'cat', shadow]);
    t.not(asNobody.code, 0, `${tag}: the mount keeps it from nobody (${asNobody.stderr.trim()})`);
  }

  const entries = walk(cacheDir);
  const files = entries.filter((e) => !e.dir).map((e) => e.path);
  const rel = (p: string): string => p.slice(cacheDir.length + 1);
  t.ok(files.some((f) => /^layers\/.*\.tar$/.test(rel(f))), `the gzip layer's whole tar is in the cache: ${files.map(rel).filter((f) => f.startsWith('layers/')).join(' ')}`);
  t.ok(files.some((f) => /^chunks\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(rel(f)) && f !== oldChunk), 'chunks of the eStargz image are in the cache');
  t.ok(files.some((f) => rel(f).startsWith('tocs/')), 'the eStargz TOC is in the cache');
  t.same(await readableByNobody(files), [], `none of the ${files.length} files under the cache dir is readable by nobody`);
  t.same(loose(entries), [], 'every directory is 0700 and every file 0600 (nothing for group or other)');
  t.ok(entries.filter((e) => e.dir).every((e) => e.mode === 0o700), 'directories are 0700');
  t.ok(entries.filter((e) => !e.dir).every((e) => e.mode === 0o600), 'files are 0600');

  // `tocfs ls` shares the cache: what it writes is private too.
  const listed = await runTocfs(['ls', `${reg.host}/debian/minbase:gzip`, 'etc', '--cache-dir', cacheDir]);
  t.equal(listed.code, 0, `tocfs ls over the same cache ${listed.err}`);
  t.same(loose(walk(cacheDir)), [], 'still nothing for group or other after tocfs ls');
});
