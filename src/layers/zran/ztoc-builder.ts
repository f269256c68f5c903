/**
 * Builds a SOCI zTOC (DESIGN.md §3.3) for a plain gzip layer in one streaming pass: push the compressed
 * blob chunk by chunk, get its uncompressed tar bytes back (so a caller may also keep the tar, as the
 * whole-layer pull does), and at the end the zTOC with its zinfo checkpoints. Three things run on the way:
 *
 * - `ZranIndexer` (native, thread pool) inflates and takes a checkpoint at the first deflate block boundary
 *   past every `spanSize` uncompressed bytes;
 * - `TarReader` reads the entry headers from the uncompressed stream, with their data offsets;
 * - sha256 of each span's compressed bytes `[in_i - (bits_i ? 1 : 0), in_{i+1})`, the last span to the end
 *   of the blob (soci's `getPerSpanDigests`), hashed as the bytes pass: when span i starts mid-byte, the
 *   byte at `in_i - 1` ends span i-1 AND starts span i, so it is kept until the next chunk is known.
 *
 * Memory is bounded by one pushed chunk, its uncompressed output, the entry list and one 32 KiB window per
 * span; never the layer.
 *
 * Checkpoints that would give a span the SOCI readers refuse are dropped (dropping only makes the span
 * before it longer): one at or past the end of the tar archive (zero padding after the end-of-archive
 * blocks: no file data there, and `sociSpans` wants every `out` inside the archive), and one that falls
 * exactly at the end of the output so far while the archive end is not yet known (it may turn out to be
 * the archive end); that one is decided when the next output or the end arrives.
 */
import { createHash, type Hash } from 'node:crypto';
import { FormatError } from '../../errors.js';
import { encodeZinfo, type Checkpoint, type Zinfo } from '../../formats/soci/zinfo.js';
import { encodeZtoc } from '../../formats/soci/ztoc-encode.js';
import { ZTOC_VERSION, type Ztoc, type ZtocEntry, type ZtocEntryType } from '../../formats/soci/ztoc.js';
import { TarReader, type TarEvent, type TarHeader, type TarTime } from '../../formats/tar/reader.js';
import { DEFAULT_TOC_LIMITS } from '../../formats/toc.js';
import { ZranIndexer, type ZranCheckpoint } from './zran.js';

/** soci's default span (`soci create --span-size`): 4 MiB of uncompressed bytes between checkpoints. */
export const DEFAULT_SPAN_SIZE = 4 << 20;

export interface ZtocBuilderOptions {
  /** Uncompressed bytes between checkpoints (at least; each waits for a deflate block boundary). */
  readonly spanSize?: number;
  /** The zTOC's `build_tool_identifier`. */
  readonly buildToolIdentifier: string;
  /** Most tar entries accepted (a layer of millions of empty files would otherwise grow without bound). */
  readonly maxEntries?: number;
}

export interface BuiltZtoc {
  readonly ztoc: Ztoc;
  readonly zinfo: Zinfo;
  /** `encodeZtoc(ztoc)`: the blob to push. */
  readonly bytes: Uint8Array;
  /** Bytes of the gzip blob pushed in. */
  readonly compressedSize: number;
  /** Bytes of the whole uncompressed stream (may exceed `ztoc.uncompressedArchiveSize`: padding after the archive end). */
  readonly uncompressedSize: number;
}

const TYPES: Record<TarHeader['type'], ZtocEntryType> = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'char', block: 'block', fifo: 'fifo' };

/** Go's zero time, what soci writes when a time cannot be marshalled (a year outside 0..9999). */
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/** Go's `time.Time.MarshalText` of a tar time in UTC: RFC 3339, the fraction without trailing zeros. */
export function goTime(t: TarTime): string {
  const date = new Date(t.seconds * 1000);
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 0 || year > 9999) return GO_ZERO_TIME;
  const fraction = t.nanos === 0 ? '' : `.${String(t.nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${date.toISOString().slice(0, 19)}${fraction}Z`;
}

/** One tar header as soci's `metadataFromTarReader` records it. */
export function ztocEntryOf(h: TarHeader): ZtocEntry {
  return {
    name: h.path,
    type: TYPES[h.type],
    uncompressedOffset: h.dataOffset,
    uncompressedSize: h.size,
    linkname: h.linkpath,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    modTime: goTime(h.mtime),
    devmajor: h.devmajor,
    devminor: h.devminor,
    // soci stores Go's hdr.PAXRecords: every record of the entry, raw, not only SCHILY.xattr.*.
    xattrs: [...h.pax].map(([key, value]) => ({ key, value })),
  };
}

export class ZtocBuilder {
  readonly spanSize: number;
  readonly #tool: string;
  readonly #maxEntries: number;
  readonly #zran: ZranIndexer;
  readonly #tar = new TarReader();
  readonly #entries: ZtocEntry[] = [];
  readonly #checkpoints: Checkpoint[] = [];
  readonly #digests: string[] = [];
  /** Hash of the span being read (undefined before checkpoint 0). */
  #span: Hash | undefined;
  /** Compressed bytes pushed but not hashed yet, from offset #hashed on. */
  #pending: Uint8Array[] = [];
  #hashed = 0;
  /** The byte at #hashed - 1: the first byte of a span that starts mid-byte there. */
  #lastByte = 0;
  #pushed = 0;
  #out = 0;
  /** Uncompressed offset where the tar archive ends, once the reader saw its end. */
  #archiveEnd: number | undefined;
  /** A checkpoint at the end of the output so far, kept until it is known to lie inside the archive. */
  #undecided: ZranCheckpoint | undefined;
  #ended = false;

