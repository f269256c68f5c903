/**
 * PAX extended header records (POSIX.1-2001 `pax`, "extended header records"): `"%d %s=%s\n"`, where
 * the decimal length counts the whole record including itself. Values stay raw bytes: only the keys
 * tocfs interprets are decoded, each by its own rule, so a binary `SCHILY.xattr.*` value (a
 * `security.capability` holding CAP_SETUID has a 0x80 byte) survives exactly.
 */
import { FormatError } from '../../errors.js';

const utf8 = new TextDecoder('utf-8');

/** Splits a PAX header's data into records; a later record for the same key replaces an earlier one. */
export function parsePaxRecords(data: Uint8Array, ctx: () => string): Map<string, Uint8Array> {
  const records = new Map<string, Uint8Array>();
  let pos = 0;
  while (pos < data.length) {
    let length = 0;
    let i = pos;
    for (; i < data.length && data[i] !== 0x20; i++) {
      const c = data[i]!;
      if (c < 0x30 || c > 0x39 || i - pos > 15) throw new FormatError(`${ctx()}: PAX record at byte ${pos} has a bad length`);
      length = length * 10 + (c - 0x30);
    }
    const end = pos + length;
    if (i === pos || i >= data.length || end > data.length || end <= i + 1 || data[end - 1] !== 0x0a) {
      throw new FormatError(`${ctx()}: PAX record at byte ${pos} is malformed or runs past the header`);
    }
    const body = data.subarray(i + 1, end - 1);
    const eq = body.indexOf(0x3d);
    if (eq <= 0) throw new FormatError(`${ctx()}: PAX record at byte ${pos} has no key`);
    records.set(utf8.decode(body.subarray(0, eq)), body.subarray(eq + 1));
    pos = end;
  }
  return records;
}

/** A PAX text value (path, linkpath, uname, gname): UTF-8 by the standard. */
export function paxText(value: Uint8Array): string {
  return utf8.decode(value);
}

/** A PAX decimal integer (size, uid, gid): digits only, a safe integer. */
export function paxInteger(value: Uint8Array, key: string, ctx: () => string): number {
  const text = utf8.decode(value);
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new FormatError(`${ctx()}: PAX ${key}=${JSON.stringify(text.slice(0, 40))} is not a non-negative integer`);
  }
  return Number(text);
}

/** A point in time to the nanosecond: `seconds` is floor(time), `nanos` in 0..999,999,999. */
export interface TarTime {
  readonly seconds: number;
  readonly nanos: number;
}

/** A PAX time (`mtime`): optional minus, decimal seconds, optional fraction (kept to nanoseconds). */
export function paxTime(value: Uint8Array, key: string, ctx: () => string): TarTime {
  const text = utf8.decode(value);
  const m = /^(-?)(\d{1,16})(?:\.(\d+))?$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[2]))) {
    throw new FormatError(`${ctx()}: PAX ${key}=${JSON.stringify(text.slice(0, 40))} is not a time`);
  }
  const whole = Number(m[2]);
  const nanos = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (m[1] !== '-') return { seconds: whole, nanos };
  // Keep nanos non-negative: -1.25 s is seconds -2 plus 750,000,000 ns.
  if (nanos === 0) return { seconds: whole === 0 ? 0 : -whole, nanos: 0 };
  return { seconds: -whole - 1, nanos: 1e9 - nanos };
}
