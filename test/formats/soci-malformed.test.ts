// Malformed SOCI inputs, each with the exact FormatError it must raise (STYLE.md "Malformed corpus with
// exact expectations"): broken flatbuffers, bad zTOC fields, bad checkpoint blobs, checkpoints that
// disagree with the zTOC, entries that overlap, run past the archive or escape the root.
import t from 'tap';
import { Builder } from 'flatbuffers';
import { decodeZinfo, encodeZinfo, ZINFO_CHECKPOINT_SIZE, ZINFO_HEADER_SIZE, type Checkpoint } from '../../src/formats/soci/zinfo.js';
import { decodeZtoc, type Ztoc, type ZtocEntry, type ZtocEntryType } from '../../src/formats/soci/ztoc.js';
import { encodeZtoc } from '../../src/formats/soci/ztoc-encode.js';
import { ztocToToc } from '../../src/formats/soci/ztoc-toc.js';
import { buildSoci } from '../support/soci-build.js';
import { dir, file, hardlink } from '../support/tar-dsl.js';

const base = buildSoci([dir('etc'), file('etc/a', { size: 3000 }), file('etc/b', { size: 123_456 }), hardlink('etc/c', 'etc/a')], { spanSize: 8192 });
const good = encodeZtoc(base.ztoc);

const withEntries = (f: (entries: ZtocEntry[]) => ZtocEntry[]): Ztoc => ({ ...base.ztoc, entries: f([...base.ztoc.entries]) });
const withEntry = (name: string, patch: Partial<ZtocEntry>): Ztoc => withEntries((es) => es.map((e) => (e.name === name ? { ...e, ...patch } : e)));
const toToc = (z: Ztoc): unknown => ztocToToc(z, decodeZinfo(z.compression.checkpoints));
const withCheckpoints = (f: (cps: Checkpoint[]) => Checkpoint[]): Uint8Array => encodeZinfo({ spanSize: 8192, checkpoints: f(base.checkpoints.map((c) => ({ ...c }))) });
const toTocWith = (cps: Checkpoint[]): unknown => ztocToToc(base.ztoc, { version: 2, spanSize: 8192, checkpoints: cps });

/** Replaces the last occurrence of `find` in a copy of `bytes` (builder output is written back to front). */
function patchLast(bytes: Uint8Array, find: Uint8Array | string, replace: Uint8Array | string): Uint8Array {
  const b = Buffer.from(bytes);
  const f = Buffer.from(find);
  const at = b.lastIndexOf(f);
  if (at < 0) throw new Error(`test bug: ${String(find)} not found`);
  Buffer.from(replace).copy(b, at);
  return new Uint8Array(b);
}
const le64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n);
  return b;
};

/** A zTOC whose metadata vector claims `count` entries, all pointing at one small table: 4 bytes each. */
function manyEntries(count: number): Uint8Array {
  const b = new Builder(count * 4 + 1024);
  const name = b.createString('x');
  b.startObject(14);
  b.addFieldOffset(0, name, 0);
  const entry = b.endObject();
  b.startVector(4, count, 4);
  for (let i = 0; i < count; i++) b.addOffset(entry);
  const vec = b.endVector();
  b.startObject(1);
  b.addFieldOffset(0, vec, 0);
  const toc = b.endObject();
  const version = b.createString('0.9');
  b.startObject(6);
  b.addFieldOffset(0, version, 0);
  b.addFieldOffset(4, toc, 0);
  b.finish(b.endObject());
  return b.asUint8Array().slice();
}

interface Case {
  readonly name: string;
  readonly run: () => unknown;
  readonly message: RegExp;
}

