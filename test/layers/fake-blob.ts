// Small hand-made layer blobs for the unit tests of src/layers: each chunk its own gzip member (real
// zlib, so spans decompress as eStargz spans do), a TOC that is plain JSON of RawTocEntry, and a 20-byte
// footer "TOCF" + 16 hex digits of the TOC offset. `fakeCodec` reads them. The real eStargz codec is
// exercised by layer-real.test.ts.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { FormatError } from '../../src/errors.js';
import { decompressGzipSpan } from '../../src/formats/estargz/codec.js';
import { indexToc } from '../../src/formats/toc-index.js';
import type { DecodedToc, RawTocEntry, TocCodec, TocIndex, TocLocation } from '../../src/formats/toc.js';
import type { ChunkFetcher } from '../../src/layers/fetch/fetcher.js';
import { UnverifiedLayer, type VerifiedLayer } from '../../src/layers/toc/toc-layer.js';
import type { RangeSource } from '../../src/layers/sources/range-source.js';
import type { ReadAheadPolicy } from '../../src/layers/fetch/read-ahead.js';

export const FAKE_FOOTER_LENGTH = 20;

export interface FakeFile {
  readonly path: string;
  readonly content: Uint8Array;
  /** Split into chunks of this size; default: one chunk. */
  readonly chunkSize?: number;
  /** Omit chunkDigest (the whole-file digest must then guard the bytes). */
  readonly noChunkDigest?: boolean;
  /** Omit the file digest too. */
  readonly noDigest?: boolean;
  /** Chunk indexes stored as `chunkType: "zeros"` (no bytes in the blob; their content must be zeros). */
  readonly zeroChunks?: readonly number[];
  /** Bytes of unrelated gzip data after this file, outside every span (spans end by `endOffset`). */
  readonly junkAfter?: number;
}

export interface FakeBlob {
  readonly blob: Buffer;
  readonly raw: RawTocEntry[];
  readonly tocOffset: number;
  readonly tocJson: Buffer;
  readonly tocDigest: string;
  readonly index: TocIndex;
  readonly contents: ReadonlyMap<string, Buffer>;
}

export const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function fakeFooter(tocOffset: number): Buffer {
  const out = Buffer.from(`TOCF${tocOffset.toString(16).padStart(16, '0')}`, 'latin1');
  if (out.length !== FAKE_FOOTER_LENGTH) throw new Error('fake footer length');
  return out;
}

/** Deterministic incompressible bytes. */
export function noise(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let block = Buffer.from(`seed-${seed}`);
  for (let at = 0; at < size; at += 32) {
    block = createHash('sha256').update(block).digest();
    block.copy(out, at, 0, Math.min(32, size - at));
  }
  return out;
}

export interface BuildOptions {
  /** Files to put before a `.prefetch.landmark`. */
  readonly prioritized?: readonly FakeFile[];
}

