/**
 * Turns tar entries into a zstd:chunked blob, laid out as containers/storage's compressor does
 * (pkg/chunked/compressor), so podman/CRI-O and tocfs read it lazily and any zstd tool reads it whole:
 *
 * - Tar headers, padding and PAX globals go into "metadata" frames; before a file's data the open one
 *   is closed, so every chunk of file data is a zstd frame of its own (content-defined cuts,
 *   content-chunker.ts), whose [offset, endOffset) a reader fetches and decompresses alone.
 * - TOC (DESIGN.md §3.2): the `reg` entry holds `offset` of its first chunk and `endOffset` of its last;
 *   further chunks are `chunk` entries with `offset`, `chunkOffset`, `chunkSize`, `chunkDigest`; a chunk
 *   of only zero bytes is `chunkType: "zeros"` (readers make it without fetching; the zeros are still in
 *   the stream for whole-blob readers). A one-chunk file carries just its `digest`.
 * - Close: the end-of-archive frame, then skippable frames with the zstd TOC JSON and the zstd tar-split,
 *   then the 64-byte footer in a skippable frame. Decompressed, the blob is exactly the tar (diffId).
 */
import { createHash, type Hash } from 'node:crypto';
import { Compressor } from 'zstd-napi';
import { encodeZstdChunkedFooter, skippableFrame, SKIPPABLE_HEADER_LENGTH } from '../formats/zstd/footer.js';
import { ZSTD_CHUNKED_ANNOTATIONS } from '../formats/zstd/annotations.js';
import { BLOCK_SIZE } from '../formats/tar/header.js';
import type { TarHeader } from '../formats/tar/reader.js';
import { ContentChunker, type ChunkerOptions } from './content-chunker.js';
import { Crc64 } from './crc64.js';
import { deviceAndXattrs, formatModtime, omitZero } from './estargz-encoder.js';
import type { FrameSink } from './zstd-frames.js';

interface JsonEntry {
  type: string;
  name: string;
  linkName?: string;
  mode?: number;
  size?: number;
  uid?: number;
  gid?: number;
  modtime?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  digest?: string;
  offset?: number;
  endOffset?: number;
  chunkSize?: number;
  chunkOffset?: number;
  chunkDigest?: string;
  chunkType?: string;
}

const TOC_TYPES = { file: 'reg', hardlink: 'hardlink', symlink: 'symlink', char: 'char', block: 'block', dir: 'dir', fifo: 'fifo' } as const;

/** Metadata frames are cut at this size, so a layer of a million directories never buffers them all. */
const MAX_META_FRAME = 1 << 20;

export interface ZstdChunkedBlob {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
  readonly uncompressedSize: number;
  /** sha256 of the TOC JSON. */
  readonly tocDigest: string;
  /** sha256 of the compressed TOC (the manifest-checksum annotation). */
  readonly compressedTocDigest: string;
  /** The layer annotations: manifest-checksum, manifest-position, tarsplit-position. */
  readonly annotations: Readonly<Record<string, string>>;
}

interface OpenFile {
  readonly header: TarHeader;
  readonly entry: JsonEntry;
  readonly fileHash: Hash;
  readonly crc: Crc64;
  written: number;
  chunks: JsonEntry[];
  pending: Uint8Array[];
  pendingBytes: number;
}

