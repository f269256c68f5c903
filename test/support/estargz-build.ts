// An eStargz builder for test vectors, written from the reference's rules (stargz-snapshotter
// estargz/build.go `Build`/`sortEntries` and the Writer's `AppendTar`), independent of src/convert:
// - the tar header of an entry goes into whatever gzip member is open; each chunk of a non-empty
//   regular file starts a new member, unless fewer than `minChunkSize` compressed bytes were written
//   since the current member began, in which case the chunk joins it at `innerOffset` (landmarks always
//   start a member); a file is cut every `chunkSize` bytes;
// - `chunkSize` is recorded only on full chunks (0 = "to the end"), `chunkOffset`, `offset`,
//   `innerOffset` with Go's omitempty; `userName`/`groupName` only when they change for an id;
// - the TOC is its own member: a tar header `stargz.index.json`, the tab-indented JSON, the
//   end-of-archive blocks; then the footer, hand-assembled here (not src's encodeFooter).
// The blob stays a valid tar.gz and its uncompressed bytes hash to `diffId`.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { constants, createGzip, gzipSync, type Gzip } from 'node:zlib';
import { Header } from 'tar';
import type { PrebuiltLayerSpec } from './image-builder.js';
import { contentChunks, file, tarBytes, type TarEntry } from './tar-dsl.js';

export interface EstargzBuildOptions {
  /** Bytes of a file per gzip member (reference default 4 MiB). */
  readonly chunkSize?: number;
  /** Compressed bytes a member must reach before a new chunk starts another (reference `WithMinChunkSize`). */
  readonly minChunkSize?: number;
  /** Reference default: gzip.BestCompression. */
  readonly gzipLevel?: number;
  /** The 47-byte CRFS footer instead of the 51-byte eStargz one. */
  readonly legacyFooter?: boolean;
  /** Moved to the front (with their parents and hardlink targets), then `.prefetch.landmark`. */
  readonly prioritized?: readonly string[];
  /** Write `.no.prefetch.landmark` first (what Build does when nothing is prioritized). */
  readonly noPrefetchLandmark?: boolean;
}

/** One TOC entry as the reference writer marshals it (Go field order, omitempty). */
export type JsonTocEntry = Record<string, string | number | Record<string, string>>;

export interface BuiltEstargz {
  readonly blob: Buffer;
  readonly tocDigest: string;
  readonly tocJson: Buffer;
  readonly diffId: string;
  readonly tocOffset: number;
  /** The tar entries in the order written, landmarks included. */
  readonly written: readonly TarEntry[];
}

export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
const LANDMARK_CONTENT = Buffer.from([0x0f]);
const BLOCK = 512;

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const clean = (name: string): string => name.split('/').filter((p) => p !== '' && p !== '.' && p !== '..').join('/');

function landmark(name: string): TarEntry {
  return file(name, LANDMARK_CONTENT, { mode: 0o644, mtime: new Date(0) });
}

/** The reference's sortEntries/moveRec: prioritized names with their parents and link targets first. */
function order(entries: readonly TarEntry[], opts: EstargzBuildOptions): TarEntry[] {
  const rest = [...entries];
  const sorted: TarEntry[] = [];
  const take = (name: string): boolean => {
    const i = rest.findIndex((e) => clean(e.path) === name);
    if (i < 0) return false;
    sorted.push(...rest.splice(i, 1));
    return true;
  };
  // The reference also demands every parent be in the tar; layers without parents are tested here too.
  const move = (name: string, required: boolean): void => {
    name = clean(name);
    if (name === '') return void take('');
    const known = rest.some((e) => clean(e.path) === name) || sorted.some((e) => clean(e.path) === name);
    if (!known && required) throw new Error(`estargz-build: prioritized file ${name} not found`);
    const cut = name.lastIndexOf('/');
    move(cut < 0 ? '' : name.slice(0, cut), false);
    const e = rest.find((x) => clean(x.path) === name);
    if (e?.type === 'hardlink') move(e.linkpath!, true);
    take(name);
  };
  for (const name of opts.prioritized ?? []) move(name, true);
  if (opts.prioritized !== undefined && opts.prioritized.length > 0) sorted.push(landmark(PREFETCH_LANDMARK));
  else if (opts.noPrefetchLandmark) sorted.push(landmark(NO_PREFETCH_LANDMARK));
  return [...sorted, ...rest];
}

/** Header blocks (PAX + ustar) of an entry: its tar without data, padding and end-of-archive. */
function headerOf(e: TarEntry): Buffer {
  const bytes = tarBytes([{ ...e, content: undefined }]);
  const pad = e.size % BLOCK === 0 ? 0 : BLOCK - (e.size % BLOCK);
  return bytes.subarray(0, bytes.length - 2 * BLOCK - pad);
}

