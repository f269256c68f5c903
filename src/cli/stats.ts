/**
 * `tocfs stats MNT [--json]`: the daemon's figures (DESIGN.md §1.4), read from the `user.tocfs.*` extended
 * attributes of MNT (or of an image root under it).
 * `tocfs stats MNT --accessed IMAGE_DIR`: the files a workload read in that image, first read first, one
 * absolute path per line (the input of `tocfs convert --prioritize-from`); IMAGE_DIR is absolute, or
 * relative to MNT (`images/HOST/REPO:TAG`), or just `HOST/REPO:TAG`. Node has no getxattr, so they are read with
 * `getfattr` (Debian package `attr`), one attribute per call, values raw.
 */
import { execFile } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { TocfsError } from '../errors.js';
import { UsageError } from './usage.js';

const NUMBERS = ['bytes_fetched', 'bytes_cvmfs', 'bytes_cache', 'requests', 'bytes_disk_pending'] as const;
const PREFIX = 'user.tocfs.';

export interface MountFigures {
  readonly bytes_fetched: number;
  readonly bytes_cvmfs: number;
  readonly bytes_cache: number;
  readonly requests: number;
  /** Verified chunk bytes that wait for a pause in the fetches before they go to the disk cache. */
  readonly bytes_disk_pending: number;
  /** Keyed by layer digest: format, tocSource, source (cvmfs | cvmfs+registry | registry), fetchedRatio, bytes... */
  readonly layers: Record<string, Record<string, unknown>>;
  /** Mount-wide filesystem calls made by FUSE ops (lookup, readdir, read, xattrs), when the daemon counts them. */
  readonly fuse_ops?: Record<string, number>;
}

interface Run {
  readonly code: number | string | undefined;
  readonly stdout: Buffer;
  readonly stderr: string;
}

function getfattr(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('getfattr', args, { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException).code ?? 1) : 0;
      resolve({ code, stdout, stderr: stderr.toString() });
    });
  });
}

/** One attribute's raw value, or undefined when the path does not carry it. */
async function readXattr(path: string, name: string): Promise<string | undefined> {
  const r = await getfattr(['--absolute-names', '--only-values', '-n', name, '--', path]);
  if (r.code === 0) return r.stdout.toString('utf8');
  if (r.code === 'ENOENT') {
    throw new TocfsError('NOT_FOUND', 'getfattr not found: install the `attr` package (apt-get install attr) to read tocfs figures');
  }
  if (/No such attribute|Operation not supported|No data available/i.test(r.stderr)) return undefined;
  throw new TocfsError('NOT_FOUND', `cannot read ${name} of ${path}: ${r.stderr.trim() || `getfattr exited ${String(r.code)}`}`);
}

/** The figures of a tocfs mount (or image root); NOT_FOUND when `path` is not one. */
export async function readMountFigures(path: string): Promise<MountFigures> {
  const values = await Promise.all([...NUMBERS, 'layers'].map((n) => readXattr(path, PREFIX + n)));
  if (values.every((v) => v === undefined)) {
    throw new TocfsError('NOT_FOUND', `${path} is not a tocfs mount (no ${PREFIX}* extended attributes)`);
  }
  const out: Record<string, unknown> = {};
  for (const [i, name] of NUMBERS.entries()) {
    const text = values[i];
    const n = text === undefined ? NaN : Number(text);
    if (!Number.isFinite(n)) throw new TocfsError('FORMAT', `${path}: ${PREFIX}${name} is ${JSON.stringify(text ?? null)}, not a number`);
    out[name] = n;
  }
  const layersText = values[NUMBERS.length];
  try {
    out['layers'] = layersText === undefined ? {} : (JSON.parse(layersText) as unknown);
  } catch {
    throw new TocfsError('FORMAT', `${path}: ${PREFIX}layers is not JSON`);
  }
  const opsText = await readXattr(path, `${PREFIX}fuse_ops`);
  if (opsText !== undefined) {
    try {
      out['fuse_ops'] = JSON.parse(opsText) as unknown;
    } catch {
      throw new TocfsError('FORMAT', `${path}: ${PREFIX}fuse_ops is not JSON`);
    }
  }
  return out as unknown as MountFigures;
}

