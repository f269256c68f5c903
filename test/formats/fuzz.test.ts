// A seeded mutation fuzzer over valid eStargz footers, TOC members, TOC JSON and raw entries: whatever
// the mutation, the codec and indexToc either accept or throw a TocfsError, never anything else (no
// TypeError, RangeError, hang or crash). Deterministic: a failure names its seed and mutation.
import t from 'tap';
import { TocfsError } from '../../src/errors.js';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import { estargzCodec } from '../../src/formats/estargz/codec.js';
import { indexToc } from '../../src/formats/toc-index.js';
import type { RawTocEntry, TocIndex } from '../../src/formats/toc.js';
import { blobWithToc, buildEstargz, tocMember } from '../support/estargz-build.js';
import { VECTORS } from '../support/vectors.js';

/** mulberry32: small, fast, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SEED = 0x7c0f5;
const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const VALUES: readonly unknown[] = [
  -1, 0, 1, 3, 511, 512, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 53 - 1, 1e308, -0, 1.5, Number.MAX_SAFE_INTEGER,
  '', 'x', '..', '../x', '/', './', 'a/b', '\u0000', 'sha256:', `sha256:${'0'.repeat(64)}`, '2020-01-01T00:00:00Z', '9999-99-99T99:99:99Z',
  'reg', 'dir', 'chunk', 'hardlink', 'symlink', 'zeros', 'data', null, true, false, [], {}, { a: 'AAAA' }, JSON.parse('{"__proto__":"AA=="}'), 'x'.repeat(5000),
];
const FIELDS = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest', 'endOffset', 'chunkType'];

interface Base {
  readonly blob: Buffer;
  readonly tocOffset: number;
  readonly json: string;
}

const bases: Base[] = [];
for (const [name, opts] of [
  ['hardlink to chunked file', { chunkSize: 4 }],
  ['xattrs', { chunkSize: 64 }],
  ['landmarks hidden', { chunkSize: 16, minChunkSize: 128 }],
  ['./ and / prefixes', { chunkSize: 3 }],
] as const) {
  const v = VECTORS.find((x) => x.name === name)!;
  const b = await buildEstargz(v.entries, { ...opts, ...v.build, gzipLevel: 1 });
  bases.push({ blob: b.blob, tocOffset: b.tocOffset, json: b.tocJson.toString() });
}

let accepted = 0;
let rejected = 0;
const unexpected: string[] = [];

async function attempt(what: string, run: () => unknown): Promise<void> {
  try {
    await run();
    accepted++;
  } catch (err) {
    if (err instanceof TocfsError) rejected++;
    else unexpected.push(`${what}: ${(err as Error)?.stack ?? String(err)}`);
  }
}

/** Uses an accepted index the way a reader would, including reading spans of the (mutated) blob. */
async function exercise(index: TocIndex, blob: Buffer): Promise<void> {
  for (const [path, entry] of index.walk()) {
    index.lookup(path);
    if (entry.type === 'dir') index.children(path);
    for (const c of entry.chunks.slice(0, 2)) {
      if (c.zeros) continue;
      await attempt(`span of ${path}`, () => estargzCodec.decompressSpan(blob.subarray(c.compressedOffset, c.compressedEnd), c.innerOffset + c.size));
    }
  }
}

async function decode(blob: Buffer): Promise<void> {
  const { codec, location } = detectTocCodec(blob.subarray(Math.max(0, blob.length - MAX_FOOTER_LENGTH)), blob.length);
  const decoded = await codec.decodeToc(blob.subarray(location.tocOffset, blob.length - location.footerLength), location, { maxChunkBytes: 1 << 20 });
  await exercise(decoded.index, blob);
}

function mutateBytes(bytes: Buffer, edits: number): Buffer {
  let out = Buffer.from(bytes);
  for (let i = 0; i < edits; i++) {
    const at = int(Math.max(1, out.length));
    switch (int(4)) {
      case 0:
        out[at] = int(256);
        break;
      case 1:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(8))]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), Buffer.from([int(256), int(256)]), out.subarray(at)]);
        break;
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}

function mutateToc(json: string): unknown {
  const toc = JSON.parse(json) as { version: unknown; entries: Record<string, unknown>[] };
  const entries = toc.entries;
  for (let n = 1 + int(3); n > 0; n--) {
    const e = entries[int(entries.length)];
    switch (int(7)) {
      case 0:
      case 1:
      case 2:
        if (e) e[pick(FIELDS)] = pick(VALUES);
        break;
      case 3:
        if (e) delete e[pick(FIELDS)];
        break;
      case 4:
        if (e) entries.splice(int(entries.length + 1), 0, structuredClone(e));
        break;
      case 5:
        entries.splice(int(entries.length), 1);
        break;
      default:
        if (rand() < 0.2) toc.version = pick(VALUES);
        else if (e) e['name'] = pick(['a', 'a/b', './a', '/a', 'bin', 'bin/busybox', '.prefetch.landmark', '', 'x/../y']);
    }
  }
  return toc;
}

function randomRaw(): RawTocEntry[] {
  const types = ['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk'] as const;
  return Array.from({ length: 1 + int(8) }, () => {
    const e: Record<string, unknown> = { name: pick(['a', 'a/b', 'b', './a/c', 'c', '', '.prefetch.landmark']), type: pick(types) };
    for (const f of ['size', 'offset', 'chunkOffset', 'chunkSize', 'innerOffset', 'endOffset'] as const) if (rand() < 0.5) e[f] = pick([0, 1, 2, 3, 4, 10, 100, 2 ** 40]);
    if (rand() < 0.5) e['linkName'] = pick(['a', 'b', 'a/b', '/c']);
    if (rand() < 0.2) e['chunkType'] = 'zeros';
    return e as unknown as RawTocEntry;
  });
}

t.test(`mutations never throw anything but TocfsError (seed ${SEED.toString(16)})`, async (t) => {
  const rounds = 2000;
  for (let i = 0; i < rounds; i++) {
    const base = pick(bases);
    const data = base.blob.subarray(0, base.tocOffset);
    switch (i % 5) {
      case 0: {
        const tail = mutateBytes(base.blob.subarray(base.blob.length - MAX_FOOTER_LENGTH), 1 + int(3));
        const size = pick([base.blob.length, tail.length, 0, 2 ** 53, -1, base.blob.length - 100]);
        await attempt(`footer #${i}`, () => detectTocCodec(tail, size));
        break;
      }
      case 1:
      case 2:
        await attempt(`toc json #${i}`, () => decode(blobWithToc(data, JSON.stringify(mutateToc(base.json)))));
        break;
      case 3: {
        const text = rand() < 0.5 ? mutateBytes(Buffer.from(base.json), 1 + int(4)) : Buffer.from(base.json);
        const member = rand() < 0.5 ? mutateBytes(tocMember(text, 1), 1 + int(2)) : tocMember(text, 1);
        await attempt(`toc bytes #${i}`, () => decode(Buffer.concat([data, member, base.blob.subarray(base.blob.length - 51)])));
        break;
      }
      default: {
        const raw = randomRaw();
        await attempt(`raw #${i} ${JSON.stringify(raw)}`, () => indexToc(raw, { format: 'estargz-gzip', tocOffset: pick([1, 50, 2 ** 41]) }));
      }
    }
  }
  t.comment(`${accepted} accepted, ${rejected} rejected`);
  t.same(unexpected.slice(0, 5), [], 'no error outside TocfsError');
  t.ok(accepted > 20, `some mutations still decode (${accepted})`);
  t.ok(rejected > 500, `most are rejected (${rejected})`);
});
