import t from 'tap';
import { createHash } from 'node:crypto';
import { DigestMismatchError, FormatError } from '../../src/errors.js';
import { createDigestVerifier, digestOf, isDigest, parseDigest } from '../../src/registry/digest.js';

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HELLO = new TextEncoder().encode('hello');
const HELLO_SHA256 = 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';

t.test('parseDigest splits sha256 and sha512 digests', async (t) => {
  t.same(parseDigest(EMPTY_SHA256), { algorithm: 'sha256', hex: EMPTY_SHA256.slice(7) });
  const sha512 = `sha512:${'0'.repeat(128)}`;
  t.same(parseDigest(sha512), { algorithm: 'sha512', hex: '0'.repeat(128) });
});

t.test('parseDigest rejects malformed digests with FORMAT naming the problem', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /algorithm:hex/],
    ['sha256', /algorithm:hex/],
    [':abc', /empty algorithm/],
    ['sha256:', /empty hex/],
    [`sha256:${'a'.repeat(63)}`, /64 hex digits, got 63/],
    [`sha256:${'a'.repeat(65)}`, /64 hex digits, got 65/],
    [`sha256:${'A'.repeat(64)}`, /lower-case hex/],
    [`sha256:${'z'.repeat(64)}`, /lower-case hex/],
    [`sha512:${'a'.repeat(64)}`, /128 hex digits/],
    [`md5:${'a'.repeat(32)}`, /unsupported digest algorithm "md5"/],
    [`SHA256:${'a'.repeat(64)}`, /unsupported digest algorithm/],
    [`blake3:${'a'.repeat(64)}`, /unsupported/],
    [`sha256:${'a'.repeat(32)}:${'a'.repeat(31)}`, /lower-case hex/],
  ];
  for (const [s, re] of cases) {
    t.throws(() => parseDigest(s), FormatError, JSON.stringify(s));
    t.throws(() => parseDigest(s), { code: 'FORMAT', message: re }, JSON.stringify(s));
    t.notOk(isDigest(s), `isDigest(${JSON.stringify(s)})`);
  }
});

t.test('isDigest accepts only well-formed strings', async (t) => {
  t.ok(isDigest(EMPTY_SHA256));
  t.notOk(isDigest(undefined));
  t.notOk(isDigest(42));
});

t.test('digestOf hashes whole buffers', async (t) => {
  t.equal(digestOf(new Uint8Array()), EMPTY_SHA256);
  t.equal(digestOf(HELLO), HELLO_SHA256);
  t.equal(digestOf(HELLO, 'sha512'), `sha512:${createHash('sha512').update(HELLO).digest('hex')}`);
});

t.test('a verifier fed in pieces agrees with the digest of the whole', async (t) => {
  const bytes = new Uint8Array(10_000).map((_, i) => (i * 31) % 251);
  const expected = digestOf(bytes);
  for (const piece of [1, 7, 511, 4096, 10_000]) {
    const v = createDigestVerifier(expected);
    for (let off = 0; off < bytes.length; off += piece) v.update(bytes.subarray(off, off + piece));
    t.equal(v.bytes, bytes.length, `counts bytes, pieces of ${piece}`);
    t.doesNotThrow(() => v.verify('blob'), `verifies, pieces of ${piece}`);
    t.equal(v.digest(), expected, 'digest() after verify() returns the same value');
  }
});

t.test('a verifier throws DigestMismatchError naming the object and both digests', async (t) => {
  const v = createDigestVerifier(EMPTY_SHA256);
  v.update(HELLO);
  let caught: unknown;
  try {
    v.verify('layer sha256:abc');
  } catch (err) {
    caught = err;
  }
  t.type(caught, DigestMismatchError);
  const err = caught as DigestMismatchError;
  t.equal(err.code, 'BAD_DATA');
  t.equal(err.expected, EMPTY_SHA256);
  t.equal(err.actual, HELLO_SHA256);
  t.match(err.message, 'layer sha256:abc');
});

t.test('a verifier works with sha512', async (t) => {
  const v = createDigestVerifier(digestOf(HELLO, 'sha512'));
  v.update(HELLO);
  t.doesNotThrow(() => v.verify('blob'));
});

t.test('a verifier refuses a malformed expected digest before any byte is read', async (t) => {
  t.throws(() => createDigestVerifier('sha256:nope'), { code: 'FORMAT' });
});

t.test('a verifier refuses bytes after its digest was taken', async (t) => {
  const v = createDigestVerifier(EMPTY_SHA256);
  t.equal(v.digest(), EMPTY_SHA256);
  t.throws(() => v.update(HELLO), /after the digest/);
});
