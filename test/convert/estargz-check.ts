// Independent checks of an eStargz blob for the writer tests: they read the blob with zlib, GNU tar and
// the tar reader, never with the writer's own code.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseEstargzFooter } from '../../src/formats/estargz/footer.js';
import { tocJsonFromTar } from '../../src/formats/estargz/toc-tar.js';

export interface TocJsonEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

export interface TocJson {
  version: number;
  entries: TocJsonEntry[];
}

export const FOOTER = 51;

export const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The footer's TOC offset, the TOC JSON bytes and the parsed TOC, read with zlib alone. */
export function readToc(blob: Buffer): { tocOffset: number; json: Uint8Array; toc: TocJson } {
  const { tocOffset } = parseEstargzFooter(blob.subarray(blob.length - FOOTER), blob.length);
  const json = tocJsonFromTar(gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER)));
  return { tocOffset, json, toc: JSON.parse(Buffer.from(json).toString('utf8')) as TocJson };
}

/** Every reg/chunk entry with data, with the end of its span (the next different offset, or the TOC). */
export function spans(toc: TocJson, tocOffset: number): { entry: TocJsonEntry; file: string; end: number }[] {
  const out: { entry: TocJsonEntry; file: string; end: number }[] = [];
  let file = '';
  for (const e of toc.entries) {
    if (e.type === 'reg') file = e.name;
    if (e.offset !== undefined && (e.type === 'reg' || e.type === 'chunk')) out.push({ entry: e, file, end: tocOffset });
  }
  for (let i = out.length - 2; i >= 0; i--) out[i]!.end = out[i + 1]!.entry.offset!;
  return out;
}

export interface TreeNode {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs?: number;
  link?: string;
  sha?: string;
  rdev?: number;
  nlink?: number;
}

const ARTEFACTS = new Set(['stargz.index.json', '.prefetch.landmark', '.no.prefetch.landmark']);

/** Walks an extracted tree: path -> metadata; format artefacts at the root are left out. */
export function treeOf(root: string, withMtime = true): Map<string, TreeNode> {
  const tree = new Map<string, TreeNode>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && ARTEFACTS.has(name)) continue;
      const full = join(root, path);
      const st = lstatSync(full);
      const node: TreeNode = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : 'block',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.isFile() ? st.size : 0,
      };
      if (withMtime && !st.isDirectory() && !st.isSymbolicLink()) node.mtimeMs = st.mtimeMs;
      if (st.isSymbolicLink()) node.link = readlinkSync(full);
      if (st.isFile()) node.sha = sha(readFileSync(full));
      if (st.isCharacterDevice() || st.isBlockDevice()) node.rdev = st.rdev;
      if (st.isFile() && st.nlink > 1) node.nlink = st.nlink;
      tree.set(path, node);
      if (st.isDirectory()) walk(path);
    }
  };
  walk('');
  return tree;
}

/** GNU tar extraction as root, owners by number. */
export function gnuExtract(archive: string, dir: string, gzip: boolean): void {
  execFileSync('tar', ['--numeric-owner', '--same-permissions', gzip ? '-xzf' : '-xf', archive, '-C', dir]);
}
