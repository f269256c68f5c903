// In-memory Layers for image tests: a TOC index from raw entries, file bytes from a table.
import { createHash } from 'node:crypto';
import { indexToc } from '../../src/formats/toc-index.js';
import type { RawTocEntry, TocEntry } from '../../src/formats/toc.js';
import type { Layer } from '../../src/layers/layer.js';
import { noFigures } from '../support/layers.js';

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A raw entry spec; `content` on a reg entry becomes its size, digest and bytes. */
export type Spec = Omit<RawTocEntry, 'size' | 'offset' | 'digest' | 'chunkDigest'> & { readonly content?: string };

export interface FakeLayer extends Layer {
  readonly reads: string[];
}

let layerCount = 0;

export function fakeLayer(specs: readonly Spec[], digest = `sha256:${(++layerCount).toString(16).padStart(64, '0')}`): FakeLayer {
  const raw: RawTocEntry[] = [];
  const contents = new Map<string, Uint8Array>();
  let offset = 0;
  for (const { content, ...spec } of specs) {
    if (spec.type === 'reg' && content !== undefined && content !== '') {
      const bytes = Buffer.from(content);
      raw.push({ ...spec, size: bytes.length, offset, digest: sha(bytes), chunkDigest: sha(bytes) });
      offset += 10;
      contents.set(spec.name.replace(/^(\.?\/)+/, ''), bytes);
    } else {
      raw.push(spec.type === 'reg' ? { ...spec, size: 0 } : spec);
    }
  }
  const index = indexToc(raw, { format: 'estargz-gzip', tocOffset: offset + 10 });
  const reads: string[] = [];
  return {
    digest,
    index,
    tocSource: 'blob',
    figures: noFigures('estargz-gzip'),
    reads,
    async read(entry: TocEntry, off: number, length: number): Promise<Uint8Array> {
      reads.push(entry.path);
      if (index.lookup(entry.path) !== entry) throw new Error(`entry ${entry.path} is not from layer ${digest}`);
      const bytes = contents.get(entry.path) ?? new Uint8Array(0);
      return bytes.subarray(Math.min(off, bytes.length), Math.min(off + length, bytes.length));
    },
  };
}
