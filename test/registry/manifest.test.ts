import t from 'tap';
import { FormatError } from '../../src/errors.js';
import * as M from '../../src/registry/manifest.js';
import { parseManifest } from '../../src/registry/manifest.js';

const dg = (c: string): string => `sha256:${c.repeat(64)}`;
const enc = (doc: unknown): Uint8Array => new TextEncoder().encode(typeof doc === 'string' ? doc : JSON.stringify(doc));

const ociManifest = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: M.MEDIA_TYPE_OCI_MANIFEST,
  config: { mediaType: M.MEDIA_TYPE_OCI_CONFIG, digest: dg('c'), size: 1234 },
  layers: [
    { mediaType: M.MEDIA_TYPE_OCI_LAYER_GZIP, digest: dg('1'), size: 100 },
    { mediaType: M.MEDIA_TYPE_OCI_LAYER_ZSTD, digest: dg('2'), size: 0 },
  ],
  ...over,
});

const ociIndex = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  schemaVersion: 2,
  mediaType: M.MEDIA_TYPE_OCI_INDEX,
  manifests: [
    {
      mediaType: M.MEDIA_TYPE_OCI_MANIFEST,
      digest: dg('a'),
      size: 500,
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8', 'os.features': ['x'] },
    },
  ],
  ...over,
});

const dockerManifest = {
  schemaVersion: 2,
  mediaType: M.MEDIA_TYPE_DOCKER_MANIFEST,
  config: { mediaType: M.MEDIA_TYPE_DOCKER_CONFIG, digest: dg('c'), size: 10 },
  layers: [
    { mediaType: M.MEDIA_TYPE_DOCKER_LAYER_GZIP, digest: dg('1'), size: 1 },
    {
      mediaType: M.MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP,
      digest: dg('2'),
      size: 2,
      urls: ['https://example.com/layer'],
    },
  ],
};

