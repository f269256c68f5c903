// Plain gzip images made lazy by a SOCI index (DESIGN.md §2 source 4, §3.3), on Debian's docker-registry and
// a real mount: an image indexed by `tocfs index` (v1, found through the tag schema) and its --v2 copy equal
// `umoci unpack`; a file read moves its spans, not the layer; a flipped bit in a span is refetched once, then
// EIO and logged; a zTOC that lies is logged and the layer is pulled whole, with the same tree.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseReference } from '../../src/registry/reference.js';
import { RegistryClient } from '../../src/registry/client.js';
import { runTocfs } from '../support/cli.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { compareWithOracle } from '../support/oracle-compare.js';
import { LAYERS } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const run = promisify(execFile);
const SPAN = 64 << 10;
const LARGE_SPAN = 1 << 20;

interface LayerFigure {
  readonly format: string;
  readonly bytesFetched: number;
  readonly blobBytes: number;
}

async function layerFigures(root: string): Promise<Record<string, LayerFigure>> {
  const { stdout } = await run('getfattr', ['--only-values', '-n', 'user.tocfs.layers', root]);
  return JSON.parse(stdout) as Record<string, LayerFigure>;
}

t.test('a SOCI-indexed gzip image mounts lazily and equals umoci unpack, v1 and v2', async (t) => {
  const work = tempDir(t, 'soci-mount');
  const reg = await startRegistry(t);
  const image = await buildImage(join(work, 'image'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'soci/app', 'v1', image);
  const ref = `${reg.host}/soci/app:v1`;
  // 1 MiB spans: each checkpoint carries a 32 KiB window, so smaller spans would make the zTOC itself
  // the bulk of what a small read moves.
  const indexed = await runTocfs(['index', ref, '--min-layer-size', '0', '--span-size', String(LARGE_SPAN), '--v2', `${reg.host}/soci/app:v2`]);
  t.equal(indexed.code, 0, indexed.err);

  await writeOciLayout(join(work, 'layout'), 'v1', image);
  const oracle = await snapshotTree(await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle')));

  const proxy = await startFaultProxy(t, { target: reg.url });
  const { mnt, logs } = await mountDaemon(t, 'soci-mount');
  const root = join(mnt, 'images', proxy.host, 'soci/app:v1');

  proxy.resetCounters();
  t.equal(await readFile(join(root, 'big/small.txt'), 'utf8'), 'a small file next to a big one\n');
  const total = image.layers.reduce((n, l) => n + l.size, 0);
  const moved = proxy.counters.byKind.blobs.bytes;
  t.ok(moved < total / 3, `one small file moved ${moved} blob bytes of ${total} (zTOCs and one span)`);
  const figures = await layerFigures(root);
  for (const l of image.layers) {
    t.equal(figures[l.digest]?.format, 'soci', `layer ${l.digest} is read through its zTOC`);
    t.ok(figures[l.digest]!.bytesFetched <= 2 * LARGE_SPAN, `layer ${l.digest}: ${figures[l.digest]!.bytesFetched} span bytes read`);
  }

  compareWithOracle(t, await snapshotTree(root), oracle, 'SOCI v1');
  compareWithOracle(t, await snapshotTree(join(mnt, 'images', proxy.host, 'soci/app:v2')), oracle, 'SOCI v2');
  const after = await layerFigures(root);
  for (const l of image.layers) t.ok(after[l.digest]!.bytesFetched <= l.size + LARGE_SPAN, `layer ${l.digest}: every file read, no whole pull`);
  t.notMatch(logs.join('\n'), /pulled whole|error/i, 'nothing fell back');
});

t.test('a flipped bit in a span is refetched once; twice is EIO, logged', async (t) => {
  const work = tempDir(t, 'soci-flip');
  const reg = await startRegistry(t);
  const image = await buildImage(join(work, 'image'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'soci/flip', 'v1', image);
  t.equal((await runTocfs(['index', `${reg.host}/soci/flip:v1`, '--min-layer-size', '0', '--span-size', String(SPAN)])).code, 0);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const { mnt, logs } = await mountDaemon(t, 'soci-flip');
  const root = join(mnt, 'images', proxy.host, 'soci/flip:v1');
  await run('stat', [root]); // the image resolved, its zTOCs read: faults below hit span reads only
  const big = image.layers[1]!.digest;

  const once = proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${big}`), times: 1, action: { flipByteAt: 200 } });
  const bytes = await readFile(join(root, 'big/multi-mb.bin'));
  t.equal(once.hits, 1, 'the first span read was corrupted');
  t.equal(bytes.length, 6 * 2 ** 20 + 4321, 'and the file read whole, from the refetch');
  proxy.clearRules();

  const always = proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${image.layers[2]!.digest}`), action: { flipByteAt: 200 } });
  const failed = await run('cat', [join(root, 'opq/top')]).then(
    () => undefined,
    (err: { stderr?: string }) => err.stderr ?? '',
  );
  t.match(failed, /Input\/output error/, 'EIO after the second bad span');
  t.ok(always.hits >= 2, `fetched twice (${always.hits})`);
  t.match(logs.join('\n'), /does not match its zTOC digest/, 'logged');
});

