// zstd:chunked (64-byte footer) and eStargz-zstd (40-byte footer) through the shared format suite: every
// vector × zstd level × chunk size × footer × writer layout (containers/storage frames with endOffset,
// stargz-snapshotter frames without), plus the reference-specific TOC facts the suite does not know.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import t from 'tap';
import { decompress } from 'zstd-napi';
import { estargzZstdCodec, zstdChunkedCodec } from '../../src/formats/zstd/codec.js';
import { decodeBlob, formatSuite, type FormatVariant } from '../support/format-suite.js';
import { dir, file } from '../support/tar-dsl.js';
import { VECTORS } from '../support/vectors.js';
import { buildZstd, type ZstdBuildOptions } from '../support/zstd-build.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
// zstd:chunked has no landmarks; stargz-snapshotter's eStargz-zstd does, but this builder leaves them to
// the gzip suite (the landmark logic is format-independent, in indexToc).
const PLAIN_VECTORS = VECTORS.filter((v) => v.build === undefined);

function variant(level: number, footer: ZstdBuildOptions['footer'], style: NonNullable<ZstdBuildOptions['style']>): FormatVariant {
  return {
    name: `${footer === 'current' ? 'zstd:chunked' : 'zstd 40-byte footer'} ${style} -${level}`,
    codec: footer === 'current' ? zstdChunkedCodec : estargzZstdCodec,
    trailerBytes: 0,
    // A zstd frame header is 6+ bytes; the first block's data follows it.
    dataStart: 9,
    async build(entries, opts) {
      const built = buildZstd(entries, { chunkSize: opts.chunkSize, level, footer, style, zeros: true });
      return { blob: built.blob, tocDigest: built.tocDigest, diffId: built.diffId };
    },
    checkStreams(t, { blob, diffId }) {
      // Any zstd reader sees one tar stream (skippable frames skipped), whose digest is the diffID.
      t.equal(sha256(decompress(blob)), diffId, 'the blob decompresses as one tar stream whose digest is the diffID');
      const listed = spawnSync('tar', ['-tf', '-'], { input: decompress(blob), encoding: 'utf8' });
      t.equal(listed.status, 0, `tar lists the decompressed stream ${listed.stderr}`);
    },
  };
}

const TINY = [3, 64];
const DEFAULT = 4 << 20;

for (const level of [1, 19]) {
  await t.test(`zstd:chunked, level ${level}`, (t) =>
    formatSuite(t, variant(level, 'current', 'storage'), { chunkSizes: [...TINY, DEFAULT], vectors: PLAIN_VECTORS }),
  );
}
await t.test('40-byte footer, containers/storage layout', (t) =>
  formatSuite(t, variant(3, 'legacy', 'storage'), { chunkSizes: [...TINY, DEFAULT], vectors: PLAIN_VECTORS }),
);
t.test('a chunked file: each chunk spans only its own frame, not the whole file', async (t) => {
  const content = Buffer.alloc(10_000);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7919) % 251;
  const built = buildZstd([file('big', content)], { chunkSize: 1000, footer: 'current' });
  const { index } = await decodeBlob(built.blob, zstdChunkedCodec);
  const chunks = index.lookup('big')!.chunks;
  t.equal(chunks.length, 10);
  for (let i = 0; i + 1 < chunks.length; i++) t.equal(chunks[i]!.compressedEnd, chunks[i + 1]!.compressedOffset, `chunk ${i} ends where ${i + 1} starts`);
  const json = JSON.parse(built.tocJson.toString()) as { entries: { endOffset?: number }[] };
  t.equal(chunks.at(-1)!.compressedEnd, json.entries[0]!.endOffset, 'the last chunk ends at the reg entry endOffset');
});

t.test('zero runs are chunkType zeros: no span to fetch', async (t) => {
  const content = Buffer.concat([Buffer.from('head'), Buffer.alloc(4096 * 3), Buffer.from('tail')]);
  const built = buildZstd([dir('d'), file('d/sparse', content)], { chunkSize: 4096, footer: 'current', zeros: true });
  const { index } = await decodeBlob(built.blob, zstdChunkedCodec);
  const chunks = index.lookup('d/sparse')!.chunks;
  t.ok(chunks.some((c) => c.zeros), 'a zeros chunk');
  for (const c of chunks.filter((x) => x.zeros)) t.equal(c.compressedEnd, 0, 'no compressed span');
});
