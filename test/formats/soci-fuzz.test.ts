// A seeded mutation fuzzer over SOCI inputs: zTOC flatbuffer bytes, checkpoint blobs, zTOC field values
// and SOCI index JSON. Whatever the mutation, decoding either succeeds or throws a TocfsError, never a
// TypeError, RangeError or anything else. Deterministic: a failure names its seed and mutation.
import t from 'tap';
import { TocfsError } from '../../src/errors.js';
import { parseSociIndex, writeSociIndex } from '../../src/formats/soci/index-manifest.js';
import { decodeZinfo } from '../../src/formats/soci/zinfo.js';
import { decodeZtoc, type Ztoc, type ZtocEntry } from '../../src/formats/soci/ztoc.js';
import { encodeZtoc } from '../../src/formats/soci/ztoc-encode.js';
import { tarRangeOf, ztocToToc } from '../../src/formats/soci/ztoc-toc.js';
import { prng } from '../support/prng.js';
import { buildSoci } from '../support/soci-build.js';
import { VECTORS } from '../support/vectors.js';

const SEED = 0x50c1;
const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const bases = ['hardlink to chunked file', 'xattrs', './ and / prefixes', 'special files'].map((name) =>
  // Few spans: each checkpoint is 32 KiB, and every round copies the whole zTOC.
  buildSoci(VECTORS.find((v) => v.name === name)!.entries, { spanSize: 1536 }),
);

const encoded = bases.map((b) => encodeZtoc(b.ztoc));
for (const b of bases) if (b.checkpoints.length < 2) throw new Error('test bug: a base needs two spans or more');

let accepted = 0;
let rejected = 0;
const unexpected: string[] = [];

function attempt(what: string, run: () => void): void {
  try {
    run();
    accepted++;
  } catch (err) {
    if (err instanceof TocfsError) rejected++;
    else unexpected.push(`${what}: ${(err as Error)?.stack ?? String(err)}`);
  }
}

/** Decodes everything a reader would, and uses the index. */
function full(bytes: Uint8Array): void {
  const ztoc = decodeZtoc(bytes, { maxEntries: 10_000 });
  const zinfo = decodeZinfo(ztoc.compression.checkpoints);
  const soci = ztocToToc(ztoc, zinfo);
  for (const [path, entry] of soci.index.walk()) {
    soci.index.lookup(path);
    if (entry.type === 'dir') soci.index.children(path);
    if (entry.type === 'reg') tarRangeOf(soci, entry);
  }
}

/**
 * A position to mutate, biased towards the tables: the Builder writes back to front, so the root and
 * CompressionInfo tables sit at the front and the entries (written first) at the back, while the middle
 * is mostly checkpoint windows.
 */
function position(length: number): number {
  const r = rand();
  if (r < 0.3) return int(Math.min(length, 512));
  if (r < 0.7) return Math.max(0, length - 1 - int(Math.min(length, 8192)));
  return int(length);
}

function mutateBytes(bytes: Uint8Array): [string, Uint8Array] {
  const b = bytes.slice();
  switch (int(6)) {
    case 0: {
      const at = position(b.length);
      b[at] = int(256);
      return [`byte ${at}`, b];
    }
    case 1: {
      const n = int(b.length);
      return [`truncate to ${n}`, b.subarray(0, n)];
    }
    case 2: {
      // Offsets and lengths are u32/i32: overwrite an aligned word with an interesting value.
      const at = Math.max(0, Math.min(position(b.length), b.length - 4)) & ~3;
      const v = pick([0, 1, 4, 0x7fffffff, 0xffffffff, 0x80000000, b.length, b.length - 4, 12]);
      new DataView(b.buffer).setUint32(at, v >>> 0, true);
      return [`word ${at}=${v}`, b];
    }
    case 3: {
      const at = position(b.length);
      for (let i = 0; i < 8 && at + i < b.length; i++) b[at + i] = int(256);
      return [`8 bytes at ${at}`, b];
    }
    case 4: {
      const at = position(b.length);
      const grown = new Uint8Array(b.length + 1);
      grown.set(b.subarray(0, at));
      grown[at] = int(256);
      grown.set(b.subarray(at), at + 1);
      return [`insert at ${at}`, grown];
    }
    default: {
      const at = Math.max(0, Math.min(position(b.length), b.length - 2)) & ~1;
      new DataView(b.buffer).setUint16(at, pick([0, 2, 4, 0xffff, 0x8000]), true);
      return [`u16 at ${at}`, b];
    }
  }
}

