// CvmfsCatalog with a fake registry client: which manifest wins, DUCC's host names, and which layers a
// matching DUCC record vouches for.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { TocfsError } from '../../src/errors.js';
import { CvmfsCatalog, duccHost } from '../../src/image/cvmfs-catalog.js';
import { CvmfsLayers } from '../../src/layers/cvmfs/cvmfs-layers.js';
import { CvmfsSource } from '../../src/layers/cvmfs/cvmfs-source.js';
import type { ResolvedImage } from '../../src/registry/client.js';
import { parseManifest } from '../../src/registry/manifest.js';
import type { ImageManifest, ImageReference } from '../../src/registry/types.js';
import { tempDir } from '../support/tmp.js';

const sha = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function manifestBytes(layerSeed: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(`config-${layerSeed}`), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(`layer-${layerSeed}`), size: 10 }],
    }),
  );
}

function resolvedFrom(ref: ImageReference, bytes: Buffer): ResolvedImage {
  const digest = sha(bytes);
  const document = parseManifest(bytes, undefined) as ImageManifest;
  return { ref: { ...ref, digest }, manifest: { document, bytes, digest, mediaType: document.mediaType }, digest };
}

async function catalogAt(root: string): Promise<{ catalog: CvmfsCatalog; logs: string[]; confirmed: string[] }> {
  const logs: string[] = [];
  const layers = new CvmfsLayers({ source: new CvmfsSource(root), openRegistry: () => Promise.reject(new Error('not here')), log: (l) => logs.push(l) });
  const confirmed: string[] = [];
  const confirm = layers.confirm.bind(layers);
  layers.confirm = (digests) => {
    confirmed.push(...digests);
    confirm(digests);
  };
  return { catalog: new CvmfsCatalog(layers, (l) => logs.push(l)), logs, confirmed };
}

t.test('DUCC writes Docker Hub as registry.hub.docker.com, other hosts as they are', async (t) => {
  t.equal(duccHost('docker.io'), 'registry.hub.docker.com');
  t.equal(duccHost('registry-1.docker.io'), 'registry.hub.docker.com');
  t.equal(duccHost('index.docker.io'), 'registry.hub.docker.com');
  t.equal(duccHost('gitlab-registry.cern.ch'), 'gitlab-registry.cern.ch');
  t.equal(duccHost('127.0.0.1:5000'), '127.0.0.1:5000');
});

t.test('manifest: registry first, DUCC record when unreachable, registry wins a disagreement', async (t) => {
  const root = tempDir(t, 'cvmfs-catalog');
  const ref: ImageReference = { registry: 'docker.io', repository: 'library/python', tag: '3.12' };
  const recorded = manifestBytes('old');
  const record = join(root, '.metadata', 'registry.hub.docker.com', 'library/python:3.12');
  await mkdir(record, { recursive: true });
  await writeFile(join(record, 'manifest.json'), recorded);

  await t.test('registry unreachable: the record, its layers vouched for', async (t) => {
    const { catalog, logs, confirmed } = await catalogAt(root);
    const down = { resolve: () => Promise.reject(new TocfsError('SOURCE_UNAVAILABLE', 'connect ECONNREFUSED')) };
    const got = await catalog.resolve(down, ref, undefined);
    t.equal(got.digest, sha(recorded));
    t.ok(got.fromCvmfs);
    t.same(confirmed, [sha('layer-old')]);
    t.match(logs.join('\n'), /registry unreachable \(connect ECONNREFUSED\); using DUCC's manifest record sha256:/);
    t.same(await catalog.config({ getConfig: () => Promise.reject(new Error('must not be asked')) }, ref, got), {}, 'no config request: served without it');
  });

  await t.test('a definite answer (NOT_FOUND) is not overridden by the record', async (t) => {
    const { catalog } = await catalogAt(root);
    const gone = { resolve: () => Promise.reject(new TocfsError('NOT_FOUND', 'manifest unknown')) };
    await t.rejects(catalog.resolve(gone, ref, undefined), { code: 'NOT_FOUND' });
  });

  await t.test('the tag moved: the registry wins and the log says so; no layer vouched for', async (t) => {
    const { catalog, logs, confirmed } = await catalogAt(root);
    const moved = resolvedFrom(ref, manifestBytes('new'));
    const got = await catalog.resolve({ resolve: async () => moved }, ref, undefined);
    t.equal(got.digest, moved.digest);
    t.notOk(got.fromCvmfs);
    t.same(confirmed, []);
    t.match(logs.join('\n'), /DUCC's record on CVMFS says sha256:[0-9a-f]+ \(the tag moved\): the registry's answer wins/);
  });

  await t.test('registry and record agree: the record vouches for the layers', async (t) => {
    const { catalog, confirmed } = await catalogAt(root);
    const same = resolvedFrom(ref, recorded);
    await catalog.resolve({ resolve: async () => same }, ref, undefined);
    t.same(confirmed, [sha('layer-old')]);
  });

  await t.test('no record, registry down: the registry\'s error', async (t) => {
    const { catalog } = await catalogAt(root);
    const down = { resolve: () => Promise.reject(new TocfsError('SOURCE_UNAVAILABLE', 'down')) };
    await t.rejects(catalog.resolve(down, { ...ref, tag: 'other' }, undefined), { code: 'SOURCE_UNAVAILABLE' });
  });

  await t.test('a broken record is logged and the registry\'s error stands', async (t) => {
    const broken = join(root, '.metadata', 'registry.hub.docker.com', 'library/python:broken');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'manifest.json'), '{not json');
    const { catalog, logs } = await catalogAt(root);
    const down = { resolve: () => Promise.reject(new TocfsError('SOURCE_UNAVAILABLE', 'down')) };
    await t.rejects(catalog.resolve(down, { ...ref, tag: 'broken' }, undefined), { code: 'SOURCE_UNAVAILABLE' });
    t.match(logs.join('\n'), /DUCC record unusable: manifest is not valid UTF-8 JSON/);
  });
});
