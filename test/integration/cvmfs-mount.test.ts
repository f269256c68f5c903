// The CVMFS fast path (issue 5) through a real mount: a directory in DUCC's unpacked.cern.ch layout built
// from the oracle image, bind-mounted read-only as CVMFS would be, a real registry behind the fault proxy
// (whose counters say what reached it), and `umoci unpack` of the same image as the oracle.
import { execFile } from 'node:child_process';
import { rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { runTocfs } from '../support/cli.js';
import { buildEstargz } from '../support/estargz-build.js';
import { buildDuccRepo, layerfsOf, readOnlyBind, withExplicitParents } from '../support/ducc-layout.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { buildImage, type BuiltImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { LAYERS, UNICODE } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { withoutSingularityAdditions } from '../support/singularity-additions.js';
import { diffSnapshots, snapshotTree, type TreeSnapshot } from '../support/tree-snapshot.js';

const run = promisify(execFile);
/** The oracle image as Docker writes layers (explicit parents): what a layerfs can represent. */
const DOCKER_LAYERS = withExplicitParents(LAYERS);
const REPO = 'oracle/cvmfs';

async function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** The image root's own figures (user.tocfs.*) are not umoci's: checked apart, left out of the comparison. */
function withoutFigures(snap: TreeSnapshot): TreeSnapshot {
  const root = snap[''];
  if (!root) return snap;
  const xattrs = Object.fromEntries(Object.entries(root.xattrs).filter(([k]) => !k.startsWith('user.tocfs.')));
  return { ...snap, '': { ...root, xattrs } };
}

async function figures(root: string): Promise<{ bytesCvmfs: number; bytesFetched: number; layers: Record<string, { source: string; bytesCvmfs?: number }> }> {
  const get = async (name: string): Promise<string> => (await sh('getfattr', ['--only-values', '-n', name, root])).stdout;
  return {
    bytesCvmfs: Number(await get('user.tocfs.bytes_cvmfs')),
    bytesFetched: Number(await get('user.tocfs.bytes_fetched')),
    layers: JSON.parse(await get('user.tocfs.layers')),
  };
}

/** Blob digests the proxy saw requests for (config and layers). */
function blobsRequested(proxy: FaultProxy): string[] {
  return [...new Set(proxy.counters.requests.map((r) => /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path)?.[1]).filter((d): d is string => !!d))];
}

interface Setup {
  work: string;
  image: BuiltImage;
  oracle: TreeSnapshot;
  oracleRootfs: string;
}

