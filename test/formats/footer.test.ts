// The 51-byte eStargz and 47-byte legacy stargz footers (DESIGN.md §3.1): round trips over many offsets,
// the exact bytes, what the reference tolerates, and rejection of every short, long or garbage tail.
import { encodeZstdChunkedFooter, parseZstdFooter, ZSTD_CHUNKED_FOOTER_LENGTH, ZSTD_LEGACY_FOOTER_LENGTH } from '../../src/formats/zstd/footer.js';
import { estargzZstdCodec, zstdChunkedCodec } from '../../src/formats/zstd/codec.js';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { FormatError } from '../../src/errors.js';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import { estargzCodec, legacyStargzCodec } from '../../src/formats/estargz/codec.js';
import {
  ESTARGZ_FOOTER_LENGTH,
  LEGACY_FOOTER_LENGTH,
  encodeFooter,
  parseEstargzFooter,
  parseLegacyFooter,
  type FooterKind,
} from '../../src/formats/estargz/footer.js';
import { xorshift32 } from '../support/prng.js';

const KINDS: readonly [FooterKind, number, typeof parseEstargzFooter][] = [
  ['estargz', ESTARGZ_FOOTER_LENGTH, parseEstargzFooter],
  ['legacy', LEGACY_FOOTER_LENGTH, parseLegacyFooter],
];

/** Deterministic bytes for garbage tails (xorshift32). */
function* noise(seed: number): Generator<number> {
  const next = xorshift32(seed);
  for (;;) yield next() & 0xff;
}

t.test('the bytes are the ones DESIGN.md §3.1 lists', async (t) => {
  const hex = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
  t.equal(
    Buffer.from(encodeFooter(0x1234abcd, 'estargz')).toString('hex'),
    `1f8b08040000000000ff1a00534716 00${hex('000000001234abcdSTARGZ')}010000ffff0000000000000000`.replace(' ', ''),
  );
  t.equal(
    Buffer.from(encodeFooter(0x1234abcd, 'legacy')).toString('hex'),
    `1f8b08040000000000ff1600${hex('000000001234abcdSTARGZ')}010000ffff0000000000000000`,
  );
  for (const [kind, length] of KINDS) {
    const footer = encodeFooter(7, kind);
    t.equal(footer.length, length);
    t.equal(gunzipSync(footer).length, 0, `${kind}: an empty, valid gzip member`);
  }
  t.equal(MAX_FOOTER_LENGTH, 72);
  t.equal(estargzCodec.footerLength, 51);
  t.equal(legacyStargzCodec.footerLength, 47);
});

t.test('round trip: offsets 0..2^20 step 1023, and the largest safe integer', async (t) => {
  for (const [kind, length, parse] of KINDS) {
    let checked = 0;
    for (let offset = 0; offset <= 2 ** 20; offset += 1023) {
      const got = parse(encodeFooter(offset, kind), offset + length + 1);
      if (got.tocOffset !== offset || got.footerLength !== length) t.fail(`${kind}: ${offset} came back as ${got.tocOffset}`);
      checked++;
    }
    const max = Number.MAX_SAFE_INTEGER - 100;
    t.equal(parse(encodeFooter(max, kind), Number.MAX_SAFE_INTEGER).tocOffset, max);
    t.pass(`${kind}: ${checked} offsets`);
  }
  t.throws(() => encodeFooter(-1, 'estargz'), RangeError);
  t.throws(() => encodeFooter(2 ** 53, 'estargz'), RangeError);
  t.throws(() => encodeFooter(1.5, 'legacy'), RangeError);
});

t.test('codec.parseFooter gives the TOC location', async (t) => {
  t.same(estargzCodec.parseFooter(encodeFooter(100, 'estargz'), 300), { format: 'estargz-gzip', tocOffset: 100, tocLength: 149, footerLength: 51 });
  t.same(legacyStargzCodec.parseFooter(encodeFooter(100, 'legacy'), 300), { format: 'stargz-legacy', tocOffset: 100, tocLength: 153, footerLength: 47 });
});

