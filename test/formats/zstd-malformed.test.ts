// Broken zstd:chunked / eStargz-zstd inputs, each with its exact error code and message fragment, then a
// seeded mutation fuzzer over footers, TOCs, spans and annotations that must never throw anything but a
// TocfsError (STYLE.md "Malformed corpus with exact expectations").
import t from 'tap';
import { compress } from 'zstd-napi';
import { TocfsError } from '../../src/errors.js';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import { parseZstdAnnotations } from '../../src/formats/zstd/annotations.js';
import { zstdChunkedCodec, estargzZstdCodec } from '../../src/formats/zstd/codec.js';
import type { TocLimits } from '../../src/formats/toc.js';
import { decodeBlob } from '../support/format-suite.js';
import { prng } from '../support/prng.js';
import { file } from '../support/tar-dsl.js';
import { buildZstd, type ZstdBuildOptions } from '../support/zstd-build.js';

const ENTRIES = [file('a', 'abcdefghij'.repeat(20)), file('b', 'klmnopqrst')];
const build = (opts: Partial<ZstdBuildOptions> = {}) => buildZstd(ENTRIES, { footer: 'current', chunkSize: 64, ...opts });
const good = build();
const legacy = build({ footer: 'legacy' });

function setU64(b: Buffer, fromEnd: number, value: number): Buffer {
  const out = Buffer.from(b);
  out.writeBigUInt64LE(BigInt(value), out.length - fromEnd);
  return out;
}

interface Case {
  readonly name: string;
  readonly code: TocfsError['code'];
  readonly fragment: string;
  readonly run: () => unknown;
}

const decode = (blob: Buffer, limits?: Partial<TocLimits>) => async () => {
  const { codec, location } = detectTocCodec(blob.subarray(-MAX_FOOTER_LENGTH), blob.length);
  return codec.decodeToc(blob.subarray(location.tocOffset, location.tocOffset + location.tocLength!), location, limits);
};

const CASES: Case[] = [
  { name: 'bad footer magic (64-byte)', code: 'FORMAT', fragment: 'bad magic "GNUlInUX"', run: () => decodeBlob(Buffer.concat([good.blob.subarray(0, -1), Buffer.from('X')])) },
  { name: 'bad footer magic (40-byte)', code: 'FORMAT', fragment: 'zstd 40-byte footer: bad magic', run: () => decodeBlob(Buffer.concat([legacy.blob.subarray(0, -1), Buffer.from('X')])) },
  { name: 'footer not in a skippable frame', code: 'FORMAT', fragment: 'not inside a zstd skippable frame', run: () => decodeBlob(Buffer.from(good.blob).fill(0, good.blob.length - 72, good.blob.length - 71)) },
  { name: 'manifest type 2', code: 'FORMAT', fragment: 'manifest type 2 is not 1', run: () => decodeBlob(setU64(good.blob, 40, 2)) },
  { name: 'TOC offset past the footer', code: 'FORMAT', fragment: 'does not fit before the footer', run: () => decodeBlob(setU64(good.blob, 64, good.blob.length)) },
  { name: 'truncated footer', code: 'FORMAT', fragment: 'has no TOC footer', run: () => decodeBlob(good.blob.subarray(0, -1)) },
  { name: 'TOC not zstd', code: 'FORMAT', fragment: 'is not a zstd frame', run: decode(build({ replaceCompressedToc: (c) => Buffer.alloc(c.length, 0x41) }).blob) },
  { name: 'TOC frame truncated', code: 'FORMAT', fragment: 'input ends inside a zstd frame', run: decode(build({ replaceCompressedToc: (c) => c.subarray(0, c.length - 3) }).blob) },
  { name: 'TOC longer than the footer says', code: 'FORMAT', fragment: 'the footer says', run: decode(setU64(good.blob, 48, 10)) },
  { name: 'TOC not JSON', code: 'FORMAT', fragment: 'TOC is not JSON', run: decode(build({ mutateToc: () => Buffer.from('{"version":1,"entries":[nope') }).blob) },
  { name: 'TOC declares more than maxTocBytes', code: 'FORMAT', fragment: 'above maxTocBytes', run: decode(good.blob, { maxTocBytes: 64 }) },
  { name: 'unknown chunkType', code: 'FORMAT', fragment: 'chunkType', run: decode(build({ mutateToc: (toc) => ((toc.entries[0]!['chunkType'] = 'holes'), toc) }).blob) },
  { name: 'endOffset past the TOC', code: 'FORMAT', fragment: 'endOffset', run: decode(build({ mutateToc: (toc) => ((toc.entries[1]!['endOffset'] = 10 ** 9), toc) }).blob) },
  { name: 'span: truncated frame', code: 'BAD_DATA', fragment: 'is a truncated zstd frame', run: () => zstdChunkedCodec.decompressSpan(compress(Buffer.alloc(1000, 7)).subarray(0, 8), 1000) },
  { name: 'span: not zstd', code: 'BAD_DATA', fragment: 'does not decompress', run: () => estargzZstdCodec.decompressSpan(Buffer.from('definitely not zstd'), 1000) },
  { name: 'annotation: checksum not sha256', code: 'FORMAT', fragment: 'is not a sha256 digest', run: () => parseZstdAnnotations({ 'io.containers.zstd-chunked.manifest-checksum': 'md5:00' }) },
  { name: 'annotation: malformed position', code: 'FORMAT', fragment: 'is not offset:length', run: () => parseZstdAnnotations({ ...good.annotations, 'io.github.containers.zstd-chunked.manifest-position': '1:2:3' }) },
  { name: 'annotation: manifest type 2', code: 'FORMAT', fragment: 'manifest type 2', run: () => parseZstdAnnotations({ ...good.annotations, 'io.github.containers.zstd-chunked.manifest-position': '10:20:30:2' }) },
];

