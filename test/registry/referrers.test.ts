// Referrers (src/registry/referrers.ts): the tag schema on Debian's docker-registry (no referrers API), the
// referrers API on a fake, a garbage API answer ignored, and one request per lookup once a host is known.
import t from 'tap';
import { RegistryClient } from '../../src/registry/client.js';
import { referrersTag } from '../../src/registry/referrers.js';
import type { Descriptor } from '../../src/registry/types.js';
import { buildImage } from '../support/image-builder.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { file } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { sha256, startFake } from './fake-http.js';

const PROFILE_TYPE = 'application/vnd.tocfs.test+json';

t.test('the tag schema on a registry without the referrers API: add, then list, filtered by artifactType', async (t) => {
  const reg = await startRegistry(t);
  const image = await buildImage(tempDir(t, 'referrers'), { layers: [{ compression: 'gzip', entries: [file('a', 'a')] }] });
  await pushImage(reg.seedUrl, 'ref/app', 'v1', image);
  const client = new RegistryClient({ insecureRegistries: [reg.host] });
  t.teardown(() => client.close());
  const repo = { registry: reg.host, repository: 'ref/app' };
  const subject = image.manifest.digest;
  t.same(await client.referrers(repo, subject), [], 'none yet');

  // A referrer: an artifact manifest whose subject is the image (its config blob is the empty JSON).
  const empty = new TextEncoder().encode('{}');
  await client.pushBlob(repo, sha256(empty), empty, empty.length);
  const artifact = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: PROFILE_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length }],
      subject: { mediaType: image.manifest.mediaType, digest: subject, size: image.manifest.bytes.length },
    }),
  );
  const digest = await client.putManifest(repo, sha256(artifact), 'application/vnd.oci.image.manifest.v1+json', artifact);
  const descriptor: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: artifact.length, artifactType: PROFILE_TYPE };
  await client.addReferrer(repo, subject, descriptor);
  await client.addReferrer(repo, subject, descriptor); // idempotent

  const fresh = new RegistryClient({ insecureRegistries: [reg.host] });
  t.teardown(() => fresh.close());
  t.same(await fresh.referrers(repo, subject, PROFILE_TYPE), [descriptor], 'found through the tag schema');
  t.same(await fresh.referrers(repo, subject, 'application/other'), [], 'filtered by artifactType');
  const tagged = await fresh.getManifest(repo, referrersTag(subject));
  t.equal(tagged.document.kind, 'index', `tag ${referrersTag(subject)} holds an index`);
  t.equal(tagged.document.kind === 'index' && tagged.document.manifests.length, 1, 'listed once');
});

const SUBJECT = `sha256:${'a'.repeat(64)}`;
const LISTED: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 10, artifactType: PROFILE_TYPE };

t.test('the referrers API when the registry has it; one request per lookup once the host is known', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (req.url?.startsWith(`/v2/r/referrers/${SUBJECT}`)) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [LISTED] }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  });
  const client = new RegistryClient({ insecureRegistries: [fake.host] });
  t.teardown(() => client.close());
  const repo = { registry: fake.host, repository: 'r' };
  t.same(await client.referrers(repo, SUBJECT, PROFILE_TYPE), [LISTED]);
  const before = fake.calls().length;
  t.same(await client.referrers(repo, SUBJECT, PROFILE_TYPE), [LISTED]);
  t.equal(fake.calls().length - before, 1, 'the second lookup asks the API alone');
  t.match(fake.calls().at(-1)!.url, /artifactType=application%2Fvnd\.tocfs\.test%2Bjson/);
});

t.test('a referrers API answering garbage is ignored; the tag schema answers', async (t) => {
  const fake = await startFake(t, (req, res) => {
    if (req.url?.startsWith('/v2/r/referrers/')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
      res.end('{"this is": not json');
      return;
    }
    if (req.url === `/v2/r/manifests/${referrersTag(SUBJECT)}`) {
      const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [LISTED] });
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
      res.end(body);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const client = new RegistryClient({ insecureRegistries: [fake.host] });
  t.teardown(() => client.close());
  const repo = { registry: fake.host, repository: 'r' };
  t.same(await client.referrers(repo, SUBJECT), [LISTED]);
  const before = fake.calls().length;
  t.same(await client.referrers(repo, SUBJECT), [LISTED]);
  t.equal(fake.calls().length - before, 1, 'then the tag alone');
  t.notOk(fake.calls().slice(before).some((c) => c.path.includes('/referrers/')), 'the API is not asked again');
});
