/**
 * What a dynamically linked ELF file needs to run: its interpreter (PT_INTERP) and the libraries of its
 * DT_NEEDED entries, with the DT_RUNPATH / DT_RPATH directories to look in. Read from the file's bytes
 * only (program headers, the dynamic segment, the dynamic string table), for library-prefetch.ts.
 * ELF64 little-endian (x86_64, aarch64, riscv64, ppc64le); anything else, or bytes that do not hold
 * together, is simply "nothing needed": this feeds a prefetch, never a read.
 */
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
/** Bounds on what untrusted bytes can make this loop over. */
const MAX_PHDRS = 256;
const MAX_DYN = 4096;
const MAX_NAME = 4096;

export interface ElfNeeds {
  /** PT_INTERP, e.g. `/lib64/ld-linux-x86-64.so.2`. */
  readonly interpreter?: string;
  /** DT_NEEDED names, in order, e.g. `libc.so.6`. */
  readonly needed: readonly string[];
  /** DT_RUNPATH, else DT_RPATH, split at `:` (may hold `$ORIGIN`). */
  readonly searchPath: readonly string[];
}

interface Segment {
  readonly type: number;
  readonly offset: number;
  readonly vaddr: number;
  readonly filesz: number;
}

/** True when `head` starts like an ELF64 little-endian file. */
export function isElf64(head: Uint8Array): boolean {
  return head.length >= 64 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46 && head[4] === 2 && head[5] === 1;
}

/** The needs of the ELF file whose whole bytes are `file`; undefined when it is not one this reads. */
export function elfNeeds(file: Uint8Array): ElfNeeds | undefined {
  if (!isElf64(file)) return undefined;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const phoff = Number(view.getBigUint64(32, true));
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phentsize < 56 || phnum > MAX_PHDRS || phoff + phnum * phentsize > file.length) return undefined;
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    segments.push({
      type: view.getUint32(at, true),
      offset: Number(view.getBigUint64(at + 8, true)),
      vaddr: Number(view.getBigUint64(at + 16, true)),
      filesz: Number(view.getBigUint64(at + 32, true)),
    });
  }
  const interpSeg = segments.find((s) => s.type === PT_INTERP);
  const interpreter = interpSeg ? cString(file, interpSeg.offset, interpSeg.offset + interpSeg.filesz) : undefined;
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  const out = { needed: [] as string[], searchPath: [] as string[], ...(interpreter ? { interpreter } : {}) };
  if (!dynamic || dynamic.offset + dynamic.filesz > file.length) return out;

  const neededOffsets: bigint[] = [];
  let strtab: bigint | undefined;
  let runpath: bigint | undefined;
  let rpath: bigint | undefined;
  for (let i = 0, at = dynamic.offset; i < MAX_DYN && at + 16 <= dynamic.offset + dynamic.filesz; i++, at += 16) {
    const tag = view.getBigInt64(at, true);
    const value = view.getBigUint64(at + 8, true);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(value);
    else if (tag === DT_STRTAB) strtab = value;
    else if (tag === DT_RUNPATH) runpath = value;
    else if (tag === DT_RPATH) rpath = value;
  }
  if (strtab === undefined) return out;
  // DT_STRTAB is an address: the PT_LOAD segment that maps it says where it is in the file.
  const load = segments.find((s) => s.type === PT_LOAD && BigInt(s.vaddr) <= strtab! && strtab! < BigInt(s.vaddr + s.filesz));
  if (!load) return out;
  const base = load.offset + Number(strtab - BigInt(load.vaddr));
  const str = (offset: bigint): string | undefined => (offset < BigInt(file.length) ? cString(file, base + Number(offset), file.length) : undefined);
  for (const offset of neededOffsets) {
    const name = str(offset);
    if (name) out.needed.push(name);
  }
  const path = str(runpath ?? rpath ?? -1n);
  if (runpath !== undefined || rpath !== undefined) out.searchPath.push(...(path ?? '').split(':').filter(Boolean));
  return out;
}

/** The NUL-terminated string at `start` (before `end`), or undefined when there is none or it is absurd. */
function cString(file: Uint8Array, start: number, end: number): string | undefined {
  if (start < 0 || start >= file.length) return undefined;
  const stop = Math.min(end, file.length, start + MAX_NAME);
  const nul = file.subarray(start, stop).indexOf(0);
  if (nul <= 0) return undefined;
  return Buffer.from(file.subarray(start, start + nul)).toString('latin1');
}