const dockerList = {
  schemaVersion: 2,
  mediaType: M.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
  manifests: [
    { mediaType: M.MEDIA_TYPE_DOCKER_MANIFEST, digest: dg('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
  ],
};

t.test('MANIFEST_ACCEPT lists the four manifest and index types', async (t) => {
  const types = M.MANIFEST_ACCEPT.split(', ');
  t.same(types.sort(), [
    M.MEDIA_TYPE_DOCKER_MANIFEST,
    M.MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    M.MEDIA_TYPE_OCI_INDEX,
    M.MEDIA_TYPE_OCI_MANIFEST,
  ].sort());
});

t.test('parses an OCI image manifest, keeping only known fields', async (t) => {
  const doc = ociManifest({
    annotations: { 'org.opencontainers.image.created': '2024-01-01' },
    subject: { mediaType: M.MEDIA_TYPE_OCI_MANIFEST, digest: dg('5'), size: 7 },
    artifactType: 'application/x.test',
    unknownField: { x: 1 },
  });
  const m = parseManifest(enc(doc), M.MEDIA_TYPE_OCI_MANIFEST);
  t.same(m, {
    kind: 'manifest',
    mediaType: M.MEDIA_TYPE_OCI_MANIFEST,
    schemaVersion: 2,
    config: { mediaType: M.MEDIA_TYPE_OCI_CONFIG, digest: dg('c'), size: 1234 },
    layers: [
      { mediaType: M.MEDIA_TYPE_OCI_LAYER_GZIP, digest: dg('1'), size: 100 },
      { mediaType: M.MEDIA_TYPE_OCI_LAYER_ZSTD, digest: dg('2'), size: 0 },
    ],
    annotations: { 'org.opencontainers.image.created': '2024-01-01' },
    subject: { mediaType: M.MEDIA_TYPE_OCI_MANIFEST, digest: dg('5'), size: 7 },
    artifactType: 'application/x.test',
  });
  t.notOk('unknownField' in m);
});

t.test('parses an OCI index with platforms', async (t) => {
  const idx = parseManifest(enc(ociIndex()), `${M.MEDIA_TYPE_OCI_INDEX}; charset=utf-8`);
  t.equal(idx.kind, 'index');
  if (idx.kind !== 'index') return;
  t.same(idx.manifests[0]?.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
});

t.test('parses Docker schema2 manifests and manifest lists', async (t) => {
  const m = parseManifest(enc(dockerManifest), M.MEDIA_TYPE_DOCKER_MANIFEST);
  t.equal(m.kind, 'manifest');
  t.equal(m.mediaType, M.MEDIA_TYPE_DOCKER_MANIFEST);
  if (m.kind === 'manifest') t.same(m.layers[1]?.urls, ['https://example.com/layer']);
  const l = parseManifest(enc(dockerList), M.MEDIA_TYPE_DOCKER_MANIFEST_LIST);
  t.equal(l.kind, 'index');
  t.equal(l.mediaType, M.MEDIA_TYPE_DOCKER_MANIFEST_LIST);
});

t.test('media type: document field, else Content-Type, else inferred from the fields', async (t) => {
  t.equal(parseManifest(enc(ociManifest()), undefined).mediaType, M.MEDIA_TYPE_OCI_MANIFEST, 'from the document');
  t.equal(parseManifest(enc(ociManifest()), 'application/json').mediaType, M.MEDIA_TYPE_OCI_MANIFEST, 'generic header ignored');
  const { mediaType: _m, ...bare } = dockerManifest;
  t.equal(parseManifest(enc(bare), M.MEDIA_TYPE_DOCKER_MANIFEST).mediaType, M.MEDIA_TYPE_DOCKER_MANIFEST, 'from Content-Type');
  const { mediaType: _i, ...bareIndex } = ociIndex();
  t.equal(parseManifest(enc(bareIndex), undefined).kind, 'index', 'inferred index');
  t.equal(parseManifest(enc(bareIndex), undefined).mediaType, M.MEDIA_TYPE_OCI_INDEX);
  const { mediaType: _o, ...bareManifest } = ociManifest();
  t.equal(parseManifest(enc(bareManifest), 'text/plain').kind, 'manifest', 'inferred manifest');
  t.throws(() => parseManifest(enc({ schemaVersion: 2 }), undefined), { code: 'FORMAT', message: /no mediaType/ });
});

t.test('malformed documents fail with FORMAT and a message saying why', async (t) => {
  const layer = (over: Record<string, unknown>): Record<string, unknown> =>
    ociManifest({ layers: [{ mediaType: M.MEDIA_TYPE_OCI_LAYER_GZIP, digest: dg('1'), size: 1, ...over }] });
  const cases: Array<[string, Uint8Array, string | undefined, RegExp]> = [
    ['bad JSON', enc('{"schemaVersion": 2,'), undefined, /not valid UTF-8 JSON/],
    ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), undefined, /not valid UTF-8 JSON/],
    ['not an object', enc('[1,2]'), undefined, /not a JSON object/],
    ['schema1 by version', enc({ schemaVersion: 1, name: 'x', fsLayers: [] }), undefined, /schema1 manifests are not supported/],
    ['schema1 by Content-Type', enc({ schemaVersion: 1 }), M.MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, /schema1/],
    ['schema1 by mediaType', enc({ schemaVersion: 2, mediaType: M.MEDIA_TYPE_DOCKER_SCHEMA1 }), undefined, /schema1/],
    ['schemaVersion 3', enc(ociManifest({ schemaVersion: 3 })), undefined, /schemaVersion must be 2, got 3/],
    ['schemaVersion missing', enc(ociManifest({ schemaVersion: undefined })), undefined, /schemaVersion must be 2/],
    ['schemaVersion "2"', enc(ociManifest({ schemaVersion: '2' })), undefined, /schemaVersion must be 2, got "2"/],
    ['bad digest in a layer', enc(layer({ digest: 'sha256:1234' })), undefined, /layers\[0\]\.digest .*64 hex digits/],
    ['unknown digest algorithm', enc(layer({ digest: `md5:${'1'.repeat(32)}` })), undefined, /layers\[0\].*unsupported/],
    ['missing digest', enc(layer({ digest: undefined })), undefined, /layers\[0\]\.digest must be a string/],
    ['negative size', enc(layer({ size: -1 })), undefined, /layers\[0\]\.size must be a non-negative integer, got -1/],
    ['fractional size', enc(layer({ size: 1.5 })), undefined, /size must be a non-negative integer/],
    ['unsafe size', enc(layer({ size: 2 ** 53 })), undefined, /size must be a non-negative integer/],
    ['size as string', enc(layer({ size: '1' })), undefined, /size must be a non-negative integer/],
    ['mediaType not a string', enc(layer({ mediaType: 7 })), undefined, /layers\[0\]\.mediaType must be a string/],
    ['urls not strings', enc(layer({ urls: [1] })), undefined, /layers\[0\]\.urls\[0\] must be a string/],
    ['urls not an array', enc(layer({ urls: 'x' })), undefined, /urls must be an array/],
    ['annotation value not a string', enc(layer({ annotations: { a: 1 } })), undefined, /annotations\["a"\] must be a string/],
    ['annotations an array', enc(ociManifest({ annotations: ['a'] })), undefined, /annotations must be an object/],
    ['descriptor not an object', enc(ociManifest({ layers: ['x'] })), undefined, /layers\[0\]: descriptor must be an object/],
    ['layers not an array', enc(ociManifest({ layers: {} })), undefined, /"layers" must be an array/],
    ['config missing', enc(ociManifest({ config: undefined })), M.MEDIA_TYPE_OCI_MANIFEST, /config: descriptor must be an object/],
    ['manifests not an array', enc(ociIndex({ manifests: {} })), undefined, /"manifests" must be an array/],
    ['platform without os', enc(ociIndex({ manifests: [{ mediaType: 'x', digest: dg('a'), size: 1, platform: { architecture: 'amd64' } }] })), undefined, /platform\.os must be a string/],
    ['unsupported media type', enc(ociManifest({ mediaType: 'application/vnd.oci.artifact.manifest.v1+json' })), undefined, /unsupported manifest media type/],
    ['mediaType not a string', enc(ociManifest({ mediaType: 2 })), undefined, /mediaType must be a string/],
  ];
  for (const [name, bytes, ct, re] of cases) {
    t.throws(() => parseManifest(bytes, ct), FormatError, name);
    t.throws(() => parseManifest(bytes, ct), { code: 'FORMAT', message: re }, name);
  }
});

t.test('a document whose mediaType disagrees with Content-Type is refused (GHSA-mc8v-mgrf-8f4m)', async (t) => {
  t.throws(() => parseManifest(enc(ociManifest()), M.MEDIA_TYPE_OCI_INDEX), {
    code: 'FORMAT',
    message: /mediaType application\/vnd\.oci\.image\.manifest\.v1\+json disagrees with Content-Type application\/vnd\.oci\.image\.index\.v1\+json/,
  });
  t.throws(() => parseManifest(enc(dockerManifest), M.MEDIA_TYPE_OCI_MANIFEST), { message: /disagrees/ });
  t.ok(parseManifest(enc(ociManifest()), `${M.MEDIA_TYPE_OCI_MANIFEST.toUpperCase()} ; charset=utf-8`), 'case and parameters');
});

t.test('a document with both index and manifest fields is refused (GHSA-77vh-xpmg-72qh)', async (t) => {
  const both = { ...ociIndex(), config: ociManifest()['config'], layers: [] };
  for (const ct of [undefined, M.MEDIA_TYPE_OCI_INDEX, M.MEDIA_TYPE_OCI_MANIFEST]) {
    t.throws(() => parseManifest(enc({ ...both, mediaType: undefined }), ct), { code: 'FORMAT', message: /both/ }, String(ct));
  }
  // The mediaType says manifest but the body is an index: without the check it would be read as one.
  const { mediaType: _i, ...indexBody } = ociIndex();
  t.throws(() => parseManifest(enc({ ...indexBody, mediaType: M.MEDIA_TYPE_OCI_MANIFEST }), undefined), {
    message: /must not have "manifests"/,
  });
  t.throws(() => parseManifest(enc(indexBody), M.MEDIA_TYPE_OCI_MANIFEST), { message: /must not have "manifests"/ });
  const { mediaType: _m, ...manifestBody } = ociManifest();
  t.throws(() => parseManifest(enc(manifestBody), M.MEDIA_TYPE_OCI_INDEX), { message: /must not have "config" or "layers"/ });
});

t.test('manifests over MAX_MANIFEST_BYTES are refused before parsing', async (t) => {
  t.equal(M.MAX_MANIFEST_BYTES, 4 * 1024 * 1024);
  const big = new Uint8Array(M.MAX_MANIFEST_BYTES + 1).fill(0x20);
  t.throws(() => parseManifest(big, undefined), { code: 'FORMAT', message: /over the 4194304-byte limit/ });
  // Exactly the limit is parsed (and here fails only for being whitespace).
  const edge = new Uint8Array(M.MAX_MANIFEST_BYTES).fill(0x20);
  t.throws(() => parseManifest(edge, undefined), { message: /not valid UTF-8 JSON/ });
});

t.test('a "__proto__" annotation stays a plain key', async (t) => {
  const text = JSON.stringify(ociManifest()).replace(/}$/, ',"annotations":{"__proto__":"x","a":"b"}}');
  const m = parseManifest(enc(text), undefined);
  t.equal(Object.getPrototypeOf(m.annotations), Object.prototype);
  t.same(Object.keys(m.annotations ?? {}), ['__proto__', 'a']);
});

