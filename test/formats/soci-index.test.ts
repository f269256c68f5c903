// SOCI index manifests: v1 and v2 as soci-snapshotter writes them (soci/soci_index.go `MarshalIndex`),
// parsed back; a document as soci writes it verbatim; and every malformed shape with its FormatError.
import t from 'tap';
import {
  ANNOTATION_INDEX_DIGEST,
  EMPTY_JSON_DIGEST,
  SOCI_INDEX_V1,
  SOCI_INDEX_V2,
  parseSociIndex,
  sociIndexDigestOf,
  writeSociIndex,
  type SociIndexInput,
} from '../../src/formats/soci/index-manifest.js';
import { sha256 } from '../support/soci-build.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('1'), size: 1234 };
const ztocs = [
  { ztoc: { mediaType: 'application/octet-stream', digest: d('2'), size: 5000 }, layerDigest: d('3'), layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', spanSize: 4194304, disableXattrs: false },
  { ztoc: { mediaType: 'application/octet-stream', digest: d('4'), size: 6000 }, layerDigest: d('5'), layerMediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', spanSize: 1048576, disableXattrs: true },
];
const enc = (doc: unknown): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(doc)));

t.test('empty JSON digest is sha256 of {}', async (t) => {
  t.equal(EMPTY_JSON_DIGEST, sha256(Buffer.from('{}')));
});

for (const version of ['v1', 'v2'] as const) {
  t.test(`${version} round trip`, async (t) => {
    const input: SociIndexInput = { version, subject, ztocs, buildToolIdentifier: 'tocfs 0.1' };
    const written = writeSociIndex(input);
    t.equal(written.digest, sha256(written.bytes));
    const doc = JSON.parse(Buffer.from(written.bytes).toString()) as Record<string, unknown>;
    t.same(Object.keys(doc), version === 'v1' ? ['schemaVersion', 'mediaType', 'config', 'layers', 'subject', 'annotations'] : ['schemaVersion', 'mediaType', 'config', 'layers', 'annotations']);
    t.same(doc['config'], { mediaType: version === 'v1' ? SOCI_INDEX_V1 : SOCI_INDEX_V2, digest: EMPTY_JSON_DIGEST, size: 2 });
    const parsed = parseSociIndex(written.bytes);
    t.equal(parsed.version, version);
    t.same(parsed.subject, version === 'v1' ? subject : undefined);
    t.equal(parsed.buildToolIdentifier, 'tocfs 0.1');
    t.same(
      parsed.ztocs.map((z) => ({ ...z, ztoc: { ...z.ztoc, annotations: undefined } })),
      ztocs.map((z) => ({ ...z, ztoc: { ...z.ztoc, annotations: undefined } })),
    );
  });
}

