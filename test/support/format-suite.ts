// The contract every TOC format must meet (STYLE.md "One suite, many variants"). A variant only builds a
// blob from DSL entries; the suite detects its footer, decodes its TOC, and checks the index and every
// byte of every file against an oracle computed from the same entries here, independently of src/.
import { createHash } from 'node:crypto';
import type { Test } from 'tap';
import { DigestMismatchError, TocfsError } from '../../src/errors.js';
import { MAX_FOOTER_LENGTH, detectTocCodec } from '../../src/formats/codecs.js';
import type { DecodedToc, TocChunk, TocCodec, TocEntry, TocIndex } from '../../src/formats/toc.js';
import { contentBytes, type TarEntry } from './tar-dsl.js';
import { VECTORS, type Vector } from './vectors.js';

export interface VariantBuildOptions {
  readonly chunkSize: number;
  readonly minChunkSize?: number;
  readonly prioritized?: readonly string[];
  readonly noPrefetchLandmark?: boolean;
}

export interface BuiltLayer {
  readonly blob: Buffer;
  /** What the layer's `toc.digest` annotation would say. */
  readonly tocDigest: string;
  /** sha256 of the uncompressed stream, when the format is also a plain compressed tar. */
  readonly diffId?: string;
}

export interface FormatVariant {
  readonly name: string;
  /** The codec detectTocCodec must pick for this variant's blobs. */
  readonly codec: TocCodec;
  build(entries: readonly TarEntry[], opts: VariantBuildOptions): Promise<BuiltLayer>;
  /** Offset into a span of its first compressed data byte (10: after a gzip member header). */
  readonly dataStart?: number;
  /** Bytes at a span's end whose flip always shows (gzip: CRC32 + ISIZE = 8; zstd: 0 = no checksum). */
  readonly trailerBytes?: number;
  /** Format-specific checks of the raw blob (e.g. "still a valid tar.gz"). */
  checkStreams?(t: Test, built: BuiltLayer, entries: readonly TarEntry[]): void | Promise<void>;
}

export interface SuiteOptions {
  readonly chunkSizes: readonly number[];
  readonly minChunkSize?: number;
  readonly vectors?: readonly Vector[];
  /** Vectors whose files would need more chunks than this at a chunk size are skipped there. */
  readonly maxChunksPerFile?: number;
}

export type Expected = Pick<TocEntry, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeMs' | 'size' | 'linkName' | 'devMajor' | 'devMinor' | 'implicit'> & {
  readonly xattrs: Readonly<Record<string, Buffer>>;
  readonly source?: TarEntry;
  nlink: number;
};

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const norm = (p: string): string => p.split('/').filter((s) => s !== '' && s !== '.').join('/');
export const parentOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const TYPES = { file: 'reg', dir: 'dir', symlink: 'symlink', chardev: 'char', blockdev: 'block', fifo: 'fifo' } as const;

export interface ExpectedTreeOptions {
  /**
   * `seconds` (default): mtimes as a TOC records them, RFC 3339 to the second (writers round); `exact`:
   * the tar header's mtime to the millisecond (PAX `mtime` keeps the fraction).
   */
  readonly mtime?: 'seconds' | 'exact';
}

/** The tree a reader must see: names normalised, parents implied, hardlinks merged and counted. */
export function expectedTree(entries: readonly TarEntry[], opts: ExpectedTreeOptions = {}): Map<string, Expected> {
  const tree = new Map<string, Expected>();
  const implicitDir = (): Expected => ({ type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0, xattrs: {}, nlink: 2, implicit: true });
  for (const e of entries) {
    const path = norm(e.path);
    if (e.type === 'hardlink') {
      const target = tree.get(norm(e.linkpath!))!;
      target.nlink++;
      tree.set(path, target);
      continue;
    }
    tree.set(path, {
      type: TYPES[e.type],
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtimeMs: opts.mtime === 'exact' ? e.mtime.getTime() : Math.round(e.mtime.getTime() / 1000) * 1000,
      size: e.type === 'symlink' ? Buffer.byteLength(e.linkpath!) : e.type === 'file' ? e.size : 0,
      ...(e.type === 'symlink' ? { linkName: e.linkpath! } : {}),
      ...(e.devmajor === undefined ? {} : { devMajor: e.devmajor, devMinor: e.devminor ?? 0 }),
      xattrs: e.xattrs,
      ...(e.type === 'file' ? { source: e } : {}),
      nlink: e.type === 'dir' ? 2 : 1,
      implicit: false,
    });
  }
  if (!tree.has('')) tree.set('', implicitDir());
  for (const path of [...tree.keys()]) {
    for (let p = parentOf(path); p !== '' && !tree.has(p); p = parentOf(p)) tree.set(p, implicitDir());
  }
  for (const [path, e] of tree) if (path !== '' && e.type === 'dir') tree.get(parentOf(path))!.nlink++;
  return tree;
}