for (const c of CASES) {
  t.test(c.name, async (t) => {
    try {
      await c.run();
      t.fail('accepted');
    } catch (err) {
      if (!(err instanceof TocfsError)) throw err;
      t.equal(err.code, c.code, 'code');
      const messages = [err.message, ...(err.cause instanceof AggregateError ? err.cause.errors.map((e: Error) => e.message) : [])];
      t.ok(messages.some((m) => m.includes(c.fragment)), `message has ${JSON.stringify(c.fragment)}: ${messages.join(' | ')}`);
    }
  });
}

// Issue 21: the README promises such a layer is read (pulled whole, checked by its digest), not refused.
t.test('a position without a checksum pins nothing: no zstd annotations, not an error', async (t) => {
  t.equal(parseZstdAnnotations({ 'io.github.containers.zstd-chunked.manifest-position': '1:2:3:1' }), undefined);
  t.equal(parseZstdAnnotations({ 'io.containers.zstd-chunked.manifest-position': '1:2:3:1' }), undefined);
});

t.test('the corpus bases decode', async (t) => {
  t.equal((await decodeBlob(good.blob, zstdChunkedCodec)).compressedTocDigest, good.compressedTocDigest);
  t.equal((await decodeBlob(legacy.blob, estargzZstdCodec)).compressedTocDigest, legacy.compressedTocDigest);
});

t.test('seeded mutations never throw anything but TocfsError', async (t) => {
  const rand = prng(0x25d);
  const int = (n: number): number => Math.floor(rand() * n);
  const unexpected: string[] = [];
  let accepted = 0;
  let rejected = 0;
  const attempt = async (what: string, run: () => unknown): Promise<void> => {
    try {
      await run();
      accepted++;
    } catch (err) {
      if (err instanceof TocfsError) rejected++;
      else unexpected.push(`${what}: ${(err as Error)?.stack ?? String(err)}`);
    }
  };
  const mutate = (b: Buffer): Buffer => {
    const out = Buffer.from(b);
    for (let k = 1 + int(3); k > 0; k--) out[int(out.length)] = int(256);
    return rand() < 0.2 ? out.subarray(0, int(out.length)) : out;
  };
  for (let i = 0; i < 1500; i++) {
    const base = rand() < 0.5 ? good : legacy;
    switch (i % 4) {
      case 0: {
        const blob = Buffer.concat([base.blob.subarray(0, -MAX_FOOTER_LENGTH), mutate(base.blob.subarray(-MAX_FOOTER_LENGTH))]);
        await attempt(`footer #${i}`, () => decodeBlob(blob));
        break;
      }
      case 1: {
        const toc = base.blob.subarray(base.tocOffset, base.tocOffset + base.tocLength);
        const blob = Buffer.concat([base.blob.subarray(0, base.tocOffset), mutate(toc), base.blob.subarray(base.tocOffset + base.tocLength)]);
        await attempt(`toc #${i}`, async () => {
          const { index, codec } = await decodeBlob(blob);
          for (const [, e] of index.walk()) for (const c of e.chunks) if (!c.zeros) await codec.decompressSpan(blob.subarray(c.compressedOffset, c.compressedEnd), c.size);
        });
        break;
      }
      case 2: {
        const { index, codec } = await decodeBlob(base.blob);
        const c = index.lookup('a')!.chunks[int(index.lookup('a')!.chunks.length)]!;
        await attempt(`span #${i}`, () => codec.decompressSpan(mutate(base.blob.subarray(c.compressedOffset, c.compressedEnd)), 1 << int(20)));
        break;
      }
      default: {
        const a = { ...base.annotations };
        const key = Object.keys(a)[int(Object.keys(a).length)]!;
        a[key] = mutate(Buffer.from(a[key]!)).toString('latin1');
        await attempt(`annotations #${i}`, () => parseZstdAnnotations(a));
      }
    }
  }
  t.comment(`${accepted} accepted, ${rejected} rejected`);
  t.same(unexpected.slice(0, 5), [], 'no error outside TocfsError');
  t.ok(rejected > 300, `most are rejected (${rejected})`);
});
