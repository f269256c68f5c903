/**
 * Field-level checks shared by every TOC format: path normalisation, RFC 3339 times, digests and limits.
 * Each returns the clean value or throws with a reason; `indexToc` adds which entry it was.
 */
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_TOC_LIMITS, type TocLimits } from './toc.js';
import { isSha256Digest } from '../util/sha256-digest.js';

/** Thrown by the helpers here; indexToc turns it into a FormatError that names the entry. */
export class FieldError extends Error {
  override name = 'FieldError';
}

/** Limits with every default applied, each checked once (STYLE.md item 14). */
export type ResolvedTocLimits = Required<TocLimits>;

export function resolveTocLimits(limits: Partial<TocLimits> = {}): ResolvedTocLimits {
  const out: Record<string, number> = {};
  for (const key of Object.keys(DEFAULT_TOC_LIMITS) as (keyof TocLimits)[]) {
    const value = limits[key] ?? DEFAULT_TOC_LIMITS[key]!;
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidOptionError(`limits.${key}`, `${String(value)} is not a positive safe integer`);
    }
    out[key] = value;
  }
  return out as unknown as ResolvedTocLimits;
}

/**
 * `./a//b/./c/` -> `a/b/c`; `''`, `.`, `/` and `./` are the root (`''`).
 *
 * Security: a `..` component is rejected outright, wherever it is. A layer is untrusted input, and a
 * name such as `../../etc/passwd` or `a/../../x` is a path traversal out of the layer (the tar-slip
 * class of bug, node-tar GHSA-3jfq-g458-7qm9 and friends). The reference reader (`cleanEntryName`,
 * `path.Clean("/"+name)`) clamps such names at the root instead; no writer produces them, so refusing
 * the layer is the safer of the two. Leading `/` is harmless once stripped: every path is relative to
 * the layer root.
 */
export function normalizePath(name: string, limits: ResolvedTocLimits): string {
  // Cheap bound before splitting a hostile multi-megabyte name.
  if (name.length > 2 * limits.maxPathLength + 2) throw new FieldError(`name is longer than ${limits.maxPathLength} bytes`);
  if (name.includes('\0')) throw new FieldError('name contains a NUL byte');
  const clean = alreadyClean(name, limits);
  if (clean !== undefined) return clean;
  const parts = name.split('/');
  const kept: string[] = [];
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new FieldError('name has a ".." component (path traversal out of the layer)');
    kept.push(part);
  }
  if (kept.length > limits.maxPathDepth) throw new FieldError(`name is ${kept.length} components deep (limit ${limits.maxPathDepth})`);
  // Reuse the original string when nothing changed: one flat string per entry, no copy.
  const path = kept.length === parts.length ? name : kept.join('/');
  if (Buffer.byteLength(path, 'utf8') > limits.maxPathLength) {
    throw new FieldError(`name is longer than ${limits.maxPathLength} bytes`);
  }
  return path;
}

/**
 * The common case without splitting: a relative name with no empty, `.` or `..` component (a directory's
 * one trailing `/` is dropped), short enough that its UTF-8 length (at most 3 bytes per UTF-16 unit) needs
 * no counting. A TOC decode runs on the daemon's critical path at first lookup, once per entry.
 */
function alreadyClean(name: string, limits: ResolvedTocLimits): string | undefined {
  const path = name.endsWith('/') ? name.slice(0, -1) : name;
  if (path === '' || path === '.' || path.startsWith('/') || path.startsWith('./') || path.endsWith('/') || path.endsWith('/.')) return undefined;
  if (path.includes('//') || path.includes('/./') || path.includes('..') || path.length * 3 > limits.maxPathLength) return undefined;
  let depth = 1;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) depth++;
  return depth > limits.maxPathDepth ? undefined : path;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * RFC 3339 text as Go's `time.Parse(time.RFC3339, …)` accepts it (what eStargz writers emit, e.g.
 * `2020-01-01T00:00:00Z`; fractional seconds and numeric zones are accepted too) -> ms since the epoch.
 * Absent or empty means the epoch: the reference writer omits `modtime` when it is the epoch.
 */
export function parseModtime(text: string | undefined): number {
  if (text === undefined || text === '') return 0;
  // A layer's entries share few times (one per package build, or one for the whole image).
  const known = parsedModtimes.get(text);
  if (known !== undefined) return known;
  const ms = parseRfc3339(text);
  if (parsedModtimes.size >= MODTIMES_KEPT) parsedModtimes.clear();
  parsedModtimes.set(text, ms);
  return ms;
}

const MODTIMES_KEPT = 4096;
const parsedModtimes = new Map<string, number>();

function parseRfc3339(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) throw new FieldError(`modtime ${JSON.stringify(text.slice(0, 64))} is not RFC 3339`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeap(year) ? 1 : 0);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    throw new FieldError(`modtime ${JSON.stringify(text)} is out of range`);
  }
  let zoneMinutes = 0;
  if (m[8] !== undefined) {
    const zh = Number(m[9]);
    const zm = Number(m[10]);
    if (zh > 23 || zm > 59) throw new FieldError(`modtime ${JSON.stringify(text)} has an invalid zone`);
    zoneMinutes = (m[8] === '-' ? -1 : 1) * (zh * 60 + zm);
  }
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0..99 to 1900..1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, m[7] === undefined ? 0 : Math.trunc(Number(`0.${m[7]}`) * 1000));
  return date.getTime() - zoneMinutes * 60_000;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}


/** Only sha256 is accepted: every eStargz and zstd:chunked writer uses it, and the fetcher verifies with it. */
export function checkDigest(value: string | undefined, field: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!isSha256Digest(value)) throw new FieldError(`${field} ${JSON.stringify(value.slice(0, 80))} is not sha256:<64 hex>`);
  return value;
}

/** Absent = 0; anything else must be a non-negative safe integer (node-tar large-numbers.ts does the same). */
export function count(value: number | undefined, field: string): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0) throw new FieldError(`${field} ${String(value)} is not a non-negative safe integer`);
  return value;
}