/** Go's formatModtime: empty for the epoch, else UTC rounded to the second. */
function modtime(d: Date): string {
  const s = Math.round(d.getTime() / 1000);
  if (s === 0) return '';
  return new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One gzip member being written; `compressed()` flushes, as the reference does before measuring. */
class Member {
  readonly #gz: Gzip;
  readonly #out: Buffer[] = [];
  #length = 0;
  constructor(level: number) {
    this.#gz = createGzip({ level });
    this.#gz.on('data', (b: Buffer) => {
      this.#out.push(b);
      this.#length += b.length;
    });
  }
  async write(b: Uint8Array): Promise<void> {
    if (!this.#gz.write(b)) await once(this.#gz, 'drain');
  }
  async compressed(): Promise<number> {
    await new Promise<void>((resolve) => this.#gz.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    return this.#length;
  }
  async close(): Promise<Buffer> {
    const ended = once(this.#gz, 'end');
    this.#gz.end();
    await ended;
    return Buffer.concat(this.#out);
  }
}

class Writer {
  readonly parts: Buffer[] = [];
  offset = 0;
  uncompressed = 0;
  readonly diff = createHash('sha256');
  #member: Member | null = null;
  constructor(readonly level: number) {}
  async write(b: Uint8Array): Promise<void> {
    this.#member ??= new Member(this.level);
    this.diff.update(b);
    this.uncompressed += b.length;
    await this.#member.write(b);
  }
  /** Blob offset the next member would start at if the open one closed now (cw.n after a flush). */
  async compressedEnd(): Promise<number> {
    return this.offset + (this.#member ? await this.#member.compressed() : 0);
  }
  async close(): Promise<void> {
    if (!this.#member) return;
    const bytes = await this.#member.close();
    this.#member = null;
    this.parts.push(bytes);
    this.offset += bytes.length;
  }
}

function footer(tocOffset: number, legacy: boolean): Buffer {
  const payload = Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 'latin1');
  const extra = legacy ? payload : Buffer.concat([Buffer.from([0x53, 0x47, payload.length, 0]), payload]);
  const header = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  return Buffer.concat([header, extra, Buffer.from([1, 0, 0, 0xff, 0xff]), Buffer.alloc(8)]);
}

/** The TOC member alone: tar header + JSON + padding + end-of-archive, gzipped (also for fuzzing). */
export function tocTar(json: Uint8Array): Buffer {
  const header = new Header({ path: 'stargz.index.json', type: 'File', size: json.length, mode: 0o644, mtime: new Date(0) });
  header.encode();
  const pad = json.length % BLOCK === 0 ? 0 : BLOCK - (json.length % BLOCK);
  return Buffer.concat([header.block!, json, Buffer.alloc(pad), Buffer.alloc(2 * BLOCK)]);
}

export function tocMember(json: Uint8Array | string, level = 6): Buffer {
  return gzipSync(tocTar(typeof json === 'string' ? Buffer.from(json) : json), { level });
}

/** A whole blob around a given TOC JSON: `data` (gzip members) + TOC member + footer. */
export function blobWithToc(data: Buffer, json: Uint8Array | string, legacy = false): Buffer {
  return Buffer.concat([data, tocMember(json), footer(data.length, legacy)]);
}

export async function buildEstargz(entries: readonly TarEntry[], opts: EstargzBuildOptions = {}): Promise<BuiltEstargz> {
  const chunkSize = opts.chunkSize ?? 4 << 20;
  const minChunkSize = opts.minChunkSize ?? 0;
  const w = new Writer(opts.gzipLevel ?? 9);
  const written = order(entries, opts);
  const toc: JsonTocEntry[] = [];
  const names = { uid: new Map<number, string>(), gid: new Map<number, string>() };
  const ifChanged = (map: Map<number, string>, id: number, name: string | undefined): string | undefined => {
    if (!name || map.get(id) === name) return undefined;
    map.set(id, name);
    return name;
  };
  let prevOffset = 0;
  let prevUncompressed = 0;
  for (const e of written) {
    const type = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', chardev: 'char', blockdev: 'block', fifo: 'fifo' }[e.type];
    const ent: JsonTocEntry = { name: e.path, type };
    if (e.type === 'file' && e.size > 0) ent['size'] = e.size;
    const mtime = modtime(e.mtime);
    if (mtime) ent['modtime'] = mtime;
    if (e.linkpath !== undefined) ent['linkName'] = e.linkpath;
    if (e.mode) ent['mode'] = e.mode;
    if (e.uid) ent['uid'] = e.uid;
    if (e.gid) ent['gid'] = e.gid;
    const uname = ifChanged(names.uid, e.uid, e.uname);
    if (uname) ent['userName'] = uname;
    const gname = ifChanged(names.gid, e.gid, e.gname);
    if (gname) ent['groupName'] = gname;
    await w.write(headerOf(e));
    if (e.type !== 'file' || e.size === 0) {
      if (e.devmajor) ent['devMajor'] = e.devmajor;
      if (e.devminor) ent['devMinor'] = e.devminor;
      addXattrs(ent, e);
      if (e.type === 'file') ent['digest'] = sha256(new Uint8Array(0));
      toc.push(ent);
    } else {
      addXattrs(ent, e);
      const fileHash = createHash('sha256');
      const fileEntry = ent;
      let current: JsonTocEntry = ent;
      let written = 0;
      const source = contentChunks(e);
      let pending: Buffer = Buffer.alloc(0);
      const next = (n: number): Buffer => {
        const out: Buffer[] = [];
        let need = n;
        while (need > 0) {
          if (pending.length === 0) {
            const r = source.next();
            if (r.done) throw new Error(`estargz-build: ${e.path}: content ended early`);
            pending = r.value;
          }
          const take = Math.min(need, pending.length);
          out.push(pending.subarray(0, take));
          pending = pending.subarray(take);
          need -= take;
        }
        return out.length === 1 ? out[0]! : Buffer.concat(out);
      };
      while (written < e.size) {
        const remain = e.size - written;
        const len = Math.min(chunkSize, remain);
        if (remain >= chunkSize) current['chunkSize'] = chunkSize;
        const isLandmark = e.path === PREFETCH_LANDMARK || e.path === NO_PREFETCH_LANDMARK;
        if (isLandmark || (await w.compressedEnd()) - prevOffset >= minChunkSize) {
          await w.close();
          prevOffset = w.offset;
          prevUncompressed = w.uncompressed;
          if (w.offset) current['offset'] = w.offset;
        } else {
          if (prevOffset) current['offset'] = prevOffset;
          if (w.uncompressed - prevUncompressed) current['innerOffset'] = w.uncompressed - prevUncompressed;
        }
        if (written) current['chunkOffset'] = written;
        const bytes = next(len);
        fileHash.update(bytes);
        await w.write(bytes);
        current['chunkDigest'] = sha256(bytes);
        toc.push(current);
        written += len;
        current = { name: e.path, type: 'chunk' };
      }
      fileEntry['digest'] = `sha256:${fileHash.digest('hex')}`;
    }
    const pad = e.size % BLOCK === 0 ? 0 : BLOCK - (e.size % BLOCK);
    if (pad) await w.write(Buffer.alloc(pad));
  }
  await w.close();
  const tocOffset = w.offset;
  const tocJson = Buffer.from(JSON.stringify({ version: 1, entries: reorder(toc) }, null, '\t'));
  const tar = tocTar(tocJson);
  w.diff.update(tar);
  const blob = Buffer.concat([...w.parts, gzipSync(tar, { level: w.level }), footer(tocOffset, opts.legacyFooter ?? false)]);
  return { blob, tocDigest: sha256(tocJson), tocJson, diffId: `sha256:${w.diff.digest('hex')}`, tocOffset, written };
}

function addXattrs(ent: JsonTocEntry, e: TarEntry): void {
  const names = Object.keys(e.xattrs).sort();
  if (names.length > 0) ent['xattrs'] = Object.fromEntries(names.map((n) => [n, e.xattrs[n]!.toString('base64')]));
}

const GO_ORDER = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest'];

/** Go marshals struct fields in declaration order. */
function reorder(entries: JsonTocEntry[]): JsonTocEntry[] {
  return entries.map((e) => Object.fromEntries(GO_ORDER.filter((k) => k in e).map((k) => [k, e[k]!])));
}

/**
 * An eStargz layer of `entries` written to `path`, as a prebuilt layer for `buildImage`: media type
 * tar+gzip, annotated with its TOC digest as converters do, so tocfs reads it lazily.
 */
export async function estargzLayerFile(path: string, entries: readonly TarEntry[], opts: EstargzBuildOptions = {}): Promise<PrebuiltLayerSpec> {
  const { blob, tocDigest, diffId } = await buildEstargz(entries, opts);
  await writeFile(path, blob);
  return {
    blobPath: path,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    diffId,
    annotations: { 'containerd.io/snapshot/stargz/toc.digest': tocDigest },
  };
}
