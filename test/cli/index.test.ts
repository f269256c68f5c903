// `tocfs index REF` on Debian's docker-registry (no referrers API: the tag schema is used): the SOCI index
// is found as a referrer of the image manifest, whose digest does not change; every zTOC decodes, its span
// digests are the real blob's bytes, every file extracts through zran from its checkpoints, its entries are
// the tar's headers, and flatc reads it with soci's schema; --v2, --span-size, --min-layer-size; bad input
// gives one line on stderr, never a stack.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { indexImage } from '../../src/convert/soci-index.js';
import { SOCI_INDEX_V1, SOCI_INDEX_V2, parseSociIndex } from '../../src/formats/soci/index-manifest.js';
import { decodeZinfo } from '../../src/formats/soci/zinfo.js';
import { decodeZtoc } from '../../src/formats/soci/ztoc.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import type { ImageIndex, ImageManifest } from '../../src/registry/types.js';
import { runTocfs } from '../support/cli.js';
import { buildImage, MEDIA_TYPES, sha256, type BuiltImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, symlink, hardlink } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { checkZtoc } from '../support/ztoc-check.js';

const SCHEMA = fileURLToPath(new URL('../fixtures/soci/ztoc.fbs', import.meta.url));
const MiB = 1 << 20;

const LAYERS = [
  // ~1 KiB compressed: under every --min-layer-size used here.
  [dir('etc'), file('etc/os-release', 'ID=tocfs\n'), symlink('etc/link', 'os-release')],
  // Incompressible: about as many compressed as uncompressed bytes, 9 spans of 1 MiB.
  [dir('data'), file('data/random.bin', { size: 9 * MiB }), hardlink('data/again.bin', 'data/random.bin'), file('data/small', 'x'.repeat(1000), { xattrs: { 'user.note': 'plain text' } })],
  // Mixed: text and zeros compress, random does not.
  [file('usr/share/doc.txt', 'the quick brown fox jumps over the lazy dog\n'.repeat(60_000)), file('usr/lib/zeros', { size: 4 * MiB, sparse: true }), file('usr/lib/blob', { size: 2 * MiB }), file('usr/bin/empty')],
];

async function blobOf(client: RegistryClient, repo: ReturnType<typeof parseReference>, digest: string, size: number, mediaType = 'application/octet-stream'): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of client.streamBlob(repo, { mediaType, digest, size })) parts.push(chunk);
  return Buffer.concat(parts);
}

