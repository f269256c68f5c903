/**
 * The layers of a daemon or command: stores, TOC cache and fetcher built in order, disposed in reverse, and
 * the one decision of which kind serves a descriptor (`open`): the CVMFS copy where one is published, else
 * the layer's TOC where the manifest pins one, else the whole layer streamed once.
 */
import { FormatError, InvalidOptionError, isTocfsError } from '../errors.js';
import { estargzHintedPrefetchEnd } from '../formats/estargz/annotations.js';
import { detectTocCodec, TOC_CODECS } from '../formats/codecs.js';
import type { TocCodec, TocLimits } from '../formats/toc.js';
import type { RegistryClient, RegistryStats } from '../registry/client.js';
import { layerCompression } from '../registry/manifest.js';
import type { Descriptor, RepositoryRef } from '../registry/types.js';
import type { ChunkStoreStats } from './store/chunk-store.js';
import { CvmfsLayers } from './cvmfs/cvmfs-layers.js';
import type { CvmfsSource } from './cvmfs/cvmfs-source.js';
import type { Figures } from './figures.js';
import type { ImageContext, Layer, LayerFigures, LayerOpener, OpenLayerOptions } from './layer.js';
import { abortable } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';
import { openDiskStore } from './store/disk-store.js';
import { ChunkFetcher, type FetcherStats } from './fetch/fetcher.js';
import { FullLayer, listCachedFullLayers, type CachedFullLayer, openFullLayer, removeCachedFullLayer, reopenFullLayer } from './full/full-layer.js';
import { cachedSociToc, fetchSociToc, sociLocation } from './soci/open-soci.js';
import { cacheErrorChannel, publish } from './events.js';
import { SociIndexes, type SociClient } from './soci/soci-index.js';
import { SociLayer } from './soci/soci-layer.js';
import type { LayerStats, VerifiedLayer } from './toc/toc-layer.js';
import { MemoryChunkStore } from './store/memory-store.js';
import { hasLazyToc, openLayer, unpinnedZstdPosition, type TocDetector } from './toc/open-layer.js';
import { registryBlobSource, type RangeSource } from './sources/range-source.js';
import { prereadSource, type PrereadSource } from './sources/preread-source.js';
import { openTocCache, type TocCacheStats } from './store/toc-cache.js';
import { offloadLargeSpans, ZstdWorkerPool } from './fetch/zstd-offload.js';

export interface LayerServiceOptions {
  /** `streamBlob` is needed only by `open` for layers without a TOC. */
  readonly client: Pick<RegistryClient, 'readRange'> & Partial<Pick<RegistryClient, 'stats' | 'streamBlob' | 'referrers' | 'getManifest'>>;
  /** Holds `chunks/`, `tocs/` and `layers/`; created when missing, reused across restarts. */
  readonly cacheDir: string;
  /** Disk budget for chunks, bytes. */
  readonly cacheSize: number;
  /** Memory budget for chunks, bytes. */
  readonly memoryCacheBytes: number;
  /** Start the eStargz prefetch of a layer as soon as it is opened, in the background. Default true. */
  readonly prefetch?: boolean;
  readonly codecs?: readonly TocCodec[];
  readonly detect?: TocDetector;
  readonly mergeGapBytes?: number;
  readonly maxRequestBytes?: number;
  readonly tailBytes?: number;
  readonly limits?: Partial<TocLimits>;
  /** A CVMFS repository of unpacked layers (DUCC layout) to serve layers from first. */
  readonly cvmfs?: CvmfsSource;
  /** One line per event worth a log (CVMFS fallbacks). Default: none. */
  readonly log?: (line: string) => void;
}

export interface LayerServiceStats {
  readonly fetch: FetcherStats;
  readonly memory: ChunkStoreStats;
  readonly disk: ChunkStoreStats;
  readonly tocs: TocCacheStats;
  readonly layers: readonly LayerStats[];
  readonly registry?: RegistryStats;
}

/** The disk budget's key of a whole layer's tar (chunks are keyed by their digests). */
const fullLayerKey = (digest: string): string => `layer-tar:${digest}`;

