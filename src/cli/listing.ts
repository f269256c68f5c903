import type { TocEntry } from '../formats/toc.js';

/** One line of a long listing. */
interface ListingLine {
  readonly path: string;
  readonly typeChar: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly sizeText: string;
  readonly mtime?: Date;
  readonly suffix: string;
}

const TOC_TYPE_CHARS: Record<TocEntry['type'], string> = {
  reg: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p',
};

function modeText(typeChar: string, m: number): string {
  const bit = (mask: number, ch: string) => (m & mask ? ch : '-');
  const exec = (x: number, special: number, on: string, off: string) => (m & special ? (m & x ? on : off) : bit(x, 'x'));
  return (
    typeChar +
    bit(0o400, 'r') + bit(0o200, 'w') + exec(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + exec(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + exec(0o001, 0o1000, 't', 'T')
  );
}

function render(line: ListingLine): string {
  const when = line.mtime ? line.mtime.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
  return `${modeText(line.typeChar, line.mode)} ${line.uid}/${line.gid} ${line.sizeText.padStart(10)} ${when} ${line.path}${line.suffix}`;
}

export function formatTocEntry(path: string, entry: TocEntry): string {
  const device = entry.type === 'char' || entry.type === 'block';
  const shownPath = entry.type === 'dir' && path !== '' ? `${path}/` : path === '' ? './' : path;
  return render({
    path: shownPath,
    typeChar: TOC_TYPE_CHARS[entry.type],
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    sizeText: device ? `${entry.devMajor ?? 0},${entry.devMinor ?? 0}` : String(entry.size),
    mtime: new Date(entry.mtimeMs),
    suffix: (entry.type === 'symlink' ? ` -> ${entry.linkName}` : '') + (entry.type !== 'dir' && entry.nlink > 1 ? ` (${entry.nlink} links)` : ''),
  });
}
