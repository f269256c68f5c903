/**
 * Layers served from CVMFS (DESIGN.md §2, source 1), two ways:
 *
 * - `CvmfsLayer`: the layer's tree IS its `layerfs` directory, listed lazily (`CvmfsDirIndex`); bytes are
 *   read from it. No registry traffic at all while CVMFS serves every file. A file that fails on CVMFS
 *   when read (gone, another size than listed, EIO/EACCES) is read from the registry's copy of the layer
 *   (its TOC, or the whole layer), opened on first need and logged once per layer.
 * - `CvmfsBackedLayer`: the registry's TOC is the tree (a layerfs DUCC has not recorded as complete may
 *   be half ingested), and each file's bytes come from layerfs when the file there has the TOC's size,
 *   else from the registry.
 *
 * Both count bytes per layer so the figures can say "cvmfs", "cvmfs+registry" or "registry".
 */
import { join } from 'node:path';
import { TocfsError } from '../../errors.js';
import type { TocEntry, TocIndex } from '../../formats/toc.js';
import type { CvmfsDirIndex } from './cvmfs-index.js';
import { CvmfsFileError, type CvmfsSource } from './cvmfs-source.js';
import type { LayerReadOptions } from '../toc/toc-layer.js';
import { SingleFlight } from '../../util/single-flight.js';

/** A layer as the registry serves it (a TOC layer or a whole layer); src/image's RegistryLayer is one. */
export interface RegistryLayer {
  readonly digest: string;
  readonly index: TocIndex;
  readonly tocSource?: 'blob' | 'cache';
  read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array>;
}

export type LayerBytesSource = 'cvmfs' | 'cvmfs+registry' | 'registry';

export interface CvmfsLayerStats {
  readonly digest: string;
  /** 'cvmfs' (layerfs walked), 'cvmfs-flat' (a whole .flat tree), or the registry TOC's format. */
  readonly format: string;
  /** Where the tree (listing) came from. */
  readonly tocSource: 'cvmfs' | 'blob' | 'cache';
  /** Where its file bytes came from so far. */
  readonly source: LayerBytesSource;
  readonly bytesCvmfs: number;
  /** File bytes read through the registry's copy (after a file failed on CVMFS, or was not there). */
  readonly bytesRegistry: number;
  /** Distinct files read from the registry instead of CVMFS. */
  readonly filesFromRegistry: number;
}

interface Counting {
  bytesCvmfs: number;
  bytesRegistry: number;
  readonly fallbackFiles: Set<string>;
}

function statsOf(digest: string, format: string, tocSource: CvmfsLayerStats['tocSource'], c: Counting): CvmfsLayerStats {
  return {
    digest,
    format,
    tocSource,
    // A layer CVMFS serves is "cvmfs" until one of its files has to come from the registry.
    source: c.bytesRegistry > 0 || c.fallbackFiles.size > 0 ? 'cvmfs+registry' : 'cvmfs',
    bytesCvmfs: c.bytesCvmfs,
    bytesRegistry: c.bytesRegistry,
    filesFromRegistry: c.fallbackFiles.size,
  };
}

export interface CvmfsLayerOptions {
  readonly digest: string;
  readonly index: CvmfsDirIndex;
  readonly source: CvmfsSource;
  /** The registry's copy of this layer, opened on the first file CVMFS cannot serve; none for a flat tree. */
  readonly fallback?: () => Promise<RegistryLayer>;
  readonly log: (line: string) => void;
}

export class CvmfsLayer {
  readonly digest: string;
  readonly index: CvmfsDirIndex;
  readonly tocSource = 'cvmfs' as const;
  readonly #source: CvmfsSource;
  readonly #fallback: (() => Promise<RegistryLayer>) | undefined;
  readonly #log: (line: string) => void;
  #registry: RegistryLayer | undefined;
  readonly #registryOpening = new SingleFlight<RegistryLayer>();
  #logged = false;
  readonly #counting: Counting = { bytesCvmfs: 0, bytesRegistry: 0, fallbackFiles: new Set() };

  constructor(opts: CvmfsLayerOptions) {
    this.digest = opts.digest;
    this.index = opts.index;
    this.#source = opts.source;
    this.#fallback = opts.fallback;
    this.#log = opts.log;
  }

