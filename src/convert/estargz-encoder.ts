/**
 * Turns tar entries, in the order they should appear, into an eStargz blob: gzip members, the TOC and
 * the footer. Byte layout, as stargz-snapshotter's estargz `Writer.AppendTar` + `Close` lay it out:
 *
 * - A member is open while bytes come; tar headers go into whatever member is open, so an entry's
 *   headers end the member before its payload (the first entry's start the member at offset 0).
 * - Before each chunk of a non-empty regular file the open member is closed and a new one starts;
 *   that member's offset is the `offset` of the `reg` (first chunk) or `chunk` TOC entry. A file
 *   gets a new member every `chunkSize` bytes. After its last chunk the member stays open: the
 *   padding and the next headers follow in it.
 * - `chunkSize` is written only on full-size chunks (a file's last, shorter chunk leaves it out, which
 *   readers take as "to the end of the file"); `chunkOffset` is omitted when 0 (Go `omitempty`).
 * - `userName`/`groupName` are written only when an id's name first appears or changes (`nameIfChanged`).
 * - Close: the open member is closed, then one member holds the TOC tar entry `stargz.index.json`
 *   (JSON indented with tabs) and the two end-of-archive blocks; then the 51-byte footer member.
 *   The input's own end-of-archive blocks are not copied (the TOC entry must stay visible to tar).
 *
 * Unlike the reference, which re-encodes each header with Go's tar writer, the input's header blocks
 * (PAX, GNU long names and all) are copied verbatim, so nothing in them is lost or reinterpreted.
 */
import { createHash, type Hash } from 'node:crypto';
import { encodeFooter } from '../formats/estargz/footer.js';
import { BLOCK_SIZE, encodeUstarHeader } from '../formats/tar/header.js';
import type { TarHeader } from '../formats/tar/reader.js';
import type { GzipMemberWriter } from './gzip-members.js';
import { PREFETCH_LANDMARK, TOC_TAR_NAME } from '../formats/whiteouts.js';

/** The landmark files hold one byte, 0x0f (estargz `landmarkContents`). */
export const LANDMARK_CONTENTS = 0x0f;

/** One `stargz.index.json` entry; property order follows the reference's TOCEntry struct. */
interface JsonEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

const KEY_ORDER: readonly (keyof JsonEntry)[] = [
  'name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset',
  'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest',
];

/** The entry with its keys in the reference's order (fields are filled out of order while writing). */
function ordered(e: JsonEntry): JsonEntry {
  const out: Record<string, unknown> = {};
  for (const key of KEY_ORDER) if (e[key] !== undefined) out[key] = e[key];
  return out as unknown as JsonEntry;
}

const TOC_TYPES = {
  file: 'reg',
  hardlink: 'hardlink',
  symlink: 'symlink',
  char: 'char',
  block: 'block',
  dir: 'dir',
  fifo: 'fifo',
} as const;

export interface EncodedBlob {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
  readonly uncompressedSize: number;
  readonly tocDigest: string;
  readonly tocOffset: number;
  /** Where `.prefetch.landmark` starts: the prioritised files are the bytes before it. Absent without one. */
  readonly prefetchEnd?: number;
}

interface OpenFile {
  readonly header: TarHeader;
  readonly entry: JsonEntry;
  readonly fileHash: Hash;
  written: number;
  chunk: JsonEntry | undefined;
  chunkHash: Hash | undefined;
  chunkLeft: number;
}

