// `tocfs stats MNT` against a real mount (DESIGN.md §1.1, §1.4): an image of one plain gzip layer (read
// whole: a FullLayer) under one eStargz layer, pushed to a real registry and mounted by `createDaemon`. The
// CLI runs in a child process (`getfattr` on a mount served by this process's JS thread must not block it).
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runTocfsChild } from '../support/cli.js';
import { waitForDiskWrites } from '../support/disk-writes.js';
import { buildEstargz } from '../support/estargz-build.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

const BIG = 3 * 2 ** 20 + 777;

interface Figures {
  bytes_fetched: number;
  bytes_cvmfs: number;
  bytes_cache: number;
  requests: number;
  bytes_disk_pending: number;
  layers: Record<string, { format: string; tocSource: string; fetchedRatio: number; bytesFetched: number; bytesCache: number; blobBytes: number }>;
}

async function figures(t: Test, path: string): Promise<Figures> {
  const r = await runTocfsChild(['stats', path, '--json']);
  t.equal(r.code, 0, `tocfs stats ${path} --json exits 0 ${r.err}`);
  return JSON.parse(r.text) as Figures;
}

t.test('tocfs stats shows what a read moved, and what the caches served', async (t) => {
  const work = tempDir(t, 'stats');
  const reg = await startRegistry(t);
  const esgz = await buildEstargz([dir('data'), file('data/big.bin', { size: BIG }), file('data/small.txt', 'small\n')], { chunkSize: 1 << 20 });
  const blobPath = join(work, 'estargz-layer');
  await writeFile(blobPath, esgz.blob);
  const image = await buildImage(join(work, 'image'), {
    layers: [
      { entries: [dir('etc'), file('etc/os-release', 'ID=test\n')], compression: 'gzip' },
      { blobPath, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: esgz.diffId, annotations: { 'containerd.io/snapshot/stargz/toc.digest': esgz.tocDigest } },
    ],
  });
  await pushImage(reg.seedUrl, 'stats/img', 'v1', image);
  const [full, lazy] = image.layers as [(typeof image.layers)[0], (typeof image.layers)[0]];

  const { mnt } = await mountDaemon(t, 'stats');

  const notMount = await runTocfsChild(['stats', work]);
  t.equal(notMount.code, 1, 'a plain directory is refused');
  t.match(notMount.err, /is not a tocfs mount/);

  const root = join(mnt, 'images', reg.host, 'stats/img:v1');
  t.equal((await readFile(join(root, 'etc/os-release'), 'utf8')), 'ID=test\n', 'the gzip layer reads');
  const want = await stat(join(root, 'data/big.bin'));
  t.equal(want.size, BIG);
  const before = await figures(t, mnt);
  t.equal((await readFile(join(root, 'data/big.bin'))).byteLength, BIG, 'first read');
  const first = await figures(t, mnt);
  t.ok(first.bytes_fetched - before.bytes_fetched >= 3 * 2 ** 20 * 0.9, `first read fetched ${first.bytes_fetched - before.bytes_fetched} bytes from the registry`);
  t.ok(first.requests > before.requests, 'and sent requests');
  t.equal(first.bytes_cvmfs, 0, 'no CVMFS yet');
  const layer = first.layers[lazy.digest];
  t.match(layer, { format: 'estargz-gzip', tocSource: 'blob', blobBytes: lazy.size }, 'the eStargz layer is listed');
  t.ok(layer!.fetchedRatio > 0 && layer!.fetchedRatio <= 1, `fetched ${(layer!.fetchedRatio * 100).toFixed(1)}%`);
  t.match(first.layers[full.digest], { format: 'tar', tocSource: 'blob', fetchedRatio: 1, bytesFetched: full.size, blobBytes: full.size }, 'the whole-read layer too');
  t.ok(first.layers[full.digest]!.bytesCache > 0, 'whole-layer reads come from the cache dir');

  // The same bytes through another inode (the layer's own tree), so the kernel's page cache cannot answer.
  const again = join(mnt, 'layers', reg.host, `stats/img@${lazy.digest}`, 'data/big.bin');
  await stat(again);
  const mid = await figures(t, mnt);
  t.equal((await readFile(again)).byteLength, BIG, 'second read');
  const second = await figures(t, mnt);
  t.equal(second.bytes_fetched, mid.bytes_fetched, 'the second read fetched nothing');
  // Exactly the file: the kernel reads it in 128 KiB pieces, each a slice of a 1 MiB chunk, and each piece
  // counts what it took, not the whole chunk (which would be about 8 times as much).
  t.equal(second.bytes_cache - mid.bytes_cache, BIG, 'the caches served it, counted by the bytes read');

  // df: the disk cache's budget (1 GiB in mountDaemon) as the size, what it holds as used, and the inodes:
  // used once the verified chunks are written, which waits for the fetches to pause.
  await waitForDiskWrites(mnt);
  const df = await new Promise<string>((resolve, reject) =>
    execFile('stat', ['-f', '-c', '%S %b %f %c', mnt], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const [bsize, blocks, free, files] = df.trim().split(' ').map(Number) as [number, number, number, number];
  t.equal(bsize * blocks, 2 ** 30, 'statfs: the size is the cache budget');
  t.ok(blocks - free > 0 && (blocks - free) * bsize >= BIG, `statfs: ${(blocks - free) * bsize} bytes of it used`);
  t.ok(files > 10, `statfs: ${files} inodes`);

  const onRoot = await figures(t, root);
  t.same(Object.keys(onRoot.layers).sort(), [full.digest, lazy.digest].sort(), 'an image root lists its own layers');

  const human = await runTocfsChild(['stats', mnt]);
  t.equal(human.code, 0);
  t.match(human.text, /bytes_fetched\s+\d+ B/);
  t.match(human.text, /bytes_cache\s+\d+ B/);
  t.match(human.text, /requests\s+\d+/);
  t.match(human.text, /disk_pending\s+0 B/, 'the disk writes are done (waited for above)');
  t.match(human.text, new RegExp(`${lazy.digest.slice(0, 19)}\\s+estargz-gzip\\s+blob\\s+\\d+\\.\\d%`));
  t.match(human.text, new RegExp(`${full.digest.slice(0, 19)}\\s+tar\\s+blob\\s+100\\.0%`));
});