async function setup(t: Test, name: string, kind: 'gzip' | 'estargz'): Promise<Setup> {
  const work = tempDir(t, name);
  let image: BuiltImage;
  const gzip = await buildImage(join(work, 'gzip'), { layers: DOCKER_LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  if (kind === 'gzip') {
    image = gzip;
  } else {
    const prebuilt = [];
    for (const [i, entries] of DOCKER_LAYERS.entries()) {
      const { blob, tocDigest, diffId } = await buildEstargz(entries, { chunkSize: 1 << 20 });
      const blobPath = join(work, `estargz-layer-${i}`);
      await (await import('node:fs/promises')).writeFile(blobPath, blob);
      prebuilt.push({ blobPath, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId, annotations: { 'containerd.io/snapshot/stargz/toc.digest': tocDigest } });
    }
    image = await buildImage(join(work, 'estargz'), { layers: prebuilt });
  }
  await writeOciLayout(join(work, 'layout'), 'v1', gzip);
  const oracleRootfs = await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle'));
  return { work, image, oracle: await snapshotTree(oracleRootfs), oracleRootfs };
}

t.test('every layer on CVMFS, registry stopped: the image equals umoci unpack and no blob is asked for', async (t) => {
  const { work, image, oracle } = await setup(t, 'cvmfs-all', 'gzip');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const ducc = join(work, 'ducc');
  // Both whiteout forms: layer 1 (whiteouts, an opaque dir) in overlayfs's, layer 2 in the tar's.
  await buildDuccRepo(ducc, { image, host: proxy.host, repository: REPO, tag: 'v1', layers: ['tar', 'overlay', 'tar'] });
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-all');
  await reg.stop();

  const { mnt, logs } = await mountDaemon(t, 'cvmfs-all', { cvmfs });
  proxy.resetCounters();
  const root = join(mnt, 'images', proxy.host, `${REPO}:v1`);
  const got = await snapshotTree(root);
  t.same(diffSnapshots(withoutSingularityAdditions(withoutFigures(got), oracle).tree, oracle), [], `same paths and fields as umoci unpack (${Object.keys(oracle).length} paths)`);
  t.equal(proxy.counters.byKind.blobs.requests, 0, 'no blob request (no config, no layer)');
  const attempts = proxy.counters.requests;
  t.ok(
    attempts.every((r) => r.status === 0 || r.status >= 500),
    `nothing reached a registry: the only requests were ${attempts.length} attempts the proxy could not forward (registry down): ${[...new Set(attempts.map((r) => r.path))].join(', ')}`,
  );
  t.notOk(attempts.some((r) => /\/blobs\//.test(r.path)), 'none of them for a blob');
  t.match(logs.join('\n'), /registry unreachable .* using DUCC's manifest record/, 'the log says the manifest came from CVMFS');
  const f = await figures(root);
  t.ok(f.bytesCvmfs >= 6 * 2 ** 20, `bytes_cvmfs ${f.bytesCvmfs} covers every file read`);
  t.same(Object.values(f.layers).map((l) => l.source), ['cvmfs', 'cvmfs', 'cvmfs'], 'every layer\'s source is "cvmfs"');
  t.same(
    Object.keys(f.layers).sort(),
    image.layers.map((l) => l.digest).sort(),
    'per-layer figures by digest',
  );

  await t.test('/layers shows a CVMFS layer as its tar: overlayfs whiteouts as .wh. files', async (t) => {
    const layerRoot = join(mnt, 'layers', proxy.host, `${REPO}@${image.layers[1]!.digest}`);
    const snap = await snapshotTree(layerRoot);
    t.match(snap['etc/motd'], { type: 'reg' }, 'the new file');
    t.match(snap['var/lib/.wh.gone'], { type: 'reg', size: 0 }, 'a char 0/0 whiteout shows as .wh.gone');
    t.match(snap['opq/.wh..wh..opq'], { type: 'reg', size: 0 }, 'trusted.overlay.opaque shows as .wh..wh..opq');
    t.notOk(Object.values(snap).some((e) => Object.keys(e.xattrs).some((k) => k.startsWith('trusted.overlay.'))), 'overlayfs xattrs hidden');
  });
});

t.test('one of three layers not on CVMFS: only that layer\'s blob comes from the registry', async (t) => {
  const { work, image, oracle } = await setup(t, 'cvmfs-partial', 'gzip');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: proxy.host, repository: REPO, tag: 'v1', layers: ['tar', 'absent', 'overlay'] });
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-partial');

  const { mnt } = await mountDaemon(t, 'cvmfs-partial', { cvmfs });
  proxy.resetCounters();
  const root = join(mnt, 'images', proxy.host, `${REPO}:v1`);
  t.same(diffSnapshots(withoutSingularityAdditions(withoutFigures(await snapshotTree(root)), oracle).tree, oracle), [], 'the tree equals umoci unpack');
  t.same(blobsRequested(proxy).sort(), [image.config.digest, image.layers[1]!.digest].sort(), 'blobs fetched: the config and the missing layer only');
  const f = await figures(root);
  t.same(
    image.layers.map((l) => f.layers[l.digest]?.source),
    ['cvmfs', 'registry', 'cvmfs'],
    'per-layer sources',
  );
  t.ok(f.bytesCvmfs > 0 && f.bytesFetched >= image.layers[1]!.size, `bytes_cvmfs ${f.bytesCvmfs}, bytes_fetched ${f.bytesFetched}`);
  const stats = await runTocfs(['stats', root]);
  t.equal(stats.code, 0, 'tocfs stats reads the figures');
  t.match(stats.text, new RegExp(`bytes_cvmfs\\s+${f.bytesCvmfs} B`));
  t.match(stats.text, new RegExp(`${image.layers[0]!.digest.slice(0, 19)}\\s+cvmfs\\s.*\\scvmfs$`, 'm'), 'a CVMFS layer\'s row says so');
  t.match(stats.text, new RegExp(`${image.layers[1]!.digest.slice(0, 19)}\\s+tar\\s.*\\sregistry$`, 'm'), 'the registry layer\'s row says so');
});

t.test('a file deleted or truncated in a published layerfs is read from the registry, correct bytes', async (t) => {
  const { work, image } = await setup(t, 'cvmfs-damaged', 'gzip');
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: reg.host, repository: REPO, tag: 'v1', layers: ['tar', 'tar', 'tar'] });
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-damaged');
  const { mnt, logs } = await mountDaemon(t, 'cvmfs-damaged', { cvmfs });
  const root = join(mnt, 'images', reg.host, `${REPO}:v1`);
  // Listed (and stat'ed) first, then CVMFS changes under the mount: a new revision, a bad download.
  t.equal((await sh('stat', ['-c', '%s', join(root, 'etc/hostname-ish'), join(root, `names/${UNICODE}`), join(root, 'var/lib/kept')])).stdout, '7\n13\n4\n');
  await rm(join(layerfsOf(ducc, image.layers[2]!.digest), 'etc/hostname-ish'));
  await truncate(join(layerfsOf(ducc, image.layers[1]!.digest), `names/${UNICODE}`), 3);
  await truncate(join(layerfsOf(ducc, image.layers[0]!.digest), 'var/lib/kept'), 9);
  t.same(await sh('cat', [join(root, 'etc/hostname-ish')]), { code: 0, stdout: 'oracle\n', stderr: '' }, 'deleted on CVMFS: bytes from the registry');
  t.same(await sh('cat', [join(root, `names/${UNICODE}`)]), { code: 0, stdout: 'unicode name\n', stderr: '' }, 'truncated on CVMFS: bytes from the registry');
  t.same(await sh('cat', [join(root, 'var/lib/kept')]), { code: 0, stdout: 'kept', stderr: '' }, 'grown on CVMFS: bytes from the registry');
  t.same(await sh('cat', [join(root, 'etc/passwd')]), { code: 0, stdout: 'root:x:0:0::/root:/bin/sh\n', stderr: '' }, 'an intact file still from CVMFS');
  const fallbackLines = logs.filter((l) => /from the registry/.test(l));
  t.equal(fallbackLines.length, 3, 'logged once per layer');
  const f = await figures(root);
  t.same(image.layers.map((l) => f.layers[l.digest]?.source), ['cvmfs+registry', 'cvmfs+registry', 'cvmfs+registry']);
});

t.test('a file CVMFS fails to serve, from a layer with a SOCI index, is a span read, not a whole-layer pull', async (t) => {
  const { work, image } = await setup(t, 'cvmfs-soci', 'gzip');
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const indexed = await runTocfs(['index', `${reg.host}/${REPO}:v1`, '--min-layer-size', '0', '--span-size', String(1 << 20)]);
  t.equal(indexed.code, 0, indexed.err);
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: proxy.host, repository: REPO, tag: 'v1', layers: ['tar', 'tar', 'tar'] });
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-soci');
  const { mnt } = await mountDaemon(t, 'cvmfs-soci', { cvmfs });
  const root = join(mnt, 'images', proxy.host, `${REPO}:v1`);
  // The big layer (6 MiB of random bytes): its small file goes missing on CVMFS.
  const big = image.layers[1]!;
  t.equal((await sh('stat', ['-c', '%s', join(root, 'big/small.txt')])).stdout, '31\n');
  await rm(join(layerfsOf(ducc, big.digest), 'big/small.txt'));
  proxy.resetCounters();
  t.same(await sh('cat', [join(root, 'big/small.txt')]), { code: 0, stdout: 'a small file next to a big one\n', stderr: '' }, 'from the registry, right bytes');
  const moved = proxy.counters.byKind.blobs.bytes;
  t.ok(moved < big.size / 2, `${moved} blob bytes for a 31-byte file of a ${big.size}-byte layer: its zTOC and one span`);
  const f = await figures(root);
  t.match(f.layers[big.digest], { source: 'cvmfs+registry', format: 'cvmfs' });
});