/** Where `--accessed IMAGE_DIR` points: absolute, relative to MNT, or relative to MNT/images. */
export function accessedPath(mnt: string, imageDir: string): string {
  if (isAbsolute(imageDir)) return imageDir;
  const clean = imageDir.replace(/^\.\//, '');
  return clean.startsWith('images/') ? join(mnt, clean) : join(mnt, 'images', clean);
}

/**
 * The files read under an image root, first read first (`user.tocfs.accessed` holds the count, pages
 * `user.tocfs.accessed.N` the paths). NOT_FOUND when `imageRoot` is not an image root of a tocfs mount.
 */
export async function readAccessed(imageRoot: string): Promise<string[]> {
  const countText = await readXattr(imageRoot, `${PREFIX}accessed`);
  if (countText === undefined) {
    throw new TocfsError('NOT_FOUND', `${imageRoot} is not an image root of a tocfs mount (no ${PREFIX}accessed attribute)`);
  }
  const count = Number(countText);
  if (!Number.isSafeInteger(count) || count < 0) throw new TocfsError('FORMAT', `${imageRoot}: ${PREFIX}accessed is ${JSON.stringify(countText)}, not a count`);
  const files: string[] = [];
  for (let page = 0; files.length < count; page++) {
    const text = await readXattr(imageRoot, `${PREFIX}accessed.${page}`);
    if (text === undefined) break;
    files.push(...text.split('\n').filter((l) => l !== ''));
  }
  // The list may grow between reading the count and the last page: show what was read, in order.
  return files;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${n} B (${v.toFixed(1)} ${units[u]})`;
}

function cell(v: unknown): string {
  return v === undefined || v === null ? '-' : String(v);
}

/** The human form: one line per figure, then one row per layer. */
export function formatFigures(path: string, f: MountFigures): string {
  const lines = [
    `figures of ${path}`,
    `  bytes_fetched  ${bytes(f.bytes_fetched)}   (from the registry)`,
    `  bytes_cache    ${bytes(f.bytes_cache)}   (read from verified chunks in the memory/disk caches)`,
    `  bytes_cvmfs    ${bytes(f.bytes_cvmfs)}   (read from CVMFS)`,
    `  requests       ${f.requests}`,
    `  disk_pending   ${bytes(f.bytes_disk_pending)}   (verified, written to the disk cache once fetches pause)`,
    `  layers         ${Object.keys(f.layers).length}`,
  ];
  if (f.fuse_ops) {
    lines.push(`  fuse_ops       ${Object.entries(f.fuse_ops).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  const rows = Object.entries(f.layers).map(([digest, l]) => [
    digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1'),
    cell(l['format']),
    cell(l['tocSource']),
    typeof l['fetchedRatio'] === 'number' ? `${(l['fetchedRatio'] * 100).toFixed(1)}%` : '-',
    cell(l['bytesFetched']),
    cell(l['bytesCache']),
    cell(l['blobBytes']),
    cell(l['bytesCvmfs']),
    cell(l['source']),
  ]);
  if (rows.length > 0) {
    const head = ['LAYER', 'FORMAT', 'TOC', 'FETCHED', 'BYTES_FETCHED', 'BYTES_CACHE', 'BLOB_BYTES', 'BYTES_CVMFS', 'SOURCE'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const left = (i: number): boolean => i <= 2 || i === head.length - 1;
    const fmt = (r: string[]): string => r.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
    lines.push('', fmt(head), ...rows.map(fmt));
  }
  return `${lines.join('\n')}\n`;
}

export async function runStats(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, accessed: { type: 'string' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [mnt, ...extra] = parsed.positionals;
  if (mnt === undefined) throw new UsageError('usage: tocfs stats MNT [--json] [--accessed IMAGE_DIR]');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const imageDir = parsed.values.accessed;
  if (imageDir !== undefined) {
    if (imageDir === '') throw new UsageError('--accessed needs an image directory (images/HOST/REPO:TAG)');
    const files = await readAccessed(accessedPath(mnt, imageDir));
    out.write(parsed.values.json ? `${JSON.stringify(files, null, 2)}\n` : files.map((f) => `${f}\n`).join(''));
    return;
  }
  const figures = await readMountFigures(mnt);
  out.write(parsed.values.json ? `${JSON.stringify(figures, null, 2)}\n` : formatFigures(mnt, figures));
}
