// The zstd variants of the mount oracle (mount-oracle.test.ts does gzip and eStargz): the same
// three-layer image, written as zstd:chunked by tocfs's own converter and as eStargz-zstd by the test
// builder, pushed to Debian's docker-registry, mounted by the daemon, and compared field by field with
// `umoci unpack` of its gzip original (umoci 0.4.7 cannot unpack zstd layers itself).
import { readFile } from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { writeZstdChunkedFile } from '../../src/convert/zstd-chunked-writer.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { LAYERS } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { tarOf, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { diffSnapshots, snapshotTree, type TreeSnapshot } from '../support/tree-snapshot.js';
import { buildZstd } from '../support/zstd-build.js';

const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';

function compare(t: Test, got: TreeSnapshot, want: TreeSnapshot, what: string): void {
  const root = got[''];
  if (root) {
    const xattrs = Object.fromEntries(Object.entries(root.xattrs).filter(([k]) => !k.startsWith('user.tocfs.')));
    got = { ...got, '': { ...root, xattrs } };
  }
  t.same(diffSnapshots(got, want), [], `${what}: same paths and fields as umoci unpack (${Object.keys(want).length} paths)`);
}

async function zstdChunkedImage(work: string, layers: TarEntry[][]) {
  const prebuilt = [];
  for (const [i, entries] of layers.entries()) {
    const blobPath = join(work, `zstd-chunked-layer-${i}`);
    // Small chunks, so multi-chunk files and zeros chunks are in the mounted image too.
    const blob = await writeZstdChunkedFile(tarOf(entries), blobPath, { chunkSize: 256 << 10, minChunkSize: 16 << 10 });
    prebuilt.push({ blobPath, mediaType: ZSTD_LAYER, diffId: blob.diffId, annotations: { ...blob.annotations } });
  }
  return buildImage(join(work, 'zstd-chunked'), { layers: prebuilt });
}

async function estargzZstdImage(work: string, layers: TarEntry[][]) {
  const prebuilt = [];
  for (const [i, entries] of layers.entries()) {
    const built = buildZstd(entries, { footer: 'legacy', style: 'stargz', chunkSize: 1 << 20 });
    const blobPath = join(work, `estargz-zstd-layer-${i}`);
    await writeFile(blobPath, built.blob);
    prebuilt.push({ blobPath, mediaType: ZSTD_LAYER, diffId: built.diffId, annotations: built.annotations });
  }
  return buildImage(join(work, 'estargz-zstd'), { layers: prebuilt });
}

t.test('mounted zstd:chunked and eStargz-zstd images equal umoci unpack of the gzip original', async (t) => {
  const work = tempDir(t, 'mount-oracle-zstd');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const gzip = await buildImage(join(work, 'gzip'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  const chunked = await zstdChunkedImage(work, LAYERS);
  const stargz = await estargzZstdImage(work, LAYERS);
  await pushImage(reg.seedUrl, 'oracle/zstd-chunked', 'v1', chunked);
  await pushImage(reg.seedUrl, 'oracle/estargz-zstd', 'v1', stargz);
  await writeOciLayout(join(work, 'layout'), 'v1', gzip);
  const oracle = await snapshotTree(await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle')));
  t.equal(oracle['big/multi-mb.bin']?.size, 6 * 2 ** 20 + 4321, 'the oracle has the multi-MB file');

  const { mnt, logs } = await mountDaemon(t, 'mount-oracle-zstd');
  const images = join(mnt, 'images', proxy.host);

  // One small file first, on a fresh mount: only the TOCs and that file's frame move.
  proxy.resetCounters();
  t.equal(await readFile(join(images, 'oracle/zstd-chunked:v1/big/small.txt'), 'utf8'), 'a small file next to a big one\n');
  const moved = proxy.counters.byKind.blobs.bytes;
  const total = chunked.layers.reduce((n, l) => n + l.size, 0);
  t.ok(moved < total / 8, `${moved} blob bytes moved of ${total} (one small file)`);

  for (const [variant, repo] of [
    ['zstd:chunked', 'oracle/zstd-chunked'],
    ['eStargz-zstd', 'oracle/estargz-zstd'],
  ] as const) {
    compare(t, await snapshotTree(join(images, `${repo}:v1`)), oracle, variant);
  }
  t.notMatch(logs.join('\n'), /error/i, 'nothing logged as an error');
});

t.teardown(async () => {
  const mounts = await readFile('/proc/mounts', 'utf8');
  if (/tocfs-mount-oracle-zstd/.test(mounts)) throw new Error(`a mount was left behind:\n${mounts}`);
});
