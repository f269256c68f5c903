/**
 * The composition root of `tocfs mount` (STYLE.md item 13): registry client -> layer service -> image
 * filesystem -> FUSE mount, built in that order and closed in reverse.
 */
import { InvalidOptionError } from '../errors.js';
import { CvmfsCatalog } from '../image/cvmfs-catalog.js';
import { CvmfsLayers } from '../layers/cvmfs/cvmfs-layers.js';
import { CvmfsSource } from '../layers/cvmfs/cvmfs-source.js';
import { createLayerService, type LayerService } from '../layers/layer-service.js';
import { createImageFilesystem, type Figures } from '../image/namespace.js';
import type { Filesystem } from '../image/filesystem.js';
import { RegistryClient } from '../registry/client.js';
import { loadDockerConfig } from '../registry/credentials.js';
import type { Platform } from '../registry/types.js';
import { recordAccesses } from '../fuse/access-recorder.js';
import { mountFilesystem, type Mount } from '../fuse/mount.js';
import { OpTrace } from '../fuse/op-trace.js';

export interface DaemonConfig {
  readonly mountpoint: string;
  readonly cacheDir: string;
  readonly cacheSize: number;
  /** Memory budget for decoded chunks. Default 256 MiB. */
  readonly memoryCacheBytes?: number;
  readonly platform?: Platform;
  readonly insecureRegistries?: readonly string[];
  /** allow_other + default_permissions (default true; see MountOptions). */
  readonly allowOther?: boolean;
  readonly allowSuid?: boolean;
  /** Unmount on SIGINT/SIGTERM. Default true. */
  readonly handleSignals?: boolean;
  readonly debug?: boolean;
  /** One line per event (stderr in the CLI). */
  readonly log: (line: string) => void;
  /**
   * A CVMFS repository of unpacked images (DUCC layout) to serve layers and images from. Default:
   * `/cvmfs/unpacked.cern.ch` when it is a directory; false: none (`--no-cvmfs`).
   */
  readonly cvmfs?: string | false;
}

