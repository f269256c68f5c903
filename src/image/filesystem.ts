/**
 * What the FUSE adapter serves: a read-only tree addressed by absolute mount paths (`/images/HOST/...`).
 * src/image implements it (lazy image resolution, merged layers); src/fuse only translates FUSE ops to
 * these calls and TocfsErrors to errno (src/fuse/errno.ts). Every call may do network I/O.
 */

export type FsNodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

/** The stat of one node. Immutable for the life of the mount once returned. */
export interface FsNode {
  /** Stable for the life of the mount; equal for every name of a hardlinked file. */
  readonly ino: number;
  readonly type: FsNodeType;
  /** Permission bits incl. setuid/setgid/sticky (0..0o7777); the adapter adds the S_IFMT bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  /** Bytes (reg), target length (symlink), 0 otherwise. */
  readonly size: number;
  readonly nlink: number;
  readonly linkName?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
}

/** What statfs (`df`) shows: as CVMFS does, the disk cache's budget and use; and the inode numbers handed out. */
export interface FsSpace {
  readonly totalBytes: number;
  readonly usedBytes: number;
  readonly files: number;
}

export interface ReadOptions {
  readonly signal?: AbortSignal;
}

/**
 * A file opened once: its path resolved, down to the layer entry that holds its bytes, so the many reads
 * of one open (a FUSE open, then 128 KiB reads) skip the path walk. Holds no resource: nothing to close.
 */
export interface FileHandle {
  /** The node as `lookup` showed it at open. */
  readonly node: FsNode;
  /** As `Filesystem.read` of the path it was opened by (FORMAT for a non-regular file). */
  read(offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array>;
}

export interface Filesystem {
  /** The node at an absolute path (`/` is the mount root); TocfsError NOT_FOUND when there is none. */
  lookup(path: string, opts?: ReadOptions): Promise<FsNode>;
  /** Names in a directory, without `.` and `..`. */
  readdir(path: string, opts?: ReadOptions): Promise<readonly string[]>;
  /** The file at a path, resolved for many reads; NOT_FOUND when there is none, IS_DIRECTORY for a directory. */
  open(path: string, opts?: ReadOptions): Promise<FileHandle>;
  /**
   * Bytes [offset, offset + length) of a regular file, clamped at its end; may be a view of cached bytes,
   * never to be changed. IS_DIRECTORY for a directory. One open and one read: for many, `open` once.
   */
  read(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array>;
  /** Extended attributes of a node (names -> raw values), including the `user.tocfs.*` figures. */
  xattrs(path: string, opts?: ReadOptions): Promise<ReadonlyMap<string, Uint8Array>>;
  /** For statfs; without it statfs shows zeros. */
  space?(): FsSpace;
  close(): Promise<void>;
}