// Values of each field's own type: ztocToToc takes a typed Ztoc, so a string where a number belongs is a
// caller's type error, not input it must survive.
const NUMBERS: readonly number[] = [-1, 0, 1, 511, 512, 513, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1.5, NaN];
const STRINGS: readonly string[] = ['', '..', '../x', '/', 'a/b', '\u0000', 'reg', 'dir', 'hardlink', 'symlink', 'char', '0001-01-01T00:00:00Z', 'x'.repeat(5000)];
const FIELDS: readonly (keyof ZtocEntry)[] = ['name', 'type', 'uncompressedOffset', 'uncompressedSize', 'linkname', 'mode', 'uid', 'gid', 'modTime', 'devmajor', 'devminor'];
const STRING_FIELDS = new Set<keyof ZtocEntry>(['name', 'type', 'linkname', 'modTime']);

function mutateZtoc(z: Ztoc): [string, Ztoc] {
  const entries = [...z.entries];
  const i = int(entries.length);
  const field = pick(FIELDS);
  const value = STRING_FIELDS.has(field) ? pick(STRINGS) : pick(NUMBERS);
  entries[i] = { ...entries[i]!, [field]: value };
  if (rand() < 0.2) entries.reverse();
  if (rand() < 0.2) entries.push(entries[int(entries.length)]!);
  return [`entry ${i} ${field}=${JSON.stringify(value)?.slice(0, 20)}`, { ...z, entries }];
}

t.test('mutated zTOC bytes throw only TocfsError', async (t) => {
  for (let round = 0; round < 1500; round++) {
    const base = bases[round % bases.length]!;
    const [what, bytes] = mutateBytes(encoded[round % bases.length]!);
    attempt(`round ${round} ${what}`, () => full(bytes));
  }
  t.same(unexpected, []);
});

t.test('mutated checkpoint blobs throw only TocfsError', async (t) => {
  for (let round = 0; round < 800; round++) {
    const base = bases[round % bases.length]!;
    const [what, blob] = mutateBytes(base.ztoc.compression.checkpoints);
    attempt(`round ${round} ${what}`, () => {
      ztocToToc(base.ztoc, decodeZinfo(blob));
    });
  }
  t.same(unexpected, []);
});

t.test('mutated zTOC fields throw only TocfsError', async (t) => {
  for (let round = 0; round < 1500; round++) {
    const base = bases[round % bases.length]!;
    const [what, z] = mutateZtoc(base.ztoc);
    attempt(`round ${round} ${what}`, () => {
      // Values the encoder refuses are InvalidOptionError (a TocfsError); the rest must decode or FormatError.
      full(encodeZtoc(z));
    });
    attempt(`round ${round} ${what} (no encode)`, () => {
      ztocToToc(z, decodeZinfo(z.compression.checkpoints));
    });
  }
  t.same(unexpected, []);
});

t.test('mutated SOCI index JSON throws only TocfsError', async (t) => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const { bytes } = writeSociIndex({
    version: 'v1',
    subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 500 },
    ztocs: [{ ztoc: { mediaType: 'application/octet-stream', digest, size: 9 }, layerDigest: digest, layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', spanSize: 4194304, disableXattrs: false }],
    buildToolIdentifier: 'tocfs',
  });
  for (let round = 0; round < 1500; round++) {
    const [what, b] = mutateBytes(bytes);
    attempt(`round ${round} ${what}`, () => void parseSociIndex(b));
  }
  t.same(unexpected, []);
});

t.test('the fuzzer reached both outcomes', async (t) => {
  t.ok(accepted > 0, `accepted ${accepted}`);
  t.ok(rejected > 0, `rejected ${rejected}`);
});
