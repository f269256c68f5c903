// A corpus of broken eStargz inputs, each with the exact error code and a fragment of the message it
// must produce (STYLE.md "Malformed corpus with exact expectations"). Nothing here may crash, hang, or
// fail with anything but a TocfsError.
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { Header, Pax } from 'tar';
import { TocfsError } from '../../src/errors.js';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import { encodeFooter } from '../../src/formats/estargz/footer.js';
import { indexToc } from '../../src/formats/toc-index.js';
import type { RawTocEntry, TocLimits } from '../../src/formats/toc.js';
import { blobWithToc, buildEstargz, tocMember, tocTar } from '../support/estargz-build.js';
import { decodeBlob } from '../support/format-suite.js';
import { file } from '../support/tar-dsl.js';

type Toc = { version: unknown; entries: Record<string, unknown>[] };

interface Case {
  readonly name: string;
  readonly expectCode: TocfsError['code'];
  readonly messageFragment: string;
  /** A whole blob, decoded as a reader would (footer, TOC, index). */
  readonly bytes?: (good: Buffer, tocOffset: number) => Buffer;
  /** A change to the good TOC JSON, re-wrapped into a blob with the same data members. */
  readonly json?: (toc: Toc) => unknown;
  /** Raw entries straight into indexToc (tocOffset 1000). */
  readonly raw?: RawTocEntry[];
  readonly limits?: Partial<TocLimits>;
}

const D = `sha256:${'a'.repeat(64)}`;
const good = await buildEstargz([file('a', 'abcdefghij'), file('b', 'klmnopqrst')], { chunkSize: 4, gzipLevel: 6 });
const data = good.blob.subarray(0, good.tocOffset);
const baseToc = (): Toc => JSON.parse(good.tocJson.toString()) as Toc;
const entry = (toc: Toc, i: number): Record<string, unknown> => toc.entries[i]!;
const withTar = (tar: Buffer): Buffer => Buffer.concat([data, gzipSync(tar), encodeFooter(data.length, 'estargz')]);

