// A 10^6-entry eStargz layer through a real mount (issue 21, "Memory"): the daemon's peak RSS once the TOC
// is loaded and after `find` stats every entry, and the walk's time side by side with the same walk over a
// local-disk tree of the same shape (a ratio: the machine's speed cancels out).
//
//   node --import tsx bench/toc-walk.ts [ENTRIES]        (default 1,000,000; root: it mounts)
//
// The layer's TOC is shaped like a large software tree: 1% directories, 5% symlinks, 5% files with data
// (offset + digest), the rest empty files, names ~20 bytes deep in three levels. Only metadata is read, so
// the blob's data region is zeros. The daemon runs as its own process (bin/tocfs.js, as users run it).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../test/support/image-builder.js';
import { blobWithToc } from '../test/support/estargz-build.js';
import { pushImage } from '../test/support/push.js';
import { startBenchRegistry } from './lib/registry.js';
import { startDaemon } from './lib/daemon.js';

const ENTRIES = Number(process.argv[2] ?? 1_000_000);
const MTIME = '2024-03-01T12:00:00Z';
const TOP = 10;

interface Shape {
  readonly dirs: string[];
  readonly files: { path: string; kind: 'empty' | 'data' | 'symlink' }[];
}

/** Directories top/sub (1 per 100 names), every other name a leaf spread evenly over them. */
function shape(count: number): Shape {
  const subs = Math.max(1, Math.floor(count / 100) - TOP);
  const dirs: string[] = [];
  for (let i = 0; i < TOP; i++) dirs.push(`t${i}`);
  for (let i = 0; i < subs; i++) dirs.push(`t${i % TOP}/s${String(i).padStart(5, '0')}`);
  const files: Shape['files'] = [];
  for (let i = 0; files.length + dirs.length < count; i++) {
    const dir = dirs[TOP + (i % subs)]!;
    const kind = i % 20 === 0 ? 'symlink' : i % 20 === 1 ? 'data' : 'empty';
    files.push({ path: `${dir}/f${String(i).padStart(7, '0')}`, kind });
  }
  return { dirs, files };
}

function tocJson(s: Shape): { json: Buffer; tocOffset: number } {
  const parts: string[] = [];
  for (const d of s.dirs) parts.push(JSON.stringify({ name: `${d}/`, type: 'dir', modtime: MTIME, mode: 0o755 }));
  let offset = 0;
  for (const f of s.files) {
    if (f.kind === 'symlink') parts.push(JSON.stringify({ name: f.path, type: 'symlink', linkName: '../t0', modtime: MTIME, mode: 0o777 }));
    else if (f.kind === 'empty') parts.push(JSON.stringify({ name: f.path, type: 'reg', modtime: MTIME, mode: 0o644 }));
    else {
      const digest = `sha256:${createHash('sha256').update(f.path).digest('hex')}`;
      parts.push(JSON.stringify({ name: f.path, type: 'reg', size: 100, modtime: MTIME, mode: 0o644, offset, digest, chunkDigest: digest }));
      offset += 16;
    }
  }
  return { json: Buffer.from(`{"version":1,"entries":[${parts.join(',')}]}`), tocOffset: Math.max(offset, 16) };
}

/** The same tree on local disk, built once per shape under /var/tmp. */
function localTree(s: Shape, count: number): string {
  const root = join('/var/tmp', `tocfs-walk-tree-${count}`);
  if (existsSync(join(root, '.complete'))) return root;
  rmSync(root, { recursive: true, force: true });
  for (const d of s.dirs) mkdirSync(join(root, d), { recursive: true });
  for (const f of s.files) {
    if (f.kind === 'symlink') symlinkSync('../t0', join(root, f.path));
    else writeFileSync(join(root, f.path), f.kind === 'data' ? Buffer.alloc(100) : '');
  }
  writeFileSync(join(root, '.complete'), '');
  return root;
}

/** `find DIR -ls`: lstat of every entry, as `ls -lR` or a backup would; seconds and entries seen. */
function walk(dir: string): { seconds: number; entries: number } {
  const started = performance.now();
  const r = spawnSync('sh', ['-c', 'find "$1" -ls | wc -l', 'walk', dir], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`find failed: ${r.stderr}`);
  return { seconds: (performance.now() - started) / 1000, entries: Number(r.stdout.trim()) };
}

const MiB = 2 ** 20;
const work = mkdtempSync(join(tmpdir(), 'tocfs-toc-walk-'));
const s = shape(ENTRIES);
const { json, tocOffset } = tocJson(s);
const blob = blobWithToc(Buffer.alloc(tocOffset), json);
writeFileSync(join(work, 'layer.blob'), blob);
const tocDigest = `sha256:${createHash('sha256').update(json).digest('hex')}`;
// The diff ID names the uncompressed tar; only the config needs one, tocfs never checks it for a lazy layer.
const image = await buildImage(join(work, 'image'), {
  layers: [{ blobPath: join(work, 'layer.blob'), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: tocDigest, annotations: { 'containerd.io/snapshot/stargz/toc.digest': tocDigest } }],
});
const storage = join(work, 'registry');
mkdirSync(storage);
const registry = await startBenchRegistry({ storageDir: storage, workDir: work, address: '127.0.0.1' });
await pushImage(`http://${registry.host}`, 'walk/tree', 'v1', image);
const local = localTree(s, ENTRIES);
const daemon = await startDaemon({ registryHost: registry.host });
try {
  const root = join(daemon.mnt, 'images', registry.host, 'walk/tree:v1');
  const t0 = performance.now();
  execFileSync('stat', ['-c', '%n', join(root, 't0')], { stdio: 'ignore' });
  const open = (performance.now() - t0) / 1000;
  const rssOpen = daemon.peakRss();
  const mounted = walk(root);
  const rssWalk = daemon.peakRss();
  const warm = walk(root);
  const disk = walk(local);
  console.log(`| toc-walk | ${ENTRIES.toLocaleString('en')} entries, TOC JSON ${(json.length / MiB).toFixed(1)} MiB (gzip ${(blob.length / MiB).toFixed(1)} MiB) |`);
  console.log('| measure | tocfs | local disk (same shape) | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| first lookup (TOC fetch + decode + index) | ${open.toFixed(2)} s | - | - |`);
  console.log(`| peak RSS after first lookup | ${(rssOpen / MiB).toFixed(0)} MiB | - | - |`);
  console.log(`| find -ls, first walk (${mounted.entries} entries) | ${mounted.seconds.toFixed(1)} s | ${disk.seconds.toFixed(1)} s (warm) | ${(mounted.seconds / disk.seconds).toFixed(1)}x |`);
  console.log(`| find -ls, second walk | ${warm.seconds.toFixed(1)} s | ${disk.seconds.toFixed(1)} s (warm) | ${(warm.seconds / disk.seconds).toFixed(1)}x |`);
  console.log(`| peak RSS after the walks | ${(rssWalk / MiB).toFixed(0)} MiB (${(daemon.peakRss() / MiB).toFixed(0)} after both) | - | - |`);
  console.log(`| daemon CPU | ${daemon.cpuSeconds().toFixed(1)} s | - | - |`);
  // What the walk cost in FUSE calls (fuse/access-recorder.ts counts them), to tell op count from op cost.
  const ops = spawnSync('getfattr', ['--only-values', '-n', 'user.tocfs.fuse_ops', daemon.mnt], { encoding: 'utf8' });
  if (ops.status === 0) console.log(`| FUSE ops (both walks) | ${ops.stdout.trim()} | - | - |`);
} finally {
  await daemon.stop();
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
