// Declarative layer contents: `tarOf([dir('etc'), file('etc/hosts', '127.0.0.1 localhost\n')])`.
//
// Headers are encoded by node-tar's `Header` (ustar fields, checksums, base-256 for numbers that do not
// fit in octal). PAX records are framed here because no tar library on npm writes them binary-safe:
// node-tar and tar-stream both build the PAX body as a JS string, which mangles xattr values that are
// not UTF-8 (a `security.capability` holding CAP_SETUID has a 0x80 byte), and tar-stream also writes
// uid > 262143 as 777777 and drops mtimes after 2038. Docker and containerd (Go archive/tar) write
// `SCHILY.xattr.NAME` records with the raw value bytes, so that is what we write.
import { Readable } from 'node:stream';
import { Header, type HeaderData } from 'tar';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';

export interface EntryOptions {
  /** Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000); no S_IFMT bits. */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly uname?: string;
  readonly gname?: string;
  /** Sub-second and out-of-ustar-range times are written as a PAX `mtime` record. */
  readonly mtime?: Date;
  /** Written as PAX `SCHILY.xattr.NAME` with the raw bytes (strings are UTF-8). */
  readonly xattrs?: Readonly<Record<string, Buffer | string>>;
}

/**
 * File content generated while streaming, never held in memory. With `sparse` or `fill` every byte is
 * `fill` (default 0); otherwise the bytes are a deterministic pseudo-random stream seeded by the path,
 * so that chunk-level tests see data that neither repeats nor compresses.
 */
export interface GeneratedContent {
  readonly size: number;
  readonly sparse?: true;
  readonly fill?: number;
}

export type FileContent = string | Uint8Array | GeneratedContent;

/** One tar entry with every default applied; `path` and `linkpath` are written verbatim. */
export interface TarEntry {
  readonly type: EntryType;
  readonly path: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname?: string;
  readonly gname?: string;
  readonly mtime: Date;
  readonly xattrs: Readonly<Record<string, Buffer>>;
  /** Bytes of the entry's data in the tar: 0 for everything but regular files. */
  readonly size: number;
  readonly content?: Uint8Array | GeneratedContent;
  /** Symlink target, or the path of the entry a hardlink points at. */
  readonly linkpath?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
}

/** Fixed so that the same entries always give the same tar, hence the same layer digest. */
export const DEFAULT_MTIME = new Date('2020-01-01T00:00:00Z');

const DEFAULT_MODE: Record<EntryType, number> = {
  file: 0o644,
  dir: 0o755,
  symlink: 0o777,
  hardlink: 0o644,
  chardev: 0o666,
  blockdev: 0o660,
  fifo: 0o644,
};

const USTAR_MAX_ID = 0o7777777;
const USTAR_MAX_SIZE = 0o77777777777;
const BLOCK = 512;
const CHUNK = 1 << 20;

function entry(type: EntryType, path: string, opts: EntryOptions, extra: Partial<TarEntry> = {}): TarEntry {
  if (path === '') throw new Error('tar-dsl: empty path');
  const mode = opts.mode ?? DEFAULT_MODE[type];
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new Error(`tar-dsl: ${path}: mode ${mode?.toString(8)} must be permission bits only (0..0o7777)`);
  }
  const xattrs: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(opts.xattrs ?? {})) {
    xattrs[name] = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  }
  return {
    type,
    path,
    mode,
    uid: opts.uid ?? 0,
    gid: opts.gid ?? 0,
    ...(opts.uname === undefined ? {} : { uname: opts.uname }),
    ...(opts.gname === undefined ? {} : { gname: opts.gname }),
    mtime: opts.mtime ?? DEFAULT_MTIME,
    xattrs,
    size: 0,
    ...extra,
  };
}

export function file(path: string, content: FileContent = '', opts: EntryOptions = {}): TarEntry {
  if (typeof content === 'string') content = Buffer.from(content, 'utf8');
  if (!(content instanceof Uint8Array)) {
    if (!Number.isSafeInteger(content.size) || content.size < 0) {
      throw new Error(`tar-dsl: ${path}: size ${content.size} is not a non-negative safe integer`);
    }
    const fill = content.fill ?? 0;
    if (!Number.isInteger(fill) || fill < 0 || fill > 255) throw new Error(`tar-dsl: ${path}: fill ${fill} is not a byte`);
  }
  const size = content instanceof Uint8Array ? content.byteLength : content.size;
  return entry('file', path, opts, { size, content });
}

