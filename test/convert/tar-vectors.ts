// Tar entries shared by the tar reader and eStargz writer tests: every entry type and the metadata that
// breaks naive readers (binary xattrs, long and unicode names, large ids, sub-second times).
import { createHash } from 'node:crypto';
import { TarReader, type TarEvent, type TarHeader } from '../../src/formats/tar/reader.js';
import {
  blockdev,
  chardev,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  symlink,
  whiteout,
  type TarEntry,
} from '../support/tar-dsl.js';
import { CAP_SETUID, LONG_DIR, LONG_NAME, UNICODE } from '../support/vectors.js';

export const EVERY: readonly TarEntry[] = [
  dir('etc', { mode: 0o755, mtime: new Date('2021-02-03T04:05:06Z') }),
  file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', { uid: 0, gid: 0, uname: 'root', gname: 'root' }),
  dir('usr'),
  dir('usr/bin'),
  file('usr/bin/su', 'su', { mode: 0o4755, xattrs: { 'security.capability': CAP_SETUID, 'user.note': 'é' } }),
  file('usr/bin/wall', 'wall', { mode: 0o2755, gid: 5, uname: 'root', gname: 'tty' }),
  dir('tmp', { mode: 0o1777 }),
  file('empty'),
  file('block-exact', 'x'.repeat(512)),
  file('block-minus-one', 'y'.repeat(511)),
  symlink('etc/localtime', '/usr/share/zoneinfo/UTC'),
  hardlink('usr/bin/su-again', 'usr/bin/su'),
  chardev('dev/null', 1, 3, { mode: 0o666 }),
  blockdev('dev/sda', 8, 0),
  fifo('run/pipe', { mode: 0o600 }),
  whiteout('var/gone'),
  opaque('opt'),
  file(`${LONG_DIR}${LONG_NAME}`, 'long'),
  symlink('long-link', `${LONG_DIR}${LONG_NAME}`),
  file(UNICODE, 'unicode', { uid: 1_000_000, gid: 2_000_000, uname: 'u'.repeat(40), mtime: new Date(1_600_000_000_250) }),
  file('gen/pattern', { size: 3 * 4096 + 17 }),
  file('gen/ones', { size: 1000, fill: 0xff }),
];

const DSL_TYPES = {
  file: 'file',
  dir: 'dir',
  symlink: 'symlink',
  hardlink: 'hardlink',
  chardev: 'char',
  blockdev: 'block',
  fifo: 'fifo',
} as const;

export const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A header plus its whole data, for small tars read in tests. */
export interface TarRecord {
  readonly header: TarHeader;
  readonly data: Buffer;
}

/** Reads a whole tar held in memory, pushing it in `step`-byte pieces (Infinity: all at once). */
export function readAll(tar: Uint8Array, step = Infinity): { records: TarRecord[]; end: TarEvent | undefined } {
  const reader = new TarReader();
  const records: TarRecord[] = [];
  let parts: Buffer[] = [];
  let end: TarEvent | undefined;
  const take = (events: TarEvent[]): void => {
    for (const ev of events) {
      if (ev.kind === 'data') parts.push(Buffer.from(ev.bytes));
      else if (ev.kind === 'entry-end') {
        records.push({ header: ev.header, data: Buffer.concat(parts) });
        parts = [];
      } else if (ev.kind === 'end') end = ev;
    }
  };
  const n = Number.isFinite(step) ? step : tar.length;
  for (let at = 0; at < tar.length; at += n) take(reader.push(tar.subarray(at, at + n)));
  take(reader.end());
  return { records, end };
}

/** What the DSL entry says a reader must see. */
export function expectedOf(e: TarEntry): Record<string, unknown> {
  const ms = e.mtime.getTime();
  const seconds = Math.floor(ms / 1000);
  return {
    path: e.path,
    type: DSL_TYPES[e.type],
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    uname: e.uname ?? '',
    gname: e.gname ?? '',
    size: e.type === 'file' ? e.size : 0,
    mtime: { seconds, nanos: (ms - seconds * 1000) * 1e6 },
    linkpath: e.linkpath ?? '',
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  };
}

/** The comparable part of a parsed header (everything but offsets and raw bytes). */
export function comparable(h: TarHeader): Record<string, unknown> {
  return {
    path: h.path,
    type: h.type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    size: h.size,
    mtime: h.mtime,
    linkpath: h.linkpath,
    devmajor: h.devmajor,
    devminor: h.devminor,
  };
}

export function xattrsHex(m: ReadonlyMap<string, Uint8Array> | Readonly<Record<string, Uint8Array>>): Record<string, string> {
  const entries = m instanceof Map ? [...m] : Object.entries(m);
  return Object.fromEntries(entries.map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('hex')]).sort());
}
