// tocfs's eStargz TOC-offset hint (formats/estargz/annotations.ts) at open: one request for the TOC instead
// of the footer first; a hint that misleads (no TOC there, or another one) falls back to the footer and
// still opens the right TOC; a malformed hint is a FORMAT error naming it. Real eStargz blobs.
import t, { type Test } from 'tap';
import { FormatError } from '../../../src/errors.js';
import { ESTARGZ_TOC_OFFSET_ANNOTATION, estargzHintedLocation } from '../../../src/formats/estargz/annotations.js';
import { TOC_CODECS } from '../../../src/formats/codecs.js';
import { ChunkFetcher } from '../../../src/layers/fetch/fetcher.js';
import { MemoryChunkStore } from '../../../src/layers/store/memory-store.js';
import { openLayer, TOC_DIGEST_ANNOTATION } from '../../../src/layers/toc/open-layer.js';
import type { Descriptor } from '../../../src/registry/types.js';
import { buildEstargz } from '../../support/estargz-build.js';
import { recordingSource, type RecordingSource } from '../../support/recording-source.js';
import { dir, file } from '../../support/tar-dsl.js';
import { noise } from '../fake-blob.js';

const built = await buildEstargz([dir('app'), ...Array.from({ length: 30 }, (_, i) => file(`app/f${i}`, noise(5000 + i, i)))], { chunkSize: 4096 });

function open(t: Test, src: RecordingSource, offset: string | undefined) {
  const fetcher = new ChunkFetcher({ memory: new MemoryChunkStore({ maxBytes: 1 << 20 }) });
  t.teardown(() => fetcher.close());
  const descriptor: Descriptor = {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: src.id,
    size: src.size,
    annotations: { [TOC_DIGEST_ANNOTATION]: built.tocDigest, ...(offset !== undefined ? { [ESTARGZ_TOC_OFFSET_ANNOTATION]: offset } : {}) },
  };
  // A tail smaller than the TOC: without the hint, opening takes the tail and then the TOC.
  return openLayer({ source: src, descriptor, codecs: TOC_CODECS, fetcher, tailBytes: 256 });
}

t.test('the hint: one request, exactly the TOC', async (t) => {
  const src = recordingSource(t, built.blob);
  const layer = await open(t, src, String(built.tocOffset));
  t.same(src.reads, [{ start: built.tocOffset, end: built.blob.length - 51 }]);
  t.equal(layer.index.lookup('app/f7')?.size, 5007);
  t.same(Buffer.from(await layer.read('app/f7', 0, 1 << 20)), noise(5007, 7));
});

t.test('without the hint: the tail, then the TOC', async (t) => {
  const src = recordingSource(t, built.blob);
  await open(t, src, undefined);
  t.equal(src.requests, 2);
});

t.test('a hint that misleads falls back to the footer, and the pinned TOC opens', async (t) => {
  for (const wrong of ['0', String(built.tocOffset + 10), String(built.tocOffset - 4096)]) {
    const src = recordingSource(t, built.blob);
    src.allowRefetch = true;
    const layer = await open(t, src, wrong);
    t.equal(layer.index.lookup('app/f29')?.size, 5029, `offset ${wrong}: opened from the footer`);
    t.ok(src.requests >= 2, 'the hinted read, then the footer');
  }
});

t.test('a malformed hint is a FORMAT error naming it, before any read', async (t) => {
  for (const bad of ['-1', 'x', '1e3', String(built.blob.length), '99999999999999999']) {
    const src = recordingSource(t, built.blob);
    await t.rejects(open(t, src, bad), { code: 'FORMAT', message: new RegExp(ESTARGZ_TOC_OFFSET_ANNOTATION.replace(/\./g, '\\.')) }, bad);
    t.equal(src.requests, 0);
  }
  t.throws(() => estargzHintedLocation({ [ESTARGZ_TOC_OFFSET_ANNOTATION]: '100' }, 120), FormatError, 'inside the footer');
  t.equal(estargzHintedLocation({}, 1000), undefined);
});