/** A trailing `/` is added, as docker and GNU tar write directory names. */
export function dir(path: string, opts: EntryOptions = {}): TarEntry {
  return entry('dir', path.endsWith('/') ? path : `${path}/`, opts);
}

export function symlink(path: string, target: string, opts: EntryOptions = {}): TarEntry {
  return entry('symlink', path, opts, { linkpath: target });
}

/** `target` is the tar path of an earlier entry, as written in the link header. */
export function hardlink(path: string, target: string, opts: EntryOptions = {}): TarEntry {
  return entry('hardlink', path, opts, { linkpath: target });
}

export function chardev(path: string, major: number, minor: number, opts: EntryOptions = {}): TarEntry {
  return entry('chardev', path, opts, { devmajor: major, devminor: minor });
}

export function blockdev(path: string, major: number, minor: number, opts: EntryOptions = {}): TarEntry {
  return entry('blockdev', path, opts, { devmajor: major, devminor: minor });
}

export function fifo(path: string, opts: EntryOptions = {}): TarEntry {
  return entry('fifo', path, opts);
}

/** Splits at the last `/` so prefixes such as `./` or `/` survive into the whiteout's path. */
function inDirOf(path: string, prefixName: (name: string) => string): string {
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  const cut = trimmed.lastIndexOf('/');
  return trimmed.slice(0, cut + 1) + prefixName(trimmed.slice(cut + 1));
}

/** `whiteout('a/b')` writes the empty file `a/.wh.b`, which deletes `a/b` from lower layers. */
export function whiteout(path: string, opts: EntryOptions = {}): TarEntry {
  return file(inDirOf(path, (name) => `.wh.${name}`), '', opts);
}

/** `opaque('a')` writes `a/.wh..wh..opq`, which hides everything lower layers have under `a/`. */
export function opaque(dirPath: string, opts: EntryOptions = {}): TarEntry {
  const base = dirPath.endsWith('/') || dirPath === '' ? dirPath : `${dirPath}/`;
  return file(`${base}.wh..wh..opq`, '', opts);
}

const fillChunks = new Map<number, Buffer>();

function fillChunk(fill: number): Buffer {
  let chunk = fillChunks.get(fill);
  if (!chunk) fillChunks.set(fill, (chunk = Buffer.alloc(CHUNK, fill)));
  return chunk;
}

/** FNV-1a, so the pseudo-random content of a path is stable across runs and machines. */
function seedOf(path: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(path, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h || 1;
}

function* patternChunks(seed: number, size: number): Generator<Buffer> {
  let x = seed;
  for (let done = 0; done < size; ) {
    const n = Math.min(CHUNK, size - done);
    const chunk = Buffer.allocUnsafe(Math.ceil(n / 4) * 4);
    for (let i = 0; i < chunk.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk.writeUInt32LE(x >>> 0, i);
    }
    done += n;
    yield n === chunk.length ? chunk : chunk.subarray(0, n);
  }
}

/** The data bytes of an entry, in chunks of at most 1 MiB; chunks may be shared, never mutate them. */
export function* contentChunks(e: TarEntry): Generator<Buffer> {
  const content = e.content;
  if (content === undefined || e.size === 0) return;
  if (content instanceof Uint8Array) {
    yield Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  } else if (content.sparse || content.fill !== undefined) {
    const chunk = fillChunk(content.fill ?? 0);
    for (let left = content.size; left > 0; left -= CHUNK) yield left >= CHUNK ? chunk : chunk.subarray(0, left);
  } else {
    yield* patternChunks(seedOf(e.path), content.size);
  }
}

/** The whole content of a (small) file entry. */
export function contentBytes(e: TarEntry): Buffer {
  return Buffer.concat([...contentChunks(e)]);
}

const HEADER_TYPE = {
  file: 'File',
  dir: 'Directory',
  symlink: 'SymbolicLink',
  hardlink: 'Link',
  chardev: 'CharacterDevice',
  blockdev: 'BlockDevice',
  fifo: 'FIFO',
} as const satisfies Record<EntryType, HeaderData['type']>;

/** True when node-tar cannot store this one field in a ustar header (too long, or not ASCII). */
function overflowsUstar(field: Pick<HeaderData, 'path' | 'linkpath' | 'uname' | 'gname'>): boolean {
  return new Header(field).encode();
}

/** `"%d %s=%s\n"` where the leading length counts itself (POSIX pax, "extended header records"). */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let length = rest.length + String(rest.length).length;
  if (String(length).length !== String(rest.length).length) length = rest.length + String(length).length;
  return Buffer.concat([Buffer.from(String(length)), rest]);
}