t.test('a layerfs DUCC has not recorded (still ingesting): tree from the eStargz TOC, bytes from CVMFS where right', async (t) => {
  const { work, image, oracle } = await setup(t, 'cvmfs-ingesting', 'estargz');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: proxy.host, repository: REPO, tag: 'v1', layers: ['tar', 'tar', 'tar'], origins: false, manifestRecord: false });
  // Half ingested: one file not there yet, one cut short.
  await rm(join(layerfsOf(ducc, image.layers[1]!.digest), 'big/small.txt'));
  await truncate(join(layerfsOf(ducc, image.layers[0]!.digest), 'var/lib/kept'), 2);
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-ingesting');
  const { mnt, logs } = await mountDaemon(t, 'cvmfs-ingesting', { cvmfs });
  proxy.resetCounters();
  const root = join(mnt, 'images', proxy.host, `${REPO}:v1`);
  t.same(diffSnapshots(withoutSingularityAdditions(withoutFigures(await snapshotTree(root)), oracle).tree, oracle), [], 'the tree equals umoci unpack');
  t.match(logs.join('\n'), /has no DUCC record yet/, 'the log says why the TOC is used');
  const layerBytes = image.layers.reduce((n, l) => n + l.size, 0);
  const moved = proxy.counters.byKind.blobs.bytes;
  t.ok(moved < layerBytes / 4, `${moved} blob bytes moved for ${layerBytes} bytes of layers: the big files came from CVMFS`);
  const f = await figures(root);
  t.same(image.layers.map((l) => f.layers[l.digest]?.source), ['cvmfs+registry', 'cvmfs+registry', 'cvmfs']);
});