/** Decompresses, slices and verifies one chunk, as a reader must; `full` inflates the whole span. */
export async function chunkBytes(codec: TocCodec, blob: Uint8Array, c: TocChunk, full = false): Promise<Uint8Array> {
  if (c.zeros) return new Uint8Array(c.size);
  const span = blob.subarray(c.compressedOffset, c.compressedEnd);
  const out = await codec.decompressSpan(span, full ? 1 << 30 : c.innerOffset + c.size);
  const bytes = out.subarray(c.innerOffset, c.innerOffset + c.size);
  if (bytes.length !== c.size) throw new TocfsError('BAD_DATA', `chunk at ${c.compressedOffset}: ${bytes.length} of ${c.size} bytes`);
  const actual = sha256(bytes);
  if (actual !== c.digest) throw new DigestMismatchError(`chunk at ${c.compressedOffset}`, c.digest, actual);
  return bytes;
}

/** Reads [offset, offset + length) of a file through its chunks; `cache` keeps each verified chunk once. */
export async function readRange(
  codec: TocCodec,
  blob: Uint8Array,
  entry: TocEntry,
  offset: number,
  length: number,
  cache: Map<TocChunk, Uint8Array>,
): Promise<Buffer> {
  const end = Math.min(entry.size, offset + length);
  const parts: Uint8Array[] = [];
  for (const c of entry.chunks) {
    if (c.fileOffset + c.size <= offset || c.fileOffset >= end) continue;
    let bytes = cache.get(c);
    if (bytes === undefined) cache.set(c, (bytes = await chunkBytes(codec, blob, c)));
    parts.push(bytes.subarray(Math.max(0, offset - c.fileOffset), Math.min(c.size, end - c.fileOffset)));
  }
  return Buffer.concat(parts);
}

export async function decodeBlob(blob: Buffer, expectCodec?: TocCodec): Promise<DecodedToc & { codec: TocCodec }> {
  const tail = blob.subarray(Math.max(0, blob.length - MAX_FOOTER_LENGTH));
  const { codec, location } = detectTocCodec(tail, blob.length);
  if (expectCodec && codec !== expectCodec) throw new Error(`detected ${codec.format}, expected ${expectCodec.format}`);
  const tocEnd = location.tocLength === undefined ? blob.length - location.footerLength : location.tocOffset + location.tocLength;
  const decoded = await codec.decodeToc(blob.subarray(location.tocOffset, tocEnd), location);
  return { ...decoded, codec };
}

type Projected = Pick<TocEntry, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeMs' | 'size' | 'linkName' | 'devMajor' | 'devMinor' | 'nlink' | 'implicit'>;

function project(e: Projected): Projected {
  const { type, mode, uid, gid, mtimeMs, size, linkName, devMajor, devMinor, nlink, implicit } = e;
  return { type, mode, uid, gid, mtimeMs, size, linkName, devMajor, devMinor, nlink, implicit };
}

