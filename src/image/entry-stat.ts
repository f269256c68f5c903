/**
 * The stat the filesystem shows for a TOC entry. The entry gives every field but two that belong to the
 * view showing it: the inode (per view, shared by the names of one file) and the link count (a merged
 * tree counts names across layers, a directory its subdirectories).
 */
import type { TocEntry } from '../formats/toc.js';
import type { FsNode } from './filesystem.js';

export function entryStat(entry: TocEntry, ino: number, nlink: number): FsNode {
  return {
    ino,
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtimeMs: entry.mtimeMs,
    size: entry.size,
    nlink,
    ...(entry.linkName !== undefined && { linkName: entry.linkName }),
    ...(entry.devMajor !== undefined && { devMajor: entry.devMajor }),
    ...(entry.devMinor !== undefined && { devMinor: entry.devMinor }),
  };
}