  listDir(path: string): Promise<void> {
    return this.index.listDir(path);
  }

  async read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array> {
    if (!this.#counting.fallbackFiles.has(entry.path)) {
      try {
        const bytes = await this.#source.readFile(join(this.index.dir, entry.path), entry.size, offset, length);
        this.#counting.bytesCvmfs += bytes.length;
        return bytes;
      } catch (err) {
        if (!(err instanceof CvmfsFileError)) throw err;
        if (this.#fallback === undefined) throw err;
        this.#noteFallback(entry.path, err);
      }
    }
    const registry = await this.#registryCopy();
    const twin = registry.index.lookup(entry.path);
    if (twin?.type !== 'reg' || twin.size !== entry.size) {
      const what = twin === undefined ? 'missing' : twin.type !== 'reg' ? `a ${twin.type}` : `${twin.size} bytes`;
      throw new TocfsError('BAD_DATA', `layer ${this.digest}: ${JSON.stringify(entry.path)} is ${what} in the registry's copy, but a ${entry.size}-byte file on CVMFS`);
    }
    const bytes = await registry.read(twin, offset, length, signal, opts);
    this.#counting.bytesRegistry += bytes.length;
    return bytes;
  }

  stats(): CvmfsLayerStats {
    return statsOf(this.digest, this.index.format, 'cvmfs', this.#counting);
  }

  /** Later reads of the file go straight to the registry (its CVMFS copy is known bad for this mount). */
  #noteFallback(path: string, err: CvmfsFileError): void {
    this.#counting.fallbackFiles.add(path);
    if (this.#logged) return;
    this.#logged = true;
    this.#log(`layer ${this.digest}: ${err.message}; reading ${JSON.stringify(path)} (and any other such file of this layer) from the registry`);
  }

  #registryCopy(): Promise<RegistryLayer> {
    if (this.#registry !== undefined) return Promise.resolve(this.#registry);
    return this.#registryOpening.run('', async () => (this.#registry = await this.#fallback!()));
  }
}

export interface CvmfsBackedLayerOptions {
  /** The registry's copy (a TOC layer): its index is the tree. */
  readonly inner: RegistryLayer;
  /** The layer's `layerfs` directory. */
  readonly layerfs: string;
  readonly source: CvmfsSource;
  readonly log: (line: string) => void;
}

export class CvmfsBackedLayer {
  readonly digest: string;
  readonly index: TocIndex;
  readonly tocSource: 'blob' | 'cache' | undefined;
  readonly #inner: RegistryLayer;
  readonly #layerfs: string;
  readonly #source: CvmfsSource;
  readonly #log: (line: string) => void;
  #logged = false;
  readonly #counting: Counting = { bytesCvmfs: 0, bytesRegistry: 0, fallbackFiles: new Set() };

  constructor(opts: CvmfsBackedLayerOptions) {
    this.#inner = opts.inner;
    this.digest = opts.inner.digest;
    this.index = opts.inner.index;
    this.tocSource = opts.inner.tocSource;
    this.#layerfs = opts.layerfs;
    this.#source = opts.source;
    this.#log = opts.log;
  }

  async read(entry: TocEntry, offset: number, length: number, signal?: AbortSignal, opts?: LayerReadOptions): Promise<Uint8Array> {
    if (!this.#counting.fallbackFiles.has(entry.path)) {
      try {
        const bytes = await this.#source.readFile(join(this.#layerfs, entry.path), entry.size, offset, length);
        this.#counting.bytesCvmfs += bytes.length;
        return bytes;
      } catch (err) {
        if (!(err instanceof CvmfsFileError)) throw err;
        this.#counting.fallbackFiles.add(entry.path);
        if (!this.#logged) {
          this.#logged = true;
          this.#log(`layer ${this.digest}: ${err.message}; this layer's files missing or different on CVMFS are read from the registry`);
        }
      }
    }
    const bytes = await this.#inner.read(entry, offset, length, signal, opts);
    this.#counting.bytesRegistry += bytes.length;
    return bytes;
  }

  stats(): CvmfsLayerStats {
    return statsOf(this.digest, this.index.format, this.tocSource === 'cache' ? 'cache' : 'blob', this.#counting);
  }
}
