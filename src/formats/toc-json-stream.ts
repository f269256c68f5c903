/**
 * The TOC JSON's entries one at a time, for `indexToc` to index as they come (issue 21, "Memory"). Parsing
 * a 10^6-entry TOC (~90 MiB) with one `JSON.parse` held, all at once, the JSON as a string, every parsed
 * entry object and every `RawTocEntry` copy beside the growing index: ~0.9 GB of RSS at mount. Here the
 * bytes are cut at entry boundaries by a scan that only tracks strings and nesting, each batch of ~1 MiB
 * of entries is `JSON.parse`d (so every value is still checked by the engine's own parser) and copied to
 * `RawTocEntry`s one by one, and only the current batch is alive.
 *
 * Only the document shape every writer produces streams: one object holding `version` (before `entries`)
 * and one `entries` array. Anything else (another key order, a repeated key, a syntax error at the top
 * level) is handed to `parseTocJson`, whose whole-document parse gives the same entries or the same error.
 */
import { FormatError } from '../errors.js';
import { parseTocJson, toRawEntry } from './toc-json.js';
import type { RawTocEntry } from './toc.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BATCH_BYTES = 1 << 20;

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Offsets of one simple document: undefined when it is not `{"version":…,"entries":[…]}` in that order. */
interface Shape {
  readonly version: unknown;
  /** [start, end) of each entry's text. */
  readonly starts: number[];
  readonly ends: number[];
}

class Scan {
  pos = 0;
  constructor(readonly b: Uint8Array) {}

  space(): void {
    while (isSpace(this.b[this.pos])) this.pos++;
  }

  /** Past a string starting at pos; false when it does not end. */
  string(): boolean {
    const b = this.b;
    let p = this.pos + 1;
    for (;;) {
      if (p >= b.length) return false;
      const c = b[p]!;
      if (c === BACKSLASH) p += 2;
      else if (c === QUOTE) break;
      else p++;
    }
    this.pos = p + 1;
    return true;
  }

  /** Past one value (its inside is JSON.parse's to check); false when it does not end. */
  value(): boolean {
    const b = this.b;
    const c = b[this.pos];
    if (c === QUOTE) return this.string();
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      while (this.pos < b.length) {
        const d = b[this.pos]!;
        if (d === QUOTE) {
          if (!this.string()) return false;
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) depth--;
        this.pos++;
        if (depth === 0) return true;
      }
      return false;
    }
    const start = this.pos;
    while (this.pos < b.length && !isSpace(b[this.pos]) && b[this.pos] !== 0x2c && b[this.pos] !== 0x7d && b[this.pos] !== 0x5d) this.pos++;
    return this.pos > start;
  }

  text(start: number, end: number): string {
    return Buffer.from(this.b.buffer, this.b.byteOffset + start, end - start).toString('utf8');
  }
}

function shapeOf(json: Uint8Array): Shape | undefined {
  const s = new Scan(json);
  s.space();
  if (json[s.pos] !== 0x7b) return undefined;
  s.pos++;
  let version: unknown;
  let sawVersion = false;
  let entries: { starts: number[]; ends: number[] } | undefined;
  for (let first = true; ; first = false) {
    s.space();
    if (json[s.pos] === 0x7d && first) break;
    if (json[s.pos] !== QUOTE) return undefined;
    const keyStart = s.pos;
    if (!s.string()) return undefined;
    let key: unknown;
    try {
      key = JSON.parse(s.text(keyStart, s.pos));
    } catch {
      return undefined;
    }
    s.space();
    if (json[s.pos] !== 0x3a) return undefined;
    s.pos++;
    s.space();
    if (key === 'entries') {
      // Streams only after the version was seen, once, as an array.
      if (entries !== undefined || !sawVersion || json[s.pos] !== 0x5b) return undefined;
      entries = elements(s);
      if (entries === undefined) return undefined;
    } else {
      const start = s.pos;
      if (!s.value()) return undefined;
      if (key === 'version') {
        if (sawVersion || entries !== undefined) return undefined;
        try {
          version = JSON.parse(s.text(start, s.pos));
        } catch {
          return undefined;
        }
        sawVersion = true;
      }
    }
    s.space();
    if (json[s.pos] === 0x2c) {
      s.pos++;
      continue;
    }
    if (json[s.pos] !== 0x7d) return undefined;
    break;
  }
  s.pos++;
  s.space();
  if (s.pos !== json.length || entries === undefined) return undefined;
  return { version, ...entries };
}

/** The elements of the array at pos: where each starts and ends. */
function elements(s: Scan): { starts: number[]; ends: number[] } | undefined {
  const b = s.b;
  s.pos++;
  const starts: number[] = [];
  const ends: number[] = [];
  s.space();
  if (b[s.pos] === 0x5d) {
    s.pos++;
    return { starts, ends };
  }
  for (;;) {
    s.space();
    const start = s.pos;
    if (!s.value()) return undefined;
    starts.push(start);
    ends.push(s.pos);
    s.space();
    if (b[s.pos] === 0x2c) {
      s.pos++;
      continue;
    }
    if (b[s.pos] !== 0x5d) return undefined;
    s.pos++;
    return { starts, ends };
  }
}

/**
 * The TOC JSON's entries as `RawTocEntry`s, in order, checked as `parseTocJson` checks them; the entry count
 * is checked against `maxEntries` before any entry is copied.
 */
export function* tocJsonEntries(json: Uint8Array, maxEntries: number): Generator<RawTocEntry> {
  const shape = shapeOf(json);
  if (shape === undefined) {
    yield* parseTocJson(json, maxEntries);
    return;
  }
  if (shape.version !== 1) {
    // The whole-document parse says why, in the same words as for any other document.
    yield* parseTocJson(json, maxEntries);
    return;
  }
  const { starts, ends } = shape;
  if (starts.length > maxEntries) throw new FormatError(`TOC has ${starts.length} entries, above maxEntries ${maxEntries}`);
  const scan = new Scan(json);
  for (let first = 0; first < starts.length; ) {
    let last = first;
    while (last + 1 < starts.length && ends[last + 1]! - starts[first]! <= BATCH_BYTES) last++;
    let batch: unknown[];
    try {
      // The commas between the elements are the array's own, already checked by the scan.
      batch = JSON.parse(`[${scan.text(starts[first]!, ends[last]!)}]`) as unknown[];
    } catch (err) {
      throw new FormatError(`TOC is not JSON: ${(err as Error).message}`, { cause: err });
    }
    for (let i = 0; i < batch.length; i++) yield toRawEntry(batch[i], first + i);
    first = last + 1;
  }
}
