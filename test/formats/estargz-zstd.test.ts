// eStargz-zstd as stargz-snapshotter writes it (`ctr-remote image convert --zstdchunked`): the eStargz
// frame layout (a header in whatever frame is open, each chunk starting a frame, spans ending at the next
// offset) with the 40-byte GnUlInUx footer, through the shared format suite at several zstd levels.
// The reference tool's own output is checked in test/formats/zstd-interop.test.ts.
import { createHash } from 'node:crypto';
import t from 'tap';
import { decompress } from 'zstd-napi';
import { estargzZstdCodec } from '../../src/formats/zstd/codec.js';
import { formatSuite, type FormatVariant } from '../support/format-suite.js';
import { VECTORS } from '../support/vectors.js';
import { buildZstd } from '../support/zstd-build.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function variant(level: number): FormatVariant {
  return {
    name: `eStargz-zstd -${level}`,
    codec: estargzZstdCodec,
    trailerBytes: 0,
    dataStart: 9,
    async build(entries, opts) {
      const built = buildZstd(entries, { chunkSize: opts.chunkSize, level, footer: 'legacy', style: 'stargz' });
      return { blob: built.blob, tocDigest: built.tocDigest, diffId: built.diffId };
    },
    checkStreams(t, { blob, diffId }) {
      t.equal(sha256(decompress(blob)), diffId, 'the blob decompresses as one tar stream whose digest is the diffID');
    },
  };
}

const TINY = [3, 64];
const DEFAULT = 4 << 20;
const VECTORS_WITHOUT_LANDMARKS = VECTORS.filter((v) => v.build === undefined);

for (const level of [1, 9]) {
  await t.test(`eStargz-zstd (stargz layout), level ${level}`, (t) =>
    formatSuite(t, variant(level), { chunkSizes: [...TINY, DEFAULT], vectors: VECTORS_WITHOUT_LANDMARKS }),
  );
}

