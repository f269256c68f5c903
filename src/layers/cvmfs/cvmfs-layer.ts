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
import type { TocEntry } from '../../formats/toc.js';
import type { CvmfsDirIndex } from './cvmfs-index.js';
import { CvmfsFileError, type CvmfsSource } from './cvmfs-source.js';
import { clampedRange, ownRegularFile, type BytesSource, type Layer, type LayerFigures, type LayerFormat, type LayerIndex, type LayerReadOptions, type TreeSource } from '../layer.js';
import { SingleFlight } from '../../util/single-flight.js';

export interface CvmfsLayerStats {
  readonly digest: string;
  /** 'cvmfs' (layerfs walked), 'cvmfs-flat' (a whole .flat tree), or the registry TOC's format. */
  readonly format: LayerFormat;
  /** Where the tree (listing) came from. */
  readonly tocSource: 'cvmfs' | 'blob' | 'cache';
  /** Where its file bytes came from so far. */
  readonly source: BytesSource;
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

/**
 * A CVMFS layer's figures: those of its registry copy when one was opened (for its TOC, or for files CVMFS
 * could not serve), with where the tree and the bytes came from and what CVMFS served.
 */
function figuresOf(stats: CvmfsLayerStats, registry: Layer | undefined): LayerFigures {
  const { digest: _digest, ...cvmfs } = stats;
  const base = registry?.figures() ?? { blobBytes: 0, bytesFetched: 0, bytesCache: 0, fetchedRatio: 0 };
  return { ...base, ...cvmfs };
}

function statsOf(digest: string, format: LayerFormat, tocSource: CvmfsLayerStats['tocSource'], c: Counting): CvmfsLayerStats {
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

/**
 * A file's bytes from a `layerfs` directory, or undefined when they must come from the registry's copy
 * (`failed` hears why; it may throw instead). The file is read by its path, so only this layer's regular
 * files are looked for: an entry of another layer at a path this layer also has would read this layer's
 * bytes, and a FIFO or device entry would open the node itself. Nothing is read at or past the end: a
 * whiteout in overlayfs's form (a char device 0/0 shown as an empty `.wh.NAME` file) has no file at all,
 * and reading it must not open the registry's copy.
 */
async function fromLayerfs(
  layer: Pick<Layer, 'digest' | 'index'>,
  source: CvmfsSource,
  dir: string,
  counting: Counting,
  entry: TocEntry,
  offset: number,
  length: number,
  failed: (err: CvmfsFileError) => void,
): Promise<Uint8Array | undefined> {
  ownRegularFile(layer, entry);
  clampedRange(entry, offset, length);
  if (offset >= entry.size || length === 0) return new Uint8Array(0);
  if (counting.fallbackFiles.has(entry.path)) return undefined;
  try {
    const bytes = await source.readFile(join(dir, entry.path), entry.size, offset, length);
    counting.bytesCvmfs += bytes.length;
    return bytes;
  } catch (err) {
    if (!(err instanceof CvmfsFileError)) throw err;
    failed(err);
    return undefined;
  }
}

export interface CvmfsLayerOptions {
  readonly digest: string;
  readonly index: CvmfsDirIndex;
  readonly source: CvmfsSource;
  /** The registry's copy of this layer, opened on the first file CVMFS cannot serve; none for a flat tree. */
  readonly fallback?: () => Promise<Layer>;
  readonly log: (line: string) => void;
}

export class CvmfsLayer implements Layer {
  readonly digest: string;
  readonly index: CvmfsDirIndex;
  readonly tocSource = 'cvmfs' as const;
  readonly #source: CvmfsSource;
  readonly #fallback: (() => Promise<Layer>) | undefined;
  readonly #log: (line: string) => void;
  #registry: Layer | undefined;
  readonly #registryOpening = new SingleFlight<Layer>();
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
    const own = await fromLayerfs(this, this.#source, this.index.dir, this.#counting, entry, offset, length, (err) => {
      if (this.#fallback === undefined) throw err;
      this.#noteFallback(entry.path, err);
    });
    if (own !== undefined) return own;
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

  figures(): LayerFigures {
    return figuresOf(this.stats(), this.#registry);
  }

  /** Later reads of the file go straight to the registry (its CVMFS copy is known bad for this mount). */
  #noteFallback(path: string, err: CvmfsFileError): void {
    this.#counting.fallbackFiles.add(path);
    if (this.#logged) return;
    this.#logged = true;
    this.#log(`layer ${this.digest}: ${err.message}; reading ${JSON.stringify(path)} (and any other such file of this layer) from the registry`);
  }

  #registryCopy(): Promise<Layer> {
    if (this.#registry !== undefined) return Promise.resolve(this.#registry);
    return this.#registryOpening.run('', async () => (this.#registry = await this.#fallback!()));
  }
}

export interface CvmfsBackedLayerOptions {
  /** The registry's copy (a TOC layer): its index is the tree. */
  readonly inner: Layer;
  /** The layer's `layerfs` directory. */
  readonly layerfs: string;
  readonly source: CvmfsSource;
  readonly log: (line: string) => void;
}

export class CvmfsBackedLayer implements Layer {
  readonly digest: string;
  readonly index: LayerIndex;
  readonly tocSource: TreeSource;
  readonly #inner: Layer;
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
    const own = await fromLayerfs(this, this.#source, this.#layerfs, this.#counting, entry, offset, length, (err) => {
      this.#counting.fallbackFiles.add(entry.path);
      if (this.#logged) return;
      this.#logged = true;
      this.#log(`layer ${this.digest}: ${err.message}; this layer's files missing or different on CVMFS are read from the registry`);
    });
    if (own !== undefined) return own;
    const bytes = await this.#inner.read(entry, offset, length, signal, opts);
    this.#counting.bytesRegistry += bytes.length;
    return bytes;
  }

  stats(): CvmfsLayerStats {
    return statsOf(this.digest, this.index.format, this.tocSource === 'cvmfs' ? 'blob' : this.tocSource, this.#counting);
  }

  figures(): LayerFigures {
    return figuresOf(this.stats(), this.#inner);
  }
}
