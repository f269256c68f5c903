/**
 * The mount layout of DESIGN.md §1.2 as a `Filesystem`:
 *   /images/HOST/REPO/PATH:TAG/...        an image's merged tree, resolved on first lookup and pinned
 *   /images/HOST/REPO/PATH@sha256:HEX/... the same by manifest digest
 *   /layers/HOST/REPO/PATH@sha256:HEX/... one layer's own tree, whiteouts shown as in the tar
 * Directories between `images/` and an image root exist for any name that can still become a reference
 * (the kernel looks up `HOST` before it ever sees `REPO:TAG`), but only prefixes of resolved images are
 * listed. One inode counter serves the whole mount.
 */
import { debuglog } from 'node:util';
import { InvalidReferenceError, IsDirectoryError, TocfsError, isTocfsError } from '../errors.js';
import { abortable } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';
import { formatReference, parseImagePath } from '../registry/reference.js';
import type { ImageReference, RepositoryRef } from '../registry/types.js';
import type { FileHandle, Filesystem, FsNode, FsSpace, ReadOptions } from './filesystem.js';
import { openImage, type Image, type ImageDeps } from './image.js';
import type { Figures } from '../layers/figures.js';
import type { Layer } from '../layers/layer.js';
import { createInodeCounter, listPath } from './layer-tree.js';
import { LayerView } from './layer-view.js';

const MAX_REMEMBERED_FAILURES = 10_000;

export interface NamespaceDeps extends Omit<ImageDeps, 'inodes'> {
  /** One line per event worth a log (a failed resolution, once per failure period). Default: debuglog('tocfs'). */
  readonly log?: (line: string) => void;
  /** What `user.tocfs.*` shows (DESIGN.md §1.4), mount-wide on `/` and for its own layers on an image root. */
  readonly figures?: () => Figures;
  /** The disk cache's budget and use, for statfs. */
  readonly cacheSpace?: () => { readonly totalBytes: number; readonly usedBytes: number };
  /** A layer by digest alone, for `/layers` paths no resolved image has opened. Without it, NOT_FOUND. */
  readonly openLayerByDigest?: (repo: RepositoryRef, digest: string, signal?: AbortSignal) => Promise<Layer>;
  /**
   * How long after a failed attempt began its error is answered from memory: the next lookup after that
   * asks the registry again, so an image works again as soon as the registry answers, while a failing one
   * costs the registry at most one request per this period. Default 1 s.
   */
  readonly failureTtlMs?: number;
  readonly now?: () => number;
}

const ROOT_INO = 1;
const TOP = ['images', 'layers'] as const;
type Top = (typeof TOP)[number];
const encoder = new TextEncoder();

interface Failure {
  readonly error: unknown;
  readonly until: number;
}

// Not a fixed 10 s after the failure (issue 21: an image kept failing 10 s after the registry was back).
const DEFAULT_FAILURE_TTL_MS = 1000;

/** Where a path points once parsed. */
type Target =
  | { readonly kind: 'root' }
  | { readonly kind: 'prefix'; readonly top: Top; readonly path: string }
  | { readonly kind: 'image'; readonly image: Image; readonly rest: string }
  | { readonly kind: 'layer'; readonly layer: LayerView; readonly rest: string };

/** The mount layout as a `Filesystem`, and its images by reference (for `tocfs ls`). */
export interface ImageNamespace extends Filesystem {
  /** The image `images/` shows for `ref`: resolved and pinned as a lookup of its root would. */
  image(ref: ImageReference, signal?: AbortSignal): Promise<Image>;
}

export function createImageFilesystem(deps: NamespaceDeps): ImageNamespace {
  return new ImageFilesystem(deps);
}

class ImageFilesystem implements ImageNamespace {
  readonly #deps: NamespaceDeps;
  readonly #imageDeps: ImageDeps;
  readonly #inodes = createInodeCounter(ROOT_INO + 1);
  readonly #log: (line: string) => void;
  readonly #failureTtlMs: number;
  readonly #now: () => number;
  /** Keyed by the path components that name the reference (`HOST/REPO:TAG`), as typed. */
  readonly #images = new Map<string, Image>();
  readonly #layers = new Map<string, LayerView>();
  readonly #flights = new SingleFlight<unknown>();
  readonly #failures = new Map<string, Failure>();
  /** The last failure logged per key, so that one retried every second is logged once, not each time. */
  readonly #logged = new Map<string, string>();
  /** Listed directories: `images/HOST/...` path -> names, from resolved images and layers only. */
  readonly #listing = new Map<string, Set<string>>();
  readonly #dirInos = new Map<string, number>();
  /** Layers of resolved images, by `HOST/REPO@DIGEST`, so `/layers` can show them without a descriptor. */
  readonly #openedLayers = new Map<string, Layer>();

