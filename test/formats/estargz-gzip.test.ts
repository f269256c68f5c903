// eStargz (and legacy stargz) through the shared format suite: every vector × gzip level × chunk size ×
// footer kind, plus the reference's minChunkSize packing (several files in one member, innerOffset).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { estargzCodec, legacyStargzCodec } from '../../src/formats/estargz/codec.js';
import { buildEstargz } from '../support/estargz-build.js';
import { decodeBlob, formatSuite, type FormatVariant } from '../support/format-suite.js';
import type { TarEntry } from '../support/tar-dsl.js';
import { VECTORS } from '../support/vectors.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function variant(level: number, legacyFooter: boolean): FormatVariant {
  return {
    name: `${legacyFooter ? 'stargz-legacy' : 'estargz'} gzip -${level}`,
    codec: legacyFooter ? legacyStargzCodec : estargzCodec,
    async build(entries, opts) {
      const built = await buildEstargz(entries, { ...opts, gzipLevel: level, legacyFooter });
      return { blob: built.blob, tocDigest: built.tocDigest, diffId: built.diffId };
    },
    checkStreams(t, { blob, diffId }, entries: readonly TarEntry[]) {
      const listed = spawnSync('tar', ['-tzf', '-'], { input: blob, encoding: 'utf8' });
      t.equal(listed.status, 0, `tar -tzf lists the blob ${listed.stderr}`);
      const names = listed.stdout.trim().split('\n');
      t.equal(names.at(-1), 'stargz.index.json', 'the TOC is the last tar entry');
      t.ok(names.length >= entries.length + 1, 'every entry is listed');
      t.equal(sha256(gunzipSync(blob)), diffId, 'the blob inflates as one tar stream whose digest is the diffID');
    },
  };
}

const TINY = [3, 64];
const DEFAULT = 4 << 20;

for (const level of [0, 1, 6, 9]) {
  await t.test(`gzip level ${level}`, (t) => formatSuite(t, variant(level, false), { chunkSizes: [...TINY, DEFAULT] }));
}
await t.test('legacy 47-byte footer', (t) => formatSuite(t, variant(6, true), { chunkSizes: [3, 64, DEFAULT] }));
await t.test('minChunkSize packs small files into one member', (t) =>
  formatSuite(t, variant(6, false), { chunkSizes: [4, 64, DEFAULT], minChunkSize: 256 }),
);

t.test('minChunkSize really shares members: chunks at one offset told apart by innerOffset', async (t) => {
  const v = VECTORS.find((x) => x.name === 'empty files between non-empty')!;
  const built = await buildEstargz(v.entries, { chunkSize: 4, minChunkSize: 256, gzipLevel: 6 });
  const { index, compressedTocDigest } = await decodeBlob(built.blob, estargzCodec);
  const chunks = [...index.walk()].flatMap(([, e]) => e.chunks);
  const shared = chunks.filter((c) => chunks.some((o) => o !== c && o.compressedOffset === c.compressedOffset));
  t.ok(shared.length > 2, `${shared.length} chunks share a member`);
  t.ok(shared.some((c) => c.innerOffset > 0), 'with innerOffset');
  t.ok(shared.every((c) => c.compressedEnd > c.compressedOffset));
  t.equal(compressedTocDigest, sha256(built.blob.subarray(built.tocOffset, built.blob.length - 51)), 'compressedTocDigest is of the TOC member');
});

t.test('a span inflates the same with or without the size hint, which never bounds it', async (t) => {
  const { gzipSync } = await import('node:zlib');
  const { decompressGzipSpan } = await import('../../src/formats/estargz/codec.js');
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24; // compressible, not constant
  const span = gzipSync(data, { level: 1 });
  const plain = Buffer.from(await decompressGzipSpan(span, 80 << 20));
  t.ok(plain.equals(data), 'no hint');
  for (const hint of [1, 64 << 10, data.length, data.length + 10, 64 << 20]) {
    const out = Buffer.from(await decompressGzipSpan(span, 80 << 20, hint));
    t.ok(out.equals(data), `hint ${hint}: every byte, not only the hinted ones`);
  }
  const capped = await decompressGzipSpan(span, 1000, data.length);
  t.equal(capped.length, 1000, 'the bound still stops it, whatever the hint');
  await t.rejects(decompressGzipSpan(Buffer.from('not gzip at all, longer than the inline limit'.repeat(1000)), 80 << 20, 1 << 20), { code: 'BAD_DATA' });
});