t.test('tocfs index on a real registry', async (t) => {
  const reg = await startRegistry(t);
  const work = tempDir(t, 'soci-index');
  const image: BuiltImage = await buildImage(join(work, 'img'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'demo/app', 'v1', image);
  const refText = `${reg.host}/demo/app:v1`;
  const ref = parseReference(refText);
  const client = new RegistryClient();
  t.teardown(() => client.close());

  t.test('--help prints the usage, listing every option', async (t) => {
    const res = await runTocfs(['index', '--help']);
    t.equal(res.code, 0);
    for (const opt of ['--span-size', '--min-layer-size', '--v2', '--platform', '--insecure-registry']) t.match(res.text, opt);
  });

  t.test('v1: a referrer of the unchanged manifest; zTOCs that agree with the blobs', async (t) => {
    const res = await runTocfs(['index', refText, '--span-size', '1M', '--min-layer-size', '64K']);
    t.equal(res.code, 0, res.err);
    const digest = res.text.trim();
    t.match(digest, /^sha256:[0-9a-f]{64}$/, 'stdout is the SOCI index digest');
    t.match(res.err, new RegExp(`layer 1/3 ${image.layers[0]!.digest.slice(0, 19)}: skipped, \\d+ bytes, under --min-layer-size 65536`));
    t.equal(res.err.split('\n').filter((l) => /^layer [23]\/3 sha256:\w+: zTOC sha256:\w{64} \(\d+ bytes compressed, \d+ spans, \d+ entries, [\d.]+ s\)$/.test(l)).length, 2, res.err);

    const fetched = await client.getManifest(ref, 'v1');
    t.equal(fetched.digest, image.manifest.digest, "REF's manifest digest is unchanged");
    const referrers = await client.referrers(ref, image.manifest.digest, SOCI_INDEX_V1);
    t.same(referrers.map((d) => d.digest), [digest], 'the SOCI index is found as a referrer');
    const sociBytes = (await client.getManifest(ref, digest)).bytes;
    const soci = parseSociIndex(sociBytes);
    t.equal(soci.version, 'v1');
    t.same(soci.subject, { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.bytes.length }, 'subject = the image manifest');
    t.same(soci.ztocs.map((z) => z.layerDigest), [image.layers[1]!.digest, image.layers[2]!.digest], 'a zTOC per layer over the minimum');
    for (const z of soci.ztocs) {
      t.equal(z.spanSize, MiB);
      t.equal(z.layerMediaType, MEDIA_TYPES.oci.layer.gzip);
      const bytes = await blobOf(client, ref, z.ztoc.digest, z.ztoc.size);
      const layerBlob = readFileSync(image.layers.find((l) => l.digest === z.layerDigest)!.path);
      const figures = await checkZtoc(t, bytes, layerBlob, `layer ${z.layerDigest.slice(7, 19)}`);
      t.equal(figures.ztoc.buildToolIdentifier, 'tocfs');
    }
    const big = soci.ztocs[0]!;
    t.ok(decodeZtoc(await blobOf(client, ref, big.ztoc.digest, big.ztoc.size)).compression.maxSpanId >= 8, 'the 9 MiB random layer has 9 or so spans of 1 MiB');
  });

  t.test("flatc reads a pushed zTOC with soci's schema", async (t) => {
    const which = spawnSync('flatc', ['--version'], { encoding: 'utf8' });
    if (which.status !== 0) return t.fail('flatc is not installed (scripts/setup.sh installs flatbuffers-compiler)');
    const [desc] = await client.referrers(ref, image.manifest.digest, SOCI_INDEX_V1);
    const soci = parseSociIndex((await client.getManifest(ref, desc!.digest)).bytes);
    const z = soci.ztocs[0]!;
    const bytes = await blobOf(client, ref, z.ztoc.digest, z.ztoc.size);
    const path = join(work, 'pushed.ztoc');
    writeFileSync(path, bytes);
    const run = spawnSync('flatc', ['--json', '--strict-json', '--raw-binary', '-o', work, SCHEMA, '--', path], { encoding: 'utf8' });
    t.equal(run.status, 0, `flatc exit status (stderr: ${run.stderr})`);
    const json = JSON.parse(readFileSync(join(work, 'pushed.json'), 'utf8')) as { version: string; toc: { metadata: { name: string }[] }; compression_info: { span_digests: string[] } };
    const decoded = decodeZtoc(bytes);
    t.equal(json.version, '0.9');
    t.same(json.toc.metadata.map((m) => m.name), decoded.entries.map((e) => e.name));
    t.same(json.compression_info.span_digests, decoded.compression.spanDigests);
  });

  t.test('--span-size 1M gives about 4x the spans of 4M', async (t) => {
    // Measured on the random layer: zeros and text make deflate blocks of megabytes, which set the cuts there.
    const meanSpan = async (span: string): Promise<{ spans: number; mean: number }> => {
      const res = await runTocfs(['index', refText, '--span-size', span, '--min-layer-size', '64K']);
      t.equal(res.code, 0, res.err);
      const z = parseSociIndex((await client.getManifest(ref, res.text.trim())).bytes).ztocs.find((z) => z.layerDigest === image.layers[1]!.digest)!;
      const checkpoints = decodeZinfo(decodeZtoc(await blobOf(client, ref, z.ztoc.digest, z.ztoc.size)).compression.checkpoints).checkpoints;
      return { spans: checkpoints.length, mean: checkpoints.at(-1)!.out / (checkpoints.length - 1) };
    };
    const [small, large] = [await meanSpan('1M'), await meanSpan('4M')];
    const ratio = large.mean / small.mean;
    t.ok(ratio > 3.5 && ratio < 4.5, `${small.spans} spans at 1 MiB, ${large.spans} at 4 MiB: spans ${ratio.toFixed(2)}x as long`);
    t.ok(small.spans >= 3 * large.spans, 'about 4x the spans (the last one of each is partial)');
  });

  t.test('--min-layer-size: layers under it get no zTOC (the default 10 MiB skips all three here)', async (t) => {
    const res = await runTocfs(['index', refText]);
    t.equal(res.code, 1, 'nothing to index is an error');
    t.equal(res.err.trim().split('\n').filter((l) => / skipped, \d+ bytes, under --min-layer-size 10485760$/.test(l)).length, 3, res.err);
    t.match(res.err, /tocfs index: no layer of .* can be indexed/);
    const some = await runTocfs(['index', refText, '--min-layer-size', '5M']);
    t.equal(some.code, 0, some.err);
    const soci = parseSociIndex((await client.getManifest(ref, some.text.trim())).bytes);
    t.same(soci.ztocs.map((z) => z.layerDigest), [image.layers[1]!.digest], 'only the layer of 5 MiB or more');
  });

  t.test('--v2 DST: an image index tagged DST with the annotated manifest and a v2 SOCI index', async (t) => {
    const res = await runTocfs(['index', refText, '--span-size', '1M', '--min-layer-size', '64K', '--v2', `${reg.host}/demo/app:v1-soci`]);
    t.equal(res.code, 0, res.err);
    const [v1Digest, v2Digest] = res.text.trim().split('\n');
    t.match(v2Digest, /^sha256:[0-9a-f]{64}$/);
    const index = (await client.getManifest(ref, 'v1-soci')).document as ImageIndex;
    t.equal(index.mediaType, MEDIA_TYPES.oci.index);
    t.equal(index.manifests.length, 2);
    const [m, s] = index.manifests as [ImageIndex['manifests'][0], ImageIndex['manifests'][0]];
    t.equal(m.annotations?.['com.amazon.soci.index-digest'], v2Digest, 'the manifest descriptor names the v2 index');
    t.same(m.platform, { os: image.platform.os, architecture: image.platform.architecture });
    t.equal(s.artifactType, SOCI_INDEX_V2);
    t.equal(s.digest, v2Digest);
    t.equal(s.annotations?.['com.amazon.soci.image-manifest-digest'], m.digest);
    const annotated = (await client.getManifest(ref, m.digest)).document as ImageManifest;
    t.equal(annotated.annotations?.['com.amazon.soci.index-digest'], v2Digest, 'the manifest itself carries it too');
    t.same(annotated.layers.map((l) => l.digest), image.layers.map((l) => l.digest), 'same layers');
    const v2 = parseSociIndex((await client.getManifest(ref, v2Digest!)).bytes);
    const v1 = parseSociIndex((await client.getManifest(ref, v1Digest!)).bytes);
    t.equal(v2.version, 'v2');
    t.equal(v2.subject, undefined, 'v2 has no subject');
    t.same(v2.ztocs, v1.ztocs, 'the same zTOCs as v1');
    t.equal((await client.getManifest(ref, 'v1')).digest, image.manifest.digest, 'REF is unchanged');
  });

  t.test('progress: per-layer bytes reported as they stream (indexImage, interval 0)', async (t) => {
    const seen: number[] = [];
    const result = await indexImage(client, ref, { minLayerSize: 64 << 10, progressIntervalMs: 0, onProgress: (p) => p.index === 1 && seen.push(p.compressedDone) });
    t.ok(seen.length > 1, `${seen.length} progress calls for the 9 MiB layer`);
    t.same(seen, [...seen].sort((a, b) => a - b), 'bytes only grow');
    t.ok(seen.at(-1)! <= image.layers[1]!.size);
    t.same(result.layers.map((l) => l.index), [1, 2]);
  });

  t.test('bad input: one line on stderr, no stack', async (t) => {
    const noStack = (err: string): void => {
      t.equal(err.trim().split('\n').filter((l) => l.startsWith('tocfs index:')).length, 1, err);
      t.notMatch(err, /\n\s+at /, 'no stack');
    };
    const [desc] = await client.referrers(ref, image.manifest.digest, SOCI_INDEX_V1);
    const notImage = await runTocfs(['index', `${reg.host}/demo/app@${desc!.digest}`, '--min-layer-size', '0']);
    t.equal(notImage.code, 1);
    t.match(notImage.err, /is not a container image \(its config media type is application\/vnd\.amazon\.soci\.index\.v1\+json\)/);
    noStack(notImage.err);

    const missing = await runTocfs(['index', `${reg.host}/demo/nothing:here`]);
    t.equal(missing.code, 1);
    noStack(missing.err);

    const garbage = join(work, 'garbage.gz');
    writeFileSync(garbage, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), randomBytes(200_000)]));
    const bad = await buildImage(join(work, 'bad'), { layers: [{ blobPath: garbage, mediaType: MEDIA_TYPES.oci.layer.gzip, diffId: sha256('not a tar') }] });
    await pushImage(reg.seedUrl, 'demo/bad', 'v1', bad);
    const res = await runTocfs(['index', `${reg.host}/demo/bad:v1`, '--min-layer-size', '0']);
    t.equal(res.code, 1);
    t.match(res.err, new RegExp(`tocfs index: layer ${bad.layers[0]!.digest} is not a valid gzip tar: `));
    noStack(res.err);

    const usage = await runTocfs(['index', refText, '--span-size', 'lots']);
    t.equal(usage.code, 2);
    noStack(usage.err);
  });
});
