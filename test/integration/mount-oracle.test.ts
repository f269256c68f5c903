// The whole daemon against the oracle (STYLE.md, integration tests): one three-layer image using every
// feature of DESIGN.md §1.3, pushed as plain gzip and as eStargz layers to a real registry, mounted by
// `createDaemon` with a real fuse-native mount, walked by a child process, and compared field by field
// with `umoci unpack` of the gzip image. Every check on the mount runs in a child process or through
// async fs calls: FUSE ops are served on this process's JS thread.
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { buildEstargz } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { hostRootfsEntries } from '../support/host-rootfs.js';
import { buildImage, type BuiltImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { CAP, LAYERS } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, hardlink, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { compareWithOracle as compare } from '../support/oracle-compare.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const run = promisify(execFile);
// Regression: a hardlink whose target a LOWER layer holds made the whole image EIO; umoci links it (nlink 2).
const CROSS_LAYER_HARDLINK: TarEntry[][] = [
  [dir('etc'), file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'), file('usr/bin/tool', 'tool'), hardlink('usr/bin/tool-2', 'usr/bin/tool')],
  [file('etc/other', 'other')],
  [hardlink('etc/passwd-again', 'etc/passwd'), hardlink('usr/bin/tool-3', 'usr/bin/tool-2')],
];

const RUNNABLE: TarEntry[][] = [
  hostRootfsEntries(['/bin/sh', '/bin/cat', '/bin/ls']),
  [dir('etc'), file('etc/hostname-ish', 'runnable-host\n')],
];

const ESTARGZ_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CHUNK = 1 << 20;

async function buildVariants(work: string, name: string, layers: TarEntry[][]): Promise<{ gzip: BuiltImage; estargz: BuiltImage }> {
  const gzip = await buildImage(join(work, `${name}-gzip`), { layers: layers.map((entries) => ({ entries, compression: 'gzip' as const })) });
  const prebuilt = [];
  for (const [i, entries] of layers.entries()) {
    const { blob, tocDigest, diffId } = await buildEstargz(entries, { chunkSize: CHUNK });
    const blobPath = join(work, `${name}-estargz-layer-${i}`);
    await writeFile(blobPath, blob);
    prebuilt.push({ blobPath, mediaType: ESTARGZ_MEDIA_TYPE, diffId, annotations: { 'containerd.io/snapshot/stargz/toc.digest': tocDigest } });
  }
  const estargz = await buildImage(join(work, `${name}-estargz`), { layers: prebuilt });
  return { gzip, estargz };
}

/** Runs a command in a child; never rejects, so failures can be asserted on. */
async function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** Paths a layer's own tree should hold: every entry and all of its parents. */
function layerPaths(entries: TarEntry[]): string[] {
  const paths = new Set<string>(['']);
  for (const e of entries) {
    const parts = e.path.replace(/\/$/, '').split('/');
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('/'));
  }
  return [...paths].sort();
}

t.test('mounted images equal umoci unpack, gzip and eStargz, by tag and by digest', async (t) => {
  const work = tempDir(t, 'mount-oracle');
  const reg = await startRegistry(t);
  const { gzip, estargz } = await buildVariants(work, 'oracle', LAYERS);
  const runnable = await buildVariants(work, 'runnable', RUNNABLE);
  const gzipDigest = (await pushImage(reg.seedUrl, 'oracle/gzip', 'v1', gzip)).digest;
  const estargzDigest = (await pushImage(reg.seedUrl, 'oracle/estargz', 'v1', estargz)).digest;
  await pushImage(reg.seedUrl, 'gzip/runnable', 'v1', runnable.gzip);
  await pushImage(reg.seedUrl, 'estargz/runnable', 'v1', runnable.estargz);

  await writeOciLayout(join(work, 'layout'), 'v1', gzip);
  const rootfs = await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle'));
  const oracle = await snapshotTree(rootfs);
  // The oracle really exercised each rule.
  t.equal(oracle['var/lib/gone'], undefined, 'dir whiteout');
  t.equal(oracle['dev/loop0'], undefined, 'file whiteout');
  t.same(Object.keys(oracle).filter((p) => p.startsWith('opq/')).sort(), ['opq/top', 'opq/upper'], 'opaque dir');
  t.equal(oracle['usr/bin/su']?.mode, 0o4755);
  t.equal(oracle['usr/bin/new']?.nlink, 3);
  t.equal(oracle['usr/bin/new']?.xattrs['user.bin'], '00ff8007');
  t.equal(oracle['usr/bin/su']?.xattrs['security.capability'], CAP.toString('hex'));
  t.equal(oracle['dev/sdq']?.rdev, '259:300');
  t.equal(oracle['big/multi-mb.bin']?.size, 6 * 2 ** 20 + 4321);

  const { mnt, logs } = await mountDaemon(t, 'mount-oracle');
  const images = join(mnt, 'images', reg.host);
  for (const [variant, repo, digest] of [
    ['gzip', 'oracle/gzip', gzipDigest],
    ['eStargz', 'oracle/estargz', estargzDigest],
  ] as const) {
    compare(t, await snapshotTree(join(images, `${repo}:v1`)), oracle, `${variant} by tag`);
    compare(t, await snapshotTree(join(images, `${repo}@${digest}`)), oracle, `${variant} by digest`);
  }

  await t.test('cross-layer hardlink: a link to a lower layer\'s file is that file, as umoci unpack makes it', async (t) => {
    const cross = await buildVariants(work, 'cross', CROSS_LAYER_HARDLINK);
    await pushImage(reg.seedUrl, 'cross/gzip', 'v1', cross.gzip);
    await pushImage(reg.seedUrl, 'cross/estargz', 'v1', cross.estargz);
    await writeOciLayout(join(work, 'cross-layout'), 'v1', cross.gzip);
    const want = await snapshotTree(await umociUnpack(join(work, 'cross-layout'), 'v1', join(work, 'cross-bundle')));
    t.match(want['etc/passwd-again'], { inode: 'etc/passwd', nlink: 2 }, 'umoci: one inode, two names');
    t.match(want['usr/bin/tool-3'], { inode: 'usr/bin/tool', nlink: 3 });
    for (const [variant, repo] of [['gzip', 'cross/gzip'], ['eStargz', 'cross/estargz']] as const) {
      compare(t, await snapshotTree(join(images, `${repo}:v1`)), want, `${variant}: cross-layer hardlink`);
    }
  });

  await t.test('writes, creates and mkdir are refused with EROFS', async (t) => {
    const root = join(images, 'oracle/gzip:v1');
    for (const [cmd, args] of [
      ['touch', [join(root, 'etc/new-file')]],
      ['touch', [join(root, 'etc/passwd')]],
      ['mkdir', [join(root, 'new-dir')]],
      ['sh', ['-c', `echo x >> ${join(root, 'etc/passwd')}`]],
      ['rm', ['-f', join(root, 'etc/passwd')]],
      ['ln', ['-s', 'x', join(root, 'new-link')]],
    ] as const) {
      const r = await sh(cmd, [...args]);
      t.not(r.code, 0, `${cmd} ${args.join(' ')} fails`);
      t.match(r.stderr, /Read-only file system/, `${cmd}: EROFS`);
    }
    t.equal(await readFile(join(root, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n', 'content unchanged');
  });

  await t.test('an unknown image is ENOENT and the daemon keeps serving', async (t) => {
    for (const ref of ['oracle/nothing:v1', 'oracle/gzip:no-such-tag', `oracle/gzip@sha256:${'0'.repeat(64)}`]) {
      const r = await sh('stat', [join(images, ref)]);
      t.not(r.code, 0, `stat ${ref} fails`);
      t.match(r.stderr, /No such file or directory/, `${ref}: ENOENT`);
    }
    await t.rejects(stat(join(images, 'oracle/nothing:v1')), { code: 'ENOENT' });
    t.equal(await readFile(join(images, 'oracle/estargz:v1/etc/hostname-ish'), 'utf8'), 'oracle\n', 'still serving');
  });

  await t.test('/layers shows each layer\'s own tree, whiteouts included', async (t) => {
    for (const [variant, repo, image] of [
      ['gzip', 'oracle/gzip', gzip],
      ['eStargz', 'oracle/estargz', estargz],
    ] as const) {
      for (const [i, entries] of LAYERS.entries()) {
        const layerRoot = join(mnt, 'layers', reg.host, `${repo}@${image.layers[i]!.digest}`);
        const snap = await snapshotTree(layerRoot);
        t.same(Object.keys(snap).sort(), layerPaths(entries), `${variant} layer ${i}: path set equals the tar's (no format artefacts)`);
        for (const e of entries) {
          // A hardlink is its target's inode: it shows the target's metadata, not its own header's.
          if (e.type === 'hardlink') {
            t.equal(snap[e.path]?.inode, e.linkpath, `${variant} layer ${i}: ${e.path} is a hardlink of ${e.linkpath}`);
            continue;
          }
          const got = snap[e.path.replace(/\/$/, '')];
          const type = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'reg', chardev: 'char', blockdev: 'block', fifo: 'fifo' }[e.type];
          t.same(got && { type: got.type, mode: got.mode, uid: got.uid, gid: got.gid }, { type, mode: e.mode, uid: e.uid, gid: e.gid }, `${variant} layer ${i}: ${e.path}`);
        }
      }
    }
    const wh = (await snapshotTree(join(mnt, 'layers', reg.host, `oracle/gzip@${gzip.layers[1]!.digest}`)))['etc/.wh.motd'];
    t.match(wh, { type: 'reg', size: 0 }, '.wh.motd is an empty regular file in the layer view');
  });

  await t.test('chroot into a mounted image runs its shell', async (t) => {
    for (const repo of ['gzip/runnable', 'estargz/runnable']) {
      const r = await sh('chroot', [join(images, `${repo}:v1`), '/bin/sh', '-c', 'echo ok; cat /etc/hostname-ish; ls /etc']);
      // hostname, hosts, mtab, resolv.conf: the runtimes' mount points tocfs adds where an image lacks them.
      t.same(r, { code: 0, stdout: 'ok\nrunnable-host\nhostname\nhostname-ish\nhosts\nmtab\nresolv.conf\n', stderr: '' }, `${repo}`);
    }
  });

  t.notMatch(logs.join('\n'), /error/i, 'nothing logged as an error');
});

t.test('reading one small file of an eStargz image moves far fewer blob bytes than the layer', async (t) => {
  const work = tempDir(t, 'mount-oracle-lazy');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const { estargz } = await buildVariants(work, 'lazy', LAYERS);
  await pushImage(reg.seedUrl, 'oracle/estargz', 'v1', estargz);
  const { mnt } = await mountDaemon(t, 'mount-oracle-lazy');
  const root = join(mnt, 'images', proxy.host, 'oracle/estargz:v1');
  proxy.resetCounters();
  const r = await sh('cat', [join(root, 'big/small.txt')]);
  t.same(r, { code: 0, stdout: 'a small file next to a big one\n', stderr: '' });
  // Let any background work (prefetch) that the open started show up in the counters.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const layerSize = estargz.layers[1]!.size;
  const moved = proxy.counters.byKind.blobs.bytes;
  t.ok(layerSize > 6 * 2 ** 20, `the layer holding it is ${layerSize} bytes`);
  t.ok(moved < layerSize / 8, `${moved} blob bytes moved for a ${layerSize}-byte layer set (${estargz.layers.map((l) => l.size).join(' + ')})`);
  const big = await sh('sha256sum', [join(root, 'big/multi-mb.bin')]);
  t.equal(big.code, 0, 'the big file reads too');
});

t.teardown(async () => {
  const mounts = await readFile('/proc/mounts', 'utf8');
  if (/tocfs-mount-oracle/.test(mounts)) throw new Error(`a mount was left behind:\n${mounts}`);
});
