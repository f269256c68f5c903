// `tocfs cat` and the TOC-backed `tocfs ls` on the real registry, measured through the fault proxy:
// only footer, TOC and the chunks of the file move; a restart reads from the disk cache; a flipped
// byte in a chunk is an error and never output.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { estargzCodec } from '../../src/formats/estargz/codec.js';
import { runTocfs } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage, type BuiltImage, type LayerSpec, type PrebuiltLayerSpec } from '../support/image-builder.js';
import { buildEstargz } from '../support/estargz-build.js';
import { pushImage } from '../support/push.js';
import { tempDir } from '../support/tmp.js';
import { dir, file, hardlink, opaque, symlink, whiteout, type TarEntry } from '../support/tar-dsl.js';
import { mountDaemon } from '../support/mount-daemon.js';

const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';

/** An eStargz layer built by the reference rules, as a prebuilt layer of an OCI image. */
async function estargzLayer(work: string, name: string, entries: TarEntry[], chunkSize?: number): Promise<PrebuiltLayerSpec & { blob: Buffer }> {
  const built = await buildEstargz(entries, { gzipLevel: 1, ...(chunkSize ? { chunkSize } : {}) });
  const blobPath = join(work, `${name}.estargz`);
  await writeFile(blobPath, built.blob);
  return {
    blob: built.blob,
    blobPath,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    diffId: built.diffId,
    annotations: { [TOC_DIGEST]: built.tocDigest },
  };
}

async function pushed(t: Test, layers: (LayerSpec | PrebuiltLayerSpec)[]): Promise<{ ref: string; proxy: Awaited<ReturnType<typeof startFaultProxy>>; image: BuiltImage; cacheDir: string }> {
  const reg = await startRegistry(t);
  const image = await buildImage(tempDir(t, 'cat-image'), { layers });
  await pushImage(reg.seedUrl, 'lazy/app', 'v1', image);
  const proxy = await startFaultProxy(t, { target: reg.url });
  return { ref: `${proxy.host}/lazy/app:v1`, proxy, image, cacheDir: tempDir(t, 'cat-cache') };
}

const oneKiB = Buffer.alloc(1024, 'k');

t.test('cat of a 1 KiB file in a 200 MB eStargz layer moves footer, TOC and one chunk; a restart moves no blob byte', async (t) => {
  const work = tempDir(t, 'big-layer');
  const big = await estargzLayer(work, 'big', [
    dir('data'),
    file('data/huge.bin', { size: 200 * 2 ** 20 }),
    file('data/small.txt', oneKiB),
  ]);
  const { ref, proxy, cacheDir } = await pushed(t, [big]);

  proxy.resetCounters();
  const first = await runTocfs(['cat', ref, '/data/small.txt', '--cache-dir', cacheDir]);
  t.equal(first.code, 0, first.err);
  t.same(first.out, oneKiB, 'exact bytes');
  const moved = proxy.counters.byKind.blobs.bytes;
  t.ok(moved < 300_000, `blob bytes moved: ${moved} (< 300 KB of a ${big.blob.length}-byte layer)`);

  proxy.resetCounters();
  const again = await runTocfs(['cat', ref, 'data/small.txt', '--cache-dir', cacheDir]);
  t.equal(again.code, 0, again.err);
  t.same(again.out, oneKiB);
  // The image's config is read again (the image tree is made as the mount makes it); the layer's TOC and
  // chunk come from the disk cache.
  t.equal(proxy.counters.byKind.blobs.requests, 1, 'one blob request: the config');
  t.ok(proxy.counters.byKind.blobs.bytes < 4096, `${proxy.counters.byKind.blobs.bytes} blob bytes: the config's`);
});