  constructor(opts: ZtocBuilderOptions) {
    this.spanSize = opts.spanSize ?? DEFAULT_SPAN_SIZE;
    this.#tool = opts.buildToolIdentifier;
    this.#maxEntries = opts.maxEntries ?? DEFAULT_TOC_LIMITS.maxEntries;
    this.#zran = new ZranIndexer(this.spanSize);
  }

  /** Compressed bytes pushed so far. */
  get compressedBytes(): number {
    return this.#pushed;
  }

  /** Uncompressed bytes produced so far. */
  get uncompressedBytes(): number {
    return this.#out;
  }

  /**
   * Inflates the next chunk of the gzip blob and returns the uncompressed bytes it completed, in order.
   * Rejects with a FormatError on bad gzip or a bad tar; one push at a time.
   */
  async push(chunk: Uint8Array): Promise<Buffer[]> {
    if (this.#ended) throw new Error('ZtocBuilder.push: the builder has ended');
    const { out, checkpoints } = await this.#zran.push(chunk);
    // Copied: the caller may reuse its buffer once this resolves, and these bytes wait to be hashed.
    if (chunk.length > 0) this.#pending.push(new Uint8Array(chunk));
    this.#pushed += chunk.length;
    for (const bytes of out) {
      this.#onTar(this.#tar.push(bytes));
      this.#out += bytes.length;
    }
    const candidates = this.#undecided ? [this.#undecided, ...checkpoints] : checkpoints;
    this.#undecided = undefined;
    for (const cp of candidates) {
      const verdict = this.#decide(cp);
      if (verdict === 'keep') this.#cut(cp);
      else if (verdict === 'later') this.#undecided = cp;
    }
    // An undecided checkpoint needs the bytes from its `in - 1` on: hash only what lies before it.
    this.#hashTo(this.#undecided ? this.#undecided.in - 1 : this.#pushed);
    return out;
  }

  /** Declares the blob complete and returns the zTOC. Throws FormatError on a truncated gzip or tar. */
  end(): BuiltZtoc {
    if (this.#ended) throw new Error('ZtocBuilder.end: already ended');
    this.#zran.end();
    for (const ev of this.#tar.end()) {
      // From end(): at most one zero block was read (Go's reader stops after it too).
      if (ev.kind === 'end') this.#archiveEnd = ev.offset + (ev.marker ? 512 : 0);
      else this.#onTar([ev]);
    }
    this.#ended = true;
    const undecided = this.#undecided;
    this.#undecided = undefined;
    if (undecided && this.#decide(undecided) === 'keep') this.#cut(undecided);
    if (this.#span === undefined) throw new FormatError('gzip stream has no deflate data');
    this.#hashTo(this.#pushed);
    this.#digests.push(`sha256:${this.#span.digest('hex')}`);
    const zinfo: Zinfo = { version: 2, spanSize: this.spanSize, checkpoints: this.#checkpoints };
    const ztoc: Ztoc = {
      version: ZTOC_VERSION,
      buildToolIdentifier: this.#tool,
      compressedArchiveSize: this.#pushed,
      uncompressedArchiveSize: this.#archiveEnd ?? this.#out,
      entries: this.#entries,
      compression: { algorithm: 'gzip', maxSpanId: this.#checkpoints.length - 1, spanDigests: this.#digests, checkpoints: encodeZinfo(zinfo) },
    };
    return { ztoc, zinfo, bytes: encodeZtoc(ztoc), compressedSize: this.#pushed, uncompressedSize: this.#out };
  }

  #onTar(events: TarEvent[]): void {
    for (const ev of events) {
      if (ev.kind === 'entry') {
        if (this.#entries.length >= this.#maxEntries) throw new FormatError(`tar has more than ${this.#maxEntries} entries`);
        this.#entries.push(ztocEntryOf(ev.header));
      } else if (ev.kind === 'end') {
        // Two zero blocks were read, as Go's tar reader reads them before io.EOF: soci's archive size.
        this.#archiveEnd = ev.offset + (ev.marker ? 1024 : 0);
      }
    }
  }

  #decide(cp: ZranCheckpoint): 'keep' | 'drop' | 'later' {
    if (this.#checkpoints.length === 0) return 'keep'; // span 0 starts after the gzip header, always
    if (this.#archiveEnd !== undefined) return cp.out < this.#archiveEnd ? 'keep' : 'drop';
    if (cp.out < this.#out) return 'keep';
    return this.#ended ? 'drop' : 'later';
  }

  /** Span i-1 ends at cp.in; span i starts at cp.in, or one byte earlier when it starts mid-byte. */
  #cut(cp: ZranCheckpoint): void {
    if (cp.in < this.#hashed || (cp.bits > 0 && cp.in < 1)) throw new Error(`ZtocBuilder: checkpoint at compressed ${cp.in} is before the bytes already hashed (${this.#hashed})`);
    this.#hashTo(cp.in);
    if (this.#span) this.#digests.push(`sha256:${this.#span.digest('hex')}`);
    this.#span = createHash('sha256');
    if (cp.bits > 0) this.#span.update(new Uint8Array([this.#lastByte]));
    this.#checkpoints.push({ in: cp.in, out: cp.out, bits: cp.bits, window: cp.window });
  }

  /** Hashes the pending bytes up to compressed offset `end` into the current span (none before span 0). */
  #hashTo(end: number): void {
    while (this.#hashed < end) {
      const head = this.#pending[0];
      if (head === undefined) throw new Error(`ZtocBuilder: compressed offset ${end} is past the ${this.#pushed} bytes pushed`);
      const n = Math.min(head.length, end - this.#hashed);
      const part = n === head.length ? head : head.subarray(0, n);
      this.#span?.update(part);
      this.#lastByte = part[n - 1]!;
      this.#hashed += n;
      if (n === head.length) this.#pending.shift();
      else this.#pending[0] = head.subarray(n);
    }
  }
}