t.test('every layer media type has its compression', async (t) => {
  const table: Array<[string, 'gzip' | 'zstd' | 'none']> = [
    [M.MEDIA_TYPE_OCI_LAYER, 'none'],
    [M.MEDIA_TYPE_OCI_LAYER_GZIP, 'gzip'],
    [M.MEDIA_TYPE_OCI_LAYER_ZSTD, 'zstd'],
    [M.MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE, 'none'],
    [M.MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_GZIP, 'gzip'],
    [M.MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_ZSTD, 'zstd'],
    [M.MEDIA_TYPE_DOCKER_LAYER, 'none'],
    [M.MEDIA_TYPE_DOCKER_LAYER_GZIP, 'gzip'],
    [M.MEDIA_TYPE_DOCKER_LAYER_ZSTD, 'zstd'],
    [M.MEDIA_TYPE_DOCKER_LAYER_FOREIGN, 'none'],
    [M.MEDIA_TYPE_DOCKER_LAYER_FOREIGN_GZIP, 'gzip'],
  ];
  for (const [type, compression] of table) {
    t.ok(M.isLayerMediaType(type), type);
    t.equal(M.layerCompression(type), compression, type);
  }
  for (const other of [M.MEDIA_TYPE_OCI_CONFIG, M.MEDIA_TYPE_DOCKER_CONFIG, M.MEDIA_TYPE_OCI_MANIFEST, 'application/octet-stream']) {
    t.notOk(M.isLayerMediaType(other), other);
    t.equal(M.layerCompression(other), undefined, other);
  }
});

t.test('manifest and index media type guards', async (t) => {
  t.ok(M.isManifestMediaType(M.MEDIA_TYPE_OCI_MANIFEST));
  t.ok(M.isManifestMediaType(M.MEDIA_TYPE_DOCKER_MANIFEST));
  t.notOk(M.isManifestMediaType(M.MEDIA_TYPE_OCI_INDEX));
  t.ok(M.isIndexMediaType(M.MEDIA_TYPE_OCI_INDEX));
  t.ok(M.isIndexMediaType(M.MEDIA_TYPE_DOCKER_MANIFEST_LIST));
  t.notOk(M.isIndexMediaType(M.MEDIA_TYPE_DOCKER_MANIFEST));
});
