// Reading one small file of a 200 MB zstd:chunked layer (written by tocfs's converter from 20 text-like
// 10 MiB files and the small one) moves under 300 KB: the TOC (one read, located by the manifest-position
// annotation) and that file's frame, counted by the fault proxy in front of Debian's docker-registry.
import { join } from 'node:path';
import t from 'tap';
import { writeZstdChunkedFile } from '../../src/convert/zstd-chunked-writer.js';
import { createLayerService } from '../../src/layers/layer-service.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, tarOf, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { readPath } from '../support/layers.js';

/** Text-like data: random words, so it compresses about as well as binaries and libraries do. */
function wordy(size: number, seed: number): Buffer {
  const words = Array.from({ length: 512 }, (_, i) => Buffer.from(`${(i * 2654435761 >>> 0).toString(36)} `));
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let at = 0;
  while (at < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    at += words[(x >>> 0) % words.length]!.copy(out, at);
  }
  return out;
}

t.test('one small file of a 200 MB zstd:chunked layer moves under 300 KB', async (t) => {
  const work = tempDir(t, 'zstd-200mb');
  const entries: TarEntry[] = [dir('data'), file('data/small.txt', 'the one file the job reads\n')];
  for (let i = 0; i < 20; i++) entries.push(file(`data/part-${String(i).padStart(2, '0')}.bin`, wordy(10 << 20, i + 1)));
  const blobPath = join(work, 'layer.zst');
  const blob = await writeZstdChunkedFile(tarOf(entries), blobPath, { compressionLevel: 1 });
  t.ok(blob.uncompressedSize > 200e6, `${blob.uncompressedSize} bytes uncompressed, ${blob.size} compressed`);
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const image = await buildImage(join(work, 'image'), {
    layers: [{ blobPath, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', diffId: blob.diffId, annotations: { ...blob.annotations } }],
  });
  await pushImage(reg.seedUrl, 'big/zstd', 'v1', image);
  const client = new RegistryClient();
  t.teardown(() => client.close());
  const ref = parseReference(`${proxy.host}/big/zstd:v1`);
  const { manifest } = await client.resolve(ref);
  const service = await createLayerService({ client, cacheDir: tempDir(t, 'zstd-200mb-cache'), cacheSize: 2 ** 30, memoryCacheBytes: 64 << 20 });
  t.teardown(() => service.close());
  proxy.resetCounters();
  const layer = await service.open(ref, manifest.document.layers[0]!);
  t.equal(Buffer.from(await readPath(layer, 'data/small.txt', 0, 4096)).toString(), 'the one file the job reads\n');
  const moved = proxy.counters.byKind.blobs;
  t.ok(moved.bytes < 300_000, `${moved.bytes} blob bytes in ${moved.requests} requests for one small file of a ${blob.size}-byte layer`);
  t.comment(`zstd:chunked 200 MB layer: ${moved.bytes} bytes, ${moved.requests} requests (layer ${blob.size} bytes)`);
});
