// The mount layout (DESIGN.md §1.2) over a fake registry client: parsing, pinning, single flight, failure
// caching, listings, the /layers view, xattr figures.
import t from 'tap';
import { TocfsError } from '../../src/errors.js';
import type { ResolvedImage } from '../../src/registry/client.js';
import type { Descriptor, ImageReference } from '../../src/registry/types.js';
import { openImage } from '../../src/image/image.js';
import { createImageFilesystem, type NamespaceDeps } from '../../src/image/namespace.js';
import type { Layer } from '../../src/layers/layer.js';
import { fakeLayer } from './fake-layers.js';
import { noFigures } from '../support/layers.js';

const hex = (c: string) => c.repeat(64);
const L1 = fakeLayer([{ name: 'etc/os-release', type: 'reg', content: 'ID=fake\n' }, { name: 'gone', type: 'reg' }], `sha256:${hex('a')}`);
const L2 = fakeLayer([{ name: '.wh.gone', type: 'reg' }, { name: 'bin/sh', type: 'reg', content: 'v2', xattrs: { 'user.x': Buffer.from('1') } }], `sha256:${hex('b')}`);
const L3 = fakeLayer([{ name: 'bin/sh', type: 'reg', content: 'v3' }], `sha256:${hex('c')}`);
const desc = (l: Layer): Descriptor => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: 1 });

interface Harness {
  deps: NamespaceDeps;
  resolves: string[];
  /** tag -> layers it currently names */
  tags: Map<string, Layer[]>;
  logs: string[];
  clock: { now: number };
  gate?: Promise<void>;
}

function harness(): Harness {
  const h: Harness = {
    resolves: [],
    tags: new Map<string, Layer[]>([['v1', [L1, L2]]]),
    logs: [],
    clock: { now: 0 },
  } as unknown as Harness;
  const byDigest = new Map<string, Layer[]>();
  h.deps = {
    client: {
      async resolve(ref: ImageReference): Promise<ResolvedImage> {
        h.resolves.push(`${ref.repository}:${ref.tag ?? ''}@${ref.digest ?? ''}`);
        await h.gate;
        if (ref.repository.includes('broken')) throw new TocfsError('UNAUTHORIZED', 'no token for you');
        const layers = ref.digest !== undefined ? byDigest.get(ref.digest) : h.tags.get(ref.tag ?? 'latest');
        if (layers === undefined) throw new TocfsError('NOT_FOUND', `manifest unknown: ${ref.tag ?? ref.digest}`);
        const digest = `sha256:${(ref.digest ?? `${layers.map((l) => l.digest.slice(7, 8)).join('')}`).replace('sha256:', '').padEnd(64, '0')}`;
        byDigest.set(digest, layers);
        const document = { kind: 'manifest' as const, mediaType: 'm', schemaVersion: 2 as const, config: { mediaType: 'c', digest: `sha256:${hex('f')}`, size: 2 }, layers: layers.map(desc) };
        return { ref: { ...ref, digest }, digest, manifest: { document, bytes: new Uint8Array(), digest, mediaType: 'm' } };
      },
      async getConfig() {
        return { document: { architecture: 'amd64' }, bytes: new Uint8Array(), digest: `sha256:${hex('f')}` };
      },
    },
    layers: {
      async open(_repo, d) {
        const layer = [L1, L2, L3].find((l) => l.digest === d.digest);
        if (!layer) throw new TocfsError('NOT_FOUND', 'blob unknown');
        return layer;
      },
    },
    log: (line) => h.logs.push(line),
    now: () => h.clock.now,
    figures: () => ({ bytesFetched: 42, bytesCvmfs: 0, bytesCache: 7, requests: 3, bytesDiskPending: 5, layers: { [L1.digest]: noFigures('estargz-gzip')(), [`sha256:${hex('9')}`]: noFigures('tar')() } }),
  };
  return h;
}

const text = (b: Uint8Array) => Buffer.from(b).toString();
const IMG = '/images/127.0.0.1:5000/library/app:v1';
/** The image's bin and etc, plus what Apptainer needs that it lacks (test/image/singularity.test.ts). */
const WITH_SINGULARITY = ['.exec', '.run', '.shell', '.singularity.d', '.test', 'bin', 'dev', 'environment', 'etc', 'home', 'proc', 'root', 'run', 'singularity', 'sys', 'tmp', 'var'];

