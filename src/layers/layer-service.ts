/**
 * The composition root of src/layers (STYLE.md item 13): stores, TOC cache and fetcher built in order,
 * disposed in reverse. One per daemon or command.
 */
import { FormatError, InvalidOptionError } from '../errors.js';
import { estargzHintedPrefetchEnd } from '../formats/estargz/annotations.js';
import { detectTocCodec, TOC_CODECS } from '../formats/codecs.js';
import type { TocCodec, TocLimits } from '../formats/toc.js';
import type { RegistryClient, RegistryStats } from '../registry/client.js';
import type { Descriptor, RepositoryRef } from '../registry/types.js';
import type { ChunkStoreStats } from './store/chunk-store.js';
import { abortable } from '../util/abort.js';
import { SingleFlight } from '../util/single-flight.js';
import { openDiskStore } from './store/disk-store.js';
import { ChunkFetcher, type FetcherStats } from './fetch/fetcher.js';
import { openFullLayer, type FullLayer, type FullLayerStats } from './full/full-layer.js';
import type { LayerStats, VerifiedLayer } from './toc/toc-layer.js';
import { MemoryChunkStore } from './store/memory-store.js';
import { hasLazyToc, openLayer, type TocDetector } from './toc/open-layer.js';
import { registryBlobSource, type RangeSource } from './sources/range-source.js';
import { prereadSource, type PrereadSource } from './sources/preread-source.js';
import { openTocCache, type TocCacheStats } from './store/toc-cache.js';
import { offloadLargeSpans, ZstdWorkerPool } from './fetch/zstd-offload.js';

export interface LayerServiceOptions {
  /** `streamBlob` is needed only by `openAny` for layers without a TOC. */
  readonly client: Pick<RegistryClient, 'readRange'> & Partial<Pick<RegistryClient, 'stats' | 'streamBlob'>>;
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
}

export interface LayerServiceStats {
  readonly fetch: FetcherStats;
  readonly memory: ChunkStoreStats;
  readonly disk: ChunkStoreStats;
  readonly tocs: TocCacheStats;
  readonly layers: readonly LayerStats[];
  /** Layers without a TOC, downloaded whole (`openAny`). */
  readonly fullLayers: readonly FullLayerServiceStats[];
  readonly registry?: RegistryStats;
}

export interface FullLayerServiceStats extends FullLayerStats {
  /** The compressed blob's size in bytes (the descriptor's). */
  readonly blobBytes: number;
  /** Blob bytes this service downloaded for it: the whole blob when opened from the registry, else 0. */
  readonly bytesFetched: number;
  /** bytesFetched / blobBytes: 1 once downloaded, 0 when the disk cache had it. */
  readonly fetchedRatio: number;
}

export interface LayerService {
  /**
   * The verified layer for a manifest's layer descriptor; concurrent calls for one digest share one open,
   * and an opened layer is kept for the life of the service. A failed open is not remembered.
   */
  open(repo: RepositoryRef, descriptor: Descriptor, opts?: { signal?: AbortSignal }): Promise<VerifiedLayer>;
  /**
   * Any layer: `open` when the descriptor carries `containerd.io/snapshot/stargz/toc.digest` or a
   * zstd:chunked `manifest-checksum` (either generation), else the
   * whole layer is streamed once, verified and indexed into the disk cache (`FullLayer`, DESIGN.md §2
   * source 5). Both satisfy src/image's `LayerTree`. Same single-flight and lifetime rules as `open`.
   */
  openAny(repo: RepositoryRef, descriptor: Descriptor, opts?: { signal?: AbortSignal }): Promise<VerifiedLayer | FullLayer>;
  stats(): LayerServiceStats;
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
  const fetcher = new ChunkFetcher({
    memory,
    disk,
    ...(opts.mergeGapBytes !== undefined ? { mergeGapBytes: opts.mergeGapBytes } : {}),
    ...(opts.maxRequestBytes !== undefined ? { maxRequestBytes: opts.maxRequestBytes } : {}),
  });

  const prereads = new Set<PrereadSource>();
  const opened = new Map<string, VerifiedLayer>();
  const opening = new SingleFlight<VerifiedLayer>();
  const fullOpened = new Map<string, FullLayer>();
  const fullSizes = new Map<string, number>();
  const fullOpening = new SingleFlight<FullLayer>();
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

  async function doOpenFull(repo: RepositoryRef, descriptor: Descriptor): Promise<FullLayer> {
    const client = opts.client;
    if (!client.streamBlob) throw new InvalidOptionError('client', 'needs streamBlob to open a layer without a TOC');
    const layer = await openFullLayer({
      client: { streamBlob: client.streamBlob.bind(client) },
      repo,
      descriptor,
      cacheDir: opts.cacheDir,
      ...(opts.limits ? { limits: opts.limits } : {}),
    });
    if (closed) {
      await layer.close();
      throw new InvalidOptionError('layer service', 'closed');
    }
    fullSizes.set(descriptor.digest, descriptor.size);
    fullOpened.set(descriptor.digest, layer);
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

  const service: LayerService = {
    async openAny(repo, descriptor, callOpts = {}) {
      // A zstd layer with a footer but no annotation has nothing to verify its TOC against, so it is
      // pulled whole, like any layer without a TOC (containers/storage refuses such partial pulls too).
      if (hasLazyToc(descriptor)) return service.open(repo, descriptor, callOpts);
      return openOnce(descriptor.digest, fullOpened, fullOpening, () => doOpenFull(repo, descriptor), callOpts.signal);
    },

    async open(repo, descriptor, callOpts = {}) {
      return openOnce(descriptor.digest, opened, opening, () => doOpen(repo, descriptor), callOpts.signal);
    },

    stats() {
      return {
        fetch: fetcher.stats(),
        memory: memory.stats(),
        disk: disk.stats(),
        tocs: tocCache.stats(),
        layers: [...opened.values()].map((l) => l.stats()),
        fullLayers: [...fullOpened.values()].map((l) => {
          const st = l.stats();
          const blobBytes = fullSizes.get(l.digest) ?? 0;
          const bytesFetched = st.tocSource === 'blob' ? blobBytes : 0;
          return { ...st, blobBytes, bytesFetched, fetchedRatio: blobBytes > 0 ? bytesFetched / blobBytes : 0 };
        }),
        ...(opts.client.stats ? { registry: opts.client.stats() } : {}),
      };
    },

    close() {
      closed ??= (async () => {
        for (const p of prereads) p.dispose();
        await Promise.allSettled([...opening.values(), ...fullOpening.values()]);
        await Promise.allSettled([...fullOpened.values()].map((l) => l.close()));
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