t.test('layers gone from CVMFS but the flat tree there: the image is served from .flat with no blob request', async (t) => {
  const { work, image, oracle, oracleRootfs } = await setup(t, 'cvmfs-flat', 'gzip');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  await pushImage(reg.seedUrl, REPO, 'v1', image);
  const ducc = join(work, 'ducc');
  await buildDuccRepo(ducc, { image, host: proxy.host, repository: REPO, tag: 'v1', layers: ['absent', 'absent', 'absent'], flatFrom: oracleRootfs });
  const cvmfs = await readOnlyBind(t, ducc, 'cvmfs-flat');
  await reg.stop();
  const { mnt, logs } = await mountDaemon(t, 'cvmfs-flat', { cvmfs });
  proxy.resetCounters();
  const root = join(mnt, 'images', proxy.host, `${REPO}:v1`);
  const got = withoutFigures(await snapshotTree(root));
  t.match(got['.singularity.d/runscript'], { type: 'reg' }, 'DUCC\'s .singularity.d is there');
  const image_ = Object.fromEntries(Object.entries(got).filter(([p]) => p !== '.singularity.d' && !p.startsWith('.singularity.d/')));
  // The flat tree's root directory counts .singularity.d among its subdirectories.
  const want = { ...oracle, '': { ...oracle['']!, nlink: oracle['']!.nlink + 1 } };
  t.same(diffSnapshots(withoutSingularityAdditions(image_, want).tree, want), [], 'apart from .singularity.d, the tree equals umoci unpack');
  t.equal(proxy.counters.byKind.blobs.requests, 0, 'no blob request');
  t.match(logs.join('\n'), /serving DUCC's flat tree/);
});

t.teardown(async () => {
  const mounts = await (await import('node:fs/promises')).readFile('/proc/mounts', 'utf8');
  if (/tocfs-cvmfs-/.test(mounts)) throw new Error(`a mount was left behind:\n${mounts}`);
});
