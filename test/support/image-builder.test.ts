// The builder, push and OCI-layout helpers against the real registry and umoci: an image using every
// DSL feature must unpack (umoci, Go archive/tar) into exactly the tree the DSL describes.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { request } from 'undici';
import { buildImage, buildIndex, MEDIA_TYPES, sha256, type BuiltImage } from './image-builder.js';
import { umociUnpack, writeOciLayout } from './oci-layout.js';
import { pushBlob, pushImage, pushIndex } from './push.js';
import { startRegistry } from './registry.js';
import {
  blockdev,
  chardev,
  contentBytes,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  symlink,
  whiteout,
} from './tar-dsl.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

const ACCEPT = [
  MEDIA_TYPES.oci.manifest,
  MEDIA_TYPES.oci.index,
  MEDIA_TYPES.docker.manifest,
  MEDIA_TYPES.docker.index,
].join(', ');

async function get(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const res = await request(url, { headers: { accept: ACCEPT }, reset: true });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** `getxattr` is not in Node; Python reads every xattr of each path (not following symlinks). */
async function xattrsOf(root: string, paths: string[]): Promise<Record<string, Record<string, string>>> {
  const script = `import os, sys, json
root = sys.argv[1]
print(json.dumps({p: {k: os.getxattr(os.path.join(root, p), k, follow_symlinks=False).hex()
  for k in os.listxattr(os.path.join(root, p), follow_symlinks=False)} for p in sys.argv[2:]}))`;
  const { stdout } = await run('python3', ['-c', script, root, ...paths]);
  return JSON.parse(stdout) as Record<string, Record<string, string>>;
}

const major = (rdev: number): number => (rdev >> 8) & 0xfff;
const minor = (rdev: number): number => (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// CAP_SETUID|CAP_NET_BIND_SERVICE, effective: the 0x80 byte is not valid UTF-8 and must survive.
const CAP = Buffer.from([0x01, 0, 0, 0x02, 0x80, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const OLD = new Date('2001-02-03T04:05:06Z');
const NEW = new Date('2022-06-07T08:09:10Z');
const LONG = `${'long-directory-name/'.repeat(8)}${'f'.repeat(150)}`; // 310 bytes, basename 150
const UNICODE = 'données/日本語/файл ☃.txt';
const pattern = file('gen/pattern', { size: 200_000 });

const everyFeature = {
  layers: [
    {
      compression: 'gzip' as const,
      gzipLevel: 9,
      entries: [
        dir('etc', { mtime: OLD }),
        file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', { uname: 'root', gname: 'root' }),
        file('etc/motd', 'old news', { mtime: OLD }),
        dir('usr'),
        dir('usr/bin'),
        file('usr/bin/su', 'su-binary', { mode: 0o4755, xattrs: { 'security.capability': CAP, 'user.origin': 'layer0' } }),
        hardlink('usr/bin/su-link', 'usr/bin/su'),
        file('usr/bin/wall', 'wall', { mode: 0o2755, gid: 5 }),
        symlink('bin', 'usr/bin'),
        symlink('etc/localtime', '/usr/share/zoneinfo/UTC'),
        dir('tmp', { mode: 0o1777 }),
        dir('home/user', { uid: 1000, gid: 1000, mode: 0o700 }),
        file('home/user/data', 'data', { uid: 1000, gid: 1000, mode: 0o600 }),
        chardev('dev/null', 1, 3, { mode: 0o666 }),
        blockdev('dev/loop0', 7, 0, { mode: 0o660, gid: 6 }),
        fifo('run/fifo', { mode: 0o640, uid: 2, gid: 3 }),
        dir('var/cache'),
        file('var/cache/old', 'old'),
        file('var/cache/keep', 'keep'),
        dir('opt/app'),
        file('opt/app/lower', 'lower'),
        dir('opt/app/sub'),
        file('opt/app/sub/deeper', 'deeper'),
        file('empty'),
        file(LONG, 'long'),
        file(UNICODE, 'unicode'),
      ],
    },
    {
      compression: 'gzip' as const,
      gzipLevel: 1,
      entries: [
        whiteout('var/cache/old'),
        whiteout('home/user'),
        opaque('opt/app'),
        file('opt/app/upper', 'upper'),
        file('etc/motd', 'new news', { mtime: NEW, uid: 7, gid: 8 }),
      ],
    },
    {
      compression: 'none' as const,
      entries: [
        file('usr/lib/implicit/deep', 'implicit parents'),
        pattern,
        hardlink('gen/pattern-link', 'gen/pattern'),
        symlink('long-link', LONG),
      ],
    },
  ],
  config: { Env: ['PATH=/usr/bin'], Cmd: ['/bin/sh'], WorkingDir: '/', User: '0:0', Labels: { a: 'b' } },
};

t.test('an image using every DSL feature pushes, and umoci unpacks it as described', async (t) => {
  const reg = await startRegistry(t);
  const work = tempDir(t, 'every-feature');
  const image = await buildImage(join(work, 'build'), everyFeature);

  const pushed = await pushImage(reg.seedUrl, 'tocfs/every', 'v1', image);
  t.equal(pushed.digest, image.manifest.digest);
  const manifest = await get(`${reg.url}/v2/tocfs/every/manifests/v1`);
  t.equal(manifest.status, 200);
  t.same(manifest.body, image.manifest.bytes, 'registry serves the manifest bytes as built');
  t.equal(manifest.headers['content-type'], MEDIA_TYPES.oci.manifest);
  const config = await get(`${reg.url}/v2/tocfs/every/blobs/${image.config.digest}`);
  t.same(config.body, image.config.bytes);
  const parsed = JSON.parse(config.body.toString()) as { rootfs: { diff_ids: string[] }; config: object; os: string };
  t.same(parsed.rootfs.diff_ids, image.layers.map((l) => l.diffId));
  t.same(parsed.config, everyFeature.config);
  for (const layer of image.layers) {
    const blob = await get(`${reg.url}/v2/tocfs/every/blobs/${layer.digest}`);
    t.equal(sha256(blob.body), layer.digest);
    t.equal(blob.body.length, layer.size);
  }
  const again = await pushBlob(reg.seedUrl, 'tocfs/every', { path: image.layers[0]!.path });
  t.ok(again.existed, 'a blob the registry has is not uploaded again');

  await writeOciLayout(join(work, 'layout'), 'v1', image);
  const root = await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle'));
  const st = async (p: string) => lstat(join(root, p));
  const exists = async (p: string) => lstat(join(root, p)).then(() => true, () => false);

  t.equal(await readFile(join(root, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  const motd = await st('etc/motd');
  t.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'new news', 'upper layer replaces the file');
  t.match(motd, { uid: 7, gid: 8, mtimeMs: NEW.getTime() });

  const su = await st('usr/bin/su');
  t.equal(su.mode & 0o7777, 0o4755, 'setuid kept');
  t.equal((await st('usr/bin/wall')).mode & 0o7777, 0o2755, 'setgid kept');
  t.equal((await st('usr/bin/wall')).gid, 5);
  t.equal((await st('tmp')).mode & 0o7777, 0o1777, 'sticky kept');
  const link = await st('usr/bin/su-link');
  t.equal(link.ino, su.ino, 'hardlink shares the inode');
  t.equal(su.nlink, 2);

  t.equal(await readlink(join(root, 'bin')), 'usr/bin');
  t.equal(await readlink(join(root, 'etc/localtime')), '/usr/share/zoneinfo/UTC');
  t.equal(await readlink(join(root, 'long-link')), LONG, 'long symlink target via PAX linkpath');

  const nul = await st('dev/null');
  t.ok(nul.isCharacterDevice());
  t.same([major(nul.rdev), minor(nul.rdev), nul.mode & 0o7777], [1, 3, 0o666]);
  const loop = await st('dev/loop0');
  t.ok(loop.isBlockDevice());
  t.same([major(loop.rdev), minor(loop.rdev), loop.gid], [7, 0, 6]);
  const fifoSt = await st('run/fifo');
  t.ok(fifoSt.isFIFO());
  t.same([fifoSt.mode & 0o7777, fifoSt.uid, fifoSt.gid], [0o640, 2, 3]);

  t.notOk(await exists('var/cache/old'), 'whiteout deletes the lower file');
  t.ok(await exists('var/cache/keep'));
  t.notOk(await exists('home/user'), 'whiteout of a directory deletes its subtree');
  t.ok(await exists('home'));
  t.same((await readdir(join(root, 'opt/app'))).sort(), ['upper'], 'opaque directory hides the lower entries');
  const whiteouts = (await run('find', [root, '-name', '.wh.*'])).stdout;
  t.equal(whiteouts, '', 'no whiteout file survives');

  t.equal((await st('empty')).size, 0);
  t.equal(await readFile(join(root, LONG), 'utf8'), 'long');
  t.equal(await readFile(join(root, UNICODE), 'utf8'), 'unicode');
  t.equal(await readFile(join(root, 'usr/lib/implicit/deep'), 'utf8'), 'implicit parents');
  const implicit = await st('usr/lib/implicit');
  t.ok(implicit.isDirectory());
  t.same([implicit.mode & 0o7777, implicit.uid, implicit.gid], [0o755, 0, 0], 'implicit parent: 0755 root');
  t.equal(sha(await readFile(join(root, 'gen/pattern'))), sha(contentBytes(pattern)));
  t.equal((await st('gen/pattern-link')).ino, (await st('gen/pattern')).ino);

  const xattrs = await xattrsOf(root, ['usr/bin/su', 'usr/bin/wall']);
  t.same(xattrs['usr/bin/su'], {
    'security.capability': CAP.toString('hex'),
    'user.origin': Buffer.from('layer0').toString('hex'),
  });
  t.same(xattrs['usr/bin/wall'], {});
});

async function zstdTarList(path: string): Promise<string> {
  const zstd = spawn('zstd', ['-dc', path]);
  const tar = spawn('tar', ['-tf', '-']);
  zstd.stdout.pipe(tar.stdin);
  let out = '';
  tar.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [[zCode], [tCode]] = (await Promise.all([once(zstd, 'close'), once(tar, 'close')])) as [[number], [number]];
  if (zCode !== 0 || tCode !== 0) throw new Error(`zstd ${zCode} tar ${tCode}`);
  return out;
}

t.test('digests, sizes and diffIDs match the bytes for gzip, zstd and uncompressed layers', async (t) => {
  const work = tempDir(t, 'compressions');
  const entries = [dir('d'), file('d/a', 'a'), pattern];
  const image = await buildImage(work, {
    layers: [
      { compression: 'gzip', entries },
      { compression: 'zstd', entries },
      { compression: 'none', entries },
    ],
  });
  const [gz, zst, raw] = image.layers as [BuiltImage['layers'][0], BuiltImage['layers'][0], BuiltImage['layers'][0]];
  t.same(
    image.layers.map((l) => l.mediaType),
    [MEDIA_TYPES.oci.layer.gzip, MEDIA_TYPES.oci.layer.zstd, MEDIA_TYPES.oci.layer.none],
  );
  for (const l of image.layers) {
    const bytes = await readFile(l.path);
    t.equal(sha256(bytes), l.digest, `${l.mediaType}: digest is of the blob`);
    t.equal(bytes.length, l.size);
    t.equal(l.path, join(work, 'blobs', 'sha256', l.digest.slice(7)));
  }
  t.equal(gz.diffId, zst.diffId, 'same entries, same tar, whatever the compression');
  t.equal(raw.diffId, raw.digest, 'an uncompressed layer is its own diffID');
  t.equal(sha256(gunzipSync(await readFile(gz.path))), gz.diffId);
  t.equal(gz.tarSize, (await readFile(raw.path)).length);
  t.equal(await zstdTarList(zst.path), 'd/\nd/a\ngen/pattern\n', 'zstd CLI decompresses it, tar lists it');
  const { stdout } = await run('tar', ['-tf', raw.path]);
  t.equal(stdout, 'd/\nd/a\ngen/pattern\n');

  const rebuilt = await buildImage(tempDir(t, 'again'), { layers: [{ compression: 'gzip', entries }] });
  t.equal(rebuilt.layers[0]!.digest, gz.digest, 'builds are reproducible');
});

t.test('Docker schema2 media types, a manifest list, and umoci refusing them', async (t) => {
  const reg = await startRegistry(t);
  const work = tempDir(t, 'docker');
  const amd = await buildImage(join(work, 'amd'), {
    mediaTypes: 'docker',
    platform: { os: 'linux', architecture: 'amd64' },
    layers: [{ compression: 'gzip', entries: [file('arch', 'amd64')] }],
  });
  const arm = await buildImage(join(work, 'arm'), {
    mediaTypes: 'docker',
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    layers: [{ compression: 'gzip', entries: [file('arch', 'arm64')] }],
  });
  t.equal(amd.manifest.mediaType, MEDIA_TYPES.docker.manifest);
  const doc = JSON.parse(amd.manifest.bytes.toString()) as { config: { mediaType: string }; layers: { mediaType: string }[] };
  t.equal(doc.config.mediaType, MEDIA_TYPES.docker.config);
  t.equal(doc.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');

  const list = buildIndex([{ image: amd }, { image: arm }]);
  t.equal(list.mediaType, MEDIA_TYPES.docker.index);
  const pushed = await pushIndex(reg.seedUrl, 'tocfs/multi', 'latest', list);
  t.equal(pushed.digest, list.digest);
  const got = await get(`${reg.url}/v2/tocfs/multi/manifests/latest`);
  t.same(got.body, list.bytes);
  const manifests = (JSON.parse(got.body.toString()) as { manifests: { digest: string; platform: object }[] }).manifests;
  t.same(
    manifests.map((m) => [m.digest, m.platform]),
    [
      [amd.manifest.digest, { os: 'linux', architecture: 'amd64' }],
      [arm.manifest.digest, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ],
  );
  t.equal((await get(`${reg.url}/v2/tocfs/multi/manifests/${arm.manifest.digest}`)).status, 200, 'children by digest');

  const oci = buildIndex([{ image: amd }], { mediaTypes: 'oci' });
  t.equal(oci.mediaType, MEDIA_TYPES.oci.index);

  await writeOciLayout(join(work, 'layout'), 'amd', amd);
  await t.rejects(umociUnpack(join(work, 'layout'), 'amd', join(work, 'bundle')), /MediaTypeImageManifest/);
});

t.test('a prebuilt blob is adopted as is', async (t) => {
  const work = tempDir(t, 'prebuilt');
  const first = await buildImage(join(work, 'a'), { layers: [{ compression: 'gzip', entries: [file('x', 'x')] }] });
  const layer = first.layers[0]!;
  const image = await buildImage(join(work, 'b'), {
    layers: [{ blobPath: layer.path, mediaType: layer.mediaType, diffId: layer.diffId, annotations: { k: 'v' } }],
  });
  t.match(image.layers[0], { digest: layer.digest, size: layer.size, diffId: layer.diffId, annotations: { k: 'v' } });
  const manifest = JSON.parse(image.manifest.bytes.toString()) as { layers: object[] };
  t.same(manifest.layers[0], { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: { k: 'v' } });
});

async function streamSha(path: string, through?: string[]): Promise<string> {
  const hash = createHash('sha256');
  if (!through) {
    for await (const c of createReadStream(path) as AsyncIterable<Buffer>) hash.update(c);
    return `sha256:${hash.digest('hex')}`;
  }
  const child = spawn(through[0]!, [...through.slice(1), path]);
  child.stdout.on('data', (c: Buffer) => hash.update(c));
  const [code] = (await once(child, 'close')) as [number];
  if (code !== 0) throw new Error(`${through.join(' ')} exited ${code}`);
  return `sha256:${hash.digest('hex')}`;
}

t.test('a 5 GiB file builds a layer in bounded memory (zstd)', async (t) => {
  const work = tempDir(t, 'big-zstd');
  const rssBefore = process.memoryUsage().rss;
  const image = await buildImage(work, {
    layers: [
      { compression: 'zstd', zstdLevel: 1, entries: [file('big', { size: 5 * 2 ** 30, sparse: true }), file('after', 'x')] },
    ],
  });
  const layer = image.layers[0]!;
  t.ok(process.memoryUsage().rss - rssBefore < 512 * 2 ** 20, 'memory did not grow with the file');
  t.equal(layer.tarSize, 5 * 2 ** 30 + 3 * 512 + 1024);
  t.equal(await streamSha(layer.path), layer.digest);
});

t.test('a 5 GiB file in a gzip level 1 layer (set TOCFS_BIG_TESTS=1; ~35 s)', { skip: !process.env.TOCFS_BIG_TESTS }, async (t) => {
  const work = tempDir(t, 'big-gzip');
  const image = await buildImage(work, {
    layers: [
      { compression: 'gzip', gzipLevel: 1, entries: [file('big', { size: 5 * 2 ** 30, sparse: true }), file('after', 'x')] },
    ],
  });
  const layer = image.layers[0]!;
  t.equal(await streamSha(layer.path, ['gzip', '-dc']), layer.diffId, 'gzip(1) agrees on the diffID');
});