function checkIndex(t: Test, index: TocIndex, entries: readonly TarEntry[]): void {
  const expected = expectedTree(entries);
  const seen = new Set<string>();
  for (const [path, entry] of index.walk()) {
    if (path !== '') t.ok(seen.has(parentOf(path)), `${path}: parent listed first`);
    seen.add(path);
    const want = expected.get(path);
    if (!t.ok(want, `${JSON.stringify(path)} is in the tar`) || !want) continue;
    t.same(project(entry), project(want), `${JSON.stringify(path)}: metadata`);
    const xattrs = entry.xattrs ?? {};
    t.same(Object.keys(xattrs).sort(), Object.keys(want.xattrs).sort(), `${path}: xattr names`);
    for (const [name, value] of Object.entries(want.xattrs)) t.same(Buffer.from(xattrs[name]!), value, `${path}: xattr ${name}`);
    if (want.source) t.equal(entry.digest, sha256(contentBytes(want.source)), `${path}: file digest`);
    if (!entry.implicit) t.equal(entry.path === path || want.nlink > 1, true, `${path}: entry path`);
  }
  t.same([...seen].sort(), [...expected.keys()].sort(), 'every name, and nothing else (no landmarks, no TOC)');
  const distinct = new Set([...expected.values()]).size;
  t.equal(index.size, distinct, 'size counts hardlinked files once');
  for (const [path, want] of expected) {
    if (want.type !== 'dir') continue;
    const names = [...expected.keys()].filter((p) => p !== '' && parentOf(p) === path).map((p) => p.slice(p.lastIndexOf('/') + 1));
    t.same([...index.children(path)!.keys()].sort(), names.sort(), `children(${JSON.stringify(path)})`);
  }
  for (const [path, want] of expected) {
    for (const [other, w2] of expected) if (w2 === want && other !== path) t.equal(index.lookup(path), index.lookup(other), `${path} and ${other} share one entry`);
  }
}

/** Read offsets into a file of `size` bytes cut every `chunk` bytes: 0, around the first cuts, the end, past it. */
export function offsetsFor(size: number, chunk: number): number[] {
  const raw = [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, size - chunk, size - 1, size, size + 1];
  return [...new Set(raw.filter((o) => o >= 0))];
}

async function checkReads(t: Test, codec: TocCodec, blob: Buffer, index: TocIndex, entries: readonly TarEntry[], chunkSize: number): Promise<void> {
  const cache = new Map<TocChunk, Uint8Array>();
  let reads = 0;
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const entry = index.lookup(norm(e.path))!;
    const content = contentBytes(e);
    for (const offset of offsetsFor(e.size, chunkSize)) {
      for (const length of [1, chunkSize - 1, chunkSize + 2, e.size + 1]) {
        if (length <= 0) continue;
        const got = await readRange(codec, blob, entry, offset, length, cache);
        reads++;
        if (!got.equals(content.subarray(offset, offset + length))) t.fail(`${e.path}: bytes [${offset}, +${length}) differ`);
      }
    }
  }
  t.pass(`${reads} reads equal the source bytes`);
}

async function expectRejected(t: Test, what: string, run: () => Promise<unknown>, codes: readonly string[]): Promise<void> {
  try {
    await run();
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(err instanceof TocfsError && codes.includes(err.code), `${what}: rejected with ${(err as TocfsError).code ?? err}`);
  }
}

