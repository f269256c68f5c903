/**
 * Bounds-checked reading of flatbuffers tables over the `flatbuffers` package's ByteBuffer.
 *
 * Why not the accessors flatc would generate: they trust the buffer. `ByteBuffer` does no bounds checks
 * (a read past the end yields `undefined`, which the bit operations turn into 0), and the JS library has
 * no Verifier, so a truncated or hostile zTOC would decode into silent zeros and empty strings instead of
 * failing. Every offset here is checked against the buffer before it is followed, the way flatbuffers'
 * C++ `Verifier` does, and each failure is a FormatError naming the field. No I/O.
 *
 * Wire facts (flatbuffers "internals"): a buffer starts with a uoffset (u32) to the root table. A table
 * starts with an soffset (i32): vtable = table - soffset. A vtable is u16 vtable size, u16 table size,
 * then one u16 per field slot: the field's offset inside the table, 0 = absent. Strings and vectors are
 * reached through a uoffset stored in the field, relative to the field's own position; both start with a
 * u32 length. Strings are UTF-8 followed by a NUL. Everything is little-endian.
 */
import { ByteBuffer } from 'flatbuffers';
import { FormatError } from '../../errors.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** One table of the buffer; `what` names it in errors (e.g. `zTOC toc.metadata[3]`). */
export class FbTable {
  readonly #bb: ByteBuffer;
  readonly #pos: number;
  readonly #vtable: number;
  readonly #vtableSize: number;
  readonly #tableSize: number;
  readonly what: string;

  constructor(bb: ByteBuffer, pos: number, what: string) {
    const length = bb.capacity();
    if (pos + 4 > length) throw new FormatError(`${what}: table at ${pos} is past the end of the ${length}-byte buffer`);
    const vtable = pos - bb.readInt32(pos);
    if (vtable < 0 || vtable + 4 > length) throw new FormatError(`${what}: vtable at ${vtable} is outside the ${length}-byte buffer`);
    const vtableSize = bb.readUint16(vtable);
    const tableSize = bb.readUint16(vtable + 2);
    if (vtableSize < 4 || vtableSize % 2 !== 0 || vtable + vtableSize > length) {
      throw new FormatError(`${what}: vtable at ${vtable} claims ${vtableSize} bytes, not an even size of at least 4 inside the buffer`);
    }
    if (tableSize < 4 || pos + tableSize > length) throw new FormatError(`${what}: table at ${pos} claims ${tableSize} bytes, past the end of the buffer`);
    this.#bb = bb;
    this.#pos = pos;
    this.#vtable = vtable;
    this.#vtableSize = vtableSize;
    this.#tableSize = tableSize;
    this.what = what;
  }

  /** The root table of a whole buffer. */
  static root(bytes: Uint8Array, what: string): FbTable {
    if (bytes.length < 8) throw new FormatError(`${what}: ${bytes.length} bytes is too short for a flatbuffer (a root offset and a table)`);
    const bb = new ByteBuffer(bytes);
    return new FbTable(bb, bb.readUint32(0), what);
  }

  /** Absolute position of field `slot` (0-based, schema order) after checking `width` bytes fit; undefined when absent. */
  #field(slot: number, width: number, name: string): number | undefined {
    const entry = 4 + 2 * slot;
    if (entry + 2 > this.#vtableSize) return undefined;
    const at = this.#bb.readUint16(this.#vtable + entry);
    if (at === 0) return undefined;
    if (at < 4 || at + width > this.#tableSize) throw new FormatError(`${this.what}.${name}: field at ${at} does not fit in the ${this.#tableSize}-byte table`);
    return this.#pos + at;
  }

  /** Follows the uoffset stored at `at`; the target must leave `room` bytes in the buffer. */
  #follow(at: number, room: number, name: string): number {
    const target = at + this.#bb.readUint32(at);
    if (target + room > this.#bb.capacity()) throw new FormatError(`${this.what}.${name}: offset to ${target} is past the end of the ${this.#bb.capacity()}-byte buffer`);
    return target;
  }

  /** A vector's element start and length, each element `elementSize` bytes, all inside the buffer. */
  #vector(slot: number, elementSize: number, name: string): { start: number; length: number } | undefined {
    const at = this.#field(slot, 4, name);
    if (at === undefined) return undefined;
    const vec = this.#follow(at, 4, name);
    const length = this.#bb.readUint32(vec);
    if (vec + 4 + length * elementSize > this.#bb.capacity()) {
      throw new FormatError(`${this.what}.${name}: vector of ${length} elements does not fit in the ${this.#bb.capacity()}-byte buffer`);
    }
    return { start: vec + 4, length };
  }

