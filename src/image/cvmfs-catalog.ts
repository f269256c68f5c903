/**
 * Image-level decisions when a CVMFS repository of unpacked images is configured (DESIGN.md §2, §3.5):
 *
 * - Manifest: the registry is asked first (tags move, and its answer wins); DUCC's record
 *   `.metadata/HOST/REPO:TAG/manifest.json` is used when the registry is unreachable. When both exist and
 *   disagree, the log says so. A record that matches vouches for its layers (DUCC writes it only after
 *   ingesting all of them), so their `layerfs` are served without the registry.
 * - Config: from the registry; an image whose manifest came from CVMFS (registry unreachable) gets an
 *   empty config, logged, rather than failing.
 * - Flat trees: when some layer of the image is not on CVMFS but `.flat/CFG[0:2]/CFG` is, that tree (the
 *   whole rootfs, whiteouts applied, with `.singularity.d`) is the image.
 * - Host names as DUCC writes them: Docker Hub is `registry.hub.docker.com`.
 */
import { TocfsError, isTocfsError } from '../errors.js';
import type { RegistryClient, ResolvedImage } from '../registry/client.js';
import { digestOf } from '../registry/digest.js';
import { parseManifest } from '../registry/manifest.js';
import { formatReference } from '../registry/reference.js';
import type { FetchedManifest, ImageConfig, ImageManifest, ImageReference, Platform, RepositoryRef } from '../registry/types.js';
import type { Layer } from '../layers/layer.js';

/** Docker Hub's names, as users and tools write them, and the one DUCC uses for paths on unpacked.cern.ch. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const DUCC_DOCKER_HUB = 'registry.hub.docker.com';

/** The registry host as DUCC writes it in `.metadata/` and public paths. */
export function duccHost(registry: string): string {
  return DOCKER_HUB_ALIASES.has(registry) ? DUCC_DOCKER_HUB : registry;
}

export interface CatalogResolved extends ResolvedImage {
  /** True when the manifest is DUCC's record on CVMFS because the registry could not be reached. */
  readonly fromCvmfs: boolean;
}

/** Registry errors that say "could not ask", as opposed to a definite answer (NOT_FOUND, DENIED...). */
function unreachable(err: unknown): boolean {
  return isTocfsError(err) && (err.code === 'SOURCE_UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'PROTOCOL');
}

/**
 * What the catalog asks of the CVMFS layers the layer service serves (src/layers/cvmfs/cvmfs-layers.ts):
 * whether a layer is published, DUCC's image records, the flat trees, and which layers a record vouches for.
 */
export interface CvmfsLayerSet {
  readonly source: {
    /** 'absent' when CVMFS has no `layerfs` for the digest. */
    layerState(digest: string): Promise<string>;
    metadataManifest(host: string, repository: string, tag: string): Promise<Uint8Array | undefined>;
  };
  confirm(digests: Iterable<string>): void;
  openFlat(configDigest: string): Promise<Layer | undefined>;
}

export class CvmfsCatalog {
  readonly layers: CvmfsLayerSet;
  readonly #log: (line: string) => void;

  constructor(layers: CvmfsLayerSet, log: (line: string) => void) {
    this.layers = layers;
    this.#log = log;
  }

  async resolve(
    client: Pick<RegistryClient, 'resolve'>,
    ref: ImageReference,
    platform: Platform | undefined,
    signal?: AbortSignal,
  ): Promise<CatalogResolved> {
    const shown = formatReference(ref);
    const tag = ref.digest === undefined ? (ref.tag ?? 'latest') : undefined;
    const record = tag === undefined ? Promise.resolve(undefined) : this.#record(ref, tag);
    record.catch(() => {});
    let resolved: ResolvedImage;
    try {
      resolved = await client.resolve(ref, platform, { ...(signal && { signal }) });
    } catch (err) {
      if (!unreachable(err)) throw err;
      const rec = await record.catch((recErr: unknown) => {
        this.#log(`image ${shown}: DUCC record unusable: ${(recErr as Error).message}`);
        return undefined;
      });
      if (rec === undefined) throw err;
      this.#log(`image ${shown}: registry unreachable (${(err as Error).message}); using DUCC's manifest record ${rec.digest} from CVMFS`);
      this.layers.confirm(rec.document.layers.map((l) => l.digest));
      return { ref: { ...ref, digest: rec.digest }, manifest: rec, digest: rec.digest, fromCvmfs: true };
    }
    const rec = await record.catch(() => undefined);
    if (rec !== undefined) {
      if (rec.digest === resolved.manifest.digest || rec.digest === resolved.digest) {
        this.layers.confirm(rec.document.layers.map((l) => l.digest));
      } else {
        this.#log(`image ${shown}: the registry resolves it to ${resolved.manifest.digest}, DUCC's record on CVMFS says ${rec.digest} (the tag moved): the registry's answer wins`);
      }
    }
    return { ...resolved, fromCvmfs: false };
  }

  /** The config from the registry; for a manifest from CVMFS (registry unreachable) an empty one, logged. */
  async config(
    client: Pick<RegistryClient, 'getConfig'>,
    repo: RepositoryRef,
    resolved: CatalogResolved,
    signal?: AbortSignal,
  ): Promise<ImageConfig> {
    if (!resolved.fromCvmfs) return (await client.getConfig(repo, resolved.manifest, { ...(signal && { signal }) })).document;
    this.#log(`image ${formatReference(resolved.ref)}: config ${resolved.manifest.document.config.digest} not fetched (registry unreachable): served without it`);
    return {};
  }

  /** The `.flat` tree to serve the image from, when some of its layers are not on CVMFS and it is there. */
  async flat(manifest: ImageManifest, shown: string): Promise<Layer | undefined> {
    const states = await Promise.all(manifest.layers.map((l) => this.layers.source.layerState(l.digest)));
    if (!states.includes('absent')) return undefined;
    const flat = await this.layers.openFlat(manifest.config.digest);
    if (flat !== undefined) this.#log(`image ${shown}: ${states.filter((s) => s === 'absent').length} of ${states.length} layers not on CVMFS; serving DUCC's flat tree for config ${manifest.config.digest}`);
    return flat;
  }

  async #record(ref: ImageReference, tag: string): Promise<FetchedManifest<ImageManifest> | undefined> {
    const bytes = await this.layers.source.metadataManifest(duccHost(ref.registry), ref.repository, tag);
    if (bytes === undefined) return undefined;
    const document = parseManifest(bytes, undefined);
    if (document.kind !== 'manifest') {
      throw new TocfsError('FORMAT', `DUCC record for ${formatReference(ref)} is an index, not an image manifest`);
    }
    return { document, bytes, digest: digestOf(bytes), mediaType: document.mediaType };
  }
}