t.test('root, intermediate dirs and an image tree', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  t.match(await fs.lookup('/'), { ino: 1, type: 'dir' });
  t.same(await fs.readdir('/'), ['images', 'layers']);
  t.same(await fs.readdir('/images'), []);
  t.match(await fs.lookup('/images/127.0.0.1:5000'), { type: 'dir' }, 'a host is a dir before anything resolves');
  t.match(await fs.lookup('/images/127.0.0.1:5000/library'), { type: 'dir' });
  t.same(h.resolves, [], 'no resolution for prefixes');
  await t.rejects(fs.lookup('/images/127.0.0.1:5000/UPPER'), { code: 'NOT_FOUND' }, 'a component that can never be a reference');
  await t.rejects(fs.lookup('/images/127.0.0.1:5000/UPPER'), { code: 'NOT_FOUND' }, 'asked again');
  t.match(h.logs.splice(0), [/^images\/127\.0\.0\.1:5000\/UPPER: failed \(NOT_FOUND\): .*lower-case/], 'logged once, with the reason');
  await t.rejects(fs.lookup('/nope'), { code: 'NOT_FOUND' });

  t.match(await fs.lookup(IMG), { type: 'dir' });
  t.same([...(await fs.readdir(IMG))].sort(), WITH_SINGULARITY);
  t.equal(text(await fs.read(`${IMG}/etc/os-release`, 0, 100)), 'ID=fake\n');
  t.equal(text(await fs.read(`${IMG}/bin/sh`, 0, 100)), 'v2');
  await t.rejects(fs.lookup(`${IMG}/gone`), { code: 'NOT_FOUND' });
  await t.rejects(fs.lookup(`${IMG}/bin/sh/x`), { code: 'NOT_FOUND' });
  t.same(h.resolves, ['library/app:v1@']);
  t.match(h.logs, [/^image 127\.0\.0\.1:5000\/library\/app:v1: resolved to sha256:[0-9a-f]{64}, 2 layers$/], 'one line per resolved image');
  t.equal(h.logs.filter((l) => /: layer [01] sha256:[0-9a-f]{64}: estargz-gzip, TOC from blob, \d+ bytes$/.test(l)).length, 2, 'and one per layer');

  t.same(await fs.readdir('/images'), ['127.0.0.1:5000']);
  t.same(await fs.readdir('/images/127.0.0.1:5000'), ['library']);
  t.same(await fs.readdir('/images/127.0.0.1:5000/library'), ['app:v1']);
  const a = await fs.lookup('/images/127.0.0.1:5000/library');
  t.equal((await fs.lookup('/images/127.0.0.1:5000/library')).ino, a.ino, 'stable synthetic inode');
  await fs.close();
});

t.test('a tag stays pinned once resolved; digests resolve by themselves', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  t.equal(text(await fs.read(`${IMG}/bin/sh`, 0, 10)), 'v2');
  h.tags.set('v1', [L1, L2, L3]);
  t.equal(text(await fs.read(`${IMG}/bin/sh`, 0, 10)), 'v2', 'still the first resolution');
  t.equal(h.resolves.length, 1);
  const pinned = `/images/127.0.0.1:5000/library/app@sha256:${'ab'.padEnd(64, '0')}`;
  t.equal(text(await fs.read(`${pinned}/bin/sh`, 0, 10)), 'v2', 'the digest the tag resolved to');
  t.not((await fs.lookup(pinned)).ino, (await fs.lookup(IMG)).ino, 'inodes unique across images');
});

t.test('concurrent first lookups resolve once', async (t) => {
  const h = harness();
  let open!: () => void;
  h.gate = new Promise((r) => (open = r));
  const fs = createImageFilesystem(h.deps);
  const all = Promise.all([fs.lookup(IMG), fs.lookup(`${IMG}/bin`), fs.readdir(IMG), fs.lookup(`${IMG}/etc/os-release`)]);
  await new Promise((r) => setTimeout(r, 10));
  open();
  const [root, bin, names, file] = await all;
  t.equal(h.resolves.length, 1);
  t.match(root, { type: 'dir' });
  t.match(bin, { type: 'dir' });
  t.same([...names].sort(), WITH_SINGULARITY);
  t.match(file, { size: 8 });
});