  constructor(deps: NamespaceDeps) {
    this.#deps = deps;
    this.#log = deps.log ?? debuglog('tocfs');
    this.#imageDeps = { ...deps, inodes: this.#inodes, log: this.#log };
    this.#failureTtlMs = deps.failureTtlMs ?? DEFAULT_FAILURE_TTL_MS;
    this.#now = deps.now ?? Date.now;
    for (const top of TOP) this.#listing.set(top, new Set());
  }

  async lookup(path: string, opts: ReadOptions = {}): Promise<FsNode> {
    const target = await this.#target(path, opts.signal);
    switch (target.kind) {
      case 'root':
        return this.#dir('', ROOT_INO);
      case 'prefix':
        return this.#dir(target.path);
      case 'image':
        return target.image.tree.lookup(target.rest) ?? notFound(path);
      case 'layer':
        return target.layer.lookup(target.rest) ?? notFound(path);
    }
  }

  async readdir(path: string, opts: ReadOptions = {}): Promise<readonly string[]> {
    const target = await this.#target(path, opts.signal);
    switch (target.kind) {
      case 'root':
        return [...TOP];
      case 'prefix':
        return [...(this.#listing.get(target.path) ?? [])];
      case 'image':
        return target.image.tree.readdir(target.rest) ?? notDir(path);
      case 'layer':
        return target.layer.readdir(target.rest) ?? notDir(path);
    }
  }

  async open(path: string, opts: ReadOptions = {}): Promise<FileHandle> {
    const target = await this.#target(path, opts.signal);
    let file: FileHandle | undefined;
    switch (target.kind) {
      case 'root':
      case 'prefix':
        throw new IsDirectoryError(path);
      case 'image':
        file = target.image.tree.open(target.rest);
        break;
      case 'layer':
        file = target.layer.open(target.rest);
        break;
    }
    if (file === undefined) return notFound(path);
    if (file.node.type === 'dir') throw new IsDirectoryError(path);
    return file;
  }

  async read(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
    return (await this.open(path, opts)).read(offset, length, opts);
  }

  image(ref: ImageReference, signal?: AbortSignal): Promise<Image> {
    return this.#image(formatReference(ref), ref, signal);
  }

  space(): FsSpace {
    const cache = this.#deps.cacheSpace?.() ?? { totalBytes: 0, usedBytes: 0 };
    return { totalBytes: cache.totalBytes, usedBytes: cache.usedBytes, files: this.#inodes.issued() + 1 };
  }

  async xattrs(path: string, opts: ReadOptions = {}): Promise<ReadonlyMap<string, Uint8Array>> {
    const target = await this.#target(path, opts.signal);
    switch (target.kind) {
      case 'root':
        return this.#figures();
      case 'prefix':
        return new Map();
      case 'image': {
        const own = target.image.tree.xattrs(target.rest) ?? notFound(path);
        if (target.rest !== '') return own;
        const digests = new Set(target.image.layers.map((l) => l.digest));
        return new Map([...own, ...this.#figures(digests)]);
      }
      case 'layer':
        return target.layer.xattrs(target.rest) ?? notFound(path);
    }
  }

  async close(): Promise<void> {
    this.#images.clear();
    this.#layers.clear();
    this.#failures.clear();
    this.#logged.clear();
    this.#openedLayers.clear();
  }

  async #target(path: string, signal: AbortSignal | undefined): Promise<Target> {
    const known = this.#resolvedImage(path);
    if (known !== undefined) {
      await known.image.tree.load(known.rest, signal);
      return known;
    }
    if (!path.startsWith('/')) throw new TocfsError('NOT_FOUND', `${JSON.stringify(path)} is not an absolute path`);
    const parts = path.split('/').filter((c) => c !== '');
    if (parts.length === 0) return { kind: 'root' };
    const [top, ...rest] = parts;
    if (top !== 'images' && top !== 'layers') return notFound(path);
    if (rest.length === 0) return { kind: 'prefix', top, path: top };
    let parsed: ReturnType<typeof parseImagePath>;
    try {
      parsed = parseImagePath(rest);
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
      const error = new TocfsError('NOT_FOUND', `${path}: ${err.message}`, { cause: err });
      // A name that can never be (part of) a reference, e.g. `Library` for `library`: most likely the
      // user's typo, worth a line saying why, since the kernel stops at that component and the user only
      // sees ENOENT. Through the failure memory it is logged once per failure period, not on every probe.
      return this.#once<Target>(`${top}/${rest.join('/')}`, signal, () => Promise.reject(error));
    }
    if (parsed === undefined) return { kind: 'prefix', top, path: parts.join('/') };
    const key = rest.slice(0, parsed.consumed).join('/');
    const inner = rest.slice(parsed.consumed).join('/');
    if (top === 'images') {
      const image = await this.#image(key, parsed.ref, signal);
      await image.tree.load(inner, signal); // lazily listed (CVMFS) layers: list the directories on the way
      return { kind: 'image', image, rest: inner };
    }
    const layer = await this.#layer(key, parsed.ref, path, signal);
    await listPath(layer.layer, inner, signal);
    return { kind: 'layer', layer, rest: inner };
  }

  /**
   * A path inside an image already resolved, found without splitting or parsing it: a `find` over a 10^6-entry
   * image is 10^6 getattrs, and parsing the reference of each cost more than the tree lookup. The root is the
   * first component after the host holding `:` or `@`, as parseImagePath finds it, and a resolved key is a
   * reference that parsed, so the same path parses to the same image. Paths the kernel would not send
   * (empty components, a trailing `/`) take the full way.
   */
  #resolvedImage(path: string): { kind: 'image'; image: Image; rest: string } | undefined {
    if (!path.startsWith(IMAGES_PREFIX)) return undefined;
    const host = path.indexOf('/', IMAGES_PREFIX.length);
    if (host < 0) return undefined;
    const colon = path.indexOf(':', host);
    const at = path.indexOf('@', host);
    const mark = colon < 0 ? at : at < 0 ? colon : Math.min(colon, at);
    if (mark < 0) return undefined;
    const end = path.indexOf('/', mark);
    const image = this.#images.get(path.slice(IMAGES_PREFIX.length, end < 0 ? undefined : end));
    if (image === undefined) return undefined;
    const rest = end < 0 ? '' : path.slice(end + 1);
    if (rest.endsWith('/') || rest.includes('//') || rest.startsWith('/')) return undefined;
    return { kind: 'image', image, rest };
  }

  #image(key: string, ref: ImageReference, signal: AbortSignal | undefined): Promise<Image> {
    const image = this.#images.get(key);
    if (image !== undefined) return Promise.resolve(image);
    return this.#once(`images/${key}`, signal, async () => {
      const opened = await openImage(this.#imageDeps, ref);
      this.#images.set(key, opened);
      const repo = `${ref.registry}/${ref.repository}`;
      for (const layer of opened.layers) this.#openedLayers.set(`${repo}@${layer.digest}`, layer);
      this.#list(`images/${key}`);
      return opened;
    });
  }

  #layer(key: string, ref: ImageReference, path: string, signal: AbortSignal | undefined): Promise<LayerView> {
    const view = this.#layers.get(key);
    if (view !== undefined) return Promise.resolve(view);
    if (ref.digest === undefined || ref.tag !== undefined) {
      return Promise.reject(new TocfsError('NOT_FOUND', `${path}: a layer is named by digest alone (REPO@sha256:HEX)`));
    }
    const digest = ref.digest;
    return this.#once(`layers/${key}`, signal, async () => {
      const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
      let layer = this.#openedLayers.get(`${ref.registry}/${ref.repository}@${digest}`);
      if (layer === undefined) {
        if (this.#deps.openLayerByDigest === undefined) {
          throw new TocfsError('NOT_FOUND', `layer ${formatReference(ref)}: not a layer of an image resolved so far`);
        }
        layer = await this.#deps.openLayerByDigest(repo, digest);
      }
      const opened = new LayerView(layer, () => this.#inodes.next());
      // A layer's own tree cannot show a hardlink to a file of a lower layer (or to nothing): say which
      // names it leaves out, once, rather than letting them vanish (the merged image view logs its own).
      const links = [...layer.index.externalLinks()];
      if (links.length > 0) {
        const shown = links.slice(0, 10).map(([name, target]) => `${JSON.stringify(name)} -> ${JSON.stringify(target)}`);
        const more = links.length > 10 ? ` and ${links.length - 10} more` : '';
        this.#log(`layer ${layer.digest}: ${links.length} hardlinks left out of the layer's own tree, their targets are not in this layer: ${shown.join(', ')}${more}`);
      }
      this.#layers.set(key, opened);
      this.#list(`layers/${key}`);
      return opened;
    });
  }

  /**
   * Entries are in insertion order and share one TTL, so the expired ones are at the front: sweeping them
   * on insert (and capping the count) keeps a daemon probed with endless distinct bad names bounded.
   */
  #rememberFailure(key: string, error: unknown, startedAt: number): void {
    const now = this.#now();
    for (const [oldKey, old] of this.#failures) {
      if (old.until > now && this.#failures.size < MAX_REMEMBERED_FAILURES) break;
      this.#failures.delete(oldKey);
    }
    this.#failures.delete(key);
    this.#failures.set(key, { error, until: startedAt + this.#failureTtlMs });
  }

  /** Logs a failure unless it is the one last logged for `key`. */
  #logFailure(key: string, error: unknown): void {
    const code = isTocfsError(error) ? ` (${error.code})` : '';
    const line = `${key}: failed${code}: ${error instanceof Error ? error.message : String(error)}`;
    if (this.#logged.get(key) === line) return;
    this.#logged.delete(key);
    if (this.#logged.size >= MAX_REMEMBERED_FAILURES) this.#logged.delete(this.#logged.keys().next().value!);
    this.#logged.set(key, line);
    this.#log(line);
  }

  /**
   * Single flight per key: concurrent callers share one run. A failure is answered from memory until
   * `failureTtlMs` after its attempt began (and logged once while it stays the same), so a program probing
   * one bad path many times costs the registry at most one request per period; after that the next lookup
   * tries again at once.
   */
  #once<T>(key: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    const failed = this.#failures.get(key);
    if (failed !== undefined) {
      if (failed.until > this.#now()) return Promise.reject(failed.error);
      this.#failures.delete(key);
    }
    const flight = this.#flights.run(key, () => {
      const startedAt = this.#now();
      return run().then(
        (value) => {
          this.#logged.delete(key);
          return value;
        },
        (error: unknown) => {
          this.#rememberFailure(key, error, startedAt);
          this.#logFailure(key, error);
          throw error;
        },
      );
    }) as Promise<T>;
    return abortable(flight, signal, `lookup of ${key}`);
  }

  /** Adds every prefix of `path` (`images/HOST/REPO:TAG`) to the listings of its parents. */
  #list(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      let names = this.#listing.get(parent);
      if (names === undefined) this.#listing.set(parent, (names = new Set()));
      names.add(parts[i]!);
    }
  }

  #dir(path: string, fixed?: number): FsNode {
    let ino = fixed ?? this.#dirInos.get(path);
    if (ino === undefined) this.#dirInos.set(path, (ino = this.#inodes.next()));
    return { ino, type: 'dir', mode: 0o555, uid: 0, gid: 0, mtimeMs: 0, size: 0, nlink: 2 };
  }

  #figures(digests?: ReadonlySet<string>): Map<string, Uint8Array> {
    const figures = this.#deps.figures?.();
    if (figures === undefined) return new Map();
    const layers = digests === undefined ? figures.layers : Object.fromEntries(Object.entries(figures.layers).filter(([d]) => digests.has(d)));
    return new Map([
      ['user.tocfs.bytes_fetched', encoder.encode(String(figures.bytesFetched))],
      ['user.tocfs.bytes_cvmfs', encoder.encode(String(figures.bytesCvmfs))],
      ['user.tocfs.bytes_cache', encoder.encode(String(figures.bytesCache))],
      ['user.tocfs.requests', encoder.encode(String(figures.requests))],
      ['user.tocfs.bytes_disk_pending', encoder.encode(String(figures.bytesDiskPending))],
      ['user.tocfs.layers', encoder.encode(JSON.stringify(layers))],
    ]);
  }
}

const IMAGES_PREFIX = '/images/';

function notFound(path: string): never {
  throw new TocfsError('NOT_FOUND', `no such file ${path}`);
}

function notDir(path: string): never {
  throw new TocfsError('NOT_FOUND', `${path} is not a directory`);
}
