/**
 * Prioritisation reorders a layer, and a prioritised file may come last in the input: so the input tar
 * is spooled to a temp file once, indexed as it goes (a small record per entry, never data), and read
 * back entry by entry in the new order. Memory stays bounded by the index, about 100 bytes per entry
 * plus its name; disk use is one uncompressed copy of the layer, removed by the caller.
 */
import type { FileHandle } from 'node:fs/promises';
import { FormatError } from '../errors.js';
import { BLOCK_SIZE } from '../formats/tar/header.js';
import { TarReader, type TarLimits } from '../formats/tar/reader.js';

export interface SpoolRecord {
  readonly kind: 'entry' | 'global';
  /** Stream offsets [start, end) of the whole entry: header blocks, data and padding. */
  readonly start: number;
  readonly end: number;
  /** Cleaned path (`cleanEntryName`); '' for the root and for global headers. */
  readonly name: string;
  /** Cleaned hardlink target, for hardlinks. */
  readonly link?: string;
  /** Global PAX records in effect before this record, to re-read it on its own. */
  readonly globals: ReadonlyMap<string, Uint8Array>;
}

/**
 * The reference's `cleanEntryName`: `path.Clean("/" + name)` without the leading slash, so `./a/`,
 * `/a` and `a/../a` all name `a`, and `..` cannot climb above the root.
 */
export function cleanEntryName(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

async function writeAll(file: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length; ) {
    const { bytesWritten } = await file.write(chunk, at, chunk.length - at);
    at += bytesWritten;
  }
}

/**
 * Copies `tar` into `file` and returns one record per entry and global header, in stream order.
 * Entries for which `skip(cleanName)` is true (format artefacts of an earlier conversion) get none.
 */
export async function spoolTar(
  tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  file: FileHandle,
  limits: Partial<TarLimits>,
  skip: (name: string) => boolean,
): Promise<SpoolRecord[]> {
  const reader = new TarReader({ limits });
  const records: SpoolRecord[] = [];
  let globals: ReadonlyMap<string, Uint8Array> = new Map();
  for await (const chunk of tar) {
    await writeAll(file, chunk);
    for (const ev of reader.push(chunk)) {
      if (ev.kind === 'global') {
        records.push({ kind: 'global', start: ev.offset, end: ev.offset + ev.bytes.length, name: '', globals });
        globals = new Map([...globals, ...ev.records]);
      } else if (ev.kind === 'entry-end') {
        const h = ev.header;
        const name = cleanEntryName(h.path);
        if (skip(name)) continue;
        const end = h.dataOffset + Math.ceil(h.size / BLOCK_SIZE) * BLOCK_SIZE;
        const link = h.type === 'hardlink' ? { link: cleanEntryName(h.linkpath) } : {};
        records.push({ kind: 'entry', start: h.headerOffset, end, name, ...link, globals });
      }
    }
  }
  reader.end();
  return records;
}

export interface PrioritizedOrder {
  /** Record indexes to write first, before the prefetch landmark. */
  readonly first: readonly number[];
  /** Every other record, in stream order. */
  readonly rest: readonly number[];
  /** Prioritised paths that name nothing in this layer. */
  readonly missing: readonly string[];
}

/**
 * The reference's `sortEntries` + `moveRec`: each prioritised path moves to the front, preceded by its
 * parent directories and, for a hardlink, by its target, each at most once. Where a name occurs more
 * than once, the last occurrence moves and the earlier ones are dropped (an earlier one left behind
 * would be extracted after the moved one and win). Unlike the reference, a parent directory that the
 * layer omits (umoci writes such layers) does not make the file count as missing.
 */
export function prioritizedOrder(records: readonly SpoolRecord[], prioritize: readonly string[]): PrioritizedOrder {
  const byName = new Map<string, number[]>();
  records.forEach((r, i) => {
    if (r.kind !== 'entry') return;
    const ids = byName.get(r.name);
    if (ids) ids.push(i);
    else byName.set(r.name, [i]);
  });
  const first: number[] = [];
  const picked = new Set<number>();
  const pickedNames = new Set<string>();
  const visiting = new Set<string>();

  const move = (name: string): boolean => {
    const ids = byName.get(name);
    if (!ids) return pickedNames.has(name);
    if (pickedNames.has(name) || visiting.has(name)) return true;
    visiting.add(name);
    if (name !== '') move(parentOf(name));
    const last = ids[ids.length - 1]!;
    const link = records[last]!.link;
    // A hardlink cycle is malformed, but must not recurse forever: `visiting` stops it.
    if (link !== undefined) move(link);
    visiting.delete(name);
    pickedNames.add(name);
    for (const id of ids) picked.add(id);
    first.push(last);
    return true;
  };

  const missing: string[] = [];
  for (const path of prioritize) {
    if (!move(cleanEntryName(path))) missing.push(path);
  }
  const rest: number[] = [];
  records.forEach((_, i) => {
    if (!picked.has(i)) rest.push(i);
  });
  return { first, rest, missing };
}

function parentOf(name: string): string {
  const cut = name.lastIndexOf('/');
  return cut < 0 ? '' : name.slice(0, cut);
}

const READ_BYTES = 1 << 20;

/** Reads ranges of the spool file in order; each yielded chunk is a fresh buffer the caller may keep. */
export async function* readRange(file: FileHandle, start: number, end: number): AsyncGenerator<Uint8Array> {
  for (let pos = start; pos < end; ) {
    const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, end - pos));
    const { bytesRead } = await file.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) throw new FormatError(`tar spool: ${end - pos} bytes missing at offset ${pos}`);
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}