export function buildFakeBlob(files: readonly FakeFile[], opts: BuildOptions = {}): FakeBlob {
  const parts: Buffer[] = [];
  let at = 0;
  const raw: RawTocEntry[] = [{ name: '', type: 'dir', mode: 0o755 }];
  const contents = new Map<string, Buffer>();
  const dirs = new Set<string>();
  const push = (b: Buffer): number => {
    const start = at;
    parts.push(b);
    at += b.length;
    return start;
  };
  const addFile = (f: FakeFile): void => {
    const content = Buffer.from(f.content);
    contents.set(f.path, content);
    const parent = f.path.split('/').slice(0, -1).join('/');
    if (parent && !dirs.has(parent)) {
      dirs.add(parent);
      raw.push({ name: parent, type: 'dir', mode: 0o755 });
    }
    const digest = f.noDigest ? undefined : sha256(content);
    const chunkSize = f.chunkSize ?? Math.max(1, content.length);
    if (content.length === 0) {
      raw.push({ name: f.path, type: 'reg', size: 0, mode: 0o644, ...(digest ? { digest } : {}) });
      return;
    }
    for (let off = 0; off < content.length; off += chunkSize) {
      const piece = content.subarray(off, Math.min(content.length, off + chunkSize));
      if (f.zeroChunks?.includes(off / chunkSize)) {
        if (piece.some((b) => b !== 0)) throw new Error(`fake blob: zeros chunk of ${f.path} holds data`);
        const zeros = { name: f.path, chunkOffset: off, chunkSize: piece.length, chunkType: 'zeros' as const };
        raw.push(off === 0 ? { ...zeros, type: 'reg', size: content.length, mode: 0o644, ...(digest ? { digest } : {}) } : { ...zeros, type: 'chunk' });
        continue;
      }
      const offset = push(gzipSync(piece, { level: 1 }));
      const endOffset = at;
      const common = {
        name: f.path,
        offset,
        endOffset,
        chunkOffset: off,
        chunkSize: piece.length,
        ...(f.noChunkDigest ? {} : { chunkDigest: sha256(piece) }),
      };
      raw.push(off === 0 ? { ...common, type: 'reg', size: content.length, mode: 0o644, ...(digest ? { digest } : {}) } : { ...common, type: 'chunk' });
    }
    if (f.junkAfter) push(gzipSync(noise(f.junkAfter, 99), { level: 0 }));
  };
  if (opts.prioritized) {
    for (const f of opts.prioritized) addFile(f);
    const offset = push(gzipSync(Buffer.from([0x0f])));
    raw.push({ name: '.prefetch.landmark', type: 'reg', size: 1, offset, endOffset: at, chunkOffset: 0, chunkSize: 1, chunkDigest: sha256(Buffer.from([0x0f])), digest: sha256(Buffer.from([0x0f])) });
  }
  for (const f of files) addFile(f);
  const tocOffset = at;
  const tocJson = Buffer.from(JSON.stringify({ version: 1, entries: raw }));
  push(tocJson);
  push(fakeFooter(tocOffset));
  const blob = Buffer.concat(parts);
  const index = indexToc(raw, { format: 'estargz-gzip', tocOffset });
  return { blob, raw, tocOffset, tocJson, tocDigest: sha256(tocJson), index, contents };
}

/** Reads what buildFakeBlob writes; otherwise behaves as a codec must (FormatError, no I/O). */
export const fakeCodec: TocCodec = {
  format: 'estargz-gzip',
  footerLength: FAKE_FOOTER_LENGTH,
  parseFooter(tail: Uint8Array, blobSize: number): TocLocation {
    if (tail.length !== FAKE_FOOTER_LENGTH) throw new FormatError(`fake footer: ${tail.length} bytes`);
    const text = Buffer.from(tail).toString('latin1');
    if (!/^TOCF[0-9a-f]{16}$/.test(text)) throw new FormatError('fake footer: no magic');
    const tocOffset = parseInt(text.slice(4), 16);
    if (tocOffset >= blobSize - FAKE_FOOTER_LENGTH) throw new FormatError('fake footer: offset past the footer');
    return { format: 'estargz-gzip', tocOffset, tocLength: blobSize - FAKE_FOOTER_LENGTH - tocOffset, footerLength: FAKE_FOOTER_LENGTH };
  },
  async decodeToc(tocBytes: Uint8Array, location: TocLocation): Promise<DecodedToc> {
    let doc: { entries: RawTocEntry[] };
    try {
      doc = JSON.parse(Buffer.from(tocBytes).toString('utf8')) as { entries: RawTocEntry[] };
    } catch (err) {
      throw new FormatError('fake TOC: not JSON', { cause: err });
    }
    const index = indexToc(doc.entries, { format: 'estargz-gzip', tocOffset: location.tocOffset });
    return { index, tocDigest: sha256(tocBytes), compressedTocDigest: sha256(tocBytes) };
  },
  decompressSpan: decompressGzipSpan,
};

/** The verified layer of a fake blob read from `source` (whose id is the blob's), fetched by `fetcher`. */
export function fakeLayer(fb: FakeBlob, source: RangeSource, fetcher: ChunkFetcher, readAhead?: ReadAheadPolicy): VerifiedLayer {
  return new UnverifiedLayer(source.id, {
    source,
    codec: fakeCodec,
    fetcher,
    decoded: { index: fb.index, tocDigest: fb.tocDigest, compressedTocDigest: fb.tocDigest },
    location: { format: 'estargz-gzip', tocOffset: fb.tocOffset, footerLength: FAKE_FOOTER_LENGTH },
    tocBytes: fb.tocJson,
    tocSource: 'blob',
    ...(readAhead && { readAhead }),
  }).verify(fb.tocDigest);
}
