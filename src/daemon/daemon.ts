/**
 * The composition root (STYLE.md item 13): registry client -> layer service (stores, sources, CVMFS) ->
 * image namespace -> figures -> FUSE carrier, built in that order by one function and closed in reverse.
 * `tocfs mount` gets all of it; `tocfs ls` and `tocfs cat` get the same graph without the carrier, so they
 * read every image exactly as the mount does.
 */
import { access, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { CvmfsCatalog } from '../image/cvmfs-catalog.js';
import type { Filesystem } from '../image/filesystem.js';
import { createImageFilesystem, type ImageNamespace } from '../image/namespace.js';
import { CvmfsSource } from '../layers/cvmfs/cvmfs-source.js';
import type { Figures } from '../layers/figures.js';
import { createLayerService } from '../layers/layer-service.js';
import { RegistryClient } from '../registry/client.js';
import { loadDockerConfig } from '../registry/credentials.js';
import type { Platform } from '../registry/types.js';
import { recordAccesses } from '../fuse/access-recorder.js';
import { mountFilesystem, type Mount } from '../fuse/mount.js';
import { OpTrace } from '../fuse/op-trace.js';
import { tightenPrivateTree } from '../util/private-files.js';

export interface ReaderConfig {
  readonly cacheDir: string;
  readonly cacheSize: number;
  /** Memory budget for decoded chunks. Default 256 MiB. */
  readonly memoryCacheBytes?: number;
  readonly platform?: Platform;
  readonly insecureRegistries?: readonly string[];
  /** `--registry-allow`: when given, the only hosts ever contacted (registry/host-policy.ts). */
  readonly registryAllow?: readonly string[];
  /** Extra trusted CA certificates, PEM (`--ca-file`). */
  readonly ca?: readonly string[];
  /** The longest one read or registry request waits across its retries (`--fetch-timeout`). Default 30 s. */
  readonly fetchTimeoutMs?: number;
  /** Start the eStargz prefetch of a layer as soon as it is opened. Default true. */
  readonly prefetch?: boolean;
  /** One line per event (stderr in the CLI). */
  readonly log: (line: string) => void;
  /**
   * A CVMFS repository of unpacked images (DUCC layout) to serve layers and images from. Default:
   * `/cvmfs/unpacked.cern.ch` when it is a directory; false: none (`--no-cvmfs`).
   */
  readonly cvmfs?: string | false;
}

export interface DaemonConfig extends ReaderConfig {
  readonly mountpoint: string;
  /** allow_other + default_permissions (default true; see MountOptions). */
  readonly allowOther?: boolean;
  readonly allowSuid?: boolean;
  /** Unmount on SIGINT/SIGTERM. Default true. */
  readonly handleSignals?: boolean;
  readonly debug?: boolean;
}

/** The image namespace and its figures, without a mount (`tocfs ls`, `tocfs cat`). */
export interface Reader {
  readonly images: ImageNamespace;
  readonly platform: Platform | undefined;
  figures(): Figures;
  /** Closes the namespace, the layer service and the registry client. Idempotent. */
  close(): Promise<void>;
}

export interface Daemon extends Reader {
  readonly mount: Mount;
  /** Resolves once the mount is gone (a signal, `tocfs unmount`, or `close()`) and everything is closed. */
  readonly closed: Promise<void>;
  /** Unmounts, then closes the filesystem, the layer service and the registry client. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MEMORY_CACHE_BYTES = 256 * 2 ** 20;
const DEFAULT_CVMFS = '/cvmfs/unpacked.cern.ch';
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;

/** `tocfs mount`: the whole graph, served by the FUSE carrier at `config.mountpoint`. */
export async function createDaemon(config: DaemonConfig): Promise<Daemon> {
  return (await build(config, config)) as Daemon;
}

/** `tocfs ls` / `tocfs cat`: the same graph, without a carrier. */
export function openReader(config: ReaderConfig): Promise<Reader> {
  return build(config, undefined);
}

async function build(config: ReaderConfig, mounting: DaemonConfig | undefined): Promise<Reader | Daemon> {
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
  const fetchTimeoutMs = config.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  try {
    // The cache holds bytes of files images keep private and this runs as root on a shared node: everything
    // written is 0700/0600 (explicit modes; the CLI also sets the umask, src/cli/main.ts, a process-wide
    // choice a library caller makes for itself), and a cache an older tocfs left 0755/0644 is tightened
    // before any of it is served again.
    await checkCacheDir(config.cacheDir);
    const tightened = await tightenPrivateTree(config.cacheDir);
    if (tightened > 0) {
      config.log(`cache ${config.cacheDir}: removed group/other access from ${tightened} files and directories (private to the daemon from now on)`);
    }
    const cvmfsRoot = await cvmfsRootOf(config);
    const client = new RegistryClient({
      credentials: await loadDockerConfig(),
      insecureRegistries: config.insecureRegistries ?? [],
      registryAllow: config.registryAllow ?? [],
      ...(config.ca ? { ca: config.ca } : {}),
      retry: { budgetMs: fetchTimeoutMs },
      ...(config.platform ? { platform: config.platform } : {}),
    });
    disposers.push(() => client.close());

    if (cvmfsRoot !== undefined) config.log(`CVMFS: serving layers and images published under ${cvmfsRoot} from there`);
    const layers = await createLayerService({
      client,
      cacheDir: config.cacheDir,
      cacheSize: config.cacheSize,
      memoryCacheBytes: config.memoryCacheBytes ?? DEFAULT_MEMORY_CACHE_BYTES,
      ...(config.prefetch === false ? { prefetch: false } : {}),
      ...(cvmfsRoot !== undefined ? { cvmfs: new CvmfsSource(cvmfsRoot) } : {}),
      log: config.log,
    });
    disposers.push(() => layers.close());

    const images = createImageFilesystem({
      client,
      layers,
      ...(layers.cvmfs ? { cvmfs: new CvmfsCatalog(layers.cvmfs, config.log) } : {}),
      ...(config.platform ? { platform: config.platform } : {}),
      log: config.log,
      figures: () => layers.figures(),
      cacheSpace: () => ({ totalBytes: config.cacheSize, usedBytes: layers.stats().disk.bytes }),
    });
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= disposeAll());
    const reader: Reader = { images, platform: config.platform, figures: () => layers.figures(), close };
    if (mounting === undefined) {
      disposers.push(() => images.close());
      return reader;
    }

    // Records which files each image's workload read (tocfs stats --accessed) and counts FUSE calls.
    const recorded: Filesystem = recordAccesses(images, { log: config.log });
    const trace = process.env['TOCFS_TRACE'];
    const fs = trace ? new OpTrace(recorded, trace) : recorded;
    disposers.push(() => fs.close()); // and the namespace inside

    const mount = await mountFilesystem(fs, mounting.mountpoint, {
      allowOther: mounting.allowOther ?? true,
      allowSuid: !!mounting.allowSuid,
      handleSignals: mounting.handleSignals ?? true,
      debug: !!mounting.debug,
      readTimeoutMs: fetchTimeoutMs,
      log: config.log,
    });
    disposers.push(() => mount.unmount());

    // However the mount ends, close the rest behind it.
    const closed = mount.closed.then(close);
    return { ...reader, mount, closed, close: () => close().then(() => closed) };
  } catch (err) {
    await disposeAll();
    throw err;
  }
}

/** A cache dir the daemon cannot write is the user's mistake: one line naming it, not a Node stack (issue 21). */
async function checkCacheDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new InvalidOptionError('--cache-dir', `cannot write to ${dir} (${code}): choose a writable directory`);
  }
}

/** The CVMFS repository to use: `--cvmfs DIR` (which must be a directory), else the default when present. */
async function cvmfsRootOf(config: ReaderConfig): Promise<string | undefined> {
  if (config.cvmfs === false) return undefined;
  const root = config.cvmfs ?? DEFAULT_CVMFS;
  if (await CvmfsSource.available(root)) return root;
  if (config.cvmfs !== undefined) throw new InvalidOptionError('--cvmfs', `${root} is not a directory`);
  return undefined;
}
