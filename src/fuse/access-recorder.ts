/**
 * Records, per image, which files a workload read and in what order, and counts the filesystem calls the
 * FUSE ops make: the input of the optimise workflow (`tocfs stats MNT --accessed IMAGE_DIR` prints the
 * list, `tocfs convert --prioritize-from FILE` puts those files first in each layer, before the prefetch
 * landmark) and of the benchmark's FUSE-op figures.
 *
 * It wraps the mount's `Filesystem` without knowing how images resolve: an image root is the first
 * component after `/images/HOST/` holding `:` or `@` (the same rule namespace.ts applies with
 * parseImagePath), and only reads that succeeded are recorded, so that rule never sees a bad name.
 *
 * Shown as extended attributes (DESIGN.md §1.4, figures through xattrs):
 *   user.tocfs.accessed        on an image root: how many files were recorded for it
 *   user.tocfs.accessed.N      page N (0, 1, ...) of the list, one absolute path per line, each page under
 *                              the kernel's 64 KiB xattr limit
 *   user.tocfs.fuse_ops        on MNT and on every image root: mount-wide call counts as JSON
 */
import type { FileHandle, Filesystem, FsNode, FsSpace, ReadOptions } from '../image/filesystem.js';

export const ACCESSED_XATTR = 'user.tocfs.accessed';
export const FUSE_OPS_XATTR = 'user.tocfs.fuse_ops';
/** Bytes of paths per page: the kernel refuses xattr values over 64 KiB (XATTR_SIZE_MAX). */
export const ACCESSED_PAGE_BYTES = 60_000;
const DEFAULT_MAX_FILES_PER_IMAGE = 200_000;

export interface FuseOpCounts {
  /** getattr, open, opendir, access, readlink (every op that looks a path up). */
  lookup: number;
  readdir: number;
  read: number;
  /** getxattr and listxattr. */
  xattrs: number;
}

export interface AccessRecorderOptions {
  /** Files remembered per image; reads of further files are not recorded (logged once). */
  readonly maxFilesPerImage?: number;
  readonly log?: (line: string) => void;
}

interface ImageAccesses {
  readonly seen: Set<string>;
  readonly order: string[];
  full: boolean;
}

const encoder = new TextEncoder();

/**
 * `/images/HOST/REPO:TAG/usr/bin/x` -> root `/images/HOST/REPO:TAG`, rest `usr/bin/x`; undefined outside
 * an image tree. The host (component 1) may hold a port's colon, so the search starts after it.
 */
export function splitImagePath(path: string): { root: string; rest: string } | undefined {
  const parts = path.split('/').filter((c) => c !== '');
  if (parts[0] !== 'images') return undefined;
  for (let i = 2; i < parts.length; i++) {
    if (parts[i]!.includes(':') || parts[i]!.includes('@')) {
      return { root: `/${parts.slice(0, i + 1).join('/')}`, rest: parts.slice(i + 1).join('/') };
    }
  }
  return undefined;
}

/** Splits lines into pages of at most `pageBytes` (a longer single line gets a page of its own). */
export function pageLines(lines: readonly string[], pageBytes = ACCESSED_PAGE_BYTES): string[] {
  const pages: string[] = [];
  let page = '';
  for (const line of lines) {
    const text = `${line}\n`;
    if (page !== '' && Buffer.byteLength(page) + Buffer.byteLength(text) > pageBytes) {
      pages.push(page);
      page = '';
    }
    page += text;
  }
  if (page !== '') pages.push(page);
  return pages;
}

export class AccessRecorder implements Filesystem {
  readonly #inner: Filesystem;
  readonly #maxFiles: number;
  readonly #log: (line: string) => void;
  readonly #images = new Map<string, ImageAccesses>();
  readonly #ops: FuseOpCounts = { lookup: 0, readdir: 0, read: 0, xattrs: 0 };

  constructor(inner: Filesystem, options: AccessRecorderOptions = {}) {
    this.#inner = inner;
    this.#maxFiles = options.maxFilesPerImage ?? DEFAULT_MAX_FILES_PER_IMAGE;
    this.#log = options.log ?? (() => {});
  }

  /** The files read under an image root, first read first, as absolute paths inside the image. */
  accessed(imageRoot: string): readonly string[] {
    const key = splitImagePath(imageRoot);
    return key && key.rest === '' ? (this.#images.get(key.root)?.order ?? []) : [];
  }

  fuseOps(): Readonly<FuseOpCounts> {
    return { ...this.#ops };
  }

  lookup(path: string, opts?: ReadOptions): Promise<FsNode> {
    this.#ops.lookup++;
    return this.#inner.lookup(path, opts);
  }

  readdir(path: string, opts?: ReadOptions): Promise<readonly string[]> {
    this.#ops.readdir++;
    return this.#inner.readdir(path, opts);
  }

  async open(path: string, opts?: ReadOptions): Promise<FileHandle> {
    this.#ops.lookup++;
    const file = await this.#inner.open(path, opts);
    // The image is split off once per open, not per read; the first successful read records the file.
    const split = splitImagePath(path);
    let recorded = false;
    return {
      node: file.node,
      read: async (offset, length, readOpts) => {
        this.#ops.read++;
        const bytes = await file.read(offset, length, readOpts);
        if (!recorded) {
          recorded = true;
          this.#record(split);
        }
        return bytes;
      },
    };
  }

  async read(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array> {
    this.#ops.read++;
    const bytes = await this.#inner.read(path, offset, length, opts);
    this.#record(splitImagePath(path));
    return bytes;
  }

  async xattrs(path: string, opts?: ReadOptions): Promise<ReadonlyMap<string, Uint8Array>> {
    this.#ops.xattrs++;
    const own = await this.#inner.xattrs(path, opts);
    const split = path === '/' ? undefined : splitImagePath(path);
    if (path !== '/' && split?.rest !== '') return own;
    const out = new Map(own);
    out.set(FUSE_OPS_XATTR, encoder.encode(JSON.stringify(this.#ops)));
    if (split) {
      const order = this.#images.get(split.root)?.order ?? [];
      out.set(ACCESSED_XATTR, encoder.encode(String(order.length)));
      pageLines(order).forEach((page, i) => out.set(`${ACCESSED_XATTR}.${i}`, encoder.encode(page)));
    }
    return out;
  }

  space(): FsSpace {
    return this.#inner.space?.() ?? { totalBytes: 0, usedBytes: 0, files: 0 };
  }

  close(): Promise<void> {
    this.#images.clear();
    return this.#inner.close();
  }

  #record(split: { root: string; rest: string } | undefined): void {
    if (!split || split.rest === '') return;
    let image = this.#images.get(split.root);
    if (!image) this.#images.set(split.root, (image = { seen: new Set(), order: [], full: false }));
    const file = `/${split.rest}`;
    if (image.seen.has(file)) return;
    if (image.order.length >= this.#maxFiles) {
      if (!image.full) this.#log(`${split.root}: recorded ${this.#maxFiles} files read; not recording more`);
      image.full = true;
      return;
    }
    image.seen.add(file);
    image.order.push(file);
  }
}

export function recordAccesses(inner: Filesystem, options?: AccessRecorderOptions): AccessRecorder {
  return new AccessRecorder(inner, options);
}