t.test('the TOC offset must lie before the footer, in a blob that can hold one', async (t) => {
  for (const [kind, length, parse] of KINDS) {
    t.throws(() => parse(encodeFooter(100, kind), 100 + length), FormatError, `${kind}: TOC offset at the footer`);
    t.throws(() => parse(encodeFooter(100, kind), 50), FormatError, `${kind}: TOC offset past EOF`);
    t.throws(() => parse(encodeFooter(0, kind), length), FormatError, `${kind}: blob is only the footer`);
    t.throws(() => parse(encodeFooter(0, kind), length - 1), FormatError, `${kind}: blob smaller than the footer`);
    t.throws(() => parse(encodeFooter(0, kind), Number.NaN), FormatError, `${kind}: blob size NaN`);
  }
});

t.test('hex: upper case accepted (Go ParseInt does), signs, spaces and 2^53+ rejected', async (t) => {
  for (const [kind, length, parse] of KINDS) {
    const at = kind === 'estargz' ? 16 : 12;
    const withHex = (digits: string): Uint8Array => {
      const f = Buffer.from(encodeFooter(0, kind));
      f.write(digits, at, 'latin1');
      return f;
    };
    t.equal(parse(withHex('00000000DEADBEEF'), 2 ** 40).tocOffset, 0xdeadbeef, `${kind}: upper case`);
    for (const digits of ['-000000000000001', '+000000000000001', ' 00000000000000f', '000000000000000g', '0x0000000000000f', '0020000000000000', 'ffffffffffffffff']) {
      t.throws(() => parse(withHex(digits), 2 ** 60), FormatError, `${kind}: ${digits}`);
    }
    t.equal(length, encodeFooter(0, kind).length);
  }
});

t.test('MTIME, XFL and OS are not checked (the reference reads the header with gzip.NewReader)', async (t) => {
  for (const [kind, , parse] of KINDS) {
    const f = Buffer.from(encodeFooter(42, kind));
    f.set([1, 2, 3, 4, 2, 3], 4);
    t.equal(parse(f, 1000).tocOffset, 42, kind);
  }
});

t.test('every checked byte outside the offset digits, flipped, rejects', async (t) => {
  for (const [kind, length, parse] of KINDS) {
    const good = encodeFooter(0x55, kind);
    const digits = kind === 'estargz' ? 16 : 12;
    let rejected = 0;
    for (let i = 0; i < length; i++) {
      // MTIME/XFL/OS are free; a flipped digit may be another valid offset (the footer has no checksum).
      if ((i >= 4 && i < 10) || (i >= digits && i < digits + 16)) continue;
      for (const mask of [0x01, 0x80, 0xff]) {
        const f = Buffer.from(good);
        f[i]! ^= mask;
        try {
          parse(f, 1 << 20);
          t.fail(`${kind}: byte ${i} ^ 0x${mask.toString(16)} accepted`);
        } catch (err) {
          if (!(err instanceof FormatError)) throw err;
          rejected++;
        }
      }
    }
    t.equal(rejected, (length - 22) * 3, `${kind}: every flip of every checked byte`);
  }
});

t.test('every short, long and garbage tail rejects', async (t) => {
  for (const [kind, length, parse] of KINDS) {
    const good = encodeFooter(0x1000, kind);
    for (let n = 0; n <= 64; n++) {
      if (n === length) continue;
      const tail = n <= length ? good.subarray(length - n) : Buffer.concat([Buffer.alloc(n - length), good]);
      t.throws(() => parse(tail, 1 << 20), FormatError, `${kind}: ${n}-byte tail`);
    }
    const bytes = noise(kind.length);
    for (let i = 0; i < 200; i++) {
      const garbage = Uint8Array.from({ length }, () => bytes.next().value!);
      t.throws(() => parse(garbage, 1 << 20), FormatError);
    }
    t.throws(() => parse(new Uint8Array(length), 1 << 20), FormatError, `${kind}: zeros`);
    t.throws(() => parse(new Uint8Array(length).fill(0xff), 1 << 20), FormatError, `${kind}: ones`);
  }
});