t.test('a flipped byte in the chunk is an error naming the layer and file, and no byte is written', async (t) => {
  const work = tempDir(t, 'flip');
  const content = Buffer.from('the only correct content\n'.repeat(40));
  const layer = await estargzLayer(work, 'flip', [dir('etc'), file('etc/config', content), file('etc/other', 'x')]);
  const { ref, proxy, cacheDir, image } = await pushed(t, [layer]);
  // The TOC goes to the disk cache first, so the fault below can only hit chunk requests.
  t.equal((await runTocfs(['ls', ref, '--cache-dir', cacheDir])).code, 0);

  const location = estargzCodec.parseFooter(layer.blob.subarray(-estargzCodec.footerLength), layer.blob.length);
  const toc = await estargzCodec.decodeToc(layer.blob.subarray(location.tocOffset, layer.blob.length - location.footerLength), location);
  const chunk = toc.index.lookup('etc/config')!.chunks[0]!;
  t.ok(chunk.compressedEnd - chunk.compressedOffset > 20, 'a chunk span to corrupt');
  proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${image.layers[0]!.digest}`), action: { flipByteAt: 12 } });

  const res = await runTocfs(['cat', ref, 'etc/config', '--cache-dir', cacheDir]);
  t.equal(res.code, 1);
  t.equal(res.out.length, 0, 'nothing written');
  t.match(res.err, /etc\/config/);
  t.match(res.err, image.layers[0]!.digest, 'names the layer');

  proxy.clearRules();
  const healed = await runTocfs(['cat', ref, 'etc/config', '--cache-dir', cacheDir]);
  t.equal(healed.code, 0, healed.err);
  t.same(healed.out, content, 'nothing bad was cached: correct bytes once the fault is gone');
});

t.test('cat reads the topmost layer holding the path and honours whiteouts and opaque dirs above it', async (t) => {
  const work = tempDir(t, 'layers');
  const lower = await estargzLayer(work, 'lower', [
    dir('etc'), file('etc/motd', 'lower\n'), file('etc/gone', 'deleted above\n'),
    dir('opt'), file('opt/old', 'hidden by opaque\n'), file('etc/chunked', Buffer.alloc(5000, 'c')),
  ], 64);
  const upper = await estargzLayer(work, 'upper', [
    dir('etc'), file('etc/motd', 'upper\n'), whiteout('etc/gone'), dir('opt'), opaque('opt'), symlink('etc/link', 'motd'),
  ]);
  const { ref, cacheDir, image } = await pushed(t, [lower, upper]);
  const cat = (path: string) => runTocfs(['cat', ref, path, '--cache-dir', cacheDir]);

  t.same((await cat('etc/motd')).out.toString(), 'upper\n');
  t.same((await cat('etc/chunked')).out, Buffer.alloc(5000, 'c'), 'a file of 79 chunks of 64 bytes');
  const gone = await cat('etc/gone');
  t.equal(gone.code, 1);
  t.match(gone.err, /no such file/);
  t.match((await cat('opt/old')).err, /no such file/, 'opaque directory hides the lower layer');
  t.match((await cat('etc/link')).err, /symlink to motd/);
  t.match((await cat('etc')).err, /directory/);
  const lowerOnly = await runTocfs(['cat', ref, 'etc/gone', '--layer', image.layers[0]!.digest, '--cache-dir', cacheDir]);
  t.same(lowerOnly.out.toString(), 'deleted above\n', '--layer reads that one layer');
});

t.test('ls lists a TOC layer without reading its data, filters by PATH, and says NOT_FOUND for a missing PATH', async (t) => {
  const work = tempDir(t, 'ls-toc');
  const layer = await estargzLayer(work, 'ls', [dir('usr'), dir('usr/bin'), file('usr/bin/tool', 'x'.repeat(3000), { mode: 0o755 }), file('readme', 'r')]);
  const { ref, proxy, cacheDir } = await pushed(t, [layer]);
  proxy.resetCounters();
  const res = await runTocfs(['ls', ref, '/usr', '--cache-dir', cacheDir]);
  t.equal(res.code, 0, res.err);
  const text = res.out.toString();
  t.match(text, /^## layer sha256:\S+ \(estargz-gzip, TOC from blob\)$/m);
  t.match(text, /^-rwxr-xr-x 0\/0 +3000 \S+ usr\/bin\/tool$/m);
  t.notMatch(text, /readme/, 'only entries under PATH');
  t.ok(proxy.counters.byKind.blobs.bytes <= 64 * 1024 + 4096, 'only the tail (footer and TOC) was read');
  const missing = await runTocfs(['ls', ref, '/nope', '--cache-dir', cacheDir]);
  t.equal(missing.code, 1);
  t.match(missing.err, /no layer has \/nope/);
});

t.test('cat of a file in a plain gzip layer answers byte for byte what the mount answers', async (t) => {
  const content = Buffer.from('plain gzip, no TOC\n'.repeat(500));
  const { ref, cacheDir } = await pushed(t, [
    { compression: 'gzip', entries: [dir('etc'), file('etc/plain', content), file('etc/gone', 'x')] },
    { compression: 'gzip', entries: [dir('etc'), whiteout('etc/gone'), hardlink('etc/again', 'etc/plain')] },
  ]);
  const res = await runTocfs(['cat', ref, 'etc/plain', '--cache-dir', cacheDir]);
  t.equal(res.code, 0, res.err);
  t.same(res.out, content, 'the file of the lower layer');
  const link = await runTocfs(['cat', ref, 'etc/again', '--cache-dir', cacheDir]);
  t.same(link.out, content, 'a hardlink to it, from the upper layer');
  t.match((await runTocfs(['cat', ref, 'etc/gone', '--cache-dir', cacheDir])).err, /no such file/, 'whiteouts of a layer without a TOC');

  const { mnt } = await mountDaemon(t, 'cat-gzip', { insecureRegistries: [ref.split('/')[0]!] });
  const mounted = await readFile(join(mnt, 'images', ref, 'etc/plain'));
  t.same(res.out, mounted, 'what the mount answers');
  t.same(link.out, await readFile(join(mnt, 'images', ref, 'etc/again')));
});