export interface Daemon {
  readonly mount: Mount;
  /** Resolves once the mount is gone (a signal, `tocfs unmount`, or `close()`) and everything is closed. */
  readonly closed: Promise<void>;
  /** Unmounts, then closes the filesystem, the layer service and the registry client. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MEMORY_CACHE_BYTES = 256 * 2 ** 20;
const DEFAULT_CVMFS = '/cvmfs/unpacked.cern.ch';

export async function createDaemon(config: DaemonConfig): Promise<Daemon> {
  const disposers: (() => Promise<void>)[] = [];
  const disposeAll = async (): Promise<void> => {
    while (disposers.length > 0) {
      const dispose = disposers.pop()!;
      try {
        await dispose();
      } catch (err) {
        config.log(`close: ${(err as Error).message}`);
      }
    }
  };
  try {
    const cvmfsRoot = await cvmfsRootOf(config);
    const credentials = await loadDockerConfig();
    const client = new RegistryClient({
      credentials,
      insecureRegistries: config.insecureRegistries ?? [],
      ...(config.platform ? { platform: config.platform } : {}),
    });
    disposers.push(() => client.close());

    const layers = await createLayerService({
      client,
      cacheDir: config.cacheDir,
      cacheSize: config.cacheSize,
      memoryCacheBytes: config.memoryCacheBytes ?? DEFAULT_MEMORY_CACHE_BYTES,
    });
    disposers.push(() => layers.close());

    const cvmfs = cvmfsRoot === undefined ? undefined : openCvmfs(cvmfsRoot, config, layers);
    // Records which files each image's workload read (tocfs stats --accessed) and counts FUSE calls.
    const recorded: Filesystem = recordAccesses(createImageFilesystem({
      client,
      openLayer: (repo, descriptor, signal) =>
        cvmfs ? cvmfs.layers.open(repo, descriptor, signal) : layers.openAny(repo, descriptor, signal ? { signal } : {}),
      ...(cvmfs ? { cvmfs } : {}),
      ...(config.platform ? { platform: config.platform } : {}),
      log: config.log,
      figures: () => figuresOf(layers, cvmfs?.layers),
      cacheSpace: () => ({ totalBytes: config.cacheSize, usedBytes: layers.stats().disk.bytes }),
    }), { log: config.log });
    const trace = process.env['TOCFS_TRACE'];
    const fs = trace ? new OpTrace(recorded, trace) : recorded;
    disposers.push(() => fs.close());

    const mount = await mountFilesystem(fs, config.mountpoint, {
      allowOther: config.allowOther ?? true,
      allowSuid: !!config.allowSuid,
      handleSignals: config.handleSignals ?? true,
      debug: !!config.debug,
      log: config.log,
    });
    disposers.push(() => mount.unmount());

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= disposeAll());
    // However the mount ends, close the rest behind it.
    const closed = mount.closed.then(close);
    return { mount, closed, close: () => close().then(() => closed) };
  } catch (err) {
    await disposeAll();
    throw err;
  }
}

/** The CVMFS repository to use: `--cvmfs DIR` (which must be a directory), else the default when present. */
async function cvmfsRootOf(config: DaemonConfig): Promise<string | undefined> {
  if (config.cvmfs === false) return undefined;
  const root = config.cvmfs ?? DEFAULT_CVMFS;
  if (await CvmfsSource.available(root)) return root;
  if (config.cvmfs !== undefined) throw new InvalidOptionError('--cvmfs', `${root} is not a directory`);
  return undefined;
}

function openCvmfs(root: string, config: DaemonConfig, layers: LayerService): CvmfsCatalog {
  config.log(`CVMFS: serving layers and images published under ${root} from there`);
  const cvmfsLayers = new CvmfsLayers({
    source: new CvmfsSource(root),
    openRegistry: (repo, descriptor, signal) => layers.openAny(repo, descriptor, signal ? { signal } : {}),
    log: config.log,
  });
  return new CvmfsCatalog(cvmfsLayers, config.log);
}

/**
 * The figures of DESIGN.md §1.4 from the layer service: bytes_fetched and requests are the registry
 * client's (every byte and request on the wire), bytes_cache what the chunk stores and the whole-layer
 * tars on disk served, bytes_cvmfs the file bytes read from CVMFS. Each layer says where its bytes came
 * from: "cvmfs", "cvmfs+registry" (some files fell back to the registry) or "registry".
 */
export function figuresOf(layers: Pick<LayerService, 'stats'>, cvmfs?: Pick<CvmfsLayers, 'stats' | 'source'>): Figures {
  const stats = layers.stats();
  const fullBytesRead = stats.fullLayers.reduce((sum, l) => sum + l.bytesRead, 0);
  const fullBytesFetched = stats.fullLayers.reduce((sum, l) => sum + l.bytesFetched, 0);
  const lazy = stats.layers.map((l) => [
    l.digest,
    {
      format: l.format,
      tocSource: l.tocSource,
      fetchedRatio: l.fetchedRatio,
      bytesFetched: l.bytesFetched,
      bytesCache: l.bytesFromMemory + l.bytesFromDisk,
      blobBytes: l.blobBytes,
      requests: l.requests,
      prefetch: l.prefetch,
    },
  ]);
  const full = stats.fullLayers.map((l) => [
    l.digest,
    { format: l.format, tocSource: l.tocSource, fetchedRatio: l.fetchedRatio, bytesFetched: l.bytesFetched, bytesCache: l.bytesRead, blobBytes: l.blobBytes },
  ]);
  const registryLayers = [...lazy, ...full].map(([digest, figures]) => [digest as string, { ...(figures as object), source: 'registry' }] as const);
  const byDigest = new Map<string, object>(registryLayers);
  // A CVMFS layer's registry copy (opened for files CVMFS could not serve, or for its TOC) is part of it.
  const cvmfsLayers = (cvmfs?.stats() ?? []).map(({ digest, ...figures }) => [digest, { ...byDigest.get(digest), ...figures }] as const);
  return {
    bytesFetched: stats.registry?.bytesReceived ?? stats.fetch.bytesFetched + fullBytesFetched,
    bytesCvmfs: cvmfs?.source.stats().bytesRead ?? 0,
    bytesCache: stats.fetch.bytesFromMemory + stats.fetch.bytesFromDisk + fullBytesRead,
    requests: stats.registry?.requests ?? stats.fetch.requests,
    bytesDiskPending: stats.fetch.diskWritesPending,
    layers: Object.fromEntries([...registryLayers, ...cvmfsLayers]),
  };
}
