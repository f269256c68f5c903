// Heap held by one decoded eStargz TOC index, per 10,000 entries, for 50,000-entry layers shaped like a
// Debian root filesystem (20% directories, symlinks, a few hardlinks and xattrs, some files chunked).
// The TOC goes through the real path: gzip member -> decodeToc -> TocIndex; only the index is kept.
//
//   node --expose-gc --import tsx bench/toc-heap.ts        (or: npx tsx --expose-gc bench/toc-heap.ts)
//
// Prints one markdown table row per run for bench/RESULTS.md.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { estargzCodec } from '../src/formats/estargz/codec.js';
import type { TocIndex } from '../src/formats/toc.js';
import { prng } from '../test/support/prng.js';

const ENTRIES = 50_000;
const RUNS = 3;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (node --expose-gc --import tsx bench/toc-heap.ts)');

const WORDS = ['lib', 'python3', 'perl', 'gcc', 'ssl', 'x11', 'gtk', 'glib', 'dbus', 'systemd', 'util', 'core', 'base', 'net', 'xml', 'icu', 'z', 'png', 'jpeg', 'krb5'];
const LANGS = ['de', 'fr', 'es', 'it', 'ja', 'pt_BR', 'ru', 'zh_CN', 'nl', 'pl'];

function digest(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}

/** A stargz.index.json for `count` names, as the reference writer marshals it (tab-indented, omitempty). */
function debianToc(count: number): { json: Buffer; tocOffset: number } {
  const rand = prng(0x5eed);
  const pickWord = (): string => WORDS[Math.floor(rand() * WORDS.length)]!;
  const entries: Record<string, unknown>[] = [];
  const dirs: string[] = [];
  const files: string[] = [];
  let offset = 4096;
  const mtime = '2024-03-01T12:00:00Z';
  for (const d of ['usr', 'usr/share', 'usr/share/doc', 'usr/share/locale', 'usr/lib', 'usr/lib/x86_64-linux-gnu', 'usr/bin', 'etc']) {
    entries.push({ name: `${d}/`, type: 'dir', modtime: mtime, mode: 0o755 });
    dirs.push(d);
  }
  let names = entries.length;
  for (let pkg = 0; names < count; pkg++) {
    const name = `${pickWord()}${pickWord()}${pkg}`;
    const parents = [`usr/share/doc/${name}`, `usr/lib/x86_64-linux-gnu/${name}`];
    for (const d of parents) {
      entries.push({ name: `${d}/`, type: 'dir', modtime: mtime, mode: 0o755 });
      dirs.push(d);
      names++;
    }
    // 8 names per package: 2 dirs + 6 files/links gives the 20% / 80% split (with locale dirs below).
    const kinds = ['changelog.Debian.gz', 'copyright', `lib${name}.so.${pkg % 7}.0.${pkg % 3}`, `lib${name}.so.${pkg % 7}`, 'README.Debian', `${name}.py`];
    for (const leaf of kinds) {
      if (names >= count) break;
      const dir = leaf.startsWith('lib') || leaf.endsWith('.py') ? parents[1]! : parents[0]!;
      const path = `${dir}/${leaf}`;
      names++;
      if (leaf === `lib${name}.so.${pkg % 7}`) {
        entries.push({ name: path, type: 'symlink', linkName: `lib${name}.so.${pkg % 7}.0.${pkg % 3}`, modtime: mtime, mode: 0o777 });
        continue;
      }
      if (leaf === 'README.Debian' && pkg % 10 === 0 && files.length > 0) {
        entries.push({ name: path, type: 'hardlink', linkName: files[files.length - 1], modtime: mtime, mode: 0o644 });
        continue;
      }
      const big = pkg % 20 === 0 && leaf.startsWith('lib');
      const size = big ? 9 * 1024 * 1024 + 17 : 200 + Math.floor(rand() * 60_000);
      const chunk = 4 << 20;
      const reg: Record<string, unknown> = { name: path, type: 'reg', size, modtime: mtime, mode: 0o644, offset };
      if (pkg % 100 === 0) reg['xattrs'] = { 'security.capability': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).toString('base64') };
      const fileDigest = digest(path);
      reg['digest'] = fileDigest;
      if (big) reg['chunkSize'] = chunk;
      reg['chunkDigest'] = big ? digest(`${path}#0`) : fileDigest;
      entries.push(reg);
      files.push(path);
      offset += Math.ceil(Math.min(size, chunk) / 3) + 40;
      for (let at = chunk; big && at < size; at += chunk) {
        entries.push({ name: path, type: 'chunk', offset, chunkOffset: at, ...(size - at >= chunk ? { chunkSize: chunk } : {}), chunkDigest: digest(`${path}#${at}`) });
        offset += Math.ceil(Math.min(size - at, chunk) / 3) + 40;
      }
    }
    if (pkg % 4 === 0 && names + 2 <= count) {
      const lang = LANGS[pkg % LANGS.length]!;
      const d = `usr/share/locale/${lang}/LC_MESSAGES`;
      if (!dirs.includes(d)) {
        entries.push({ name: `usr/share/locale/${lang}/`, type: 'dir', modtime: mtime, mode: 0o755 });
        entries.push({ name: `${d}/`, type: 'dir', modtime: mtime, mode: 0o755 });
        dirs.push(d);
        names += 2;
      }
      entries.push({ name: `${d}/${name}.mo`, type: 'reg', size: 3000, modtime: mtime, mode: 0o644, offset, digest: digest(name), chunkDigest: digest(name) });
      offset += 1100;
      names++;
    }
  }
  return { json: Buffer.from(JSON.stringify({ version: 1, entries }, null, '\t')), tocOffset: offset };
}

