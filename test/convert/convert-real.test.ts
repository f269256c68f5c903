// `tocfs convert` end to end against Debian's docker-registry: a 3-layer image (gzip, zstd, plain tar)
// converted in-process must come back with eStargz layers, annotations and diff_ids that match, and
// `umoci unpack` of it must equal `umoci unpack` of the original.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { parseEstargzFooter } from '../../src/formats/estargz/footer.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import type { ImageManifest } from '../../src/registry/types.js';
import { runTocfs } from '../support/cli.js';
import { buildImage, MEDIA_TYPES, type Compression, type ImageSpec } from '../support/image-builder.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { pushBlob, pushImage, putManifest } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { chardev, dir, fifo, file, hardlink, opaque, symlink, whiteout } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { CAP_SETUID } from '../support/vectors.js';
import { readToc, sha, treeOf } from './estargz-check.js';
import { readAll } from './tar-vectors.js';

const run = promisify(execFile);

const LAYERS = [
  [
    dir('etc'),
    file('etc/hello', 'hello\n', { uid: 1000, gid: 100, uname: 'user', gname: 'users' }),
    symlink('etc/link', 'hello'),
    file('etc/gone', 'x'),
    dir('usr'),
    dir('usr/bin'),
    file('usr/bin/su', 'su-binary', { mode: 0o4755, xattrs: { 'security.capability': CAP_SETUID, 'user.origin': 'layer0' } }),
    hardlink('usr/bin/su-again', 'usr/bin/su'),
    file('big', { size: 3_000_000 }),
    fifo('run/pipe'),
    chardev('dev/null', 1, 3),
    file('empty'),
  ],
  [
    whiteout('etc/gone'),
    file('etc/new', 'new\n', { mtime: new Date(1_600_000_000_250) }),
    opaque('usr/bin'),
    file('usr/bin/tool', '#!/bin/sh\n', { mode: 0o755 }),
    file('données/日本語/файл ☃.txt', 'unicode'),
    file(`${'long-directory-name/'.repeat(8)}${'f'.repeat(150)}`, 'long'),
  ],
  [dir('tmp', { mode: 0o1777 }), file('etc/big2', { size: 200_000 }), file('etc/hello', 'replaced\n', { xattrs: { 'user.note': Buffer.from([0x80, 0xff]) } })],
];

function spec(compressions: readonly Compression[], mediaTypes: 'oci' | 'docker' = 'oci'): ImageSpec {
  return { mediaTypes, layers: compressions.map((compression, i) => ({ compression, entries: LAYERS[i]! })) };
}

/** Every xattr of every path (Node has no getxattr; Python does, without following symlinks). */
async function xattrsOf(root: string): Promise<Record<string, Record<string, string>>> {
  const script = `import os, sys, json
root = sys.argv[1]
out = {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        x = {k: os.getxattr(p, k, follow_symlinks=False).hex() for k in os.listxattr(p, follow_symlinks=False)}
        if x: out[os.path.relpath(p, root)] = x
print(json.dumps(out, sort_keys=True))`;
  const { stdout } = await run('python3', ['-c', script, root]);
  return JSON.parse(stdout) as Record<string, Record<string, string>>;
}

async function fetchManifest(client: RegistryClient, ref: string): Promise<{ doc: ImageManifest; mediaType: string }> {
  const r = parseReference(ref);
  const m = await client.getManifest(r, r.tag!);
  return { doc: m.document as ImageManifest, mediaType: m.mediaType };
}

async function blobBytes(client: RegistryClient, ref: string, d: ImageManifest['layers'][number]): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of client.streamBlob(parseReference(ref), d)) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Runs `fn` with os.tmpdir() pointing at `dir` (it reads $TMPDIR on every call), then restores it. */
async function withTmpdir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = dir;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
}

function clientFor(t: Test): RegistryClient {
  const client = new RegistryClient();
  t.teardown(() => client.close());
  return client;
}