export interface LayerService extends LayerOpener {
  /**
   * The layer for a manifest's layer descriptor, of the kind that serves it: from CVMFS when `cvmfs` is
   * given and has it (layers/cvmfs/cvmfs-layers.ts decides how), else `openToc` when the descriptor pins a
   * TOC (`containerd.io/snapshot/stargz/toc.digest` or a zstd:chunked `manifest-checksum`), else the whole
   * layer streamed once, verified and indexed into the disk cache (`FullLayer`, DESIGN.md §2 source 5).
   * Concurrent calls for one digest share one open, and an opened layer is kept for the life of the
   * service. A failed open is not remembered.
   */
  open(repo: RepositoryRef, descriptor: Descriptor, opts?: OpenLayerOptions): Promise<Layer>;
  /** The layer by its TOC alone (FORMAT when the descriptor pins none); same rules as `open`. */
  openToc(repo: RepositoryRef, descriptor: Descriptor, opts?: { signal?: AbortSignal }): Promise<VerifiedLayer>;
  /** The CVMFS layers (image records and flat trees are the image code's), when `cvmfs` was given. */
  readonly cvmfs: CvmfsLayers | undefined;
  stats(): LayerServiceStats;
  /** The figures of every layer opened, and the totals (DESIGN.md §1.4). */
  figures(): Figures;
  /** Stops fetches, waits for cache writes, closes the stores; keeps every cached byte. Idempotent. */
  close(): Promise<void>;
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidOptionError(name, 'must be a positive integer of bytes');
}

