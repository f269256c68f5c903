/**
 * Picks, per layer, where its tree and bytes come from when a CVMFS repository is configured:
 *
 * - `layerfs` published (DUCC's `.metadata/origin.json` for the layer, or the image's manifest found in
 *   DUCC's `.metadata` record, which DUCC writes only once every layer is in): the layer is walked lazily
 *   on CVMFS and read from it (`CvmfsLayer`); the registry is asked only for files CVMFS fails to serve.
 * - `layerfs` present but unconfirmed (DUCC may still be ingesting it): when the layer has a TOC, the
 *   registry's TOC is the tree and CVMFS serves the bytes of every file it holds at the right size
 *   (`CvmfsBackedLayer`); without a TOC (or with the registry unreachable) the directory is walked as
 *   found, which is logged.
 * - no `layerfs`: the registry's layer.
 * One open per layer digest for the life of the service; a failed open is not remembered.
 */
import { CvmfsDirIndex } from './cvmfs-index.js';
import type { Layer, OpenLayerOptions } from '../layer.js';
import { CvmfsBackedLayer, CvmfsLayer } from './cvmfs-layer.js';
import type { CvmfsSource } from './cvmfs-source.js';
import { join } from 'node:path';
import { TOC_DIGEST_ANNOTATION } from '../toc/open-layer.js';
import type { Descriptor, RepositoryRef } from '../../registry/types.js';
import { SingleFlight } from '../../util/single-flight.js';

export type CvmfsServedLayer = CvmfsLayer | CvmfsBackedLayer;

export interface CvmfsLayersOptions {
  readonly source: CvmfsSource;
  /** The registry's copy of a layer: a TOC layer, or the whole layer when it has none. */
  openRegistry(repo: RepositoryRef, descriptor: Descriptor, opts?: OpenLayerOptions): Promise<Layer>;
  readonly log: (line: string) => void;
}

export class CvmfsLayers {
  readonly source: CvmfsSource;
  readonly #opts: CvmfsLayersOptions;
  readonly #opened = new Map<string, Layer | CvmfsServedLayer>();
  readonly #opening = new SingleFlight<Layer | CvmfsServedLayer>();
  readonly #served = new Map<string, CvmfsServedLayer>();
  /** Layer digests listed by a DUCC manifest record that matched the image being opened. */
  readonly #confirmed = new Set<string>();
  readonly #flats = new Map<string, CvmfsLayer>();
  readonly #flatOpening = new SingleFlight<CvmfsLayer>();

  constructor(opts: CvmfsLayersOptions) {
    this.source = opts.source;
    this.#opts = opts;
  }

  /** DUCC wrote these layers' image record, which it does only after ingesting every one of them. */
  confirm(digests: Iterable<string>): void {
    for (const d of digests) this.#confirmed.add(d);
  }

  open(repo: RepositoryRef, descriptor: Descriptor, opts: OpenLayerOptions = {}): Promise<Layer | CvmfsServedLayer> {
    const key = descriptor.digest;
    const opened = this.#opened.get(key);
    if (opened !== undefined) return Promise.resolve(opened);
    return this.#opening.run(key, async () => {
      const layer = await this.#open(repo, descriptor, opts);
      this.#opened.set(key, layer);
      return layer;
    });
  }

  /** A `.flat` tree for the config digest, served as the image's one layer; undefined when there is none. */
  async openFlat(configDigest: string): Promise<CvmfsLayer | undefined> {
    const dir = await this.source.flatDir(configDigest);
    if (dir === undefined) return undefined;
    const flat = this.#flats.get(configDigest);
    if (flat !== undefined) return flat;
    return this.#flatOpening.run(configDigest, async () => {
      const index = await CvmfsDirIndex.open(dir, { whiteouts: false, format: 'cvmfs-flat' });
      const layer = new CvmfsLayer({ digest: configDigest, index, source: this.source, log: this.#opts.log });
      this.#served.set(`flat:${configDigest}`, layer);
      this.#flats.set(configDigest, layer);
      return layer;
    });
  }

  /** Every layer CVMFS serves (or backs) so far. */
  served(): CvmfsServedLayer[] {
    return [...this.#served.values()];
  }

  async #open(repo: RepositoryRef, descriptor: Descriptor, opts: OpenLayerOptions = {}): Promise<Layer | CvmfsServedLayer> {
    const { digest } = descriptor;
    const state = await this.source.layerState(digest);
    if (state === 'absent') return this.#opts.openRegistry(repo, descriptor, opts);
    const layerfs = join(this.source.layerDir(digest)!, 'layerfs');
    // The registry's copy for files CVMFS fails to serve: through the image's SOCI index where it has one.
    const registry = (): Promise<Layer> => this.#opts.openRegistry(repo, descriptor, opts.image ? { image: opts.image } : {});
    if (state === 'unconfirmed' && !this.#confirmed.has(digest)) {
      if (descriptor.annotations?.[TOC_DIGEST_ANNOTATION] !== undefined) {
        try {
          const inner = await this.#opts.openRegistry(repo, descriptor, opts);
          const backed = new CvmfsBackedLayer({ inner, layerfs, source: this.source, log: this.#opts.log });
          this.#served.set(digest, backed);
          this.#opts.log(`layer ${digest}: ${layerfs} has no DUCC record yet (still ingesting?): tree from the registry's TOC, bytes from CVMFS where present`);
          return backed;
        } catch (err) {
          this.#opts.log(`layer ${digest}: ${layerfs} has no DUCC record and the registry's TOC failed (${(err as Error).message}): serving the directory as found`);
        }
      } else {
        this.#opts.log(`layer ${digest}: ${layerfs} has no DUCC record and the layer no TOC: serving the directory as found`);
      }
    }
    let index: CvmfsDirIndex;
    try {
      index = await CvmfsDirIndex.open(layerfs, { whiteouts: true, format: 'cvmfs' });
    } catch (err) {
      this.#opts.log(`layer ${digest}: ${layerfs} unusable (${(err as Error).message}): the layer comes from the registry`);
      return this.#opts.openRegistry(repo, descriptor, opts);
    }
    const layer = new CvmfsLayer({ digest, index, source: this.source, fallback: registry, log: this.#opts.log });
    this.#served.set(digest, layer);
    return layer;
  }
}
