// zTOC and checkpoint round trips over every shared vector: a real tar gzipped, its offsets read back by
// the tar reader, encoded as soci would, decoded, and turned into a TocIndex whose tree and bytes must
// match the DSL's oracle: every chunk's span digest is the sha256 of its compressed bytes, and the span's
// tar bytes at innerOffset are exactly the file's bytes.
import t from 'tap';
import { decodeZinfo, encodeZinfo, ZINFO_CHECKPOINT_SIZE, ZINFO_HEADER_SIZE, ZINFO_WINDOW_SIZE } from '../../src/formats/soci/zinfo.js';
import { decodeZtoc, type Ztoc } from '../../src/formats/soci/ztoc.js';
import { encodeZtoc } from '../../src/formats/soci/ztoc-encode.js';
import { tarRangeOf, ztocToToc } from '../../src/formats/soci/ztoc-toc.js';
import type { TocEntry } from '../../src/formats/toc.js';
import { expectedTree } from '../support/format-suite.js';
import { buildSoci, goTime, sha256 } from '../support/soci-build.js';
import { contentBytes, file } from '../support/tar-dsl.js';
import { VECTORS } from '../support/vectors.js';

// tap's deep compare walks a typed array element by element; the checkpoints alone are megabytes.
const plain = (z: Ztoc): unknown => ({ ...z, compression: { ...z.compression, checkpoints: sha256(z.compression.checkpoints) }, entries: z.entries.map((e) => ({ ...e, xattrs: e.xattrs.map((x) => [x.key, Buffer.from(x.value).toString('hex')]) })) });
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

for (const vector of VECTORS) {
  for (const spanSize of [3, 64, 4096]) {
    t.test(`${vector.name}, span ${spanSize}`, async (t) => {
      const built = buildSoci(vector.entries, { spanSize });
      const bytes = encodeZtoc(built.ztoc);
      const decoded = decodeZtoc(bytes);
      t.same(plain(decoded), plain(built.ztoc), 'decode(encode(ztoc)) equals ztoc');
      t.ok(same(encodeZtoc(decoded), bytes), 'encoding is deterministic');

      const zinfo = decodeZinfo(decoded.compression.checkpoints);
      t.equal(zinfo.version, 2);
      t.equal(zinfo.checkpoints.length, built.checkpoints.length);
      t.ok(same(encodeZinfo(zinfo), decoded.compression.checkpoints), 'zinfo round trip');

      const soci = ztocToToc(decoded, zinfo);
      t.equal(soci.index.format, 'soci');
      t.equal(soci.index.tocOffset, built.blob.length);
      const want = expectedTree(vector.entries);
      const got = new Map<string, TocEntry>(soci.index.walk());
      t.same([...got.keys()].sort(), [...want.keys()].sort(), 'same names');
      for (const [path, w] of want) {
        const e = got.get(path)!;
        if (!e) continue;
        const src = w.source;
        t.match(
          { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, nlink: e.nlink, implicit: e.implicit, linkName: e.linkName, devMajor: e.devMajor, devMinor: e.devMinor },
          { type: w.type, mode: w.mode, uid: w.uid, gid: w.gid, size: w.size, nlink: w.nlink, implicit: w.implicit, linkName: w.linkName, devMajor: w.devMajor, devMinor: w.devMinor },
          `${path} metadata`,
        );
        t.same(Object.keys(e.xattrs ?? {}).sort(), Object.keys(w.xattrs).sort(), `${path} xattr names`);
        for (const [k, v] of Object.entries(w.xattrs)) t.same(Buffer.from(e.xattrs![k]!), v, `${path} xattr ${k}`);
        if (src === undefined) continue;
        // Sub-second times survive (mod_time has nanoseconds), to the millisecond TocEntry keeps.
        t.equal(e.mtimeMs, src.mtime.getTime(), `${path} mtime`);
        const content = contentBytes(src);
        let covered = 0;
        for (const c of e.chunks) {
          t.equal(c.fileOffset, covered);
          const span = soci.spans.spanOf(c.span!);
          t.equal(c.digest, span.digest);
          t.equal(c.compressedOffset, span.compressedStart);
          t.equal(c.compressedEnd, span.compressedEnd);
          if (c.digest !== sha256(built.blob.subarray(c.compressedOffset, c.compressedEnd))) t.fail(`${path}: span ${c.span} digest`);
          const at = span.uncompressedStart + c.innerOffset;
          if (at + c.size > span.uncompressedEnd) t.fail(`${path}: chunk runs past its span`);
          if (!built.tar.subarray(at, at + c.size).equals(content.subarray(c.fileOffset, c.fileOffset + c.size))) t.fail(`${path}: chunk bytes at ${c.fileOffset}`);
          covered += c.size;
        }
        t.equal(covered, content.length, `${path} chunks cover the file`);
        if (content.length > 0) {
          const range = tarRangeOf(soci, e)!;
          t.ok(built.tar.subarray(range.start, range.end).equals(content), `${path} tarRangeOf`);
        }
      }
    });
  }
}

t.test('a v1 checkpoint blob (checkpoint 0 left out) decodes to the same checkpoints', async (t) => {
  const built = buildSoci([file('a', { size: 3000 }), file('b', { size: 5000 })], { spanSize: 1024 });
  const v2 = built.ztoc.compression.checkpoints;
  const v1 = new Uint8Array(v2.length - ZINFO_CHECKPOINT_SIZE);
  v1.set(v2.subarray(0, ZINFO_HEADER_SIZE));
  v1.set(v2.subarray(ZINFO_HEADER_SIZE + ZINFO_CHECKPOINT_SIZE), ZINFO_HEADER_SIZE);
  const a = decodeZinfo(v1);
  const b = decodeZinfo(v2);
  t.equal(a.version, 1);
  t.equal(b.version, 2);
  t.same(a.checkpoints.map((c) => [c.in, c.out, c.bits]), b.checkpoints.map((c) => [c.in, c.out, c.bits]));
  t.ok(same(a.checkpoints[0]!.window, new Uint8Array(ZINFO_WINDOW_SIZE)), 'implied checkpoint 0 has a zero window');
  t.ok(same(encodeZinfo(a), v2), 'encode writes v2');
  const soci = ztocToToc(built.ztoc, a);
  t.equal(soci.index.lookup('b')!.chunks.length > 1, true, 'b crosses spans');
});

t.test('spanAt finds the span of every tar offset', async (t) => {
  const built = buildSoci([file('x', { size: 20_000 })], { spanSize: 2048 });
  const soci = ztocToToc(built.ztoc, decodeZinfo(built.ztoc.compression.checkpoints));
  for (let off = 0; off < built.tar.length; off += 97) {
    const s = soci.spans.spanAt(off)!;
    if (!(s.uncompressedStart <= off && off < s.uncompressedEnd)) t.fail(`offset ${off} in span ${s.index}`);
  }
  t.equal(soci.spans.spanAt(built.tar.length), undefined);
  t.equal(soci.spans.spanAt(-1), undefined);
  t.throws(() => soci.spans.spanOf(soci.spans.spans.length), RangeError);
  t.equal(soci.spans.spans.at(-1)!.compressedEnd, built.blob.length, 'the last span ends at the blob end');
  t.equal(soci.spans.spans.at(-1)!.uncompressedEnd, built.tar.length, 'and at uncompressed_archive_size');
});

t.test('mod_time as Go writes it', async (t) => {
  t.equal(goTime(1_700_000_000, 120_000_000), '2023-11-14T22:13:20.12Z');
  t.equal(goTime(0, 0), '1970-01-01T00:00:00Z');
});
