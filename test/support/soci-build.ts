// Builds what `tocfs index` would for a plain gzip layer, without zran: a real tar (tar-dsl) gzipped,
// its entries' data offsets read back with src/formats/tar/reader.ts, and FAKE checkpoints (offsets
// spread evenly over the blob, made-up windows) whose span digests are the real sha256 of the blob's
// byte ranges. Format tests need only the offsets to be consistent; inflating from a checkpoint is the
// zran layer's business (and its tests').
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { TarReader, type TarHeader } from '../../src/formats/tar/reader.js';
import { ZINFO_WINDOW_SIZE, encodeZinfo, type Checkpoint } from '../../src/formats/soci/zinfo.js';
import { ZTOC_VERSION, type Ztoc, type ZtocEntry, type ZtocEntryType } from '../../src/formats/soci/ztoc.js';
import { tarBytes, type TarEntry } from './tar-dsl.js';

export const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface BuiltSoci {
  readonly tar: Buffer;
  readonly blob: Buffer;
  readonly ztoc: Ztoc;
  readonly checkpoints: readonly Checkpoint[];
}

const TYPES: Record<TarHeader['type'], ZtocEntryType> = { file: 'reg', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'char', block: 'block', fifo: 'fifo' };

/** Go's `time.Time.MarshalText` in UTC: RFC 3339 with the fraction's trailing zeros dropped. */
export function goTime(seconds: number, nanos: number): string {
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  const fraction = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${fraction}Z`;
}

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
    modTime: goTime(h.mtime.seconds, h.mtime.nanos),
    devmajor: h.devmajor,
    devminor: h.devminor,
    // soci stores hdr.PAXRecords: every record, not only the xattrs.
    xattrs: [...h.pax].map(([key, value]) => ({ key, value })),
  };
}

/** Every entry header of a tar, with its offsets. */
export function tarHeaders(tar: Uint8Array): { headers: TarHeader[]; end: number } {
  const reader = new TarReader();
  const headers: TarHeader[] = [];
  let end = tar.length;
  for (const ev of [...reader.push(tar), ...reader.end()]) {
    if (ev.kind === 'entry') headers.push(ev.header);
    if (ev.kind === 'end') end = ev.offset;
  }
  return { headers, end };
}

/** A made-up but deterministic window, so that round trips compare real bytes. */
function windowOf(i: number): Uint8Array {
  const w = new Uint8Array(ZINFO_WINDOW_SIZE);
  for (let j = 0; j < w.length; j += 97) w[j] = (i * 31 + j) & 0xff;
  return w;
}

export interface SociBuildOptions {
  /** Uncompressed bytes between fake checkpoints. */
  readonly spanSize?: number;
  readonly gzipLevel?: number;
}

const MAX_FAKE_SPANS = 64;

/** Checkpoints every `spanSize` tar bytes; `in` spread over the gzip body, bits cycling 0..7. */
export function fakeCheckpoints(blobSize: number, tarSize: number, spanSize: number): Checkpoint[] {
  // At most MAX_FAKE_SPANS: each checkpoint costs a 32 KiB window, and a 4 MiB file at span 3 would need millions.
  const span = Math.max(spanSize, Math.ceil(tarSize / MAX_FAKE_SPANS));
  const count = Math.max(1, Math.min(Math.ceil(tarSize / span), Math.floor((blobSize - 20) / 2)));
  const checkpoints: Checkpoint[] = [];
  for (let i = 0; i < count; i++) {
    checkpoints.push({ in: 10 + Math.floor((i * (blobSize - 20)) / count), out: i * span, bits: i === 0 ? 0 : i % 8, window: i === 0 ? new Uint8Array(ZINFO_WINDOW_SIZE) : windowOf(i) });
  }
  return checkpoints;
}

export function buildSoci(entries: readonly TarEntry[], opts: SociBuildOptions = {}): BuiltSoci {
  const tar = tarBytes(entries);
  const blob = gzipSync(tar, { level: opts.gzipLevel ?? 6 });
  const { headers } = tarHeaders(tar);
  const spanSize = opts.spanSize ?? 64;
  // Go's reader stops after the two zero blocks, which is where the DSL's tar ends: soci's uncompressed size.
  const checkpoints = fakeCheckpoints(blob.length, tar.length, spanSize);
  const spanDigests = checkpoints.map((cp, i) => sha256(blob.subarray(cp.in - (cp.bits ? 1 : 0), checkpoints[i + 1]?.in ?? blob.length)));
  const ztoc: Ztoc = {
    version: ZTOC_VERSION,
    buildToolIdentifier: 'tocfs test',
    compressedArchiveSize: blob.length,
    uncompressedArchiveSize: tar.length,
    entries: headers.map(ztocEntryOf),
    compression: { algorithm: 'gzip', maxSpanId: checkpoints.length - 1, spanDigests, checkpoints: encodeZinfo({ spanSize, checkpoints }) },
  };
  return { tar, blob, ztoc, checkpoints };
}