const cases: Case[] = [
  // Broken flatbuffers.
  { name: 'empty zTOC', run: () => decodeZtoc(new Uint8Array(0)), message: /^zTOC: 0 bytes is too short for a flatbuffer/ },
  { name: 'garbage zTOC', run: () => decodeZtoc(new Uint8Array(64).fill(0xff)), message: /^zTOC: table at 4294967295 is past the end of the 64-byte buffer$/ },
  { name: 'zTOC cut to 16 bytes', run: () => decodeZtoc(good.subarray(0, 16)), message: /^zTOC: table at \d+ is past the end of the 16-byte buffer$/ },
  { name: 'zTOC missing its last byte', run: () => decodeZtoc(good.subarray(0, good.length - 1)), message: /^zTOC(\.\w+)*: .*(past the end|outside the)/ },
  { name: 'zTOC cut in half', run: () => decodeZtoc(good.subarray(0, good.length >> 1)), message: /^zTOC(\.\w+)*: .*(past the end|outside the)/ },
  { name: 'zTOC above maxTocBytes', run: () => decodeZtoc(good, { maxTocBytes: 1000 }), message: /^zTOC of \d+ bytes is above maxTocBytes 1000$/ },
  // zTOC fields.
  { name: 'version 1.0', run: () => decodeZtoc(patchLast(good, '0.9', '1.0')), message: /^zTOC\.version: "1\.0" is not "0\.9"$/ },
  { name: 'unknown entry type', run: () => decodeZtoc(encodeZtoc(withEntry('etc/a', { type: 'sock' as ZtocEntryType }))), message: /^zTOC entry #1 "etc\/a": type "sock" is not one of reg, dir/ },
  { name: 'negative uncompressed_size', run: () => decodeZtoc(patchLast(good, le64(123_456n), le64(-1n))), message: /^zTOC\.toc\.metadata\[2\]\.uncompressed_size: -1 is not a non-negative safe integer$/ },
  { name: 'uncompressed_size above 2^53', run: () => decodeZtoc(patchLast(good, le64(123_456n), le64(2n ** 60n))), message: /^zTOC\.toc\.metadata\[2\]\.uncompressed_size: 1152921504606846976 is not a non-negative safe integer$/ },
  { name: 'name not UTF-8', run: () => decodeZtoc(patchLast(good, 'etc/b', Buffer.from([0x65, 0x74, 0x63, 0x2f, 0xff]))), message: /^zTOC\.toc\.metadata\[2\]\.name: string is not valid UTF-8$/ },
  { name: 'mod_time not RFC 3339', run: () => decodeZtoc(encodeZtoc(withEntry('etc/a', { modTime: 'yesterday' }))), message: /^zTOC entry #1 "etc\/a": mod_time: modtime "yesterday" is not RFC 3339$/ },
  { name: 'duplicate xattr key', run: () => decodeZtoc(encodeZtoc(withEntry('etc/a', { xattrs: [{ key: 'k', value: new Uint8Array(1) }, { key: 'k', value: new Uint8Array(2) }] }))), message: /^zTOC entry #1 "etc\/a": xattrs: duplicate key "k"$/ },
  { name: '10^6 entries past maxEntries', run: () => decodeZtoc(manyEntries(1_000_000), { maxEntries: 999_999 }), message: /^zTOC\.toc\.metadata: 1000000 entries, above maxEntries 999999$/ },
  { name: 'no compression_info', run: () => decodeZtoc(manyEntries(0)), message: /^zTOC: compression_info is missing$/ },
  { name: 'compression Uncompressed', run: () => decodeZtoc(rawZtoc({ algorithm: 2, maxSpanId: 0, digests: 1 })), message: /^zTOC\.compression_info\.compression_algorithm: Uncompressed/ },
  { name: 'span digests fewer than max_span_id + 1', run: () => decodeZtoc(rawZtoc({ algorithm: 1, maxSpanId: 3, digests: 1 })), message: /^zTOC\.compression_info\.span_digests: \d+ digests, max_span_id \d+ needs \d+$/ },
  { name: 'span digest not sha256', run: () => decodeZtoc(encodeZtoc({ ...base.ztoc, compression: { ...base.ztoc.compression, spanDigests: ['md5:00', ...base.ztoc.compression.spanDigests.slice(1)] } })), message: /^zTOC\.compression_info\.span_digests\[0\]: digest "md5:00" is not sha256:<64 hex>$/ },
  // Checkpoint blobs.
  { name: 'zinfo shorter than its header', run: () => decodeZinfo(new Uint8Array(11)), message: /^zinfo: 11 bytes is shorter than its 12-byte header$/ },
  { name: 'zinfo count 0', run: () => decodeZinfo(new Uint8Array(12)), message: /^zinfo count: 0 checkpoints; a gzip stream has at least one$/ },
  { name: 'window of the wrong size', run: () => decodeZinfo(base.ztoc.compression.checkpoints.subarray(0, base.ztoc.compression.checkpoints.length - 1)), message: /^zinfo: \d+ bytes hold not a whole number of 32785-byte checkpoints \(in, out, bits and a 32768-byte window\); count \d+ needs \d+ bytes \(v2\) or \d+ \(v1\)$/ },
  { name: 'one checkpoint too many', run: () => decodeZinfo(new Uint8Array([...base.ztoc.compression.checkpoints, ...new Uint8Array(ZINFO_CHECKPOINT_SIZE)])), message: /^zinfo: \d+ bytes hold \d+ checkpoints; count \d+ needs/ },
  { name: 'bits 8', run: () => decodeZinfo(patchByte(base.ztoc.compression.checkpoints, ZINFO_HEADER_SIZE + ZINFO_CHECKPOINT_SIZE + 16, 8)), message: /^zinfo checkpoint 1 bits: 8 is not 0\.\.7$/ },
  { name: 'in out of order', run: () => decodeZinfo(withCheckpoints((c) => ((c[2] = { ...c[2]!, in: c[1]!.in }), c))), message: /^zinfo checkpoint 2 in: \d+ is not after checkpoint 1's \d+$/ },
  { name: 'out out of order', run: () => decodeZinfo(withCheckpoints((c) => ((c[2] = { ...c[2]!, out: c[1]!.out - 1 }), c))), message: /^zinfo checkpoint 2 out: \d+ is not after checkpoint 1's \d+$/ },
  { name: 'checkpoint 0 not at out 0', run: () => decodeZinfo(withCheckpoints((c) => ((c[0] = { ...c[0]!, out: 5 }), c))), message: /^zinfo checkpoint 0 out: 5, not 0/ },
  { name: 'negative in', run: () => decodeZinfo(patchBytes(base.ztoc.compression.checkpoints, ZINFO_HEADER_SIZE, le64(-5n))), message: /^zinfo checkpoint 0 in: -5 is not a non-negative safe integer$/ },
  // Checkpoints against the zTOC.
  { name: 'in past the blob', run: () => toTocWith(base.checkpoints.map((c, i, all) => (i === all.length - 1 ? { ...c, in: base.blob.length } : c))), message: /^zinfo checkpoint \d+ in: \d+ is not inside the \d+-byte compressed archive$/ },
  { name: 'out past the tar', run: () => toTocWith(base.checkpoints.map((c, i, all) => (i === all.length - 1 ? { ...c, out: base.tar.length + 1 } : c))), message: /^zinfo checkpoint \d+ out: \d+ is not inside the \d+-byte uncompressed archive$/ },
  { name: 'fewer checkpoints than spans', run: () => toTocWith(base.checkpoints.slice(0, -1)), message: /^zinfo count: \d+ checkpoints, max_span_id \d+ needs \d+$/ },
  // Entries.
  { name: 'overlapping file ranges', run: () => toToc(withEntry('etc/b', { uncompressedOffset: base.ztoc.entries[1]!.uncompressedOffset + 100 })), message: /^zTOC entry #2 "etc\/b": uncompressed_offset \d+ overlaps zTOC entry #1 "etc\/a", whose data ends at \d+$/ },
  { name: 'range past the uncompressed size', run: () => toToc(withEntry('etc/b', { uncompressedSize: base.tar.length })), message: /^zTOC entry #2 "etc\/b": uncompressed range \[\d+, \d+\) is past uncompressed_archive_size \d+$/ },
  { name: 'name escaping the root', run: () => toToc(withEntry('etc/a', { name: 'etc/../../x' })), message: /^TOC entry #1 "etc\/\.\.\/\.\.\/x": name has a "\.\." component \(path traversal out of the layer\)$/ },
  { name: 'hardlink escaping the root', run: () => toToc(withEntry('etc/c', { linkname: '../etc/a' })), message: /^TOC entry #\d+ "etc\/c": name has a "\.\." component/ },
  { name: 'file above maxFileBytes', run: () => ztocToToc(base.ztoc, decodeZinfo(base.ztoc.compression.checkpoints), { maxFileBytes: 1000 }), message: /^zTOC entry #1 "etc\/a": uncompressed_size 3000 is above maxFileBytes 1000$/ },
  { name: 'span above maxChunkBytes', run: () => ztocToToc(base.ztoc, decodeZinfo(base.ztoc.compression.checkpoints), { maxChunkBytes: 100 }), message: /^TOC entry #\d+ "etc\/a": chunk needs \d+ uncompressed bytes, above maxChunkBytes 100$/ },
];

function patchByte(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = value;
  return copy;
}

function patchBytes(bytes: Uint8Array, at: number, value: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy.set(value, at);
  return copy;
}

/** A zTOC with no entries and a hand-written CompressionInfo, to write what encodeZtoc refuses. */
function rawZtoc(info: { algorithm: number; maxSpanId: number; digests: number }): Uint8Array {
  const b = new Builder(1024);
  const version = b.createString('0.9');
  const digests = Array.from({ length: info.digests }, () => b.createString(base.ztoc.compression.spanDigests[0]!));
  b.startVector(4, digests.length, 4);
  for (const d of digests.reverse()) b.addOffset(d);
  const vector = b.endVector();
  b.startObject(4);
  b.addFieldInt8(0, info.algorithm, 1);
  b.addFieldInt32(1, info.maxSpanId, 0);
  b.addFieldOffset(2, vector, 0);
  const table = b.endObject();
  b.startObject(6);
  b.addFieldOffset(0, version, 0);
  b.addFieldOffset(5, table, 0);
  b.finish(b.endObject());
  return b.asUint8Array().slice();
}

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.throws(c.run, { name: 'FormatError', code: 'FORMAT', message: c.message });
  });
}

t.test('the base is valid', async (t) => {
  t.ok(ztocToToc(decodeZtoc(good), decodeZinfo(base.ztoc.compression.checkpoints)).index.lookup('etc/c'));
});