  /** The raw bytes of the string at `at` (a uoffset), checked to fit with its NUL terminator. */
  #stringBytesAt(at: number, name: string): Uint8Array {
    const str = this.#follow(at, 4, name);
    const length = this.#bb.readUint32(str);
    if (str + 4 + length + 1 > this.#bb.capacity()) throw new FormatError(`${this.what}.${name}: string of ${length} bytes runs past the end of the buffer`);
    return this.#bb.bytes().subarray(str + 4, str + 4 + length);
  }

  #text(bytes: Uint8Array, name: string): string {
    try {
      return UTF8.decode(bytes);
    } catch (err) {
      throw new FormatError(`${this.what}.${name}: string is not valid UTF-8`, { cause: err });
    }
  }

  /** A string field as raw bytes (Go writes arbitrary bytes into flatbuffers strings); absent = empty. */
  bytes(slot: number, name: string): Uint8Array {
    const at = this.#field(slot, 4, name);
    return at === undefined ? new Uint8Array(0) : this.#stringBytesAt(at, name);
  }

  /** A string field, strict UTF-8; absent = ''. */
  string(slot: number, name: string): string {
    return this.#text(this.bytes(slot, name), name);
  }

  /** A `long` field that must be a non-negative safe integer; absent = 0. */
  count64(slot: number, name: string): number {
    const at = this.#field(slot, 8, name);
    if (at === undefined) return 0;
    const value = this.#bb.readInt64(at);
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${this.what}.${name}: ${value} is not a non-negative safe integer`);
    return Number(value);
  }

  uint32(slot: number, name: string): number {
    const at = this.#field(slot, 4, name);
    return at === undefined ? 0 : this.#bb.readUint32(at);
  }

  int32(slot: number, name: string): number {
    const at = this.#field(slot, 4, name);
    return at === undefined ? 0 : this.#bb.readInt32(at);
  }

  int8(slot: number, name: string, absent: number): number {
    const at = this.#field(slot, 1, name);
    return at === undefined ? absent : this.#bb.readInt8(at);
  }

  /** A sub-table field, or undefined when absent. */
  table(slot: number, name: string): FbTable | undefined {
    const at = this.#field(slot, 4, name);
    if (at === undefined) return undefined;
    return new FbTable(this.#bb, this.#follow(at, 4, name), `${this.what}.${name}`);
  }

  /** Number of elements of a vector field (0 when absent); call before `tableAt`/`stringAt` to bound work. */
  length(slot: number, name: string): number {
    return this.#vector(slot, 4, name)?.length ?? 0;
  }

  /** Element `i` of a vector of tables. */
  tableAt(slot: number, name: string, i: number): FbTable {
    const vec = this.#vector(slot, 4, name)!;
    const at = vec.start + 4 * i;
    return new FbTable(this.#bb, this.#follow(at, 4, `${name}[${i}]`), `${this.what}.${name}[${i}]`);
  }

  /** Element `i` of a vector of strings, strict UTF-8. */
  stringAt(slot: number, name: string, i: number): string {
    const vec = this.#vector(slot, 4, name)!;
    return this.#text(this.#stringBytesAt(vec.start + 4 * i, `${name}[${i}]`), `${name}[${i}]`);
  }

  /** A `[ubyte]` field as a view into the buffer (no copy); absent = empty. */
  ubytes(slot: number, name: string): Uint8Array {
    const vec = this.#vector(slot, 1, name);
    return vec === undefined ? new Uint8Array(0) : this.#bb.bytes().subarray(vec.start, vec.start + vec.length);
  }
}
