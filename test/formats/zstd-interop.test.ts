// Golden blobs written by the reference tools (test/fixtures/zstd/regenerate.sh: skopeo's
// containers/storage zstd:chunked and stargz-snapshotter's `ctr-remote --zstdchunked`), parsed by tocfs
// and compared with what GNU tar extracted from the same blob: catches "we agree with ourselves but not
// with the tools that write the images".
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import { parseZstdAnnotations } from '../../src/formats/zstd/annotations.js';
import { readRange } from '../support/format-suite.js';

const here = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'zstd');
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const HIDDEN = new Set(['.no.prefetch.landmark', '.prefetch.landmark', 'stargz.index.json']);

interface Expected {
  readonly path: string;
  readonly type: 'reg' | 'dir' | 'symlink';
  readonly mode?: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly nlink?: number;
  readonly target?: string;
}

for (const [name, format] of [
  ['skopeo-zstd-chunked', 'estargz-zstd'],
  ['ctr-remote-zstdchunked', 'estargz-zstd'],
] as const) {
  t.test(`${name}: tocfs reads what the reference tool wrote`, async (t) => {
    const blob = readFileSync(join(here, `${name}.blob`));
    const annotations = JSON.parse(readFileSync(join(here, `${name}.annotations.json`), 'utf8')) as Record<string, string>;
    const expected = (JSON.parse(readFileSync(join(here, `${name}.expected.json`), 'utf8')) as Expected[]).filter((e) => !HIDDEN.has(e.path));
    const { codec, location } = detectTocCodec(blob.subarray(blob.length - MAX_FOOTER_LENGTH), blob.length);
    t.equal(codec.format, format, 'footer detected');
    const fromAnnotations = parseZstdAnnotations(annotations)!;
    t.equal(fromAnnotations.location?.tocOffset, location.tocOffset, 'manifest-position and footer agree on the offset');
    t.equal(fromAnnotations.location?.tocLength, location.tocLength, 'and the length');
    const decoded = await codec.decodeToc(blob.subarray(location.tocOffset, location.tocOffset + location.tocLength!), location);
    t.equal(decoded.compressedTocDigest, fromAnnotations.compressedTocDigest, 'manifest-checksum verifies');
    const tocDigest = annotations['containerd.io/snapshot/stargz/toc.digest'];
    if (tocDigest) t.equal(decoded.tocDigest, tocDigest, 'toc.digest verifies');
    const index = decoded.index;
    const paths = [...index.walk()].map(([p]) => p).filter((p) => p !== '').sort();
    t.same(paths, expected.map((e) => e.path).sort(), 'same paths as tar extracts (landmarks hidden)');
    for (const e of expected) {
      const entry = index.lookup(e.path)!;
      if (!entry) continue;
      t.equal(entry.type, e.type, `${e.path}: type`);
      if (e.mode) t.equal(entry.mode, parseInt(e.mode, 8), `${e.path}: mode`);
      if (e.type === 'symlink') t.equal(entry.linkName, e.target, `${e.path}: target`);
      if (e.type !== 'reg') continue;
      t.equal(entry.size, e.size, `${e.path}: size`);
      t.equal(entry.nlink, e.nlink, `${e.path}: nlink`);
      const bytes = await readRange(codec, blob, entry, 0, entry.size, new Map());
      t.equal(sha256(bytes), e.sha256, `${e.path}: every chunk decompresses alone and the bytes equal tar's (${entry.chunks.length} chunks)`);
    }
    const multi = [...index.walk()].filter(([, e]) => e.chunks.length > 1);
    t.ok(multi.length > 0, 'the fixture has chunked files');
    t.equal(Buffer.from(index.lookup('etc/hello')!.xattrs?.['user.golden'] ?? []).toString(), 'value', 'base64 xattr decoded');
    if (name === 'skopeo-zstd-chunked') {
      t.ok(index.lookup('data/holes.bin')!.chunks.some((c) => c.zeros), 'containers/storage marked the zero run chunkType zeros');
    }
  });
}
