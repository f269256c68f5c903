// Issue 21, "the inconsistencies", on Debian's registry and a real mount: a hardlink to a missing target is
// left out with one log line naming the layer and the names; a zstd:chunked layer with a position
// annotation but no checksum is pulled whole and verified by the layer digest (README), not refused; a
// layer whose blob size disagrees with its descriptor, or whose media type is not a layer type, is a clear
// error naming the layer, what was expected and what was found.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { buildImage, sha256, type BuiltImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { pushImage, putManifest } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, hardlink } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { buildZstd } from '../support/zstd-build.js';
import { ZSTD_CHUNKED_ANNOTATIONS } from '../../src/formats/zstd/annotations.js';

const run = promisify(execFile);
t.setTimeout(5 * 60_000);

async function sh(cmd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

type Manifest = { layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] } & Record<string, unknown>;

/** Pushes `image`'s blobs, then its manifest as `edit` leaves it, tagged `tag`. */
async function pushEdited(seedUrl: string, repo: string, tag: string, image: BuiltImage, edit: (m: Manifest) => void): Promise<void> {
  await pushImage(seedUrl, repo, undefined, image);
  const manifest = JSON.parse(image.manifest.bytes.toString()) as Manifest;
  edit(manifest);
  await putManifest(seedUrl, repo, tag, image.manifest.mediaType, Buffer.from(JSON.stringify(manifest)));
}

