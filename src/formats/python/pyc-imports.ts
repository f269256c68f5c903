/**
 * The modules a compiled Python module imports when it is imported: the IMPORT_NAME instructions of its
 * module-level code, read from the `.pyc` (CPython's marshal format, bytecode of 3.11 to 3.13). Imports
 * inside functions run later or never, so they are not listed; class bodies are left out too.
 *
 * A file of another Python version, or one that does not parse, gives undefined: the prefetch that uses
 * this is a guess that costs nothing when it has nothing to go on. Parsing is bounded (depth, counts and
 * lengths are checked against the bytes there are), so a hostile file cannot make it loop or allocate.
 */

export interface PyImport {
  /** Dotted module name as written, '' for `from . import x`. */
  readonly name: string;
  /** 0 for an absolute import, n for n leading dots. */
  readonly level: number;
  /** The names of `from name import a, b`; '*' for a star import; empty for `import name`. */
  readonly fromlist: readonly string[];
}

export interface PycModule {
  /** sys.implementation.cache_tag of the interpreter that wrote it, e.g. "cpython-311". */
  readonly cacheTag: string;
  readonly imports: readonly PyImport[];
}

interface Bytecode {
  readonly cacheTag: string;
  /** Opcodes (Lib/opcode.py of the release); CACHE entries (0) follow some instructions inline. */
  readonly loadConst: number;
  readonly importName: number;
  readonly extendedArg: number;
}

/** The releases read here by importlib's MAGIC_NUMBER (its first two bytes, little-endian). */
const RELEASES = new Map<number, Bytecode>([
  [3495, { cacheTag: 'cpython-311', loadConst: 100, importName: 108, extendedArg: 144 }],
  [3531, { cacheTag: 'cpython-312', loadConst: 100, importName: 108, extendedArg: 144 }],
  [3571, { cacheTag: 'cpython-313', loadConst: 83, importName: 75, extendedArg: 71 }],
]);
const CACHE = 0;

/** The cache tags of the versions read here (layers/read-ahead.ts leaves their neighbours alone). */
export const PYC_CACHE_TAGS: readonly string[] = [...RELEASES.values()].map((r) => r.cacheTag);

const HEADER_BYTES = 16;
const UTF8 = new TextDecoder();
const MAX_DEPTH = 64;

/** The interpreter tag of a `.pyc` by its magic number, or undefined for one this does not read. */
export function pycCacheTag(head: Uint8Array): string | undefined {
  return release(head)?.cacheTag;
}

function release(head: Uint8Array): Bytecode | undefined {
  if (head.length < 4 || head[2] !== 0x0d || head[3] !== 0x0a) return undefined;
  return RELEASES.get(head[0]! | (head[1]! << 8));
}

/** The module-level imports of a `.pyc`, or undefined when it is of another version or malformed. */
export function pycImports(bytes: Uint8Array): PycModule | undefined {
  const bytecode = release(bytes);
  if (bytecode === undefined || bytes.length < HEADER_BYTES) return undefined;
  try {
    const code = new MarshalReader(bytes, HEADER_BYTES).read(0);
    if (!(code instanceof CodeObject)) return undefined;
    return { cacheTag: bytecode.cacheTag, imports: moduleImports(code, bytecode) };
  } catch (err) {
    if (err instanceof MalformedPyc) return undefined;
    throw err;
  }
}

class MalformedPyc extends Error {}

class CodeObject {
  constructor(
    readonly code: Uint8Array,
    readonly consts: readonly Value[],
    readonly names: readonly Value[],
  ) {}
}

/** What the import scan needs of a marshalled value; everything else is `null`. */
type Value = string | number | Uint8Array | CodeObject | readonly Value[] | null;

/** CPython's marshal (Python/marshal.c, version 4), reduced to the values code objects hold. */
class MarshalReader {
  readonly #b: Uint8Array;
  readonly #view: DataView;
  #at: number;
  /** Objects written with FLAG_REF, in the order their reading began (marshal.c reserves the slot first). */
  readonly #refs: Value[] = [];
  /** The value just read was NULL, the end of a dict. */
  #sawNull = false;

  constructor(bytes: Uint8Array, at: number) {
    this.#b = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#at = at;
  }

  read(depth: number): Value {
    if (depth > MAX_DEPTH) throw new MalformedPyc('nested too deep');
    const code = this.#byte();
    const type = String.fromCharCode(code & 0x7f);
    const slot = code & 0x80 ? this.#refs.push(null) - 1 : -1;
    const value = this.#value(type, depth);
    if (slot >= 0) this.#refs[slot] = value;
    this.#sawNull = type === '0';
    return value;
  }