t.test('detectTocCodec tries every codec and keeps every reason', async (t) => {
  const blobSize = 10_000;
  const estargzTail = encodeFooter(10, 'estargz');
  const got = detectTocCodec(estargzTail, blobSize);
  t.equal(got.codec, estargzCodec);
  t.equal(got.location.tocOffset, 10);

  // A legacy blob's last 51 bytes: 4 bytes of the TOC member's trailer, then the 47-byte footer.
  const legacyTail = Buffer.concat([Buffer.from([9, 9, 9, 9]), encodeFooter(10, 'legacy')]);
  const legacy = detectTocCodec(legacyTail, blobSize);
  t.equal(legacy.codec, legacyStargzCodec);
  t.equal(legacy.location.footerLength, 47);
  t.equal(detectTocCodec(encodeFooter(10, 'legacy'), blobSize).codec, legacyStargzCodec, 'a tail of exactly 47 bytes');

  for (const tail of [new Uint8Array(0), new Uint8Array(51), estargzTail.subarray(1)]) {
    try {
      detectTocCodec(tail, blobSize, { layer: 'sha256:abc' });
      t.fail('accepted');
    } catch (err) {
      t.ok(err instanceof FormatError, 'a FormatError (code FORMAT)');
      t.match((err as Error).message, 'layer sha256:abc has no TOC footer tocfs understands');
      const cause = (err as Error).cause;
      t.ok(cause instanceof AggregateError, 'caused by an AggregateError');
      t.equal((cause as AggregateError).errors.length, 4, 'one reason per codec (zstd:chunked, eStargz-zstd, eStargz, legacy)');
      t.ok((cause as AggregateError).errors.every((e) => e instanceof FormatError));
    }
  }
});

t.test('zstd footers: 64-byte GNUlInUx and 40-byte GnUlInUx, each in its skippable frame; round trip over many offsets', async (t) => {
  const blobSize = 2 ** 40;
  for (let off = 8; off < 2 ** 20; off += 1023) {
    const tail = encodeZstdChunkedFooter({ tocOffset: off, tocLength: 17, tocUncompressedLength: 99, tarSplitOffset: off + 25, tarSplitLength: 3, tarSplitUncompressedLength: 4 });
    const f = parseZstdFooter(tail, blobSize, 'current');
    if (f.tocOffset !== off || f.tocLength !== 17 || f.tocUncompressedLength !== 99 || f.tarSplit?.offset !== off + 25) t.fail(`offset ${off}`);
  }
  const tail = encodeZstdChunkedFooter({ tocOffset: 100, tocLength: 10, tocUncompressedLength: 20, tarSplitOffset: 118, tarSplitLength: 5, tarSplitUncompressedLength: 6 });
  t.equal(tail.length, ZSTD_CHUNKED_FOOTER_LENGTH);
  t.equal(detectTocCodec(tail, 1000).codec, zstdChunkedCodec);
  const legacy = Buffer.alloc(ZSTD_LEGACY_FOOTER_LENGTH);
  legacy.writeUInt32LE(0x184d2a50, 0);
  legacy.writeUInt32LE(40, 4);
  [100, 10, 20, 1].forEach((v, i) => legacy.writeBigUInt64LE(BigInt(v), 8 + 8 * i));
  legacy.write('GnUlInUx', 40, 'latin1');
  const found = detectTocCodec(legacy, 1000);
  t.equal(found.codec, estargzZstdCodec);
  t.same(found.location, { format: 'estargz-zstd', tocOffset: 100, tocLength: 10, tocUncompressedLength: 20, footerLength: 48 });
  for (const [kind, bytes] of [['current', tail], ['legacy', legacy]] as const) {
    for (let cut = 0; cut < bytes.length; cut += 7) t.throws(() => parseZstdFooter(bytes.subarray(cut + 1), 1000, kind), FormatError, `${kind}: short by ${cut + 1}`);
    t.throws(() => parseZstdFooter(Buffer.concat([bytes, Buffer.from([0])]), 1000, kind), FormatError, `${kind}: one byte long`);
    t.throws(() => parseZstdFooter(new Uint8Array(bytes.length), 1000, kind), FormatError, `${kind}: zeros`);
    t.throws(() => parseZstdFooter(bytes, 50, kind), /does not fit before the footer/, `${kind}: TOC past a small blob`);
  }
});
