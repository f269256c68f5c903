/**
 * The TOC JSON shared by eStargz (`stargz.index.json`) and zstd:chunked: `{"version":1,"entries":[…]}`.
 * Every field's type is checked here and only known fields are copied, so `indexToc` sees exactly the
 * `RawTocEntry` shape; value ranges (safe integers, paths, offsets) are `indexToc`'s job.
 */
import { FormatError } from '../errors.js';
import type { RawTocEntry, TocEntryType } from './toc.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const ENTRY_TYPES: ReadonlyMap<string, TocEntryType | 'chunk'> = new Map(
  (['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk'] as const).map((t) => [t, t]),
);

const NUMBER_FIELDS = ['size', 'mode', 'uid', 'gid', 'devMajor', 'devMinor', 'offset', 'endOffset', 'innerOffset', 'chunkOffset', 'chunkSize'] as const;
const STRING_FIELDS = ['modtime', 'linkName', 'userName', 'groupName', 'digest', 'chunkDigest'] as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `the string ${JSON.stringify(value.slice(0, 40))}` : `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Go's encoding/json decodes `[]byte` from padded standard base64; so do we, strictly. */
function decodeXattrs(value: unknown, fail: (reason: string) => never): Readonly<Record<string, Uint8Array>> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) fail(`xattrs is ${describe(value)}, not an object`);
  const decoded: [string, Uint8Array][] = [];
  for (const [name, text] of Object.entries(value)) {
    if (text === null) {
      decoded.push([name, new Uint8Array(0)]);
      continue;
    }
    if (typeof text !== 'string' || !BASE64.test(text)) fail(`xattr ${JSON.stringify(name)} is not base64 text`);
    const bytes = Buffer.from(text, 'base64');
    decoded.push([name, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
  }
  if (decoded.length === 0) return undefined;
  // fromEntries defines own properties, so an xattr named "__proto__" stays an ordinary name.
  return Object.freeze(Object.fromEntries(decoded));
}

/** One entry of the JSON (number `index`) type-checked and copied into a `RawTocEntry`. */
export function toRawEntry(value: unknown, index: number): RawTocEntry {
  const fail = (reason: string): never => {
    throw new FormatError(`TOC JSON entry #${index}: ${reason}`);
  };
  if (!isObject(value)) fail(`is ${describe(value)}, not an object`);
  const entry = value as Record<string, unknown>;
  if (typeof entry['name'] !== 'string') fail(`name is ${describe(entry['name'])}, not a string`);
  const type = typeof entry['type'] === 'string' ? ENTRY_TYPES.get(entry['type']) : undefined;
  if (type === undefined) fail(`type ${describe(entry['type'])} is not one of ${[...ENTRY_TYPES.keys()].join(', ')}`);
  const raw: Mutable<RawTocEntry> = { name: entry['name'] as string, type: type! };
  // Go's decoder leaves a field at its zero value for JSON null, so null reads as absent here too.
  for (const field of NUMBER_FIELDS) {
    const v = entry[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number') fail(`${field} is ${describe(v)}, not a number`);
    raw[field] = v as number;
  }
  for (const field of STRING_FIELDS) {
    const v = entry[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') fail(`${field} is ${describe(v)}, not a string`);
    raw[field] = v as string;
  }
  const chunkType = entry['chunkType'];
  if (chunkType === 'zeros') raw.chunkType = 'zeros';
  else if (chunkType !== undefined && chunkType !== null && chunkType !== '' && chunkType !== 'data') {
    fail(`chunkType ${describe(chunkType)} is not "data" or "zeros"`);
  }
  const xattrs = decodeXattrs(entry['xattrs'], fail);
  if (xattrs !== undefined) raw.xattrs = xattrs;
  return raw;
}

/** Parses and type-checks the TOC JSON; `maxEntries` is checked before any entry is copied. */
export function parseTocJson(json: Uint8Array, maxEntries: number): RawTocEntry[] {
  // Lenient UTF-8 like Go's decoder: invalid sequences become U+FFFD rather than failing the layer.
  const text = Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`TOC is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(doc)) throw new FormatError(`TOC JSON is ${describe(doc)}, not an object`);
  if (doc['version'] !== 1) throw new FormatError(`TOC JSON version ${describe(doc['version'])} is not 1`);
  const entries = doc['entries'];
  // A Go writer marshals an empty entry list as null.
  if (entries === undefined || entries === null) return [];
  if (!Array.isArray(entries)) throw new FormatError(`TOC JSON entries is ${describe(entries)}, not an array`);
  if (entries.length > maxEntries) throw new FormatError(`TOC has ${entries.length} entries, above maxEntries ${maxEntries}`);
  return entries.map(toRawEntry);
}