t.test('a zTOC that lies is logged and the layer is pulled whole; the tree is the same', async (t) => {
  const work = tempDir(t, 'soci-lie');
  const reg = await startRegistry(t);
  const image = await buildImage(join(work, 'image'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await pushImage(reg.seedUrl, 'soci/lie', 'v1', image);
  const honest = await runTocfs(['index', `${reg.host}/soci/lie:v1`, '--min-layer-size', '0', '--span-size', String(SPAN)]);
  t.equal(honest.code, 0, honest.err);
  // Replace the index with one whose first zTOC is garbage (pushed as a blob, so its digest is right).
  const client = new RegistryClient();
  t.teardown(() => client.close());
  const repo = parseReference(`${reg.host}/soci/lie:v1`);
  const referrers = await client.referrers(repo, image.manifest.digest);
  t.equal(referrers.length, 1, 'the index is a referrer');
  const index = await client.getManifest(repo, referrers[0]!.digest);
  const doc = JSON.parse(Buffer.from(index.bytes).toString()) as { layers: { digest: string; size: number }[] };
  const garbage = Buffer.from('not a flatbuffer at all, but long enough to look like one '.repeat(4));
  const garbageDigest = `sha256:${createHash('sha256').update(garbage).digest('hex')}`;
  await client.pushBlob(repo, garbageDigest, garbage, garbage.length);
  doc.layers[0] = { ...doc.layers[0]!, digest: garbageDigest, size: garbage.length };
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = await client.putManifest(repo, `sha256:${createHash('sha256').update(bytes).digest('hex')}`, 'application/vnd.oci.image.manifest.v1+json', bytes);
  // The tag schema's index lists the liar instead of the honest index.
  const tagIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...referrers[0]!, digest, size: bytes.length }] };
  const tagBytes = Buffer.from(JSON.stringify(tagIndex));
  await client.putManifest(repo, `sha256-${image.manifest.digest.slice(7)}`, 'application/vnd.oci.image.index.v1+json', tagBytes);

  await writeOciLayout(join(work, 'layout'), 'v1', image);
  const oracle = await snapshotTree(await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle')));
  const { mnt, logs } = await mountDaemon(t, 'soci-lie');
  const root = join(mnt, 'images', reg.host, 'soci/lie:v1');
  compareWithOracle(t, await snapshotTree(root), oracle, 'with a lying zTOC');
  const figures = await layerFigures(root);
  t.match(logs.join('\n'), /zTOC: .*pulled whole/, 'the bad zTOC is logged, naming why');
  t.ok(Object.values(figures).some((f) => f.format === 'tar'), 'that layer was pulled whole');
  t.ok(Object.values(figures).some((f) => f.format === 'soci'), 'the others stay lazy');
});
