// `tocfs convert SRC DST --format zstd-chunked` from the command line, on Debian's docker-registry: every
// layer comes back tar+zstd with the zstd:chunked annotations and recomputed diff_ids; `zstd -dc | tar
// -x` of each new layer gives the same tree as the original layer; and `tocfs cat` reads a file of the
// result lazily.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import type { ImageManifest } from '../../src/registry/types.js';
import { runTocfs, runTocfsBin } from '../support/cli.js';
import { buildImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, hardlink, symlink, whiteout } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { sha, treeOf } from '../convert/estargz-check.js';

const LAYERS = [
  [dir('etc'), file('etc/hello', 'hello zstd\n', { uid: 1000, gid: 100 }), file('big.bin', { size: 5_000_000 }), file('random.bin', randomBytes(300_000)), hardlink('big-again.bin', 'big.bin'), symlink('etc/link', 'hello')],
  [whiteout('etc/hello'), file('etc/new', 'new\n', { mode: 0o600 }), file('zeros', { size: 2_000_000, sparse: true })],
];

t.test('convert --format zstd-chunked: tar+zstd layers any zstd tool unpacks, read lazily by tocfs', async (t) => {
  const reg = await startRegistry(t);
  const work = tempDir(t, 'convert-zstd');
  const original = await buildImage(join(work, 'src'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'demo/app', 'v1', original);
  const dst = `${reg.host}/demo/app:zstd`;
  // Regression: each backpressure wait of the frame sink left a 'close' and an 'error' listener behind,
  // so converting a layer of a few MB printed a MaxListenersExceededWarning.
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  const res = await runTocfs(['convert', `${reg.host}/demo/app:v1`, dst, '--format', 'zstd-chunked']);
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  process.off('warning', onWarning);
  t.equal(res.code, 0, res.err);
  t.same(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), [], 'no listener leak');
  t.match(res.text, /# converting .* \(zstd-chunked\)/);
  t.equal(res.text.split('\n').filter((l) => /^layer \d\/2 sha256:\w+ \(gzip, \d+ bytes\) -> sha256:\w+ \(zstd-chunked, \d+ bytes, \d+ uncompressed\)$/.test(l)).length, 2, res.text);

  const client = new RegistryClient();
  t.teardown(() => client.close());
  const ref = parseReference(dst);
  const manifest = await client.getManifest(ref, 'zstd');
  const doc = manifest.document as ImageManifest;
  const config = await client.getConfig(ref, doc);
  for (const [i, layer] of doc.layers.entries()) {
    t.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd', `layer ${i} media type`);
    t.match(layer.annotations, { 'io.github.containers.zstd-chunked.manifest-checksum': /^sha256:[0-9a-f]{64}$/ });
    const parts: Uint8Array[] = [];
    for await (const chunk of client.streamBlob(ref, layer)) parts.push(chunk);
    const blobPath = join(work, `layer-${i}.zst`);
    writeFileSync(blobPath, Buffer.concat(parts));
    const tar = execFileSync('zstd', ['-dc', blobPath], { maxBuffer: 64 << 20 });
    t.equal(config.document.rootfs?.diff_ids[i], sha(tar), `layer ${i}: diff_id is the sha256 of zstd -dc`);
    const [a, b] = [join(work, `orig-${i}`), join(work, `zstd-${i}`)];
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(work, `orig-${i}.tar`), gunzipSync(readFileSync(original.layers[i]!.path)));
    execFileSync('tar', ['--numeric-owner', '-xpf', join(work, `orig-${i}.tar`), '-C', a]);
    execFileSync('sh', ['-c', `zstd -dc '${blobPath}' | tar --numeric-owner -xpf - -C '${b}'`]);
    t.same(treeOf(b), treeOf(a), `layer ${i}: zstd -dc | tar -x gives the original layer's tree`);
  }

  const cat = await runTocfs(['cat', dst, '/etc/new']);
  t.equal(cat.code, 0, cat.err);
  t.equal(cat.text, 'new\n', 'tocfs cat reads the converted image lazily');
  // The bundled CLI (bin/tocfs.js -> dist/tocfs.mjs): random.bin's spans are too large to decompress
  // inline, so they go to the zstd worker, which the bundle starts from dist/zstd-worker.mjs.
  const bundled = await runTocfsBin(['cat', dst, '/random.bin'], process.env);
  t.equal(bundled.code, 0, bundled.err);
  t.ok(bundled.out.equals(readFileSync(join(work, 'orig-0', 'random.bin'))), 'the bundled CLI reads through its zstd worker');
  const ls = await runTocfs(['ls', dst, '/etc']);
  t.equal(ls.code, 0, ls.err);
  t.match(ls.text, /etc\/new/);
});
