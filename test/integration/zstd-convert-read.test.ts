// `tocfs convert --format zstd-chunked` end to end on Debian's docker-registry, and the lazy-read bound:
// an image of gzip, zstd and plain-tar layers is converted by `convertImage`; every file of the result
// read lazily through the layer service equals the bytes it was built from, the config's diff_ids are
// the new layers' and the layers carry the zstd:chunked annotations. (The 200 MB bound: zstd-lazy-bound.test.ts.)
import t from 'tap';
import { convertImage } from '../../src/convert/convert-image.js';
import { createLayerService } from '../../src/layers/layer-service.js';
import { VerifiedLayer } from '../../src/layers/toc/toc-layer.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { contentBytes, file } from '../support/tar-dsl.js';
import { convertSourceLayers } from '../support/convert-source.js';
import { tempDir } from '../support/tmp.js';
import { readPath } from '../support/layers.js';

const layers = convertSourceLayers(100, [file('opt/one', { size: 65536 }), file('opt/two', { size: 65537 })]);

t.test('every file of an image converted to zstd:chunked, read lazily, equals the bytes it was built from', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  await pushImage(reg.seedUrl, 'src/app', 'v1', await buildImage(tempDir(t, 'zstd-convert'), { layers }));
  const client = new RegistryClient();
  t.teardown(() => client.close());
  const converted = await convertImage(client, parseReference(`${reg.host}/src/app:v1`), parseReference(`${reg.host}/lazy/app:zstd`), {
    format: 'zstd-chunked',
  });
  t.equal(converted.layers.length, 3);
  for (const l of converted.layers) {
    t.equal(l.target.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    t.match(l.target.annotations, {
      'io.github.containers.zstd-chunked.manifest-checksum': /^sha256:/,
      'io.github.containers.zstd-chunked.manifest-position': /^\d+:\d+:\d+:1$/,
      'io.github.containers.zstd-chunked.tarsplit-position': /^\d+:\d+:\d+$/,
    });
  }
  const lazyRef = parseReference(`${proxy.host}/lazy/app:zstd`);
  const resolved = await client.resolve(lazyRef);
  const config = JSON.parse(Buffer.from((await client.getConfig(lazyRef, resolved.manifest)).bytes).toString()) as { rootfs: { diff_ids: string[] } };
  t.same(config.rootfs.diff_ids, converted.layers.map((l) => l.diffId), 'diff_ids recomputed');

  const service = await createLayerService({ client, cacheDir: tempDir(t, 'zstd-convert-cache'), cacheSize: 2 ** 30, memoryCacheBytes: 64 << 20, prefetch: false });
  t.teardown(() => service.close());
  const random = prng(0x5eed);
  for (const [i, spec] of layers.entries()) {
    const layer = await service.open(lazyRef, resolved.manifest.document.layers[i]!);
    t.ok(layer instanceof VerifiedLayer && layer.index.format === 'zstd-chunked', `layer ${i} is read lazily as zstd:chunked`);
    for (const entry of spec.entries.filter((e) => e.type === 'file')) {
      const want = contentBytes(entry);
      t.ok(Buffer.from(await readPath(layer, entry.path, 0, want.length + 10)).equals(want), `${entry.path}: whole file`);
      for (let k = 0; k < 3 && want.length > 0; k++) {
        const offset = Math.floor(random() * want.length);
        const length = 1 + Math.floor(random() * Math.min(want.length, 1 << 20));
        if (!Buffer.from(await readPath(layer, entry.path, offset, length)).equals(want.subarray(offset, offset + length))) t.fail(`${entry.path}: [${offset}, +${length})`);
      }
    }
  }
  proxy.resetCounters();
  const again = await service.open(lazyRef, resolved.manifest.document.layers[0]!);
  const big = layers[0]!.entries.find((e) => e.path === 'usr/lib/big.so')!;
  t.ok(Buffer.from(await readPath(again, big.path, 0, big.size)).equals(contentBytes(big)), 'again from the caches');
  t.equal(proxy.counters.byKind.blobs.requests, 0, 'no blob request the second time');
});