function isZeros(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export class ZstdChunkedEncoder {
  readonly #out: FrameSink;
  readonly #compressor = new Compressor();
  readonly #chunker: ContentChunker;
  readonly #entries: JsonEntry[] = [];
  /** tar-split JSON lines (vbatts/tar-split `storage.Entry`): segments of raw bytes and file records. */
  readonly #tarSplit: string[] = [];
  readonly #diff = createHash('sha256');
  #uncompressed = 0;
  #meta: Uint8Array[] = [];
  #metaBytes = 0;
  /** Raw bytes since the last tar-split record. */
  #segment: Uint8Array[] = [];
  #file: OpenFile | undefined;

  constructor(out: FrameSink, level: number, chunking: ChunkerOptions) {
    this.#out = out;
    this.#compressor.setParameters({ compressionLevel: level });
    this.#chunker = new ContentChunker(chunking);
  }

  async entry(h: TarHeader): Promise<void> {
    if (this.#file) throw new Error('ZstdChunkedEncoder: entry() before the previous file ended');
    await this.#metaBytesOut(h.headerBytes);
    this.#flushSegment();
    const e: JsonEntry = { type: TOC_TYPES[h.type], name: h.path };
    if (h.type === 'symlink' || h.type === 'hardlink') e.linkName = h.linkpath;
    e.mode = omitZero(h.mode);
    if (h.type === 'file') e.size = omitZero(h.size);
    e.uid = omitZero(h.uid);
    e.gid = omitZero(h.gid);
    e.modtime = formatModtime(h.mtime.seconds, h.mtime.nanos);
    Object.assign(e, deviceAndXattrs(h));
    this.#entries.push(e);
    this.#file = { header: h, entry: e, fileHash: createHash('sha256'), crc: new Crc64(), written: 0, chunks: [], pending: [], pendingBytes: 0 };
    this.#chunker.reset();
    if (h.type !== 'file' || h.size === 0) await this.entryEnd();
  }

  async data(bytes: Uint8Array): Promise<void> {
    const f = this.#file;
    if (!f || f.header.type !== 'file') {
      if (bytes.length > 0) throw new Error('ZstdChunkedEncoder: data for an entry that has none');
      return;
    }
    if (f.written === 0 && f.pendingBytes === 0) await this.#flushMeta();
    f.fileHash.update(bytes);
    f.crc.update(bytes);
    this.#count(bytes);
    let rest = bytes;
    while (rest.length > 0) {
      const { take, cut } = this.#chunker.scan(rest);
      f.pending.push(rest.subarray(0, take));
      f.pendingBytes += take;
      rest = rest.subarray(take);
      if (cut) await this.#chunk(f);
    }
  }

  async entryEnd(): Promise<void> {
    const f = this.#file;
    if (!f) return;
    this.#file = undefined;
    if (f.pendingBytes > 0) await this.#chunk(f);
    if (f.written !== f.header.size && f.header.type === 'file') {
      throw new Error(`ZstdChunkedEncoder: ${f.header.path}: ${f.written} data bytes for a ${f.header.size}-byte file`);
    }
    const h = f.header;
    if (h.type === 'file') {
      f.entry.digest = `sha256:${f.fileHash.digest('hex')}`;
      if (f.chunks.length === 1) {
        delete f.entry.chunkSize;
        delete f.entry.chunkDigest;
        delete f.entry.chunkType; // a one-chunk file of zeros is still fetched (and verified by digest)
      }
    }
    const record: Record<string, unknown> = { type: 1, name: h.path };
    if (h.size > 0 && h.type === 'file') record['size'] = h.size;
    if (h.size > 0 && h.type === 'file') record['payload'] = f.crc.digest().toString('base64');
    record['position'] = this.#tarSplit.length;
    this.#tarSplit.push(JSON.stringify(record));
    const pad = h.type === 'file' ? (BLOCK_SIZE - (h.size % BLOCK_SIZE)) % BLOCK_SIZE : 0;
    if (pad > 0) await this.#metaBytesOut(new Uint8Array(pad));
  }

  /** Raw bytes that are not an entry of their own (a PAX global header). */
  async raw(bytes: Uint8Array): Promise<void> {
    await this.#metaBytesOut(bytes);
  }

  async finish(): Promise<ZstdChunkedBlob> {
    if (this.#file) throw new Error(`ZstdChunkedEncoder: finish() inside ${this.#file.header.path}`);
    await this.#metaBytesOut(new Uint8Array(2 * BLOCK_SIZE));
    await this.#flushMeta();
    this.#flushSegment();
    const tarSplitJson = Buffer.from(this.#tarSplit.map((l) => `${l}\n`).join(''), 'utf8');
    const tarSplit = this.#compressor.compress(tarSplitJson);
    const json = Buffer.from(
      JSON.stringify({ version: 1, entries: this.#entries, tarSplitDigest: `sha256:${createHash('sha256').update(tarSplit).digest('hex')}` }),
      'utf8',
    );
    const toc = this.#compressor.compress(json);
    const tocOffset = this.#out.offset + SKIPPABLE_HEADER_LENGTH;
    await this.#out.write(skippableFrame(toc));
    const tarSplitOffset = this.#out.offset + SKIPPABLE_HEADER_LENGTH;
    await this.#out.write(skippableFrame(tarSplit));
    await this.#out.write(
      encodeZstdChunkedFooter({
        tocOffset,
        tocLength: toc.length,
        tocUncompressedLength: json.length,
        tarSplitOffset,
        tarSplitLength: tarSplit.length,
        tarSplitUncompressedLength: tarSplitJson.length,
      }),
    );
    const { size, digest } = await this.#out.finish();
    const compressedTocDigest = `sha256:${createHash('sha256').update(toc).digest('hex')}`;
    return {
      digest,
      size,
      diffId: `sha256:${this.#diff.digest('hex')}`,
      uncompressedSize: this.#uncompressed,
      tocDigest: `sha256:${createHash('sha256').update(json).digest('hex')}`,
      compressedTocDigest,
      annotations: {
        [ZSTD_CHUNKED_ANNOTATIONS.checksum]: compressedTocDigest,
        [ZSTD_CHUNKED_ANNOTATIONS.position]: `${tocOffset}:${toc.length}:${json.length}:1`,
        [ZSTD_CHUNKED_ANNOTATIONS.tarSplitPosition]: `${tarSplitOffset}:${tarSplit.length}:${tarSplitJson.length}`,
      },
    };
  }

  /** Writes the file's pending bytes as one chunk: its own frame and TOC entry. */
  async #chunk(f: OpenFile): Promise<void> {
    const bytes = f.pending.length === 1 ? f.pending[0]! : Buffer.concat(f.pending, f.pendingBytes);
    f.pending = [];
    f.pendingBytes = 0;
    const chunk: JsonEntry = f.chunks.length === 0 ? f.entry : { type: 'chunk', name: f.header.path };
    const offset = this.#out.offset;
    await this.#out.write(this.#compressor.compress(bytes));
    chunk.offset = offset;
    f.entry.endOffset = this.#out.offset;
    chunk.chunkSize = bytes.length;
    chunk.chunkOffset = omitZero(f.written);
    chunk.chunkDigest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (isZeros(bytes)) chunk.chunkType = 'zeros';
    if (chunk !== f.entry) this.#entries.push(chunk);
    f.chunks.push(chunk);
    f.written += bytes.length;
  }

  async #metaBytesOut(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.#count(bytes);
    this.#meta.push(bytes);
    this.#metaBytes += bytes.length;
    this.#segment.push(bytes);
    if (this.#metaBytes >= MAX_META_FRAME) await this.#flushMeta();
  }

  async #flushMeta(): Promise<void> {
    if (this.#metaBytes === 0) return;
    const bytes = Buffer.concat(this.#meta, this.#metaBytes);
    this.#meta = [];
    this.#metaBytes = 0;
    await this.#out.write(this.#compressor.compress(bytes));
  }

  #flushSegment(): void {
    if (this.#segment.length === 0) return;
    const payload = Buffer.concat(this.#segment).toString('base64');
    this.#segment = [];
    this.#tarSplit.push(JSON.stringify({ type: 2, payload, position: this.#tarSplit.length }));
  }

  #count(bytes: Uint8Array): void {
    this.#diff.update(bytes);
    this.#uncompressed += bytes.length;
  }
}