/** RFC 3339 in UTC, rounded to the second like Go's `t.Round(time.Second)`; undefined (omitted) for the epoch. */
export function formatModtime(seconds: number, nanos: number): string | undefined {
  if (seconds === 0) return undefined; // the reference omits zero and Unix-0 times
  const date = new Date((seconds + (nanos >= 500_000_000 ? 1 : 0)) * 1000);
  // A base-256 mtime can lie beyond what Date holds (±275,760 years): leave such a time out.
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

export function omitZero(n: number): number | undefined {
  return n === 0 ? undefined : n;
}

/**
 * A TOC entry's device numbers (char and block devices) and xattrs (base64, sorted by name), as both TOC
 * writers (eStargz, zstd:chunked) record them, in that order, after the fields each orders its own way.
 */
export function deviceAndXattrs(h: TarHeader): { devMajor?: number | undefined; devMinor?: number | undefined; xattrs?: Record<string, string> } {
  const out: { devMajor?: number | undefined; devMinor?: number | undefined; xattrs?: Record<string, string> } = {};
  if (h.type === 'char' || h.type === 'block') {
    out.devMajor = omitZero(h.devmajor);
    out.devMinor = omitZero(h.devminor);
  }
  if (h.xattrs.size > 0) {
    const names = [...h.xattrs.keys()].sort();
    out.xattrs = Object.fromEntries(names.map((n) => [n, Buffer.from(h.xattrs.get(n)!).toString('base64')]));
  }
  return out;
}

export class EstargzEncoder {
  readonly #out: GzipMemberWriter;
  readonly #chunkSize: number;
  readonly #entries: JsonEntry[] = [];
  readonly #diff = createHash('sha256');
  #uncompressed = 0;
  readonly #unames = new Map<number, string>();
  readonly #gnames = new Map<number, string>();
  #file: OpenFile | undefined;
  /** reg/chunk entry -> index of the gzip member holding its data. */
  readonly #memberOf = new Map<JsonEntry, number>();

  constructor(out: GzipMemberWriter, chunkSize: number) {
    this.#out = out;
    this.#chunkSize = chunkSize;
  }

  /** Uncompressed bytes so far, which `diffId` covers. */
  get uncompressedSize(): number {
    return this.#uncompressed;
  }

  /** Starts an entry: copies its header blocks and records its TOC entry. Data follows via `data`. */
  async entry(h: TarHeader): Promise<void> {
    if (this.#file) throw new Error('EstargzEncoder: entry() before the previous file ended');
    await this.#emit(h.headerBytes);
    const e: JsonEntry = { name: h.path, type: TOC_TYPES[h.type] };
    if (h.type === 'file') e.size = omitZero(h.size);
    e.modtime = formatModtime(h.mtime.seconds, h.mtime.nanos);
    if (h.type === 'symlink' || h.type === 'hardlink') e.linkName = h.linkpath;
    e.mode = omitZero(h.mode);
    e.uid = omitZero(h.uid);
    e.gid = omitZero(h.gid);
    e.userName = nameIfChanged(this.#unames, h.uid, h.uname);
    e.groupName = nameIfChanged(this.#gnames, h.gid, h.gname);
    Object.assign(e, deviceAndXattrs(h));
    this.#entries.push(e);
    if (h.type === 'file') {
      this.#file = { header: h, entry: e, fileHash: createHash('sha256'), written: 0, chunk: undefined, chunkHash: undefined, chunkLeft: 0 };
      if (h.size === 0) await this.entryEnd();
    }
  }

  /** Data of the current regular file, in order; split into chunks, each in its own member. */
  async data(bytes: Uint8Array): Promise<void> {
    const f = this.#file;
    if (!f) {
      if (bytes.length > 0) throw new Error('EstargzEncoder: data for an entry that has none');
      return;
    }
    let rest = bytes;
    while (rest.length > 0) {
      if (f.chunkLeft === 0) await this.#startChunk(f);
      const piece = rest.subarray(0, Math.min(f.chunkLeft, rest.length));
      rest = rest.subarray(piece.length);
      f.fileHash.update(piece);
      f.chunkHash!.update(piece);
      f.chunkLeft -= piece.length;
      f.written += piece.length;
      await this.#emit(piece);
      if (f.chunkLeft === 0) f.chunk!.chunkDigest = `sha256:${f.chunkHash!.digest('hex')}`;
    }
  }

  /** Ends the current entry: checks the data length, writes the tar padding. */
  async entryEnd(): Promise<void> {
    const f = this.#file;
    if (!f) return;
    this.#file = undefined;
    if (f.written !== f.header.size) {
      throw new Error(`EstargzEncoder: ${f.header.path}: ${f.written} data bytes for a ${f.header.size}-byte file`);
    }
    if (f.header.size > 0) f.entry.digest = `sha256:${f.fileHash.digest('hex')}`;
    const pad = (BLOCK_SIZE - (f.header.size % BLOCK_SIZE)) % BLOCK_SIZE;
    if (pad > 0) await this.#emit(new Uint8Array(pad));
  }

  /** Raw bytes that are not an entry of their own (a PAX global header). */
  async raw(bytes: Uint8Array): Promise<void> {
    await this.#emit(bytes);
  }

  /** Adds a small regular file tocfs makes itself (a landmark): ustar header, mode 0644, root, epoch. */
  async syntheticFile(name: string, content: Uint8Array): Promise<void> {
    const headerBytes = encodeUstarHeader({ name, size: content.length });
    await this.entry({
      path: name,
      type: 'file',
      typeflag: '0',
      mode: 0o644,
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
      size: content.length,
      mtime: { seconds: 0, nanos: 0 },
      linkpath: '',
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
      pax: new Map(),
      headerOffset: 0,
      dataOffset: 0,
      headerBytes,
    });
    await this.data(content);
    await this.entryEnd();
  }

  /** Writes the TOC member and the footer and ends the sink. */
  async finish(): Promise<EncodedBlob> {
    if (this.#file) throw new Error(`EstargzEncoder: finish() inside ${this.#file.header.path}`);
    await this.#out.settle();
    for (const [entry, member] of this.#memberOf) entry.offset = this.#out.memberOffset(member);
    const tocOffset = this.#out.offset;
    const json = Buffer.from(JSON.stringify({ version: 1, entries: this.#entries.map(ordered) }, null, '\t'), 'utf8');
    const tocDigest = `sha256:${createHash('sha256').update(json).digest('hex')}`;
    await this.#emit(encodeUstarHeader({ name: TOC_TAR_NAME, size: json.length }));
    await this.#emit(json);
    const pad = (BLOCK_SIZE - (json.length % BLOCK_SIZE)) % BLOCK_SIZE;
    await this.#emit(new Uint8Array(pad + 2 * BLOCK_SIZE));
    await this.#out.writeRaw(encodeFooter(tocOffset, 'estargz'));
    const { size, digest } = await this.#out.finish();
    // A landmark with no file data before it (a layer without the prioritised files) leaves nothing to fetch.
    const landmark = this.#entries.find((e) => e.name === PREFETCH_LANDMARK)?.offset;
    const prefetchEnd = landmark !== undefined && this.#entries.some((e) => (e.type === 'reg' || e.type === 'chunk') && e.offset !== undefined && e.offset < landmark) ? landmark : undefined;
    return {
      digest,
      size,
      diffId: `sha256:${this.#diff.digest('hex')}`,
      uncompressedSize: this.#uncompressed,
      tocDigest,
      tocOffset,
      ...(prefetchEnd !== undefined ? { prefetchEnd } : {}),
    };
  }

  async #startChunk(f: OpenFile): Promise<void> {
    await this.#out.closeMember();
    const left = f.header.size - f.written;
    const size = Math.min(this.#chunkSize, left);
    const chunk: JsonEntry = f.written === 0 ? f.entry : { name: f.header.path, type: 'chunk' };
    // Members compress concurrently: the offset is known once the earlier ones are written (finish()).
    this.#memberOf.set(chunk, this.#out.nextMemberIndex);
    chunk.chunkOffset = omitZero(f.written);
    if (size === this.#chunkSize) chunk.chunkSize = size;
    if (chunk !== f.entry) this.#entries.push(chunk);
    f.chunk = chunk;
    f.chunkHash = createHash('sha256');
    f.chunkLeft = size;
  }

  async #emit(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.#diff.update(bytes);
    this.#uncompressed += bytes.length;
    await this.#out.write(bytes);
  }
}

/** The reference's `nameIfChanged`: a name is written when it differs from the last one for that id. */
function nameIfChanged(names: Map<number, string>, id: number, name: string): string | undefined {
  if (name === '' || names.get(id) === name) return undefined;
  names.set(id, name);
  return name;
}