function tocMember(json: Buffer): Buffer {
  const h = new Header({ path: 'stargz.index.json', type: 'File', size: json.length, mode: 0o644, mtime: new Date(0) });
  h.encode();
  return gzipSync(Buffer.concat([h.block!, json, Buffer.alloc((512 - (json.length % 512)) % 512), Buffer.alloc(1024)]));
}

function heap(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const { json, tocOffset } = debianToc(ENTRIES);
const member = tocMember(json);
const location = { format: 'estargz-gzip' as const, tocOffset, tocLength: member.length, footerLength: 51 };

/** Only the index outlives this call: an awaited value can linger in a suspended async frame. */
const held: TocIndex[] = [];
async function decodeInto(): Promise<number> {
  const started = process.hrtime.bigint();
  held.push((await estargzCodec.decodeToc(member, location)).index);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const rows: string[] = [];
await decodeInto(); // warm-up: compiled code and one-time allocations are not the index's
held.length = 0;
for (let run = 0; run < RUNS; run++) {
  const before = heap();
  const ms = await decodeInto();
  const built = heap() - before;
  const index = held[0]!;
  let entries = 0;
  let dirs = 0;
  for (const [path, entry] of index.walk()) {
    entries++;
    if (entry.type === 'dir') {
      dirs++;
      for (const child of index.children(path)!.values()) void child;
    }
  }
  const listed = heap() - before;
  const per10k = (bytes: number): string => `${(((bytes / entries) * 10_000) / 2 ** 20).toFixed(2)} MiB`;
  rows.push(
    `| toc-heap | ${entries.toLocaleString('en')} entries (${((dirs / entries) * 100).toFixed(0)}% dirs), TOC JSON ${(json.length / 2 ** 20).toFixed(1)} MiB | ` +
      `${per10k(built)} (${Math.round(built / entries)} B/entry) | ${per10k(listed)} | ${ms.toFixed(0)} ms |`,
  );
  held.length = 0;
}
console.log('| bench | input | index heap per 10k entries | after listing every dir | decode + index |');
console.log('|---|---|---|---|---|');
for (const row of rows) console.log(row);