t.test('inconsistent layers: logged or refused with a clear error, never served silently', async (t) => {
  const work = tempDir(t, 'layer-inconsistencies');
  const reg = await startRegistry(t);
  const { mnt, logs } = await mountDaemon(t, 'layer-inconsistencies', { prefetch: false });
  const images = join(mnt, 'images', reg.host);

  await t.test('a hardlink to a missing target: left out, one log line naming the layer and the names', async (t) => {
    const base = await estargzLayerFile(join(work, 'base'), [dir('etc'), file('etc/present', 'here\n')]);
    const links = await estargzLayerFile(join(work, 'links'), [dir('bin'), file('bin/real', 'real\n'), hardlink('bin/ok', 'bin/real'), hardlink('bin/dangling', 'usr/lib/nowhere'), hardlink('bin/lower', 'etc/present')]);
    const image = await buildImage(join(work, 'links-image'), { layers: [base, links] });
    await pushImage(reg.seedUrl, 'bad/links', 'v1', image);
    const layerDigest = image.layers[1]!.digest;
    const before = logs.length;
    const listing = await sh('ls', join(images, 'bad/links:v1/bin'));
    t.equal(listing.code, 0, listing.stderr);
    t.same(listing.stdout.trim().split('\n').sort(), ['lower', 'ok', 'real'], 'the dangling link is left out, the others are served');
    t.equal((await readFile(join(images, 'bad/links:v1/bin/lower'), 'utf8')), 'here\n', 'a link to a lower layer\'s file reads it');
    const lines = logs.slice(before).filter((l) => l.includes('dangling'));
    t.equal(lines.length, 1, `one log line: ${lines.join(' | ')}`);
    t.match(lines[0], layerDigest, 'it names the layer');
    t.match(lines[0], /"bin\/dangling".*"usr\/lib\/nowhere"/, 'it names the link and its target');

    // The layer's own tree (MNT/layers/): the targets of its external links are in no layer of its own.
    const before2 = logs.length;
    const own = await sh('ls', join(mnt, 'layers', reg.host, `bad/links@${layerDigest}`, 'bin'));
    t.equal(own.code, 0, own.stderr);
    t.same(own.stdout.trim().split('\n').sort(), ['ok', 'real'], 'the layer alone: links to files it does not hold are left out');
    const ownLines = logs.slice(before2).filter((l) => l.includes('bin/dangling'));
    t.equal(ownLines.length, 1, `one log line for the layer's own tree: ${logs.slice(before2).join(' | ')}`);
    t.match(ownLines[0], layerDigest);
    t.match(ownLines[0], /"bin\/lower"/, 'naming every link left out');
  });

  await t.test('zstd:chunked with a position annotation but no checksum: pulled whole, verified by the layer digest', async (t) => {
    const built = buildZstd([dir('data'), file('data/hello.txt', 'hello zstd\n'), file('data/big.bin', Buffer.alloc(300_000, 7))], { footer: 'current' });
    const annotations = { ...built.annotations };
    delete annotations[ZSTD_CHUNKED_ANNOTATIONS.checksum];
    t.ok(annotations[ZSTD_CHUNKED_ANNOTATIONS.position], 'the position annotation stays');
    await writeFile(join(work, 'zstd.blob'), built.blob);
    const layer = { blobPath: join(work, 'zstd.blob'), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', diffId: built.diffId, annotations };
    const image = await buildImage(join(work, 'zstd-image'), { layers: [layer] });
    await pushImage(reg.seedUrl, 'bad/zstd', 'v1', image);
    const root = join(images, 'bad/zstd:v1');
    t.equal(await readFile(join(root, 'data/hello.txt'), 'utf8').catch((e: Error) => e.message), 'hello zstd\n', 'the file reads');
    t.equal(sha256(await readFile(join(root, 'data/big.bin'))), sha256(Buffer.alloc(300_000, 7)), 'every byte right');
    t.match(logs.join('\n'), new RegExp(`${image.layers[0]!.digest}.*(no ${ZSTD_CHUNKED_ANNOTATIONS.checksum}|without).*pulled whole`), 'logged: pulled whole, and why');

    // With a stargz toc.digest beside the position (stargz-snapshotter's eStargz-zstd), the TOC is pinned:
    // read lazily, as the README says; it was refused ("position without checksum").
    const pinned = { ...layer, annotations: { ...annotations, 'containerd.io/snapshot/stargz/toc.digest': built.tocDigest } };
    const image3 = await buildImage(join(work, 'zstd-image3'), { layers: [pinned] });
    await pushImage(reg.seedUrl, 'bad/zstd3', 'v1', image3);
    t.equal(await readFile(join(images, 'bad/zstd3:v1/data/hello.txt'), 'utf8').catch((e: Error) => e.message), 'hello zstd\n', 'with toc.digest: the file reads');
    t.match(logs.join('\n'), new RegExp(`bad/zstd3:v1: layer 0 ${image3.layers[0]!.digest}: zstd-chunked, TOC from blob`), 'with toc.digest: read lazily');

    // The same blob with its bytes changed in the registry's storage: the whole pull's digest check fails it.
    const tampered = Buffer.from(built.blob);
    tampered[10] = tampered[10]! ^ 0xff;
    await writeFile(join(work, 'zstd-tampered.blob'), tampered);
    const image2 = await buildImage(join(work, 'zstd-image2'), { layers: [{ ...layer, blobPath: join(work, 'zstd-tampered.blob') }] });
    await pushImage(reg.seedUrl, 'bad/zstd2', 'v1', image2);
    const hex = image2.layers[0]!.digest.slice(7);
    const stored = join(reg.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    await writeFile(stored, built.blob); // same length, other bytes than the digest names
    const r = await sh('cat', join(images, 'bad/zstd2:v1/data/hello.txt'));
    t.not(r.code, 0, `refused: ${r.stderr.trim()}`);
    t.match(logs.join('\n'), new RegExp(`${image2.layers[0]!.digest}.*(digest|sha256)`), 'the digest mismatch is logged with the layer');
  });

  await t.test('a blob whose size disagrees with its descriptor: an error naming the layer, expected and actual', async (t) => {
    // eStargz: found by a range read's Content-Range total; plain gzip: by the whole pull's length.
    const lazy = await buildImage(join(work, 'sized-image'), { layers: [await estargzLayerFile(join(work, 'sized'), [dir('x'), file('x/y', 'why\n')])] });
    const whole = await buildImage(join(work, 'sized-gzip'), { layers: [{ entries: [dir('x'), file('x/y', 'why not\n')], compression: 'gzip' }] });
    for (const [tag, image, delta] of [['lazy-shorter', lazy, -100], ['lazy-longer', lazy, 100], ['whole-shorter', whole, -10], ['whole-longer', whole, 10]] as const) {
      const real = image.layers[0]!.size;
      const claimed = real + delta;
      await pushEdited(reg.seedUrl, 'bad/sized', tag, image, (m) => {
        m.layers[0]!.size = claimed;
      });
      const before = logs.length;
      const r = await sh('cat', join(images, `bad/sized:${tag}`, 'x/y'));
      t.not(r.code, 0, `${tag}: not served (${r.stderr.trim()})`);
      const said = logs.slice(before).join('\n');
      t.match(said, image.layers[0]!.digest, `${tag}: the layer is named`);
      t.match(said, new RegExp(`${real}\\b.*${claimed}\\b|${claimed}\\b.*${real}\\b`), `${tag}: expected ${claimed} and actual ${real} are both said: ${said}`);
    }
  });

  await t.test('a layer whose media type is not a layer type: a FORMAT error naming the layer; ZIP refused clearly', async (t) => {
    const layer = await estargzLayerFile(join(work, 'typed'), [dir('chart'), file('chart/Chart.yaml', 'name: x\n')]);
    const image = await buildImage(join(work, 'typed-image'), { layers: [layer] });
    for (const [tag, mediaType, why] of [
      ['helm', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', /not a layer media type/],
      ['zip', 'application/zip', /ZIP/],
    ] as const) {
      await pushEdited(reg.seedUrl, 'bad/typed', tag, image, (m) => {
        m.layers[0]!.mediaType = mediaType;
      });
      const before = logs.length;
      const r = await sh('ls', join(images, `bad/typed:${tag}`));
      t.not(r.code, 0, `${tag}: the image is not served (${r.stderr.trim()})`);
      const said = logs.slice(before).join('\n');
      t.match(said, image.layers[0]!.digest, `${tag}: the layer is named: ${said}`);
      t.match(said, mediaType, `${tag}: its media type is said`);
      t.match(said, why);
    }
  });
});
