// The lazy engine end to end on the real registry: an image built in gzip, zstd and plain-tar layers is
// converted to eStargz by `convertImage`, then every file of it is read back through the layer service
// (footer + TOC + verified chunks over HTTP range reads) and compared with the bytes it was built from.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { convertImage } from '../../src/convert/convert-image.js';
import { createLayerService } from '../../src/layers/layer-service.js';
import { startRegistry } from '../support/registry.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { convertSourceLayers } from '../support/convert-source.js';
import { tempDir } from '../support/tmp.js';
import { contentBytes, file } from '../support/tar-dsl.js';
import { readPath } from '../support/layers.js';

const CHUNK = 64 * 1024;

const layers = convertSourceLayers(300, [file('opt/exactly-one-chunk', { size: CHUNK }), file('opt/chunk-plus-one', { size: CHUNK + 1 })]);

t.test('every file of a converted image, read lazily through the engine, equals the bytes it was built from', async (t) => {
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const image = await buildImage(tempDir(t, 'convert-read'), { layers });
  await pushImage(reg.seedUrl, 'src/app', 'v1', image);
  const client = new RegistryClient();
  t.teardown(() => client.close());
  const converted = await convertImage(client, parseReference(`${reg.host}/src/app:v1`), parseReference(`${reg.host}/lazy/app:v1`), {
    chunkSize: CHUNK,
  });
  t.equal(converted.layers.length, 3);

  const cacheDir = tempDir(t, 'convert-read-cache');
  const readClient = new RegistryClient();
  t.teardown(() => readClient.close());
  const service = await createLayerService({ client: readClient, cacheDir, cacheSize: 2 ** 30, memoryCacheBytes: 64 * 2 ** 20, prefetch: false });
  t.teardown(() => service.close());
  const lazyRef = parseReference(`${proxy.host}/lazy/app:v1`);
  const { manifest } = await readClient.resolve(lazyRef);
  const random = prng(0xc0ffee);

  for (const [i, spec] of layers.entries()) {
    const layer = await service.openToc(lazyRef, manifest.document.layers[i]!);
    const expectedFiles = spec.entries.filter((e) => e.type === 'file');
    for (const entry of expectedFiles) {
      const want = contentBytes(entry);
      const got = layer.index.lookup(entry.path);
      t.ok(got, `${entry.path} is in the TOC`);
      if (!got) continue;
      t.equal(got.size, want.length, `${entry.path} size`);
      t.ok(Buffer.from(await layer.read(entry.path, 0, want.length + 10)).equals(want), `${entry.path}: whole file`);
      for (let k = 0; k < 3 && want.length > 0; k++) {
        const offset = Math.floor(random() * want.length);
        const length = 1 + Math.floor(random() * Math.min(want.length, 3 * CHUNK));
        const part = Buffer.from(await layer.read(entry.path, offset, length));
        t.ok(part.equals(want.subarray(offset, offset + length)), `${entry.path}: [${offset}, +${length})`);
      }
    }
    for (const entry of spec.entries.filter((e) => e.type !== 'file')) {
      const path = entry.path.replace(/\/$/, '');
      t.ok(layer.index.lookup(path), `${entry.type} ${path} is in the TOC`);
    }
  }
  const first = service.stats();
  t.ok(first.fetch.bytesFetched > 0, 'chunks came over the network');

  // Every file again: all of it from the caches, no blob request.
  proxy.resetCounters();
  for (const [i, spec] of layers.entries()) {
    const layer = await service.openToc(lazyRef, manifest.document.layers[i]!);
    for (const entry of spec.entries.filter((e) => e.type === 'file')) {
      t.ok(Buffer.from(await layer.read(entry.path, 0, entry.size)).equals(contentBytes(entry)), `${entry.path} again`);
    }
  }
  t.equal(proxy.counters.byKind.blobs.requests, 0, 'a second read of every file moves no blob byte');

  // Corrupt one cached chunk: a fresh service detects it by its digest and fetches it again. The chunks
  // are on disk once the service closes (they wait for a pause in the fetches before that).
  await service.close();
  const chunkFiles: string[] = [];
  for (const sub of await readdir(join(cacheDir, 'chunks'))) {
    if (sub.startsWith('.')) continue;
    for (const name of await readdir(join(cacheDir, 'chunks', sub))) chunkFiles.push(join(cacheDir, 'chunks', sub, name));
  }
  t.ok(chunkFiles.length > 10, 'chunks are on disk');
  const bigEntry = layers[0]!.entries.find((e) => e.path === 'usr/lib/big.so')!;
  for (const f of chunkFiles) await writeFile(f, Buffer.from('not the chunk you are looking for'));
  const again = await createLayerService({ client: readClient, cacheDir, cacheSize: 2 ** 30, memoryCacheBytes: 64 * 2 ** 20, prefetch: false });
  t.teardown(() => again.close());
  proxy.resetCounters();
  const reopened = await again.open(lazyRef, manifest.document.layers[0]!);
  t.equal(reopened.tocSource, 'cache', 'the TOC comes from the disk cache');
  t.ok(Buffer.from(await readPath(reopened, 'usr/lib/big.so', 0, bigEntry.size)).equals(contentBytes(bigEntry)), 'correct bytes after corruption');
  t.ok(proxy.counters.byKind.blobs.requests > 0, 'corrupt cache files were refetched');
  t.ok(again.stats().disk.corrupt > 0, 'and counted as corrupt');
});
