/**
 * A CVMFS repository of unpacked images as DUCC publishes it (unpacked.cern.ch, DESIGN.md §3.5): a source
 * of bytes and of directory paths. It knows the layout and nothing about caches or registries.
 *
 *   .layers/HEX[0:2]/HEX/layerfs/          one unpacked layer (HEX = compressed layer digest)
 *   .layers/HEX[0:2]/HEX/.metadata/origin.json   DUCC's backlinks, written once the layer is ingested
 *   .flat/CFG[0:2]/CFG/                    a whole rootfs (whiteouts applied, .singularity.d), by config digest
 *   .metadata/HOST/REPO:TAG/manifest.json  the manifest DUCC converted, written after all its layers
 *
 * Paths are only ever built from validated `sha256:<64 hex>` digests and reference components that the
 * reference parser validated, never from names read off the repository.
 */
import { constants } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TocfsError } from '../../errors.js';
import { sha256DigestHex } from '../../util/sha256-digest.js';

/** Where a layer stands on CVMFS. */
export type CvmfsLayerState =
  /** `layerfs` is there and DUCC recorded the layer as ingested (`.metadata/origin.json`). */
  | 'published'
  /** `layerfs` is there without DUCC's record: possibly still being ingested. */
  | 'unconfirmed'
  | 'absent';

/** A file on CVMFS that cannot stand in for the image's file: missing, of another size, unreadable. */
export class CvmfsFileError extends TocfsError {
  override name = 'CvmfsFileError';
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super('SOURCE_UNAVAILABLE', `CVMFS ${path}: ${reason}`, options);
  }
}

export interface CvmfsSourceStats {
  /** File bytes read from the repository (layer trees and flat trees). */
  readonly bytesRead: number;
  readonly reads: number;
  /** Reads that failed (missing, wrong size, unreadable): each one went to the next source. */
  readonly failedReads: number;
}

/** Largest DUCC manifest record read (a manifest is a few KiB). */
const MAX_MANIFEST_BYTES = 4 << 20;

export function hexOf(digest: string): string | undefined {
  return sha256DigestHex(digest);
}

export class CvmfsSource {
  readonly root: string;
  #bytesRead = 0;
  #reads = 0;
  #failedReads = 0;

  constructor(root: string) {
    this.root = root;
  }

  /** True when `root` is a directory (a mounted CVMFS repository, or a copy of one). */
  static async available(root: string): Promise<boolean> {
    return isDir(root);
  }

  /** `.layers/HEX[0:2]/HEX`, or undefined for a digest that is not sha256. */
  layerDir(digest: string): string | undefined {
    const hex = hexOf(digest);
    return hex === undefined ? undefined : join(this.root, '.layers', hex.slice(0, 2), hex);
  }

  async layerState(digest: string): Promise<CvmfsLayerState> {
    const dir = this.layerDir(digest);
    if (dir === undefined || !(await isDir(join(dir, 'layerfs')))) return 'absent';
    return (await isFile(join(dir, '.metadata', 'origin.json'))) ? 'published' : 'unconfirmed';
  }

  /** `.flat/CFG[0:2]/CFG` when it is a directory. */
  async flatDir(configDigest: string): Promise<string | undefined> {
    const hex = hexOf(configDigest);
    if (hex === undefined) return undefined;
    const dir = join(this.root, '.flat', hex.slice(0, 2), hex);
    return (await isDir(dir)) ? dir : undefined;
  }

  /** DUCC's manifest record for `HOST/REPO:TAG` (host as DUCC writes it), or undefined when there is none. */
  async metadataManifest(host: string, repository: string, tag: string): Promise<Uint8Array | undefined> {
    const path = join(this.root, '.metadata', host, `${repository}:${tag}`, 'manifest.json');
    try {
      const st = await stat(path);
      if (!st.isFile()) return undefined;
      if (st.size > MAX_MANIFEST_BYTES) throw new TocfsError('FORMAT', `CVMFS ${path}: ${st.size} bytes, more than a manifest`);
      return new Uint8Array(await readFile(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /**
   * Bytes [offset, offset + length) of the regular file at `path` (absolute, inside this repository),
   * clamped at `expectedSize`. CvmfsFileError when the file is missing, not a regular file, not
   * `expectedSize` bytes long, or a read fails (EIO from a CVMFS download, EACCES, a short read): the
   * caller's next source takes over. Never follows a symlink, and never blocks opening a FIFO or a device
   * found where a file was listed.
   */
  async readFile(path: string, expectedSize: number, offset: number, length: number): Promise<Uint8Array> {
    this.#reads++;
    let fh;
    try {
      // O_NONBLOCK: open(2) of a FIFO waits for a writer, forever; non-blocking, it returns at once and the
      // fstat below refuses it. It changes nothing for reads of a regular file.
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      this.#failedReads++;
      throw new CvmfsFileError(path, (err as NodeJS.ErrnoException).code ?? (err as Error).message, { cause: err });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new CvmfsFileError(path, 'not a regular file');
      if (st.size !== expectedSize) throw new CvmfsFileError(path, `${st.size} bytes, the image's file has ${expectedSize}`);
      const end = Math.min(offset + length, expectedSize);
      const n = Math.max(0, end - offset);
      const buf = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, offset + got);
        if (bytesRead === 0) throw new CvmfsFileError(path, `ends at ${offset + got}, before ${end}`);
        got += bytesRead;
      }
      this.#bytesRead += n;
      return buf;
    } catch (err) {
      this.#failedReads++;
      if (err instanceof CvmfsFileError) throw err;
      throw new CvmfsFileError(path, (err as NodeJS.ErrnoException).code ?? (err as Error).message, { cause: err });
    } finally {
      await fh.close().catch(() => {});
    }
  }

  stats(): CvmfsSourceStats {
    return { bytesRead: this.#bytesRead, reads: this.#reads, failedReads: this.#failedReads };
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
