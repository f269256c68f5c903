// Small pieces for tests that hold a `Layer` (src/layers/layer.ts).
import type { Layer, LayerFigures, LayerFormat } from '../../src/layers/layer.js';

/** Bytes of the file at `path` of a layer, as a reader that looked it up first gets them. */
export function readPath(layer: Layer, path: string, offset: number, length: number): Promise<Uint8Array> {
  const entry = layer.index.lookup(path);
  if (entry === undefined) return Promise.reject(new Error(`test: no ${path} in layer ${layer.digest}`));
  return layer.read(entry, offset, length);
}

/** The contract's figures for a fake layer that counts nothing. */
export function noFigures(format: LayerFormat): () => LayerFigures {
  return () => ({ format, tocSource: 'blob', source: 'registry', blobBytes: 0, bytesFetched: 0, bytesCache: 0, fetchedRatio: 0 });
}
