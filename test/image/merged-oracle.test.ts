// MergedTree against the oracle: the same three layers unpacked by `umoci unpack` (as root) and merged by
// tocfs from their eStargz builds must give the same tree: paths, types, modes, owners, sizes, symlink
// targets, device numbers, hardlink groups, bytes and xattrs.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { estargzCodec } from '../../src/formats/estargz/codec.js';
import type { TocEntry } from '../../src/formats/toc.js';
import type { Layer } from '../../src/layers/layer.js';
import { MergedTree } from '../../src/image/merged-tree.js';
import { buildEstargz } from '../support/estargz-build.js';
import { buildImage } from '../support/image-builder.js';
import { umociUnpack, writeOciLayout } from '../support/oci-layout.js';
import { LAYERS } from '../support/oracle-image.js';
import type { TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { noFigures } from '../support/layers.js';

const run = promisify(execFile);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
interface Seen {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  link?: string;
  dev?: string;
  nlink: number;
  group?: string;
  bytes?: string;
  mtime?: number;
  xattrs: Record<string, string>;
}

async function oracleXattrs(root: string, paths: string[]): Promise<Record<string, Record<string, string>>> {
  const script = `import os, sys, json
root = sys.argv[1]
print(json.dumps({p: {k: os.getxattr(os.path.join(root, p), k, follow_symlinks=False).hex()
  for k in os.listxattr(os.path.join(root, p), follow_symlinks=False)} for p in sys.argv[2:]}))`;
  const { stdout } = await run('python3', ['-c', script, root, ...paths], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as Record<string, Record<string, string>>;
}

async function walkOracle(root: string): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const inodes = new Map<number, string>();
  const visit = async (rel: string): Promise<void> => {
    const abs = join(root, rel);
    const st = await lstat(abs);
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'reg' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'fifo';
    const seen: Seen = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink, xattrs: {} };
    if (type === 'reg') {
      seen.size = st.size;
      seen.bytes = sha(await readFile(abs));
      if (st.nlink > 1) seen.group = inodes.get(st.ino) ?? (inodes.set(st.ino, rel), rel);
    }
    if (type === 'symlink') seen.link = await readlink(abs);
    if (type === 'char' || type === 'block') seen.dev = `${(st.rdev >> 8) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
    if (type !== 'dir') seen.mtime = st.mtimeMs;
    out.set(rel, seen);
    if (type === 'dir') for (const name of (await readdir(abs)).sort()) await visit(rel === '' ? name : `${rel}/${name}`);
  };
  await visit('');
  const x = await oracleXattrs(root, [...out.keys()].map((p) => p || '.'));
  for (const [p, seen] of out) seen.xattrs = x[p || '.'] ?? {};
  return out;
}

async function walkMerged(m: MergedTree): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const inodes = new Map<number, string>();
  const visit = async (rel: string): Promise<void> => {
    const st = m.lookup(rel)!;
    const seen: Seen = { type: st.type, mode: st.mode, uid: st.uid, gid: st.gid, nlink: st.nlink, xattrs: {} };
    if (st.type === 'reg') {
      seen.size = st.size;
      seen.bytes = sha(await m.read(rel, 0, st.size + 10));
      if (st.nlink > 1) seen.group = inodes.get(st.ino) ?? (inodes.set(st.ino, rel), rel);
    }
    if (st.type === 'symlink') seen.link = st.linkName!;
    if (st.type === 'char' || st.type === 'block') seen.dev = `${st.devMajor}:${st.devMinor}`;
    if (st.type !== 'dir') seen.mtime = st.mtimeMs;
    for (const [k, v] of m.xattrs(rel)!) seen.xattrs[k] = Buffer.from(v).toString('hex');
    out.set(rel, seen);
    if (st.type === 'dir') for (const name of [...m.readdir(rel)!].sort()) await visit(rel === '' ? name : `${rel}/${name}`);
  };
  await visit('');
  return out;
}

/** A Layer over an in-memory eStargz blob: the TOC decoded, each chunk decompressed on read. */
async function estargzLayer(entries: TarEntry[]): Promise<Layer> {
  const { blob } = await buildEstargz(entries, { chunkSize: 64 << 10 });
  const foot = estargzCodec.footerLength;
  const location = estargzCodec.parseFooter(blob.subarray(blob.length - foot), blob.length);
  const { index } = await estargzCodec.decodeToc(blob.subarray(location.tocOffset, blob.length - foot), location);
  return {
    digest: `sha256:${sha(blob)}`,
    index,
    tocSource: 'blob',
    figures: noFigures('estargz-gzip'),
    async read(entry: TocEntry, offset: number, length: number): Promise<Uint8Array> {
      const parts: Uint8Array[] = [];
      for (const c of entry.chunks) {
        const out = await estargzCodec.decompressSpan(blob.subarray(c.compressedOffset, c.compressedEnd), c.innerOffset + c.size);
        parts.push(out.subarray(c.innerOffset, c.innerOffset + c.size));
      }
      const all = Buffer.concat(parts);
      return all.subarray(Math.min(offset, all.length), Math.min(offset + length, all.length));
    },
  };
}

t.test('the merged tree equals umoci unpack of the same image', async (t) => {
  const work = tempDir(t, 'merged-oracle');
  const image = await buildImage(join(work, 'build'), { layers: LAYERS.map((entries) => ({ entries, compression: 'gzip' as const })) });
  await writeOciLayout(join(work, 'layout'), 'v1', image);
  const rootfs = await umociUnpack(join(work, 'layout'), 'v1', join(work, 'bundle'));
  const oracle = await walkOracle(rootfs);

  const merged = new MergedTree(await Promise.all(LAYERS.map(estargzLayer)));
  const mine = await walkMerged(merged);

  t.same([...mine.keys()].sort(), [...oracle.keys()].sort(), 'same path set');
  for (const [path, want] of oracle) {
    const got = mine.get(path);
    if (got === undefined) continue;
    t.same(got, want, `/${path}`);
  }
  // Spot checks that the oracle really exercised each rule.
  t.equal(oracle.get('var/lib/gone'), undefined);
  t.same(oracle.get('opq') && [...merged.readdir('opq')!].sort(), ['top', 'upper']);
  t.equal(oracle.get('usr/bin/su')?.mode, 0o4755);
  t.equal(oracle.get('usr/bin/new')?.nlink, 3);
});
