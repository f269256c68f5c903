// A plain gzip layer without an index is pulled whole once (DESIGN.md §2 source 5); that pull builds its
// zTOC, so the layer stays seekable: the whole layer's tar counts against --cache-size and is evicted like
// the chunks, and a mount restarted on the same cache reads a file of it with span reads only.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { runTocfs } from '../support/cli.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { compareWithOracle } from '../support/oracle-compare.js';
import { LAYERS } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const run = promisify(execFile);

async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', '--apparent-size', dir]);
  return Number(stdout.split('\t')[0]);
}

t.test('a first pull leaves the layer seekable: its tar is bounded by --cache-size, a restart reads spans', async (t) => {
  const work = tempDir(t, 'seekable');
  const reg = await startRegistry(t);
  const image = await buildImage(join(work, 'image'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'plain/app', 'v1', image);
  await writeOciLayout(join(work, 'layout'), 'v1', image);
  const oracle = await snapshotTree(await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle')));
  const proxy = await startFaultProxy(t, { target: reg.url });
  const cacheDir = tempDir(t, 'seekable-cache');
  const budget = 1 << 20;
  const big = image.layers[1]!;

  await t.test('first mount: whole pulls, tars evicted past the budget, files still served', async (t) => {
    const { mnt, daemon } = await mountDaemon(t, 'seekable-1', { cacheDir, cacheSize: budget });
    const root = join(mnt, 'images', proxy.host, 'plain/app:v1');
    proxy.resetCounters();
    t.equal(await readFile(join(root, 'big/small.txt'), 'utf8'), 'a small file next to a big one\n');
    t.ok(proxy.counters.byKind.blobs.bytes >= big.size, 'the layer came whole (no index)');
    compareWithOracle(t, await snapshotTree(root), oracle, 'after the first pull');
    const layersOnDisk = await diskBytes(join(cacheDir, 'layers'));
    t.ok(layersOnDisk <= budget, `whole-layer files on disk: ${layersOnDisk} bytes, within the ${budget}-byte budget`);
    await daemon.close();
  });

  await t.test('restart: the evicted layer is read by spans through the zTOC its pull built', async (t) => {
    const { mnt } = await mountDaemon(t, 'seekable-2', { cacheDir, cacheSize: budget });
    const root = join(mnt, 'images', proxy.host, 'plain/app:v1');
    proxy.resetCounters();
    t.equal(await readFile(join(root, 'big/small.txt'), 'utf8'), 'a small file next to a big one\n');
    const moved = proxy.counters.byKind.blobs.bytes;
    t.ok(moved < big.size, `${moved} blob bytes for one small file of a ${big.size}-byte layer: spans, not the layer`);
    const { stdout } = await run('getfattr', ['--only-values', '-n', 'user.tocfs.layers', root]);
    const figures = JSON.parse(stdout) as Record<string, { format: string; tocSource: string }>;
    t.match(figures[big.digest], { format: 'soci', tocSource: 'cache' }, 'its zTOC came from the cache');
    compareWithOracle(t, await snapshotTree(root), oracle, 'after the restart, by spans');
  });

  await t.test('tocfs index pushes the zTOCs the pulls built, without streaming the layers again', async (t) => {
    proxy.resetCounters();
    const r = await runTocfs(['index', `${proxy.host}/plain/app:v1`, '--cache-dir', cacheDir, '--min-layer-size', '0']);
    t.equal(r.code, 0, r.err);
    t.equal(r.err.match(/built by a local pull/g)?.length, image.layers.length, 'every layer\'s zTOC came from the cache');
    t.ok(proxy.counters.byKind.blobs.bytes < big.size, `${proxy.counters.byKind.blobs.bytes} blob bytes moved: no layer streamed`);
    // A node with an empty cache now reads the image lazily through that index.
    const { mnt } = await mountDaemon(t, 'seekable-3');
    const root = join(mnt, 'images', proxy.host, 'plain/app:v1');
    compareWithOracle(t, await snapshotTree(root), oracle, 'a fresh node, through the pushed index');
    const { stdout } = await run('getfattr', ['--only-values', '-n', 'user.tocfs.layers', root]);
    const figures = JSON.parse(stdout) as Record<string, { format: string; tocSource: string }>;
    t.match(figures[big.digest], { format: 'soci', tocSource: 'blob' });
  });
});
