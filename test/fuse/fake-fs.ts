// An in-memory Filesystem for the FUSE adapter's tests: a fixed tree, optional delays and failures.
import { IsDirectoryError, TocfsError } from '../../src/errors.js';
import type { Filesystem, FsNode, ReadOptions } from '../../src/image/filesystem.js';

export interface FakeEntry {
  readonly node: FsNode;
  readonly content?: Uint8Array;
  readonly children?: string[];
  readonly xattrs?: Map<string, Uint8Array>;
}

const MTIME = Date.UTC(2024, 0, 2, 3, 4, 5);

export function node(ino: number, type: FsNode['type'], mode: number, extra: Partial<FsNode> = {}): FsNode {
  return { ino, type, mode, uid: 0, gid: 0, mtimeMs: MTIME, size: 0, nlink: 1, ...extra };
}

export interface FakeFilesystem extends Filesystem {
  readonly entries: Map<string, FakeEntry>;
  /** Milliseconds each read of `path` takes. */
  readonly readDelay: Map<string, number>;
  /** Errors thrown by any call on `path`. */
  readonly failures: Map<string, unknown>;
  /** Every path resolution, in order, as `OP PATH`: lookup, readdir, open, read (by path) or xattrs. */
  readonly resolved: string[];
  closed: boolean;
}

export function fakeFilesystem(): FakeFilesystem {
  const hello = Buffer.from('hello, world\n');
  const big = Buffer.alloc(1024 * 1024 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
  const entries = new Map<string, FakeEntry>([
    ['/', { node: node(1, 'dir', 0o755, { nlink: 3 }), children: ['images', 'etc', 'dev'], xattrs: new Map([['user.tocfs.requests', Buffer.from('42')]]) }],
    ['/images', { node: node(2, 'dir', 0o755), children: [] }],
    ['/etc', { node: node(3, 'dir', 0o755), children: ['hello', 'hardlink', 'link', 'big', 'slow', 'suid', 'private'] }],
    ['/etc/hello', { node: node(10, 'reg', 0o644, { size: hello.length, nlink: 2, uid: 1000, gid: 1001 }), content: hello, xattrs: new Map([['user.note', Buffer.from('a note')], ['security.capability', Buffer.from([1, 0, 0, 2])]]) }],
    ['/etc/hardlink', { node: node(10, 'reg', 0o644, { size: hello.length, nlink: 2, uid: 1000, gid: 1001 }), content: hello }],
    ['/etc/link', { node: node(11, 'symlink', 0o777, { size: 5, linkName: 'hello' }) }],
    ['/etc/big', { node: node(12, 'reg', 0o644, { size: big.length }), content: big }],
    ['/etc/slow', { node: node(13, 'reg', 0o644, { size: hello.length }), content: hello }],
    ['/etc/suid', { node: node(14, 'reg', 0o4755, { size: 0 }), content: Buffer.alloc(0) }],
    ['/etc/private', { node: node(15, 'reg', 0o600, { size: hello.length }), content: hello }],
    ['/dev', { node: node(4, 'dir', 0o755), children: ['null', 'sda', 'fifo'] }],
    ['/dev/null', { node: node(20, 'char', 0o666, { devMajor: 1, devMinor: 3 }) }],
    ['/dev/sda', { node: node(21, 'block', 0o660, { devMajor: 8, devMinor: 300 }) }],
    ['/dev/fifo', { node: node(22, 'fifo', 0o644) }],
  ]);
  const readDelay = new Map<string, number>();
  const failures = new Map<string, unknown>();
  const resolved: string[] = [];

  function get(path: string, op: string): FakeEntry {
    resolved.push(`${op} ${path}`);
    const failure = failures.get(path);
    if (failure !== undefined) throw failure;
    const entry = entries.get(path);
    if (!entry) throw new TocfsError('NOT_FOUND', `${path}: no such file`);
    return entry;
  }

  async function readEntry(path: string, entry: FakeEntry, offset: number, length: number): Promise<Uint8Array> {
    const delay = readDelay.get(path);
    if (delay) await new Promise((r) => setTimeout(r, delay));
    const content = entry.content ?? new Uint8Array(0);
    return content.subarray(Math.min(offset, content.length), Math.min(offset + length, content.length));
  }

  const fs: FakeFilesystem = {
    entries,
    readDelay,
    failures,
    resolved,
    closed: false,
    async lookup(path) {
      return get(path, 'lookup').node;
    },
    async readdir(path) {
      const entry = get(path, 'readdir');
      if (entry.node.type !== 'dir') throw new TocfsError('NOT_FOUND', `${path}: not a directory`);
      return entry.children ?? [];
    },
    async open(path) {
      const entry = get(path, 'open');
      if (entry.node.type === 'dir') throw new IsDirectoryError(path);
      return { node: entry.node, read: (offset: number, length: number) => readEntry(path, entry, offset, length) };
    },
    async read(path, offset, length, _opts?: ReadOptions) {
      const entry = get(path, 'read');
      if (entry.node.type === 'dir') throw new IsDirectoryError(path);
      return readEntry(path, entry, offset, length);
    },
    async xattrs(path) {
      return get(path, 'xattrs').xattrs ?? new Map();
    },
    async close() {
      fs.closed = true;
    },
  };
  return fs;
}