export async function createLayerService(opts: LayerServiceOptions): Promise<LayerService> {
  positiveInteger('cacheSize', opts.cacheSize);
  positiveInteger('memoryCacheBytes', opts.memoryCacheBytes);
  if (!opts.cacheDir) throw new InvalidOptionError('cacheDir', 'must be a directory');
  const zstdPool = new ZstdWorkerPool();
  const codecs = (opts.codecs ?? TOC_CODECS).map((c) => offloadLargeSpans(c, zstdPool));

  const memory = new MemoryChunkStore({ maxBytes: opts.memoryCacheBytes });
  const disk = await openDiskStore({ dir: opts.cacheDir, maxBytes: opts.cacheSize });
  const tocCache = await openTocCache(opts.cacheDir);
  for (const cached of await listCachedFullLayers(opts.cacheDir)) await accountFullLayer(cached);
  const fetcher = new ChunkFetcher({
    memory,
    disk,
    ...(opts.mergeGapBytes !== undefined ? { mergeGapBytes: opts.mergeGapBytes } : {}),
    ...(opts.maxRequestBytes !== undefined ? { maxRequestBytes: opts.maxRequestBytes } : {}),
  });

  const log = opts.log ?? ((): void => {});
  const prereads = new Set<PrereadSource>();
  const opened = new Map<string, VerifiedLayer>();
  const opening = new SingleFlight<VerifiedLayer>();
  // Layers without a TOC of their own: read through a zTOC (SOCI) where there is one, else pulled whole.
  const plainOpened = new Map<string, FullLayer | SociLayer>();
  const plainOpening = new SingleFlight<FullLayer | SociLayer>();
  const sociIndexes = opts.client.referrers && opts.client.getManifest ? new SociIndexes(opts.client as SociClient, log) : undefined;
  let closed: Promise<void> | undefined;

  async function doOpen(repo: RepositoryRef, descriptor: Descriptor): Promise<VerifiedLayer> {
    const blob = registryBlobSource(opts.client as Pick<RegistryClient, 'readRange'>, repo, descriptor);
    const preread = await prereadPrioritized(blob, descriptor);
    let layer: VerifiedLayer;
    try {
      layer = await openWith(preread ?? blob, descriptor);
    } catch (err) {
      release(preread, 'dispose');
      throw err;
    }
    opened.set(descriptor.digest, layer);
    if (opts.prefetch !== false && !closed) layer.prefetchInBackground(() => release(preread, 'finish'));
    else release(preread, 'finish');
    return layer;
  }

  /**
   * The prioritised files of a layer `tocfs convert` optimized, read from the start while its TOC is
   * fetched; undefined when there is no hint, no prefetch, or the layer was opened here before (its TOC is
   * cached, and so, most likely, are its chunks).
   */
  async function prereadPrioritized(blob: RangeSource, descriptor: Descriptor): Promise<PrereadSource | undefined> {
    let end;
    try {
      end = estargzHintedPrefetchEnd(descriptor.annotations, descriptor.size);
    } catch (err) {
      throw new FormatError(`layer ${descriptor.digest}: ${(err as Error).message}`, { cause: err });
    }
    if (end === undefined || opts.prefetch === false || closed || (await tocCache.has(descriptor.digest))) return undefined;
    const preread = prereadSource(blob, end, { afterFirstOtherRead: true });
    prereads.add(preread);
    return preread;
  }

  /** `finish`: its pieces under way still serve the reads waiting on them; `dispose`: everything stops. */
  function release(preread: PrereadSource | undefined, how: 'finish' | 'dispose'): void {
    if (!preread) return;
    prereads.delete(preread);
    if (how === 'finish') preread.finish();
    else preread.dispose();
  }

  async function openWith(source: RangeSource, descriptor: Descriptor): Promise<VerifiedLayer> {
    return openLayer({
      source,
      descriptor,
      codecs,
      detect: opts.detect ?? ((tail, size) => detectTocCodec(tail, size, { layer: descriptor.digest, codecs })),
      fetcher,
      tocCache,
      ...(opts.tailBytes !== undefined ? { tailBytes: opts.tailBytes } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
    });
  }

  /**
   * A layer without a TOC: the whole layer already in the disk cache (no network at all), else its zTOC
   * (from the TOC cache, or the image's SOCI index) for span reads, else the whole layer pulled once. A
   * zTOC that fails its checks is logged and the layer pulled whole: never a wrong byte.
   */
  async function doOpenPlain(repo: RepositoryRef, descriptor: Descriptor, image: ImageContext | undefined): Promise<FullLayer | SociLayer> {
    const limits = opts.limits;
    const unpinned = unpinnedZstdPosition(descriptor);
    if (unpinned !== undefined) {
      log(`layer ${descriptor.digest}: ${unpinned} without its manifest-checksum: the TOC it points at cannot be verified, so the layer is pulled whole and checked against its digest`);
    }
    const cached = await reopenFullLayer({ cacheDir: opts.cacheDir, descriptor, ...(limits ? { limits } : {}) });
    const layer = cached ?? (await openSoci(repo, descriptor, image)) ?? (await doOpenFull(repo, descriptor));
    if (layer instanceof FullLayer) {
      const key = fullLayerKey(layer.digest);
      // Evicted while open, the tar stays readable through the open handle until the daemon stops.
      if (cached === undefined) await accountFullLayer((await listCachedFullLayers(opts.cacheDir, layer.digest))[0]);
      layer.onRead = () => disk.touchAccounted(key);
      disk.touchAccounted(key);
    }
    plainOpened.set(descriptor.digest, layer);
    return layer;
  }

  /** A whole layer's tar counts against the disk budget like the chunks, and is evicted like them. */
  async function accountFullLayer(cached: CachedFullLayer | undefined): Promise<void> {
    if (cached === undefined) return;
    const { digest } = cached;
    await disk.account(fullLayerKey(digest), {
      file: cached.tar,
      size: cached.bytes,
      mtimeMs: cached.mtimeMs,
      remove: () => removeCachedFullLayer(opts.cacheDir, digest),
    });
  }

  async function openSoci(repo: RepositoryRef, descriptor: Descriptor, image: ImageContext | undefined): Promise<SociLayer | undefined> {
    if (layerCompression(descriptor.mediaType) !== 'gzip') return undefined;
    const limits = opts.limits;
    let toc = await cachedSociToc(tocCache, descriptor, limits);
    const tocSource = toc ? 'cache' : 'blob';
    if (toc === undefined) {
      const ref = image && sociIndexes ? (await sociIndexes.forImage(repo, image)).get(descriptor.digest) : undefined;
      if (ref === undefined || !opts.client.streamBlob) return undefined;
      try {
        toc = await fetchSociToc(opts.client as Pick<RegistryClient, 'streamBlob'>, tocCache, repo, descriptor, ref, limits);
      } catch (err) {
        if (!isTocfsError(err) || (err.code !== 'FORMAT' && err.code !== 'BAD_DATA')) throw err;
        log(`${err.message}: the layer is pulled whole instead`);
        return undefined;
      }
    }
    const source = registryBlobSource(opts.client as Pick<RegistryClient, 'readRange'>, repo, descriptor);
    return new SociLayer({ toc, source, stores: { memory, disk }, tocSource });
  }

  async function doOpenFull(repo: RepositoryRef, descriptor: Descriptor): Promise<FullLayer> {
    const client = opts.client;
    if (!client.streamBlob) throw new InvalidOptionError('client', 'needs streamBlob to open a layer without a TOC');
    const layer = await openFullLayer({
      client: { streamBlob: client.streamBlob.bind(client) },
      repo,
      descriptor,
      cacheDir: opts.cacheDir,
      ...(opts.limits ? { limits: opts.limits } : {}),
      // Seekable from now on: when the tar leaves the cache, the zTOC serves span reads (openSoci).
      onZtoc: (bytes) =>
        tocCache.put(descriptor.digest, sociLocation(descriptor, bytes), bytes).catch((error: unknown) => {
          publish(cacheErrorChannel, { store: 'tocs', op: 'write', digest: descriptor.digest, error });
        }),
    });
    if (closed) {
      await layer.close();
      throw new InvalidOptionError('layer service', 'closed');
    }
    return layer;
  }

  /**
   * One open per layer digest: an opened layer is kept, concurrent callers join the open under way, and
   * that open runs to its end whoever stops waiting (its result serves the next caller); a failure is not
   * remembered.
   */
  function openOnce<T>(
    digest: string,
    done: ReadonlyMap<string, T>,
    inFlight: SingleFlight<T>,
    start: () => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    if (closed) return Promise.reject(new InvalidOptionError('layer service', 'closed'));
    const layer = done.get(digest);
    if (layer) return Promise.resolve(layer);
    return abortable(inFlight.run(digest, start), signal, `open of layer ${digest}`);
  }

  function openRegistry(repo: RepositoryRef, descriptor: Descriptor, callOpts: OpenLayerOptions = {}): Promise<Layer> {
    // A zstd layer with a footer but no annotation has nothing to verify its TOC against, so it is
    // pulled whole, like any layer without a TOC (containers/storage refuses such partial pulls too).
    if (hasLazyToc(descriptor)) return openOnce(descriptor.digest, opened, opening, () => doOpen(repo, descriptor), callOpts.signal);
    return openOnce(descriptor.digest, plainOpened, plainOpening, () => doOpenPlain(repo, descriptor, callOpts.image), callOpts.signal);
  }

  const cvmfs = opts.cvmfs && new CvmfsLayers({ source: opts.cvmfs, openRegistry, log });

  const service: LayerService = {
    cvmfs,

    open(repo, descriptor, callOpts = {}) {
      return cvmfs ? cvmfs.open(repo, descriptor, callOpts) : openRegistry(repo, descriptor, callOpts);
    },

    openToc(repo, descriptor, callOpts = {}) {
      return openOnce(descriptor.digest, opened, opening, () => doOpen(repo, descriptor), callOpts.signal);
    },

    stats() {
      return {
        fetch: fetcher.stats(),
        memory: memory.stats(),
        disk: disk.stats(),
        tocs: tocCache.stats(),
        layers: [...opened.values()].map((l) => l.stats()),
        ...(opts.client.stats ? { registry: opts.client.stats() } : {}),
      };
    },

    figures() {
      const fetch = fetcher.stats();
      const registryLayers = [...opened.values(), ...plainOpened.values()];
      // A CVMFS layer's registry copy (opened for files CVMFS could not serve, or for its TOC) is part of it.
      const layers = new Map<string, LayerFigures>(registryLayers.map((l) => [l.digest, l.figures()]));
      for (const l of cvmfs?.served() ?? []) layers.set(l.digest, l.figures());
      const plain = [...plainOpened.values()].map((l) => l.figures());
      const registry = opts.client.stats?.();
      return {
        bytesFetched: registry?.bytesReceived ?? fetch.bytesFetched + plain.reduce((sum, f) => sum + f.bytesFetched, 0),
        bytesCvmfs: cvmfs?.source.stats().bytesRead ?? 0,
        bytesCache: fetch.bytesFromMemory + fetch.bytesFromDisk + plain.reduce((sum, f) => sum + f.bytesCache, 0),
        requests: registry?.requests ?? fetch.requests,
        bytesDiskPending: fetch.diskWritesPending,
        layers: Object.fromEntries(layers),
      };
    },

    close() {
      closed ??= (async () => {
        for (const p of prereads) p.dispose();
        await Promise.allSettled([...opening.values(), ...plainOpening.values()]);
        await Promise.allSettled([...plainOpened.values()].map((l) => (l instanceof FullLayer ? l.close() : undefined)));
        await fetcher.close();
        await zstdPool.close();
        await tocCache.close();
        await disk.close();
        await memory.close();
      })();
      return closed;
    },
  };
  return service;
}
