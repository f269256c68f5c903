// A zstd:chunked / eStargz-zstd builder for test vectors, written from the reference writers' rules and
// independent of src/convert and src/formats (footers are assembled by hand here):
// - style `storage` (containers/storage pkg/chunked/compressor): tar headers and padding in frames of
//   their own; each chunk of a regular file its own frame; the `reg` entry has `offset` = its first
//   chunk's frame and `endOffset` = the end of its LAST chunk's frame; `chunk` entries carry `offset`
//   only; `chunkSize` on every chunk of a multi-chunk file; all-zero chunks may be `chunkType: "zeros"`;
// - style `stargz` (stargz-snapshotter estargz Writer with its zstdchunked compressor): the eStargz
//   layout with zstd frames instead of gzip members: a header goes into whatever frame is open, each
//   chunk starts a new frame (which then also holds the padding and the next headers), no endOffset;
// - TOC = compact (storage) or tab-indented (stargz) JSON, one zstd frame, in a skippable frame; for the
//   `current` footer a tar-split skippable frame follows; then the footer in a skippable frame.
import { createHash } from 'node:crypto';
import { compress } from 'zstd-napi';
import { contentBytes, tarBytes, type TarEntry } from './tar-dsl.js';

export interface ZstdBuildOptions {
  readonly chunkSize?: number;
  readonly level?: number;
  /** `current`: 64-byte GNUlInUx footer with tar-split; `legacy`: 40-byte GnUlInUx footer. */
  readonly footer: 'current' | 'legacy';
  readonly style?: 'storage' | 'stargz';
  /** Mark all-zero chunks `chunkType: "zeros"` (storage style). */
  readonly zeros?: boolean;
  /** Rewrites the TOC JSON before it is compressed (to build lying TOCs); a Buffer is taken as the raw text. */
  readonly mutateToc?: (toc: { version: number; entries: Json[] }) => unknown;
  /** Replaces the compressed TOC bytes (annotations and footer describe the replacement). */
  readonly replaceCompressedToc?: (compressed: Buffer) => Buffer;
}

export interface BuiltZstd {
  readonly blob: Buffer;
  /** sha256 of the uncompressed TOC JSON (what stargz's toc.digest annotation says). */
  readonly tocDigest: string;
  /** sha256 of the compressed TOC (what manifest-checksum says). */
  readonly compressedTocDigest: string;
  readonly tocJson: Buffer;
  readonly diffId: string;
  /** Offset of the compressed TOC (past its skippable frame header). */
  readonly tocOffset: number;
  readonly tocLength: number;
  /** The manifest annotations a writer of this generation sets. */
  readonly annotations: Record<string, string>;
}

const BLOCK = 512;
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export type Json = Record<string, string | number | Record<string, string>>;

