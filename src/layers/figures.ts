/**
 * The figures of DESIGN.md §1.4 (`user.tocfs.*`, `tocfs stats`), mount-wide and per layer, as the layer
 * service counts them.
 */
import type { LayerFigures } from './layer.js';

export interface Figures {
  /** Bytes received from registries: TOC tails, lazily fetched chunks, whole layers (and manifests, configs). */
  readonly bytesFetched: number;
  /** Bytes read from CVMFS unpacked copies (layer `layerfs` and `.flat` trees). */
  readonly bytesCvmfs: number;
  /**
   * Bytes that reads took from tocfs's own caches: from verified chunks in the memory and disk chunk
   * stores (a 128 KiB read of a cached 4 MiB chunk counts 128 KiB), and from whole layers on disk.
   */
  readonly bytesCache: number;
  /** HTTP requests sent to registries. */
  readonly requests: number;
  /** Verified chunk bytes not yet written to the disk cache: they wait for a pause in the fetches. */
  readonly bytesDiskPending: number;
  /** By layer digest; an image root shows only its own layers. */
  readonly layers: Readonly<Record<string, LayerFigures>>;
}
