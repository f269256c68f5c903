/**
 * A streaming, binary-safe tar reader: push byte chunks of any size, get events back. No I/O.
 *
 * Why our own: node-tar and tar-stream decode PAX record values as UTF-8 strings, which corrupts binary
 * xattr values (a `security.capability` holding CAP_SETUID has a 0x80 byte, not valid UTF-8), and
 * neither reports where each entry's header and data sit in the uncompressed stream, which indexing a
 * plain tar needs. Here PAX values stay raw bytes and every entry carries its offsets and raw header.
 *
 * Supported: ustar, GNU and v7 headers; PAX local (`x`) and global (`g`) headers (`path`, `linkpath`,
 * `size`, `uid`, `gid`, `uname`, `gname`, `mtime` with fractions, `SCHILY.xattr.*`); GNU long names and
 * link names (`L`, `K`); base-256 numbers; types 0, '\0', 1-7. Strict: a bad checksum, an unknown type,
 * GNU sparse files, a stream cut short, or sizes over the limits are FormatErrors naming the entry and
 * its offset. A stream that ends on an entry boundary without the two zero blocks is accepted, as GNU
 * tar and Go's archive/tar accept it; bytes after the end-of-archive blocks are ignored.
 */
import { FormatError } from '../../errors.js';
import {
  BLOCK_SIZE,
  cString,
  entryTypeOf,
  isHeaderOnly,
  isZeroBlock,
  parseHeaderBlock,
  where,
  type HeaderBlock,
  type TarEntryType,
} from './header.js';
import { paxInteger, parsePaxRecords, paxText, paxTime, type TarTime } from './pax.js';

export type { TarEntryType } from './header.js';
export type { TarTime } from './pax.js';

/** One entry's metadata, with every PAX record and GNU long name applied. */
export interface TarHeader {
  /** As stored (PAX `path` > GNU long name > ustar prefix/name), not normalised: may start with `./`. */
  readonly path: string;
  readonly type: TarEntryType;
  /** The raw typeflag character ('0', '\0', '7', '5', ...). */
  readonly typeflag: string;
  /** The mode field as stored: permission bits, sometimes with S_IFMT bits some writers add. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  /** Bytes of data that follow the header: 0 for every type but regular files. */
  readonly size: number;
  readonly mtime: TarTime;
  /** Symlink target or hardlink source path, verbatim; '' when none. */
  readonly linkpath: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** `SCHILY.xattr.NAME` records: name -> raw value bytes. */
  readonly xattrs: ReadonlyMap<string, Uint8Array>;
  /** Every PAX record in effect for this entry (global, then local), raw. */
  readonly pax: ReadonlyMap<string, Uint8Array>;
  /** Stream offset of the entry's first header block (its PAX or GNU long-name header, if any). */
  readonly headerOffset: number;
  /** Stream offset of the entry's first data byte (= headerOffset + headerBytes.length). */
  readonly dataOffset: number;
  /** The raw header blocks [headerOffset, dataOffset), to copy the entry verbatim. */
  readonly headerBytes: Uint8Array;
}

export type TarEvent =
  | { readonly kind: 'entry'; readonly header: TarHeader }
  /** Part of the current entry's data, in order; a view into the pushed chunk, not a copy. */
  | { readonly kind: 'data'; readonly bytes: Uint8Array }
  /** All `size` data bytes of the entry have been given (padding follows in the stream). */
  | { readonly kind: 'entry-end'; readonly header: TarHeader }
  /** A PAX global header: its records apply to every later entry until overridden. */
  | { readonly kind: 'global'; readonly offset: number; readonly bytes: Uint8Array; readonly records: ReadonlyMap<string, Uint8Array> }
  /** End of the archive at `offset`; `marker` is false when the stream ended without zero blocks. */
  | { readonly kind: 'end'; readonly offset: number; readonly marker: boolean };

