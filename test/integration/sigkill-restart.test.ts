// The daemon killed with SIGKILL and started again on the same mount point (issue 4, "Done when"): the
// `tocfs mount` CLI in a child process, behind the fault proxy. The second daemon cleans the dead mount
// itself (no fusermount by hand), and serves what the first one read from the disk cache: TOCs, verified
// chunks and whole layers, with no blob request at all. SIGTERM then unmounts and exits 0.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { isMounted } from '../../src/fuse/mount.js';
import { waitForDiskWrites } from '../support/disk-writes.js';
import { estargzLayerFile } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage, sha256 } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { makeTempDir, removeDir, tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const RUNNER = fileURLToPath(new URL('../support/tocfs-src.ts', import.meta.url));

const BIG = Buffer.alloc(5 * 2 ** 20 + 99, 'tocfs-');
const FILES: Record<string, Buffer> = {
  'lazy/big.bin': BIG,
  'lazy/small.txt': Buffer.from('small\n'),
  'whole/config.ini': Buffer.from('[whole]\nlayer = gzip\n'),
};

interface Daemon {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

/** `tocfs mount MNT --cache-dir CACHE` in a child; resolves once it says it mounted. */
async function startDaemon(t: Test, mnt: string, cacheDir: string): Promise<Daemon> {
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, 'mount', mnt, '--cache-dir', cacheDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((ok, fail) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('mounted at')) ok();
    });
    void exited.then((code) => fail(new Error(`tocfs mount exited ${code}:\n${stderr}`)));
  });
  return { child, stderr: () => stderr, exited };
}

/** sha256 of each file under the image root, read by a child process. */
async function hashes(root: string): Promise<Record<string, string>> {
  const { stdout } = await run('sha256sum', Object.keys(FILES).map((p) => join(root, p)));
  return Object.fromEntries(stdout.trim().split('\n').map((line) => [line.slice(66).slice(root.length + 1), line.slice(0, 64)]));
}

t.test('SIGKILL, then tocfs mount again on the same MNT: cleans the stale mount, serves from the disk cache', async (t) => {
  const work = tempDir(t, 'sigkill-restart');
  const lazy = await estargzLayerFile(join(work, 'lazy-layer'), [dir('lazy'), file('lazy/big.bin', BIG), file('lazy/small.txt', FILES['lazy/small.txt']!)], { chunkSize: 1 << 20 });
  const image = await buildImage(join(work, 'image'), {
    layers: [
      { entries: [dir('whole'), file('whole/config.ini', FILES['whole/config.ini']!)], compression: 'gzip' },
      lazy,
    ],
  });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'restart/image', 'v1', image);
  const proxy = await startFaultProxy(t, { target: reg.url });

  const mnt = makeTempDir('sigkill-restart-mnt');
  const cacheDir = join(work, 'cache');
  t.teardown(async () => {
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
    removeDir(mnt);
  });
  const want = Object.fromEntries(Object.entries(FILES).map(([p, bytes]) => [p, sha256(bytes).slice(7)]));
  const root = join(mnt, 'images', proxy.host, 'restart/image:v1');

  const first = await startDaemon(t, mnt, cacheDir);
  t.same(await hashes(root), want, 'the first daemon serves every file');
  const firstBlobRequests = proxy.counters.byKind.blobs.requests;
  t.ok(firstBlobRequests > 0, `the first daemon fetched blobs (${firstBlobRequests} requests)`);
  // Verified chunks go to the disk once fetches pause; a kill before that loses them (a cache, not a copy).
  await waitForDiskWrites(mnt);

  first.child.kill('SIGKILL');
  await first.exited;
  await t.rejects(statfs(mnt), { code: 'ENOTCONN' }, 'the killed daemon left a dead mount behind');

  proxy.resetCounters();
  const second = await startDaemon(t, mnt, cacheDir);
  t.match(second.stderr(), /cleaning a stale mount/, 'the new daemon cleaned it without help');
  t.same(await hashes(root), want, 'the second daemon serves the same bytes');
  const layerRequests = proxy.counters.requests.filter((r) => /\/blobs\//.test(r.path) && !r.path.endsWith(image.config.digest));
  t.same(
    layerRequests.map((r) => `${r.method} ${r.path} ${r.range ?? ''}`),
    [],
    'TOC, chunks and the whole gzip layer all came from the disk cache',
  );
  t.ok(proxy.counters.byKind.manifests.requests > 0, 'the tag was resolved again (it is pinned per mount, not across mounts)');

  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0, 'SIGTERM: exit 0');
  t.notOk(await isMounted(mnt), 'and nothing left mounted');
});