  #value(type: string, depth: number): Value {
    switch (type) {
      case '0': // NULL: ends a dict
      case 'N':
      case 'F':
      case 'T':
      case 'S':
      case '.':
        return null;
      case 'i':
        return this.#int32();
      case 'l': {
        const digits = Math.abs(this.#int32());
        this.#skip(digits * 2);
        return null;
      }
      case 'g':
        this.#skip(8);
        return null;
      case 'y':
        this.#skip(16);
        return null;
      case 'f':
        this.#skip(this.#byte());
        return null;
      case 'x':
        this.#skip(this.#byte());
        this.#skip(this.#byte());
        return null;
      case 's':
        return this.#take(this.#length());
      case 't':
      case 'u':
      case 'a':
      case 'A':
        return UTF8.decode(this.#take(this.#length()));
      case 'z':
      case 'Z':
        return UTF8.decode(this.#take(this.#byte()));
      case '(':
      case '[':
      case '<':
      case '>':
        return this.#items(this.#length(), depth);
      case ')':
        return this.#items(this.#byte(), depth);
      case '{':
        for (;;) {
          this.read(depth + 1);
          if (this.#sawNull) return null;
          this.read(depth + 1);
        }
      case 'r': {
        const index = this.#int32();
        if (index < 0 || index >= this.#refs.length) throw new MalformedPyc(`reference ${index} to nothing`);
        return this.#refs[index]!;
      }
      case 'c':
        return this.#code(depth);
      default:
        throw new MalformedPyc(`unknown marshal type ${JSON.stringify(type)}`);
    }
  }

  /** A 3.11 to 3.13 code object: five int32 fields, then code, consts, names and seven more. */
  #code(depth: number): CodeObject {
    this.#skip(5 * 4); // argcount, posonlyargcount, kwonlyargcount, stacksize, flags
    const code = this.read(depth + 1);
    const consts = this.read(depth + 1);
    const names = this.read(depth + 1);
    for (let i = 0; i < 5; i++) this.read(depth + 1); // localsplusnames, localspluskinds, filename, name, qualname
    this.#skip(4); // firstlineno
    this.read(depth + 1); // linetable
    this.read(depth + 1); // exceptiontable
    if (!(code instanceof Uint8Array) || !Array.isArray(consts) || !Array.isArray(names)) throw new MalformedPyc('code object of the wrong shape');
    return new CodeObject(code, consts as Value[], names as Value[]);
  }

  #items(n: number, depth: number): Value[] {
    // Every item takes at least one byte: a count beyond the bytes left is a lie, not an allocation.
    if (n > this.#b.length - this.#at) throw new MalformedPyc(`${n} items in ${this.#b.length - this.#at} bytes`);
    const items: Value[] = [];
    for (let i = 0; i < n; i++) items.push(this.read(depth + 1));
    return items;
  }

  #length(): number {
    const n = this.#int32();
    if (n < 0) throw new MalformedPyc(`negative length ${n}`);
    return n;
  }

  #byte(): number {
    if (this.#at >= this.#b.length) throw new MalformedPyc('truncated');
    return this.#b[this.#at++]!;
  }

  #int32(): number {
    if (this.#at + 4 > this.#b.length) throw new MalformedPyc('truncated');
    const v = this.#view.getInt32(this.#at, true);
    this.#at += 4;
    return v;
  }

  #take(n: number): Uint8Array {
    if (this.#at + n > this.#b.length) throw new MalformedPyc('truncated');
    const out = this.#b.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  #skip(n: number): void {
    this.#take(n);
  }
}

/**
 * The IMPORT_NAME instructions of `module`'s own code. The compiler emits `LOAD_CONST level; LOAD_CONST
 * fromlist; IMPORT_NAME name` for every import statement; an import built any other way reads as
 * absolute with no fromlist.
 */
function moduleImports(module: CodeObject, ops: Bytecode): PyImport[] {
  const { code, consts, names } = module;
  const imports: PyImport[] = [];
  const previous: { op: number; arg: number }[] = [];
  let extended = 0;
  for (let i = 0; i + 1 < code.length; i += 2) {
    const op = code[i]!;
    const arg = code[i + 1]! | (extended << 8);
    if (op === ops.extendedArg) {
      extended = arg;
      continue;
    }
    extended = 0;
    if (op === CACHE) continue;
    if (op === ops.importName) {
      const name = names[arg];
      const [levelOp, fromOp] = previous.slice(-2);
      const level = levelOp?.op === ops.loadConst ? consts[levelOp.arg] : 0;
      const fromlist = fromOp?.op === ops.loadConst ? consts[fromOp.arg] : null;
      if (typeof name === 'string' && typeof level === 'number' && level >= 0) {
        imports.push({ name, level, fromlist: Array.isArray(fromlist) ? fromlist.filter((n): n is string => typeof n === 'string') : [] });
      }
    }
    previous.push({ op, arg });
    if (previous.length > 2) previous.shift();
  }
  return imports;
}