function tarEntry(name: string, body: Buffer, type: 'File' | 'Directory' | 'ExtendedHeader' | 'NextFileHasLongLinkpath' = 'File'): Buffer {
  const h = new Header({ path: name, type, size: body.length, mode: 0o644, mtime: new Date(0) });
  h.encode();
  return Buffer.concat([h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

const CASES: Case[] = [
  // Footer and location.
  { name: 'truncated footer', expectCode: 'FORMAT', messageFragment: 'has no TOC footer', bytes: (b) => b.subarray(0, b.length - 1) },
  { name: 'blob shorter than any footer', expectCode: 'FORMAT', messageFragment: 'has no TOC footer', bytes: (b) => b.subarray(b.length - 20) },
  {
    name: 'wrong magic',
    expectCode: 'FORMAT',
    messageFragment: 'has no TOC footer',
    bytes: (b) => Buffer.concat([b.subarray(0, b.length - 51), Buffer.from(encodeFooter(good.tocOffset, 'estargz')).fill(0x59, 37, 38)]),
  },
  { name: 'tocOffset past EOF', expectCode: 'FORMAT', messageFragment: 'has no TOC footer', bytes: (b) => Buffer.concat([b.subarray(0, b.length - 51), encodeFooter(b.length + 10, 'estargz')]) },
  // The TOC member.
  { name: 'TOC not gzip', expectCode: 'FORMAT', messageFragment: 'is not gzip', bytes: () => Buffer.concat([data, tocTar(good.tocJson), encodeFooter(data.length, 'estargz')]) },
  { name: 'TOC gzip truncated', expectCode: 'FORMAT', messageFragment: 'is not gzip', bytes: () => Buffer.concat([data, tocMember(good.tocJson).subarray(0, 30), encodeFooter(data.length, 'estargz')]) },
  { name: 'tar with another entry name', expectCode: 'FORMAT', messageFragment: 'not stargz.index.json', bytes: () => withTar(Buffer.concat([tarEntry('toc.json', good.tocJson), Buffer.alloc(1024)])) },
  {
    name: 'tar with a second entry after the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'another entry follows',
    bytes: () => withTar(Buffer.concat([tarEntry('stargz.index.json', good.tocJson), tarEntry('extra', Buffer.from('x')), Buffer.alloc(1024)])),
  },
  { name: 'TOC entry is a directory', expectCode: 'FORMAT', messageFragment: 'not a regular file', bytes: () => withTar(Buffer.concat([tarEntry('stargz.index.json', Buffer.alloc(0), 'Directory'), Buffer.alloc(1024)])) },
  { name: 'empty tar', expectCode: 'FORMAT', messageFragment: 'no stargz.index.json entry', bytes: () => withTar(Buffer.alloc(1024)) },
  {
    // A global path record would otherwise rename the entry that follows it to the TOC.
    name: 'global PAX header before the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'not stargz.index.json',
    bytes: () => withTar(Buffer.concat([new Pax({ path: 'stargz.index.json' }, true).encode(), tarEntry('toc.json', good.tocJson), Buffer.alloc(1024)])),
  },
  {
    name: 'GNU long-link header before the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'not stargz.index.json',
    bytes: () => withTar(Buffer.concat([tarEntry('././@LongLink', Buffer.from('target\0'), 'NextFileHasLongLinkpath'), tarEntry('stargz.index.json', good.tocJson), Buffer.alloc(1024)])),
  },
  {
    // POSIX reads an empty PAX value as "use the header's field"; the TOC reader never has.
    name: 'empty PAX path before the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'entry is named "", not stargz.index.json',
    bytes: () => withTar(Buffer.concat([tarEntry('PaxHeader', Buffer.from('8 path=\n'), 'ExtendedHeader'), tarEntry('stargz.index.json', good.tocJson), Buffer.alloc(1024)])),
  },
  {
    name: 'empty PAX size before the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'PAX size ""',
    bytes: () => withTar(Buffer.concat([tarEntry('PaxHeader', Buffer.from('8 size=\n'), 'ExtendedHeader'), tarEntry('stargz.index.json', good.tocJson), Buffer.alloc(1024)])),
  },
  {
    name: 'two extended headers before the TOC',
    expectCode: 'FORMAT',
    messageFragment: 'more than one extended header',
    bytes: () => withTar(Buffer.concat([new Pax({ path: 'a' }).encode(), new Pax({ path: 'stargz.index.json' }).encode(), tarEntry('toc.json', good.tocJson), Buffer.alloc(1024)])),
  },
  { name: 'tar header checksum', expectCode: 'FORMAT', messageFragment: 'checksum', bytes: () => withTar(Buffer.from(tocTar(good.tocJson)).fill(0x41, 10, 11)) },
  { name: 'JSON cut short in the tar', expectCode: 'FORMAT', messageFragment: 'truncated', bytes: () => withTar(tocTar(good.tocJson).subarray(0, 600)) },
  // JSON schema.
  { name: 'not JSON', expectCode: 'FORMAT', messageFragment: 'not JSON', bytes: () => blobWithToc(data, '{"version":1,') },
  { name: 'JSON array', expectCode: 'FORMAT', messageFragment: 'not an object', json: () => [] },
  { name: 'version 2', expectCode: 'FORMAT', messageFragment: 'version number 2 is not 1', json: (toc) => ({ ...toc, version: 2 }) },
  { name: 'version as a string', expectCode: 'FORMAT', messageFragment: 'is not 1', json: (toc) => ({ ...toc, version: '1' }) },
  { name: 'entries not an array', expectCode: 'FORMAT', messageFragment: 'entries is object', json: (toc) => ({ ...toc, entries: { a: 1 } }) },
  { name: 'entry not an object', expectCode: 'FORMAT', messageFragment: 'entry #0: is number', json: (toc) => ({ ...toc, entries: [7] }) },
  { name: 'name not a string', expectCode: 'FORMAT', messageFragment: 'name is number', json: (toc) => (entry(toc, 0)['name'] = 5, toc) },
  { name: 'unknown entry type', expectCode: 'FORMAT', messageFragment: 'type the string "socket" is not one of', json: (toc) => (entry(toc, 0)['type'] = 'socket', toc) },
  { name: 'size as a string', expectCode: 'FORMAT', messageFragment: 'size is the string', json: (toc) => (entry(toc, 0)['size'] = '10', toc) },
  { name: 'modtime as a number', expectCode: 'FORMAT', messageFragment: 'modtime is number', json: (toc) => (entry(toc, 0)['modtime'] = 1, toc) },
  { name: 'xattr not base64', expectCode: 'FORMAT', messageFragment: 'is not base64', json: (toc) => (entry(toc, 0)['xattrs'] = { 'user.a': 'not base64!' }, toc) },
  { name: 'xattrs an array', expectCode: 'FORMAT', messageFragment: 'xattrs is an array', json: (toc) => (entry(toc, 0)['xattrs'] = [], toc) },
  { name: 'unknown chunkType', expectCode: 'FORMAT', messageFragment: 'chunkType', json: (toc) => (entry(toc, 0)['chunkType'] = 'holes', toc) },
  { name: 'size not a safe integer', expectCode: 'FORMAT', messageFragment: 'size 1152921504606847000 is not a non-negative safe integer', json: (toc) => (entry(toc, 0)['size'] = 2 ** 60, toc) },
  { name: 'size fractional', expectCode: 'FORMAT', messageFragment: 'size 10.5', json: (toc) => (entry(toc, 0)['size'] = 10.5, toc) },
  { name: 'negative uid', expectCode: 'FORMAT', messageFragment: 'uid -1', json: (toc) => (entry(toc, 0)['uid'] = -1, toc) },
  { name: 'bad modtime', expectCode: 'FORMAT', messageFragment: 'not RFC 3339', json: (toc) => (entry(toc, 0)['modtime'] = '2020-01-01', toc) },
  { name: 'bad digest', expectCode: 'FORMAT', messageFragment: 'chunkDigest "md5:00"', json: (toc) => (entry(toc, 0)['chunkDigest'] = 'md5:00', toc) },
  // Offsets and chunks.
  { name: 'offsets decreasing', expectCode: 'FORMAT', messageFragment: 'is before the previous data offset', json: (toc) => (entry(toc, 3)['offset'] = 1, toc) },
  { name: 'offset at the TOC', expectCode: 'FORMAT', messageFragment: 'is not before the TOC', json: (toc) => (entry(toc, 5)['offset'] = good.tocOffset, toc) },
  { name: 'chunks that do not add up (gap)', expectCode: 'FORMAT', messageFragment: 'leaves a gap or overlap', json: (toc) => (entry(toc, 1)['chunkOffset'] = 5, toc) },
  { name: 'chunks that do not add up (short)', expectCode: 'FORMAT', messageFragment: 'cover 8 of its 10 bytes', json: (toc) => ({ ...toc, entries: toc.entries.filter((_, i) => i !== 2) }) },
  { name: 'chunk past the end of the file', expectCode: 'FORMAT', messageFragment: 'does not fit', json: (toc) => (entry(toc, 2)['chunkSize'] = 9, toc) },
  { name: 'chunk without a file', expectCode: 'FORMAT', messageFragment: 'must follow a regular file', json: (toc) => ({ ...toc, entries: [{ name: 'a', type: 'chunk', offset: 5 }] }) },
  { name: 'chunk of another file', expectCode: 'FORMAT', messageFragment: 'same file', json: (toc) => (entry(toc, 1)['name'] = 'b', toc) },
  { name: 'chunkSize above maxChunkBytes', expectCode: 'FORMAT', messageFragment: 'above maxChunkBytes 3', json: (toc) => toc, limits: { maxChunkBytes: 3 } },
  { name: 'duplicate names', expectCode: 'FORMAT', messageFragment: 'duplicate name', json: (toc) => (entry(toc, 3)['name'] = './a', toc) },
  // Paths and links.
  { name: '.. escape', expectCode: 'FORMAT', messageFragment: 'path traversal', raw: [{ name: '../../etc/passwd', type: 'reg' }] },
  { name: 'absolute escape', expectCode: 'FORMAT', messageFragment: 'path traversal', raw: [{ name: '/../etc/shadow', type: 'reg' }] },
  { name: 'NUL in a name', expectCode: 'FORMAT', messageFragment: 'NUL', raw: [{ name: 'a\0b', type: 'reg' }] },
  { name: 'hardlink to its own name (forward reference)', expectCode: 'FORMAT', messageFragment: 'is not an earlier entry', raw: [{ name: 'l', type: 'hardlink', linkName: 'l' }] },
  { name: 'hardlink to the root', expectCode: 'FORMAT', messageFragment: 'is a directory', raw: [{ name: 'l', type: 'hardlink', linkName: '/' }] },
  { name: 'external hardlink that is also a parent', expectCode: 'FORMAT', messageFragment: 'also the parent directory', raw: [{ name: 'l', type: 'hardlink', linkName: 'lower' }, { name: 'l/x', type: 'reg' }] },
  { name: 'hardlink to a later target', expectCode: 'FORMAT', messageFragment: 'is not an earlier entry', raw: [{ name: 'l', type: 'hardlink', linkName: 'f' }, { name: 'f', type: 'reg' }] },
  { name: 'hardlink to a directory', expectCode: 'FORMAT', messageFragment: 'is a directory', raw: [{ name: 'd/', type: 'dir' }, { name: 'l', type: 'hardlink', linkName: 'd' }] },
  { name: 'hardlink without linkName', expectCode: 'FORMAT', messageFragment: 'without a linkName', raw: [{ name: 'l', type: 'hardlink' }] },
  { name: 'symlink without linkName', expectCode: 'FORMAT', messageFragment: 'without a linkName', raw: [{ name: 'l', type: 'symlink' }] },
  { name: 'root is a file', expectCode: 'FORMAT', messageFragment: 'root must be a directory', raw: [{ name: './', type: 'reg' }] },
  { name: 'parent is a file', expectCode: 'FORMAT', messageFragment: 'is a reg, not a directory', raw: [{ name: 'f', type: 'reg' }, { name: 'f/g', type: 'reg' }] },
  { name: 'parent is a later file', expectCode: 'FORMAT', messageFragment: 'is a symlink, not a directory', raw: [{ name: 'f/g', type: 'reg' }, { name: 'f', type: 'symlink', linkName: 'x' }] },
  { name: 'endOffset before offset', expectCode: 'FORMAT', messageFragment: 'endOffset 5 is not in', raw: [{ name: 'f', type: 'reg', size: 1, offset: 10, endOffset: 5, chunkDigest: D }] },
  { name: 'file above maxFileBytes', expectCode: 'FORMAT', messageFragment: 'above maxFileBytes', raw: [{ name: 'f', type: 'reg', size: 2 ** 51 }] },
  { name: 'too many entries', expectCode: 'FORMAT', messageFragment: 'above maxEntries', raw: [{ name: 'a', type: 'reg' }, { name: 'b', type: 'reg' }], limits: { maxEntries: 1 } },
  { name: 'unknown type in raw entries', expectCode: 'FORMAT', messageFragment: 'unknown type', raw: [{ name: 'a', type: 'socket' as 'reg' }] },
  { name: 'limit that is not a number', expectCode: 'INVALID_OPTION', messageFragment: 'limits.maxPathDepth', raw: [], limits: { maxPathDepth: Number.NaN } },
];

for (const c of CASES) {
  t.test(c.name, async (t) => {
    try {
      if (c.raw) indexToc(c.raw, { format: 'estargz-gzip', tocOffset: 1000, ...(c.limits ? { limits: c.limits } : {}) });
      else if (c.bytes) await decodeBlob(c.bytes(good.blob, good.tocOffset));
      else {
        const blob = blobWithToc(data, JSON.stringify(c.json!(baseToc())));
        const { codec, location } = detectTocCodec(blob.subarray(-MAX_FOOTER_LENGTH), blob.length);
        await codec.decodeToc(blob.subarray(location.tocOffset, blob.length - location.footerLength), location, c.limits);
      }
      t.fail('accepted');
    } catch (err) {
      if (!(err instanceof TocfsError)) throw err;
      t.equal(err.code, c.expectCode, 'code');
      const messages = [err.message, ...(err.cause instanceof AggregateError ? err.cause.errors.map((e: Error) => e.message) : [])];
      t.ok(messages.some((m) => m.includes(c.messageFragment)), `message has ${JSON.stringify(c.messageFragment)}: ${messages.join(' | ')}`);
    }
  });
}

t.test('the unmodified corpus base decodes', async (t) => {
  const blob = blobWithToc(data, good.tocJson);
  const decoded = await decodeBlob(blob);
  t.equal(decoded.tocDigest, good.tocDigest);
  t.same([...decoded.index.walk()].map(([p]) => p), ['', 'a', 'b']);
});

t.test('a PAX path record may name the TOC entry', async (t) => {
  const decoded = await decodeBlob(withTar(Buffer.concat([new Pax({ path: 'stargz.index.json' }).encode(), tarEntry('toc.json', good.tocJson), Buffer.alloc(1024)])));
  t.equal(decoded.tocDigest, good.tocDigest);
});