function paxRecords(e: TarEntry): Buffer[] {
  const records: Buffer[] = [];
  const text = (key: string, value: string): void => void records.push(paxRecord(key, Buffer.from(value, 'utf8')));
  if (overflowsUstar({ path: e.path })) text('path', e.path);
  if (e.linkpath !== undefined && overflowsUstar({ linkpath: e.linkpath })) text('linkpath', e.linkpath);
  if (e.size > USTAR_MAX_SIZE) text('size', String(e.size));
  if (e.uid > USTAR_MAX_ID || e.uid < 0) text('uid', String(e.uid));
  if (e.gid > USTAR_MAX_ID || e.gid < 0) text('gid', String(e.gid));
  if (e.uname !== undefined && overflowsUstar({ uname: e.uname })) text('uname', e.uname);
  if (e.gname !== undefined && overflowsUstar({ gname: e.gname })) text('gname', e.gname);
  const ms = e.mtime.getTime();
  if (ms % 1000 !== 0 || ms < 0 || ms / 1000 > USTAR_MAX_SIZE) text('mtime', (ms / 1000).toFixed(3));
  for (const name of Object.keys(e.xattrs).sort()) records.push(paxRecord(`SCHILY.xattr.${name}`, e.xattrs[name]!));
  return records;
}

function padding(size: number): Buffer | undefined {
  const rem = size % BLOCK;
  return rem === 0 ? undefined : Buffer.alloc(BLOCK - rem);
}

function headerBlock(data: HeaderData): Buffer {
  const header = new Header(data);
  header.encode();
  return header.block!;
}

function* entryBlocks(e: TarEntry): Generator<Buffer> {
  const records = paxRecords(e);
  if (records.length > 0) {
    const body = Buffer.concat(records);
    // Readers ignore this name; Go archive/tar writes the same shape, ASCII and short.
    const base = inDirOf(e.path, (n) => n).split('/').filter(Boolean).pop() ?? 'entry';
    const paxName = `PaxHeaders.0/${base.replace(/[^\x20-\x7e]/g, '_').slice(0, 80)}`;
    yield headerBlock({ path: paxName, type: 'ExtendedHeader', size: body.length, mode: 0o644, mtime: DEFAULT_MTIME });
    yield body;
    const pad = padding(body.length);
    if (pad) yield pad;
  }
  yield headerBlock({
    path: e.path,
    type: HEADER_TYPE[e.type],
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime: e.mtime,
    ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
    ...(e.uname === undefined ? {} : { uname: e.uname }),
    ...(e.gname === undefined ? {} : { gname: e.gname }),
    ...(e.devmajor === undefined ? {} : { devmaj: e.devmajor, devmin: e.devminor ?? 0 }),
  });
  yield* contentChunks(e);
  const pad = padding(e.size);
  if (pad) yield pad;
}

function* tarBlocks(entries: Iterable<TarEntry>): Generator<Buffer> {
  for (const e of entries) yield* entryBlocks(e);
  yield Buffer.alloc(2 * BLOCK);
}

/** Streams the tar of `entries`; memory stays bounded whatever the file sizes. */
export function tarOf(entries: Iterable<TarEntry>): Readable {
  return Readable.from(tarBlocks(entries), { objectMode: false, highWaterMark: CHUNK });
}

/** The whole tar in memory, for small vectors. */
export function tarBytes(entries: Iterable<TarEntry>): Buffer {
  return Buffer.concat([...tarBlocks(entries)]);
}