export interface TarLimits {
  /** Largest PAX or GNU long-name header data, in bytes. */
  readonly maxMetaBytes: number;
  /** Largest entry data, in bytes. */
  readonly maxEntryBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxMetaBytes: 1 << 20, maxEntryBytes: 2 ** 50 };

export interface TarReaderOptions {
  readonly limits?: Partial<TarLimits>;
  /** Stream offset of the first pushed byte, when reading a slice of a larger tar. Default 0. */
  readonly startOffset?: number;
  /** Global PAX records already in effect, when reading a slice of a larger tar. */
  readonly globals?: ReadonlyMap<string, Uint8Array>;
}

type State = 'header' | 'zero' | 'meta' | 'data' | 'padding' | 'done';

interface Meta {
  readonly block: HeaderBlock;
  readonly offset: number;
  readonly raw: Uint8Array;
  readonly data: Uint8Array;
  fill: number;
  pad: number;
}

const padOf = (size: number): number => (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
const SCHILY_XATTR = 'SCHILY.xattr.';

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class TarReader {
  readonly #limits: TarLimits;
  #state: State = 'header';
  #offset: number;
  readonly #block = new Uint8Array(BLOCK_SIZE);
  #blockFill = 0;
  #zeroOffset = 0;
  #meta: Meta | undefined;
  #globals: Map<string, Uint8Array>;
  // Metadata waiting for the header it applies to.
  #pendingRaw: Uint8Array[] = [];
  #pendingOffset: number | undefined;
  #local = new Map<string, Uint8Array>();
  #longName: string | undefined;
  #longLink: string | undefined;
  #current: TarHeader | undefined;
  #remaining = 0;
  #padding = 0;

  constructor(options: TarReaderOptions = {}) {
    this.#limits = { ...DEFAULT_TAR_LIMITS, ...options.limits };
    this.#offset = options.startOffset ?? 0;
    this.#globals = new Map(options.globals ?? []);
  }

  /** Stream offset of the next byte to be pushed. */
  get offset(): number {
    return this.#offset;
  }

  /** True once the end-of-archive blocks were read; later bytes are ignored. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** Consumes one chunk; returns the events it completes. Data events are views into `chunk`. */
  push(chunk: Uint8Array): TarEvent[] {
    const events: TarEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const avail = chunk.length - pos;
      switch (this.#state) {
        case 'done':
          this.#offset += avail;
          pos = chunk.length;
          break;
        case 'header':
        case 'zero': {
          let block: Uint8Array;
          if (this.#blockFill === 0 && avail >= BLOCK_SIZE) {
            block = chunk.subarray(pos, pos + BLOCK_SIZE);
            pos += BLOCK_SIZE;
          } else {
            const n = Math.min(BLOCK_SIZE - this.#blockFill, avail);
            this.#block.set(chunk.subarray(pos, pos + n), this.#blockFill);
            this.#blockFill += n;
            pos += n;
            if (this.#blockFill < BLOCK_SIZE) {
              this.#offset += n;
              break;
            }
            this.#offset += n - BLOCK_SIZE; // rewind to the block start; #onBlock advances past it
            this.#blockFill = 0;
            block = this.#block;
          }
          this.#onBlock(block, events);
          break;
        }
        case 'meta': {
          const meta = this.#meta!;
          const wantData = meta.data.length - meta.fill;
          if (wantData > 0) {
            const n = Math.min(wantData, avail);
            meta.data.set(chunk.subarray(pos, pos + n), meta.fill);
            meta.fill += n;
            pos += n;
            this.#offset += n;
          } else {
            const n = Math.min(meta.pad, avail);
            meta.pad -= n;
            pos += n;
            this.#offset += n;
          }
          if (meta.fill === meta.data.length && meta.pad === 0) this.#onMeta(events);
          break;
        }
        case 'data': {
          const n = Math.min(this.#remaining, avail);
          events.push({ kind: 'data', bytes: chunk.subarray(pos, pos + n) });
          pos += n;
          this.#offset += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#endEntry(events);
          break;
        }
        case 'padding': {
          const n = Math.min(this.#padding, avail);
          pos += n;
          this.#offset += n;
          this.#padding -= n;
          if (this.#padding === 0) this.#state = 'header';
          break;
        }
      }
    }
    return events;
  }

  /** Signals the end of input: returns the final events, or throws FormatError if the stream was cut short. */
  end(): TarEvent[] {
    if (this.#state === 'done') return [];
    const atBoundary = this.#blockFill === 0;
    if (this.#state === 'zero' && atBoundary) {
      // One zero block then nothing: Go's archive/tar reads this as a clean end too.
      this.#state = 'done';
      return [{ kind: 'end', offset: this.#zeroOffset, marker: true }];
    }
    if (this.#state === 'header' && atBoundary && this.#pendingOffset === undefined) {
      this.#state = 'done';
      return [{ kind: 'end', offset: this.#offset, marker: false }];
    }
    throw new FormatError(`tar stream truncated at offset ${this.#offset}: ${this.#describeCut()}`);
  }

  #describeCut(): string {
    const current = JSON.stringify(this.#current?.path);
    switch (this.#state) {
      case 'data':
        return `${this.#remaining} data bytes of entry ${current} (header at ${this.#current?.headerOffset}) missing`;
      case 'padding':
        return `padding after entry ${current} missing`;
      case 'meta':
        return `extended header ${JSON.stringify(this.#meta?.block.name)} at offset ${this.#meta?.offset} incomplete`;
      default:
        return this.#blockFill > 0
          ? `partial header block at offset ${this.#offset - this.#blockFill}`
          : `extended header at offset ${this.#pendingOffset} without the entry it describes`;
    }
  }

  #onBlock(block: Uint8Array, events: TarEvent[]): void {
    const offset = this.#offset;
    this.#offset += BLOCK_SIZE;
    if (this.#state === 'zero') {
      if (!isZeroBlock(block)) throw new FormatError(`${where(undefined, offset)}: a zero block followed by a non-zero one`);
      this.#state = 'done';
      events.push({ kind: 'end', offset: this.#zeroOffset, marker: true });
      return;
    }
    if (isZeroBlock(block)) {
      if (this.#pendingOffset !== undefined) {
        throw new FormatError(`${where(undefined, this.#pendingOffset)}: extended header without the entry it describes`);
      }
      this.#state = 'zero';
      this.#zeroOffset = offset;
      return;
    }
    const h = parseHeaderBlock(block, offset);
    const ctx = (): string => where(h.name, offset);
    switch (h.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K': {
        if (h.size > this.#limits.maxMetaBytes) {
          throw new FormatError(`${ctx()}: ${h.size}-byte extended header is over the ${this.#limits.maxMetaBytes}-byte limit`);
        }
        this.#meta = { block: h, offset, raw: block.slice(), data: new Uint8Array(h.size), fill: 0, pad: padOf(h.size) };
        this.#state = 'meta';
        if (h.size === 0) this.#onMeta(events);
        return;
      }
    }
    const type = entryTypeOf(h.typeflag, h.name);
    if (type === undefined) {
      throw new FormatError(`${ctx()}: unsupported entry type ${JSON.stringify(h.typeflag)}`);
    }
    const header = this.#header(h, type, block, offset);
    events.push({ kind: 'entry', header });
    this.#current = header;
    if (header.size > 0) {
      this.#remaining = header.size;
      this.#padding = padOf(header.size);
      this.#state = 'data';
    } else {
      this.#endEntry(events);
    }
  }

  #onMeta(events: TarEvent[]): void {
    const meta = this.#meta!;
    this.#meta = undefined;
    this.#state = 'header';
    const ctx = (): string => where(meta.block.name, meta.offset);
    const raw = concat([meta.raw, meta.data, new Uint8Array(padOf(meta.data.length))]);
    switch (meta.block.typeflag) {
      case 'g': {
        if (this.#pendingOffset !== undefined) throw new FormatError(`${ctx()}: global header inside another entry's extended headers`);
        const records = parsePaxRecords(meta.data, ctx);
        for (const [k, v] of records) this.#globals.set(k, v);
        events.push({ kind: 'global', offset: meta.offset, bytes: raw, records });
        return;
      }
      case 'x':
        for (const [k, v] of parsePaxRecords(meta.data, ctx)) this.#local.set(k, v);
        break;
      case 'L':
        this.#longName = cString(meta.data);
        break;
      case 'K':
        this.#longLink = cString(meta.data);
        break;
    }
    this.#pendingOffset ??= meta.offset;
    this.#pendingRaw.push(raw);
  }

  #header(h: HeaderBlock, type: TarEntryType, block: Uint8Array, offset: number): TarHeader {
    const pax = new Map([...this.#globals, ...this.#local]);
    const ctx = (): string => where(h.name, offset);
    // An empty value deletes the record (POSIX): the header's own field applies.
    const rec = (key: string): Uint8Array | undefined => {
      const v = pax.get(key);
      return v === undefined || v.length === 0 ? undefined : v;
    };
    const xattrs = new Map<string, Uint8Array>();
    for (const [key, value] of pax) {
      if (key.startsWith(SCHILY_XATTR)) xattrs.set(key.slice(SCHILY_XATTR.length), value);
      else if (key.startsWith('GNU.sparse.')) throw new FormatError(`${ctx()}: GNU sparse files are not supported`);
    }
    const path = rec('path') ? paxText(rec('path')!) : this.#longName ?? h.name;
    const at = (): string => where(path, offset);
    const v = rec;
    const declared = v('size') ? paxInteger(v('size')!, 'size', at) : h.size;
    const size = isHeaderOnly(type) ? 0 : declared;
    if (size > this.#limits.maxEntryBytes) {
      throw new FormatError(`${at()}: size ${size} is over the ${this.#limits.maxEntryBytes}-byte limit`);
    }
    const headerOffset = this.#pendingOffset ?? offset;
    const headerBytes = concat([...this.#pendingRaw, block.slice()]);
    this.#pendingRaw = [];
    this.#pendingOffset = undefined;
    this.#local = new Map();
    const linkpath = v('linkpath') ? paxText(v('linkpath')!) : this.#longLink ?? h.linkname;
    this.#longName = undefined;
    this.#longLink = undefined;
    return {
      path,
      type,
      typeflag: h.typeflag,
      mode: h.mode,
      uid: v('uid') ? paxInteger(v('uid')!, 'uid', at) : h.uid,
      gid: v('gid') ? paxInteger(v('gid')!, 'gid', at) : h.gid,
      uname: v('uname') ? paxText(v('uname')!) : h.uname,
      gname: v('gname') ? paxText(v('gname')!) : h.gname,
      size,
      mtime: v('mtime') ? paxTime(v('mtime')!, 'mtime', at) : { seconds: h.mtime, nanos: 0 },
      linkpath,
      devmajor: h.devmajor,
      devminor: h.devminor,
      xattrs,
      pax,
      headerOffset,
      dataOffset: offset + BLOCK_SIZE,
      headerBytes,
    };
  }

  #endEntry(events: TarEvent[]): void {
    const header = this.#current!;
    events.push({ kind: 'entry-end', header });
    this.#state = this.#padding > 0 ? 'padding' : 'header';
  }
}

/** Reads a whole tar stream as events. Consumes `source` to its end, even past the end-of-archive blocks. */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: TarReaderOptions): AsyncGenerator<TarEvent> {
  const reader = new TarReader(options);
  for await (const chunk of source) yield* reader.push(chunk);
  yield* reader.end();
}
