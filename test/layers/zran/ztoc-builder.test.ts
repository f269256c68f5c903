// ZtocBuilder (src/layers/zran/ztoc-builder.ts) on gzip blobs made here, fed in awkward chunk sizes: the
// uncompressed output is the tar, the span digests are the blob's, every file extracts from the zinfo
// checkpoints, the entries are the tar's headers; bad gzip and truncated blobs are FormatErrors.
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { FormatError } from '../../../src/errors.js';
import { ZtocBuilder } from '../../../src/layers/zran/ztoc-builder.js';
import { dir, file, hardlink, symlink, tarBytes, type TarEntry } from '../../support/tar-dsl.js';
import { checkZtoc } from '../../support/ztoc-check.js';

const ENTRIES: TarEntry[] = [
  dir('etc'),
  file('etc/hello', 'hello\n', { uid: 1000, gid: 100, mtime: new Date('2021-02-03T04:05:06.789Z'), xattrs: { 'user.note': Buffer.from([0x80, 0, 1]) } }),
  file('random.bin', { size: 1_500_000 }),
  file('zeros.bin', { size: 3_000_000, sparse: true }),
  file('text.txt', 'lorem ipsum dolor sit amet '.repeat(40_000)),
  file('empty'),
  hardlink('random-again.bin', 'random.bin'),
  symlink('etc/link', 'hello'),
  file('tail.bin', { size: 700_000 }),
];

async function build(blob: Buffer, chunk: number, spanSize: number): Promise<{ built: ReturnType<ZtocBuilder['end']>; out: Buffer }> {
  const builder = new ZtocBuilder({ spanSize, buildToolIdentifier: 'tocfs test' });
  const out: Buffer[] = [];
  for (let at = 0; at < blob.length; at += chunk) out.push(...(await builder.push(blob.subarray(at, at + chunk))));
  return { built: builder.end(), out: Buffer.concat(out) };
}

t.test('builds a zTOC whose spans, files and entries agree with the blob', async (t) => {
  const tar = tarBytes(ENTRIES);
  for (const level of [1, 6, 9]) {
    const blob = gzipSync(tar, { level });
    for (const [chunk, span] of [[65_536, 128 << 10], [7_777, 300_000], [blob.length, 1 << 20]] as const) {
      const what = `gzip -${level}, chunks of ${chunk}, span ${span}`;
      const { built, out } = await build(blob, chunk, span);
      t.ok(out.equals(tar), `${what}: the output is the tar`);
      t.equal(built.uncompressedSize, tar.length);
      const figures = await checkZtoc(t, built.bytes, blob, what);
      // The zeros compress into deflate blocks of megabytes, so only the random and text bytes cut spans.
      t.ok(span > tar.length / 2 || figures.spans >= 3, `${what}: ${figures.spans} spans`);
    }
  }
});

t.test('spans that start mid-byte hash the shared byte into both spans', async (t) => {
  // Small spans over incompressible and text data give many checkpoints; most have bits != 0.
  const blob = gzipSync(tarBytes(ENTRIES), { level: 6 });
  const { built } = await build(blob, 4096, 32 << 10);
  const figures = await checkZtoc(t, built.bytes, blob, 'span 32 KiB');
  t.ok(figures.spansWithBits > 0, `${figures.spansWithBits} of ${figures.spans} spans start mid-byte`);
});

t.test('concatenated gzip members are read through', async (t) => {
  const whole = tarBytes(ENTRIES.slice(0, 3));
  const cut = whole.length - 1024 - 512 * 3; // inside the last file's data: a member may end anywhere
  const blob = Buffer.concat([gzipSync(whole.subarray(0, cut)), gzipSync(whole.subarray(cut))]);
  const { built, out } = await build(blob, 50_000, 200_000);
  t.ok(out.equals(whole));
  await checkZtoc(t, built.bytes, blob, 'two members');
});

t.test('bad gzip data and a truncated blob are FormatErrors', async (t) => {
  const blob = gzipSync(tarBytes(ENTRIES));
  const corrupt = Buffer.from(blob);
  corrupt.fill(0xff, 2000, 2100);
  await t.rejects(build(corrupt, 65_536, 1 << 20), FormatError);
  await t.rejects(build(Buffer.from('not gzip at all, just text'), 100, 1 << 20), FormatError);
  const builder = new ZtocBuilder({ buildToolIdentifier: 'tocfs test' });
  await builder.push(blob.subarray(0, blob.length - 100));
  t.throws(() => builder.end(), FormatError, 'truncated');
});