function skippable(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a50, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

function headerOf(e: TarEntry): Buffer {
  const bytes = tarBytes([{ ...e, content: undefined }]);
  const pad = e.size % BLOCK === 0 ? 0 : BLOCK - (e.size % BLOCK);
  return bytes.subarray(0, bytes.length - 2 * BLOCK - pad);
}

function modtime(d: Date): string | undefined {
  const s = Math.round(d.getTime() / 1000);
  return s === 0 ? undefined : new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

class Frames {
  readonly parts: Buffer[] = [];
  readonly diff = createHash('sha256');
  offset = 0;
  #open: Buffer[] = [];
  constructor(readonly level: number) {}
  write(b: Buffer): void {
    if (b.length === 0) return;
    this.#open.push(b);
    this.diff.update(b);
  }
  close(): void {
    if (this.#open.length === 0) return;
    const frame = compress(Buffer.concat(this.#open), { compressionLevel: this.level });
    this.#open = [];
    this.parts.push(frame);
    this.offset += frame.length;
  }
}

export function buildZstd(entries: readonly TarEntry[], opts: ZstdBuildOptions): BuiltZstd {
  const chunkSize = opts.chunkSize ?? 4 << 20;
  const style = opts.style ?? 'storage';
  const w = new Frames(opts.level ?? 3);
  const toc: Json[] = [];
  for (const e of entries) {
    const type = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', chardev: 'char', blockdev: 'block', fifo: 'fifo' }[e.type];
    const ent: Json = { type, name: e.path };
    if (e.linkpath !== undefined) ent['linkName'] = e.linkpath;
    if (e.mode) ent['mode'] = e.mode;
    if (e.type === 'file' && e.size > 0) ent['size'] = e.size;
    if (e.uid) ent['uid'] = e.uid;
    if (e.gid) ent['gid'] = e.gid;
    const mt = modtime(e.mtime);
    if (mt) ent['modtime'] = mt;
    if (e.devmajor) ent['devMajor'] = e.devmajor;
    if (e.devminor) ent['devMinor'] = e.devminor;
    const xn = Object.keys(e.xattrs).sort();
    if (xn.length > 0) ent['xattrs'] = Object.fromEntries(xn.map((n) => [n, e.xattrs[n]!.toString('base64')]));
    w.write(headerOf(e));
    toc.push(ent);
    if (e.type === 'file') ent['digest'] = sha256(contentBytes(e));
    if (e.type !== 'file' || e.size === 0) continue;
    const content = contentBytes(e);
    const count = Math.ceil(e.size / chunkSize);
    let current = ent;
    for (let k = 0; k < count; k++) {
      const bytes = content.subarray(k * chunkSize, Math.min(e.size, (k + 1) * chunkSize));
      w.close();
      if (w.offset) current['offset'] = w.offset;
      if (k) current['chunkOffset'] = k * chunkSize;
      if (style === 'storage' ? count > 1 : bytes.length === chunkSize) current['chunkSize'] = bytes.length;
      current['chunkDigest'] = sha256(bytes);
      if (style === 'storage' && opts.zeros && bytes.every((b) => b === 0)) current['chunkType'] = 'zeros';
      w.write(bytes);
      if (style === 'storage') {
        w.close();
        ent['endOffset'] = w.offset;
      }
      if (k + 1 < count) {
        current = { type: 'chunk', name: e.path };
        toc.push(current);
      }
    }
    const pad = e.size % BLOCK === 0 ? 0 : BLOCK - (e.size % BLOCK);
    w.write(Buffer.alloc(pad));
  }
  w.write(Buffer.alloc(2 * BLOCK));
  w.close();
  const doc = opts.mutateToc ? opts.mutateToc({ version: 1, entries: toc }) : { version: 1, entries: toc };
  const tocJson = Buffer.isBuffer(doc) ? doc : Buffer.from(style === 'storage' ? JSON.stringify(doc) : JSON.stringify(doc, null, '\t'));
  const compressed = compress(tocJson, { compressionLevel: w.level });
  const compressedToc = opts.replaceCompressedToc ? opts.replaceCompressedToc(compressed) : compressed;
  const tocOffset = w.offset + 8;
  const parts = [...w.parts, skippable(compressedToc)];
  let footer: Buffer;
  const annotations: Record<string, string> = {};
  if (opts.footer === 'current') {
    const tarSplitJson = Buffer.from(`${JSON.stringify({ type: 2, payload: '', position: 0 })}\n`);
    const tarSplit = compress(tarSplitJson, { compressionLevel: w.level });
    const tarSplitOffset = tocOffset + compressedToc.length + 8;
    parts.push(skippable(tarSplit));
    footer = Buffer.alloc(64);
    [tocOffset, compressedToc.length, tocJson.length, 1, tarSplitOffset, tarSplit.length, tarSplitJson.length].forEach((v, i) => footer.writeBigUInt64LE(BigInt(v), 8 * i));
    footer.write('GNUlInUx', 56, 'latin1');
    annotations['io.github.containers.zstd-chunked.manifest-checksum'] = sha256(compressedToc);
    annotations['io.github.containers.zstd-chunked.manifest-position'] = `${tocOffset}:${compressedToc.length}:${tocJson.length}:1`;
    annotations['io.github.containers.zstd-chunked.tarsplit-position'] = `${tarSplitOffset}:${tarSplit.length}:${tarSplitJson.length}`;
  } else {
    footer = Buffer.alloc(40);
    [tocOffset, compressedToc.length, tocJson.length, 1].forEach((v, i) => footer.writeBigUInt64LE(BigInt(v), 8 * i));
    footer.write('GnUlInUx', 32, 'latin1');
    annotations['io.containers.zstd-chunked.manifest-checksum'] = sha256(compressedToc);
    annotations['io.containers.zstd-chunked.manifest-position'] = `${tocOffset}:${compressedToc.length}:${tocJson.length}:1`;
    if (style === 'stargz') annotations['containerd.io/snapshot/stargz/toc.digest'] = sha256(tocJson);
  }
  parts.push(skippable(footer));
  return {
    blob: Buffer.concat(parts),
    tocDigest: sha256(tocJson),
    compressedTocDigest: sha256(compressedToc),
    tocJson,
    diffId: `sha256:${w.diff.digest('hex')}`,
    tocOffset,
    tocLength: compressedToc.length,
    annotations,
  };
}