t.test('an abort stops one caller, not the shared resolution', async (t) => {
  const h = harness();
  let open!: () => void;
  h.gate = new Promise((r) => (open = r));
  const fs = createImageFilesystem(h.deps);
  const ac = new AbortController();
  const aborted = fs.lookup(IMG, { signal: ac.signal });
  const other = fs.lookup(IMG);
  ac.abort();
  await t.rejects(aborted, { code: 'ABORTED' });
  open();
  t.match(await other, { type: 'dir' });
  t.equal(h.resolves.length, 1);
});

t.test('failures: the original error, logged once, cached briefly', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  const missing = '/images/127.0.0.1:5000/library/app:nope';
  await t.rejects(fs.lookup(missing), { code: 'NOT_FOUND', message: /app:nope.*manifest unknown/ });
  await t.rejects(fs.lookup(`${missing}/bin`), { code: 'NOT_FOUND' });
  await t.rejects(fs.readdir(missing), { code: 'NOT_FOUND' });
  t.equal(h.resolves.length, 1, 'answered from memory');
  t.equal(h.logs.length, 1);
  t.match(h.logs[0], /app:nope.*NOT_FOUND.*manifest unknown/);
  await t.rejects(fs.lookup('/images/127.0.0.1:5000/broken:v1'), { code: 'UNAUTHORIZED' });
  h.clock.now = 1_001;
  h.tags.set('nope', [L3]);
  t.equal(text(await fs.read(`${missing}/bin/sh`, 0, 9)), 'v3', 'tried again after the failure period');
  t.same(await fs.readdir('/images/127.0.0.1:5000/library'), ['app:nope'], 'only resolved images are listed');
});

// Issue 21: a failed lookup was remembered for a fixed 10 s, so an image kept failing 10 s after the
// registry was healthy again. Now: the remembered error answers only within 1 s of the failed attempt.
t.test('issue 21: a failing image costs one request per second, and works at once when the registry is back', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  const img = '/images/127.0.0.1:5000/library/app:later';
  for (const at of [0, 400, 999]) {
    h.clock.now = at;
    await t.rejects(fs.lookup(img), { code: 'NOT_FOUND' }, `${at} ms: failing`);
  }
  t.equal(h.resolves.length, 1, 'one request in the first second, however many lookups');
  h.clock.now = 1_000;
  await t.rejects(fs.lookup(img), { code: 'NOT_FOUND' });
  t.equal(h.resolves.length, 2, 'asked again once the second is over');
  t.equal(h.logs.length, 1, 'the same failure is logged once');
  h.tags.set('later', [L3]); // the registry answers again
  h.clock.now = 1_001;
  await t.rejects(fs.lookup(img), { code: 'NOT_FOUND' }, 'within 1 s of the last attempt: the remembered error');
  t.equal(h.resolves.length, 2);
  h.clock.now = 2_000;
  t.match(await fs.lookup(img), { type: 'dir' }, 'the first lookup after that succeeds: no 10 s wait');
  t.equal(h.resolves.length, 3);
});

t.test('layer open failures name the image and the layer', async (t) => {
  const h = harness();
  const ghost = fakeLayer([], `sha256:${hex('d')}`);
  h.tags.set('ghost', [L1, ghost]);
  await t.rejects(openImage(h.deps, { registry: 'r.io', repository: 'x', tag: 'ghost' }), {
    code: 'NOT_FOUND',
    message: new RegExp(`image r.io/x:ghost: layer 1 ${ghost.digest}: blob unknown`),
  });
  const image = await openImage(h.deps, { registry: 'r.io', repository: 'x', tag: 'v1' });
  t.match(image, { ref: { tag: 'v1', digest: /^sha256:/ }, config: { architecture: 'amd64' } });
  t.equal(image.layers.length, 2);
});

