/**
 * Writes a `Ztoc` as the flatbuffer soci-snapshotter reads (`tocfs index`). Built with the `flatbuffers`
 * package's Builder, children before parents, the way flatc's generated `create*`/`add*` calls do; the
 * slot numbers are the table layouts listed in ztoc.ts. Pure.
 *
 * The encoder refuses what the decoder would refuse (InvalidOptionError naming the field), so that
 * `tocfs index` can never publish a zTOC that tocfs itself, or soci, would then reject.
 */
import { Builder } from 'flatbuffers';
import { InvalidOptionError } from '../../errors.js';
import { ZTOC_VERSION, type Ztoc, type ZtocEntry } from './ztoc.js';

type Offset = number;

function int64(value: number, field: string): bigint {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidOptionError(field, `${value} is not a non-negative safe integer`);
  return BigInt(value);
}

function uint32(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new InvalidOptionError(field, `${value} is not a uint32`);
  return value;
}

/** A vector of offsets; flatbuffers vectors are written back to front. */
function offsetVector(b: Builder, offsets: readonly Offset[]): Offset {
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]!);
  return b.endVector();
}

function encodeEntry(b: Builder, e: ZtocEntry, i: number): Offset {
  const at = `ztoc.entries[${i}]`;
  const xattrs = offsetVector(
    b,
    e.xattrs.map(({ key, value }) => {
      const k = b.createString(key);
      const v = b.createString(value);
      b.startObject(2);
      b.addFieldOffset(0, k, 0);
      b.addFieldOffset(1, v, 0);
      return b.endObject();
    }),
  );
  const name = b.createString(e.name);
  const type = b.createString(e.type);
  const linkname = b.createString(e.linkname);
  const uname = b.createString(e.uname);
  const gname = b.createString(e.gname);
  const modTime = b.createString(e.modTime);
  b.startObject(14);
  b.addFieldOffset(0, name, 0);
  b.addFieldOffset(1, type, 0);
  b.addFieldInt64(2, int64(e.uncompressedOffset, `${at}.uncompressedOffset`), 0n);
  b.addFieldInt64(3, int64(e.uncompressedSize, `${at}.uncompressedSize`), 0n);
  b.addFieldOffset(4, linkname, 0);
  b.addFieldInt64(5, int64(e.mode, `${at}.mode`), 0n);
  // The Builder writes the low 32 bits whatever the sign, so a uid above 2^31 lands as the same uint32.
  b.addFieldInt32(6, uint32(e.uid, `${at}.uid`), 0);
  b.addFieldInt32(7, uint32(e.gid, `${at}.gid`), 0);
  b.addFieldOffset(8, uname, 0);
  b.addFieldOffset(9, gname, 0);
  b.addFieldOffset(10, modTime, 0);
  b.addFieldInt64(11, int64(e.devmajor, `${at}.devmajor`), 0n);
  b.addFieldInt64(12, int64(e.devminor, `${at}.devminor`), 0n);
  b.addFieldOffset(13, xattrs, 0);
  return b.endObject();
}

/** Encodes a zTOC; `decodeZtoc(encodeZtoc(z))` deep-equals `z`. */
export function encodeZtoc(ztoc: Ztoc): Uint8Array {
  if (ztoc.version !== ZTOC_VERSION) throw new InvalidOptionError('ztoc.version', `${JSON.stringify(ztoc.version)} is not ${JSON.stringify(ZTOC_VERSION)}`);
  const { compression } = ztoc;
  if (!Number.isInteger(compression.maxSpanId) || compression.maxSpanId < 0 || compression.maxSpanId > 0x7fff_ffff) {
    throw new InvalidOptionError('ztoc.compression.maxSpanId', `${compression.maxSpanId} is not a non-negative int32`);
  }
  if (compression.spanDigests.length !== compression.maxSpanId + 1) {
    throw new InvalidOptionError('ztoc.compression.spanDigests', `${compression.spanDigests.length} digests, maxSpanId ${compression.maxSpanId} needs ${compression.maxSpanId + 1}`);
  }
  const b = new Builder(1024 + ztoc.entries.length * 160 + compression.checkpoints.length);
  const version = b.createString(ztoc.version);
  const tool = b.createString(ztoc.buildToolIdentifier);
  const metadata = offsetVector(b, ztoc.entries.map((e, i) => encodeEntry(b, e, i)));
  b.startObject(1);
  b.addFieldOffset(0, metadata, 0);
  const toc = b.endObject();

  const checkpoints = b.createByteVector(compression.checkpoints);
  const digests = offsetVector(b, compression.spanDigests.map((d) => b.createString(d)));
  b.startObject(4);
  // Gzip is the schema default, so like soci's builder this writes no field for it.
  b.addFieldInt8(0, 1, 1);
  b.addFieldInt32(1, compression.maxSpanId, 0);
  b.addFieldOffset(2, digests, 0);
  b.addFieldOffset(3, checkpoints, 0);
  const info = b.endObject();

  b.startObject(6);
  b.addFieldOffset(0, version, 0);
  b.addFieldOffset(1, tool, 0);
  b.addFieldInt64(2, int64(ztoc.compressedArchiveSize, 'ztoc.compressedArchiveSize'), 0n);
  b.addFieldInt64(3, int64(ztoc.uncompressedArchiveSize, 'ztoc.uncompressedArchiveSize'), 0n);
  b.addFieldOffset(4, toc, 0);
  b.addFieldOffset(5, info, 0);
  b.finish(b.endObject());
  // asUint8Array is a view into the Builder's (larger) buffer; copy the finished bytes out.
  return b.asUint8Array().slice();
}