async function checkTamper(t: Test, codec: TocCodec, blob: Buffer, index: TocIndex, tocDigest: string, dataStart: number, trailerBytes: number): Promise<void> {
  const data = [...index.walk()].flatMap(([, e]) => e.chunks.filter((c) => !c.zeros));
  for (const c of [data[0], data[data.length - 1]]) {
    if (!c) continue;
    if (trailerBytes > 0) {
      // The span's last bytes are its member's checksum (gzip CRC32 + ISIZE): a flip there always shows.
      const trailer = Buffer.from(blob);
      trailer[c.compressedEnd - 5]! ^= 0x55;
      await expectRejected(t, `byte flipped in the checksum of span ${c.compressedOffset}`, () => chunkBytes(codec, trailer, c, true), ['BAD_DATA']);
    } else {
      // No checksum to flip (zstd frames carry none by default): a frame cut short is what must show.
      await expectRejected(t, `span ${c.compressedOffset} truncated by one byte`, () => chunkBytes(codec, blob.subarray(0, c.compressedEnd - 1), c, true), ['BAD_DATA']);
    }
    // A flip in the middle may legitimately change nothing (a back-reference into a run of zeros copies
    // the same zeros), so the property is: rejected, or the very same bytes. Without a checksum in the
    // frame (zstd) the chunk digest is what catches it, so the chunk is read as a reader would.
    const flipped = Buffer.from(blob);
    flipped[c.compressedOffset + Math.floor((c.compressedEnd - c.compressedOffset) / 2)]! ^= 0x55;
    const decode = (b: Buffer): Promise<Uint8Array> =>
      trailerBytes > 0 ? codec.decompressSpan(b.subarray(c.compressedOffset, c.compressedEnd), 1 << 30) : chunkBytes(codec, b, c);
    const original = await decode(blob);
    try {
      const out = await decode(flipped);
      t.ok(Buffer.from(out).equals(original), `byte flipped in span at ${c.compressedOffset}: same bytes or rejected`);
    } catch (err) {
      t.ok(err instanceof TocfsError && err.code === 'BAD_DATA', `byte flipped in span at ${c.compressedOffset}: rejected`);
    }
    if (c.innerOffset !== 0) continue;
    // The first compressed byte starts the chunk's data: flipping it changes the chunk even when only a
    // prefix of the span is inflated.
    const early = Buffer.from(blob);
    early[c.compressedOffset + dataStart]! ^= 0x55;
    await expectRejected(t, `byte flipped at the start of span ${c.compressedOffset}`, () => chunkBytes(codec, early, c), ['BAD_DATA']);
  }
  const location = codec.parseFooter(blob.subarray(blob.length - codec.footerLength), blob.length);
  const tocStart = location.tocOffset;
  const tocEnd = location.tocLength === undefined ? blob.length - codec.footerLength : tocStart + location.tocLength;
  for (const [where, at] of [
    ['end', tocEnd - 5],
    ['middle', tocStart + Math.floor((tocEnd - tocStart) / 2)],
  ] as const) {
    const flipped = Buffer.from(blob);
    flipped[at]! ^= 0x55;
    await expectRejected(
      t,
      `byte flipped in the TOC's ${where}`,
      async () => {
        const decoded = await decodeBlob(flipped);
        if (decoded.tocDigest !== tocDigest) throw new DigestMismatchError('TOC', tocDigest, decoded.tocDigest);
        // Same JSON bytes (a flip that changes nothing inflated): nothing to catch.
        throw new TocfsError('BAD_DATA', 'unchanged');
      },
      ['FORMAT', 'BAD_DATA'],
    );
  }
}

function chunksNeeded(v: Vector, chunkSize: number): number {
  return Math.max(0, ...v.entries.map((e) => Math.ceil(e.size / chunkSize)));
}

export async function formatSuite(t: Test, variant: FormatVariant, opts: SuiteOptions): Promise<void> {
  for (const v of opts.vectors ?? VECTORS) {
    for (const chunkSize of opts.chunkSizes) {
      if (chunksNeeded(v, chunkSize) > (opts.maxChunksPerFile ?? 5000)) continue;
      await t.test(`${variant.name}: ${v.name}, chunk ${chunkSize}`, async (t) => {
        const built = await variant.build(v.entries, { chunkSize, ...(opts.minChunkSize ? { minChunkSize: opts.minChunkSize } : {}), ...v.build });
        const { index, tocDigest, codec } = await decodeBlob(built.blob, variant.codec);
        t.equal(tocDigest, built.tocDigest, 'TOC digest matches the build');
        checkIndex(t, index, v.entries);
        if (v.build?.prioritized) {
          t.ok(index.prefetch, 'prefetch span from .prefetch.landmark');
          for (const name of v.build.prioritized) {
            for (const c of index.lookup(norm(name))!.chunks) t.ok(c.compressedEnd <= index.prefetch!.end, `${name} is inside the prefetch span`);
          }
        } else t.equal(index.prefetch, undefined, 'no prefetch span');
        await checkReads(t, codec, built.blob, index, v.entries, chunkSize);
        await checkTamper(t, codec, built.blob, index, built.tocDigest, variant.dataStart ?? 10, variant.trailerBytes ?? 8);
        await variant.checkStreams?.(t, built, v.entries);
      });
    }
  }
}