t.test('/layers shows one layer as in the tar, whiteouts included', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  const layerPath = `/layers/127.0.0.1:5000/library/app@${L2.digest}`;
  await t.rejects(fs.lookup(layerPath), { code: 'NOT_FOUND' }, 'unknown until an image that has it resolves');
  await fs.lookup(IMG);
  h.clock.now = 20_000;
  t.same([...(await fs.readdir(layerPath))].sort(), ['.wh.gone', 'bin']);
  t.match(await fs.lookup(`${layerPath}/.wh.gone`), { type: 'reg', size: 0 });
  t.equal(text(await fs.read(`${layerPath}/bin/sh`, 0, 10)), 'v2');
  t.same((await fs.xattrs(`${layerPath}/bin/sh`)).get('user.x'), Buffer.from('1'));
  await t.rejects(fs.lookup('/layers/127.0.0.1:5000/library/app:v1'), { code: 'NOT_FOUND' }, 'a tag names no layer');
  t.same(await fs.readdir('/layers/127.0.0.1:5000/library'), [`app@${L2.digest}`]);

  const byDigest = createImageFilesystem({ ...h.deps, openLayerByDigest: async (_r, d) => [L1, L2, L3].find((l) => l.digest === d)! });
  t.same(await byDigest.readdir(`/layers/r.io/x@${L3.digest}`), ['bin']);
});

t.test('xattrs: entries own, figures on / and image roots', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  const root = await fs.xattrs('/');
  t.equal(text(root.get('user.tocfs.bytes_fetched')!), '42');
  t.equal(text(root.get('user.tocfs.requests')!), '3');
  t.equal(text(root.get('user.tocfs.bytes_cache')!), '7');
  t.equal(text(root.get('user.tocfs.bytes_cvmfs')!), '0');
  t.equal(text(root.get('user.tocfs.bytes_disk_pending')!), '5');
  t.equal(Object.keys(JSON.parse(text(root.get('user.tocfs.layers')!))).length, 2);
  const img = await fs.xattrs(IMG);
  t.same(
    [...img.keys()].filter((k) => k.startsWith('user.tocfs.')).sort(),
    ['bytes_cache', 'bytes_cvmfs', 'bytes_disk_pending', 'bytes_fetched', 'layers', 'requests'].map((k) => `user.tocfs.${k}`),
    'every figure on an image root',
  );
  t.same(Object.keys(JSON.parse(text(img.get('user.tocfs.layers')!))), [L1.digest], 'only its own layers');
  t.same([...(await fs.xattrs(`${IMG}/bin/sh`)).keys()], ['user.x']);
  t.same(await fs.xattrs('/images'), new Map());
  await t.rejects(fs.read('/images', 0, 1), { code: 'IS_DIRECTORY' });
});

t.test('open resolves a file once for many reads; a directory answers IS_DIRECTORY', async (t) => {
  const h = harness();
  const fs = createImageFilesystem(h.deps);
  const sh = await fs.open(`${IMG}/bin/sh`);
  t.same(sh.node, await fs.lookup(`${IMG}/bin/sh`));
  t.equal(text(await sh.read(0, 10)), 'v2');
  t.equal(text(await sh.read(1, 10)), '2');
  for (const dir of ['/', '/images', '/images/127.0.0.1:5000', IMG, `${IMG}/bin`, `${IMG}/.singularity.d`]) {
    await t.rejects(fs.open(dir), { code: 'IS_DIRECTORY' }, dir);
    await t.rejects(fs.read(dir, 0, 1), { code: 'IS_DIRECTORY' }, dir);
  }
  await t.rejects(fs.open(`${IMG}/gone`), { code: 'NOT_FOUND' });
  await t.rejects(fs.open('/nope'), { code: 'NOT_FOUND' });
  const layer = await fs.open(`/layers/127.0.0.1:5000/library/app@${L2.digest}/bin/sh`);
  t.equal(text(await layer.read(0, 10)), 'v2', 'a layer\'s own file');
  await t.rejects(fs.open(`/layers/127.0.0.1:5000/library/app@${L2.digest}/bin`), { code: 'IS_DIRECTORY' });
  t.same(h.resolves, ['library/app:v1@'], 'one resolution of the image for all of it');
});