t.test('a v1 index as soci writes it', async (t) => {
  // Shape of soci's MarshalIndex output (Go encoding/json of ocispec.Manifest), with a prefetch artifact.
  const text = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v1+json","digest":"${EMPTY_JSON_DIGEST}","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"${d('a')}","size":123,"annotations":{"com.amazon.soci.image-layer-digest":"${d('b')}","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}},{"mediaType":"application/vnd.amazon.soci.prefetch.v1+json","digest":"${d('c')}","size":10,"annotations":{"com.amazon.soci.image-layer-digest":"${d('b')}"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${d('e')}","size":99},"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}`;
  const parsed = parseSociIndex(new Uint8Array(Buffer.from(text)));
  t.equal(parsed.version, 'v1');
  t.equal(parsed.ztocs.length, 1);
  t.match(parsed.ztocs[0], { layerDigest: d('b'), layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', spanSize: 4194304, disableXattrs: false, ztoc: { digest: d('a'), size: 123 } });
  t.equal(parsed.prefetch.length, 1);
  t.equal(parsed.buildToolIdentifier, 'AWS SOCI CLI v0.2');
  t.equal(parsed.subject?.digest, d('e'));
});

t.test('v2 discovery annotation', async (t) => {
  t.equal(sociIndexDigestOf({ [ANNOTATION_INDEX_DIGEST]: d('f') }), d('f'));
  t.equal(sociIndexDigestOf({}), undefined);
  t.equal(sociIndexDigestOf(undefined), undefined);
  t.throws(() => sociIndexDigestOf({ [ANNOTATION_INDEX_DIGEST]: 'sha256:xyz' }), { name: 'FormatError', message: /^com\.amazon\.soci\.index-digest "sha256:xyz" is not sha256:<64 hex>$/ });
});

t.test('writing a v1 index without a subject is refused', async (t) => {
  t.throws(() => writeSociIndex({ version: 'v1', ztocs, buildToolIdentifier: 'x' }), { code: 'INVALID_OPTION' });
});

const valid = JSON.parse(Buffer.from(writeSociIndex({ version: 'v1', subject, ztocs, buildToolIdentifier: 'x' }).bytes).toString()) as Record<string, unknown>;
const layer0 = (valid['layers'] as Record<string, unknown>[])[0]!;
const malformed: [string, unknown, RegExp][] = [
  ['not JSON', '{', /^SOCI index is not JSON: /],
  ['an array', [], /^SOCI index is not a JSON object$/],
  ['schemaVersion 1', { ...valid, schemaVersion: 1 }, /^SOCI index schemaVersion 1 is not 2$/],
  ['an image index', { ...valid, mediaType: 'application/vnd.oci.image.index.v1+json' }, /^SOCI index mediaType "application\/vnd\.oci\.image\.index\.v1\+json" is not application\/vnd\.oci\.image\.manifest\.v1\+json$/],
  ['a plain image config', { ...valid, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('1'), size: 2 } }, /^SOCI index config\.mediaType "application\/vnd\.oci\.image\.config\.v1\+json" is not application\/vnd\.amazon\.soci\.index\.v1\+json or/],
  ['artifactType disagrees', { ...valid, artifactType: SOCI_INDEX_V2 }, /^SOCI index artifactType "application\/vnd\.amazon\.soci\.index\.v2\+json" disagrees with config\.mediaType/],
  ['v1 without subject', { ...valid, subject: undefined }, /^SOCI index v1 has no subject \(the image manifest it indexes\)$/],
  ['layers not an array', { ...valid, layers: {} }, /^SOCI index layers is not an array$/],
  ['layer digest not sha256', { ...valid, layers: [{ ...layer0, digest: 'sha512:00' }] }, /^SOCI index layers\[0\]\.digest "sha512:00" is not sha256:<64 hex>$/],
  ['layer size negative', { ...valid, layers: [{ ...layer0, size: -1 }] }, /^SOCI index layers\[0\]\.size -1 is not a non-negative safe integer$/],
  ['zTOC without image-layer-digest', { ...valid, layers: [{ ...layer0, annotations: {} }] }, /^SOCI index layers\[0\]: com\.amazon\.soci\.image-layer-digest null is not sha256:<64 hex>$/],
  ['span-size not a number', { ...valid, layers: [{ ...layer0, annotations: { ...(layer0['annotations'] as object), 'com.amazon.soci.span-size': '4MiB' } }] }, /^SOCI index layers\[0\]: com\.amazon\.soci\.span-size "4MiB" is not a byte count$/],
  ['annotation not a string', { ...valid, annotations: { a: 1 } }, /^SOCI index manifest\.annotations\["a"\] is not a string$/],
  ['two zTOCs for one layer', { ...valid, layers: [layer0, layer0] }, /^SOCI index layers\[1\]: a second zTOC for layer sha256:3{64}$/],
];
for (const [name, doc, message] of malformed) {
  t.test(`malformed: ${name}`, async (t) => {
    t.throws(() => parseSociIndex(typeof doc === 'string' ? new Uint8Array(Buffer.from(doc)) : enc(doc)), { name: 'FormatError', code: 'FORMAT', message });
  });
}