t.test('convert gzip + zstd + tar layers: annotations, diff_ids, and the same tree under umoci', async (t) => {
  const reg = await startRegistry(t);
  const work = tempDir(t, 'convert-real');
  const original = await buildImage(join(work, 'src'), spec(['gzip', 'zstd', 'none']));
  await pushImage(reg.seedUrl, 'demo/app', 'v1', original);
  const tmp = tempDir(t, 'convert-tmp');
  const res = await withTmpdir(tmp, () => runTocfs(['convert', `${reg.host}/demo/app:v1`, `${reg.host}/demo/app:esgz`, '--chunk-size', '1M']));
  t.equal(res.code, 0, res.err);
  t.same(readdirSync(tmp), [], 'temp files removed');
  const lines = res.text.trim().split('\n');
  t.equal(lines.filter((l) => /^layer \d\/3 sha256:\w+ \((gzip|zstd|none), \d+ bytes\) -> sha256:\w+ \(estargz, \d+ bytes, \d+ uncompressed\)$/.test(l)).length, 3, res.text);
  t.match(lines.at(-1), /^manifest sha256:[0-9a-f]{64} pushed to 127\.0\.0\.1:\d+\/demo\/app:esgz$/);

  const client = clientFor(t);
  const dst = `${reg.host}/demo/app:esgz`;
  const { doc, mediaType } = await fetchManifest(client, dst);
  t.equal(mediaType, MEDIA_TYPES.oci.manifest);
  const config = await client.getConfig(parseReference(dst), doc);
  t.equal(doc.layers.length, 3);
  for (const [i, layer] of doc.layers.entries()) {
    t.equal(layer.mediaType, MEDIA_TYPES.oci.layer.gzip, `layer ${i} is tar+gzip`);
    const blob = await blobBytes(client, dst, layer);
    const tar = gunzipSync(blob);
    const { json } = readToc(blob);
    t.equal(layer.annotations?.['containerd.io/snapshot/stargz/toc.digest'], sha(json), `layer ${i} TOC digest annotation`);
    t.equal(layer.annotations?.['io.containers.estargz.uncompressed-size'], String(tar.length), `layer ${i} uncompressed size`);
    t.equal(layer.annotations?.['io.tocfs.estargz.toc-offset'], String(parseEstargzFooter(blob.subarray(-51), blob.length).tocOffset), `layer ${i} TOC offset hint`);
    t.equal(config.document.rootfs?.diff_ids[i], sha(tar), `layer ${i} diff_id is the sha256 of its tar`);
    t.equal(readAll(tar).records[0]?.header.path, '.no.prefetch.landmark');
    t.equal(layer.annotations?.['io.tocfs.estargz.prefetch-end'], undefined, `layer ${i}: nothing prioritised, no prefetch-end hint`);
  }
  t.same(config.document['history'], JSON.parse(original.config.bytes.toString())['history'], 'history kept');

  // umoci cannot unpack zstd layers: its oracle is the same tars, gzip-compressed (same diff_ids).
  const oracle = await buildImage(join(work, 'oracle'), spec(['gzip', 'gzip', 'gzip']));
  t.same(oracle.layers.map((l) => l.diffId), original.layers.map((l) => l.diffId), 'oracle has the same layer tars');
  await writeOciLayout(join(work, 'oracle-layout'), 'v1', oracle);
  const expected = await umociUnpack(join(work, 'oracle-layout'), 'v1', join(work, 'bundle-a'));
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${dst}`, `oci:${join(work, 'esgz-layout')}:esgz`]);
  const actual = await umociUnpack(join(work, 'esgz-layout'), 'esgz', join(work, 'bundle-b'));
  const a = treeOf(expected);
  const b = treeOf(actual);
  t.ok(a.has('usr/bin/tool') && !a.has('etc/gone') && !a.has('usr/bin/su'), 'the oracle applied whiteouts and the opaque dir');
  t.same([...b.keys()], [...a.keys()], 'same paths (format artefacts aside)');
  for (const [p, node] of a) t.same(b.get(p), node, p);
  t.same(await xattrsOf(actual), await xattrsOf(expected), 'same xattrs, binary values included');
});

t.test('Docker schema2 source: Docker gzip layer type; --prioritize puts files before .prefetch.landmark', async (t) => {
  const reg = await startRegistry(t);
  const image = await buildImage(tempDir(t, 'docker-src'), spec(['gzip', 'gzip', 'none'], 'docker'));
  await pushImage(reg.seedUrl, 'demo/docker', 'v1', image);
  const res = await runTocfs(['convert', `${reg.host}/demo/docker:v1`, `${reg.host}/other/repo:esgz`, '--prioritize', '/etc/hello', '--prioritize', 'nowhere']);
  t.equal(res.code, 0, res.err);
  t.match(res.text, /^warning: --prioritize nowhere: no layer has it$/m);
  const client = clientFor(t);
  const dst = `${reg.host}/other/repo:esgz`;
  const { doc, mediaType } = await fetchManifest(client, dst);
  t.equal(mediaType, MEDIA_TYPES.docker.manifest);
  t.same(doc.layers.map((l) => l.mediaType), [MEDIA_TYPES.docker.layer.gzip, MEDIA_TYPES.docker.layer.gzip, MEDIA_TYPES.docker.layer.gzip]);
  const firstBlob = await blobBytes(client, dst, doc.layers[0]!);
  const first = readAll(gunzipSync(firstBlob)).records.map((r) => r.header.path);
  t.same(first.slice(0, 3), ['etc/', 'etc/hello', '.prefetch.landmark'], 'layer 1: etc/hello and its parent first');
  const entries = (JSON.parse(readToc(firstBlob).json.toString()) as { entries: { name: string; offset?: number }[] }).entries;
  const landmark = entries.find((e) => e.name === '.prefetch.landmark')!.offset!;
  t.ok(landmark > 0);
  t.equal(doc.layers[0]!.annotations?.['io.tocfs.estargz.prefetch-end'], String(landmark), 'layer 1: the prefetch-end hint is where the landmark starts');
  const second = readAll(gunzipSync(await blobBytes(client, dst, doc.layers[1]!))).records.map((r) => r.header.path);
  t.equal(second[0], '.prefetch.landmark', 'a layer without the file: landmark first, nothing to prefetch');
  t.equal(doc.layers[1]!.annotations?.['io.tocfs.estargz.prefetch-end'], undefined, 'and no prefetch-end hint');
});

t.test('usage errors: --prioritize with zstd-chunked, bad sizes, missing DST', async (t) => {
  const zstd = await runTocfs(['convert', 'a.example/x:1', 'a.example/y:1', '--format', 'zstd-chunked', '--prioritize', '/bin/sh']);
  t.equal(zstd.code, 2);
  t.match(zstd.err, /--prioritize needs --format estargz/);
  t.match((await runTocfs(['convert', 'a.example/x:1', 'a.example/y:1', '--format', 'squashfs'])).err, /unknown --format "squashfs"/);
  t.match((await runTocfs(['convert', 'a.example/x:1', 'a.example/y:1', '--chunk-size', '0'])).err, /--chunk-size "0" is not a positive size/);
  t.match((await runTocfs(['convert', 'a.example/x:1', 'a.example/y:1', '--chunk-size', '65M'])).err, /--chunk-size is at most 67108864 bytes/);
  const missing = await runTocfs(['convert', 'a.example/x:1']);
  t.equal(missing.code, 2);
  t.match(missing.err, /needs a source and a destination image/);
});

t.test('a layer that is not a tar, or not gzip, fails with exit 1 naming the layer; temp files are removed', async (t) => {
  const reg = await startRegistry(t);
  const good = await buildImage(tempDir(t, 'broken-src'), spec(['gzip']));
  await pushImage(reg.seedUrl, 'demo/broken', 'good', good);
  const cases = [
    { tag: 'not-tar', blob: gzipSync(Buffer.alloc(4096, 0x41)), error: 'tar header at offset 0: not a tar header' },
    { tag: 'not-gzip', blob: Buffer.from('this is not gzip at all'), error: 'not valid gzip: incorrect header check' },
  ];
  for (const { tag, blob, error } of cases) {
    // A second layer with these bytes, pushed under a manifest made by hand.
    await pushBlob(reg.seedUrl, 'demo/broken', { bytes: blob });
    const configDoc = JSON.parse(good.config.bytes.toString());
    configDoc.rootfs.diff_ids.push(sha(blob));
    const configBytes = Buffer.from(JSON.stringify(configDoc));
    await pushBlob(reg.seedUrl, 'demo/broken', { bytes: configBytes });
    const manifest = JSON.parse(good.manifest.bytes.toString());
    manifest.config = { ...manifest.config, digest: sha(configBytes), size: configBytes.length };
    manifest.layers.push({ mediaType: MEDIA_TYPES.oci.layer.gzip, digest: sha(blob), size: blob.length });
    await putManifest(reg.seedUrl, 'demo/broken', tag, MEDIA_TYPES.oci.manifest, Buffer.from(JSON.stringify(manifest)));
    const tmp = tempDir(t, 'broken-tmp');
    const res = await withTmpdir(tmp, () => runTocfs(['convert', `${reg.host}/demo/broken:${tag}`, `${reg.host}/demo/broken:out`]));
    t.equal(res.code, 1, tag);
    t.match(res.err, `tocfs convert: layer ${sha(blob)}: ${error}`, tag);
    t.match(res.text, /^layer 1\/2 /m, 'the first layer was converted before the failure');
    t.same(readdirSync(tmp), [], 'temp dir removed on error');
  }
  const client = clientFor(t);
  await t.rejects(client.getManifest(parseReference(`${reg.host}/demo/broken:out`), 'out'), { code: 'NOT_FOUND' }, 'nothing pushed under DST');
});
