/**
 * A plain gzip layer read lazily through a zTOC (DESIGN.md §2 TOC source 4, §3.3): the zTOC's entries are
 * the tree, and a file's bytes come from the zran spans that cover them (span-reader.ts), each span
 * checked against its digest before it is inflated. The zTOC itself was checked when it was opened: its
 * blob against the SOCI index's descriptor, the index's subject against the image (soci-index.ts).
 */
import type { TocEntry, TocIndex } from '../../formats/toc.js';
import type { SociToc } from '../../formats/soci/ztoc-toc.js';
import type { SociSpan } from '../../formats/soci/zinfo.js';
import { clampedRange, firstChunkEndingAfter, ownRegularFile, ratio, type Layer, type LayerFigures, type LayerReadOptions } from '../layer.js';
import type { RangeSource } from '../sources/range-source.js';
import { SpanReader, type SpanReaderOptions, type SpanStores } from './span-reader.js';

export interface SociLayerOptions extends SpanReaderOptions {
  readonly toc: SociToc;
  readonly source: RangeSource;
  readonly stores: SpanStores;
  /** Where the zTOC came from this time: the registry, or tocfs's disk cache. */
  readonly tocSource: 'blob' | 'cache';
}

export class SociLayer implements Layer {
  readonly digest: string;
  readonly index: TocIndex;
  readonly tocSource: 'blob' | 'cache';
  readonly #toc: SociToc;
  readonly #source: RangeSource;
  readonly #reader: SpanReader;

  constructor(opts: SociLayerOptions) {
    this.digest = opts.source.id;
    this.index = opts.toc.index;
    this.tocSource = opts.tocSource;
    this.#toc = opts.toc;
    this.#source = opts.source;
    this.#reader = new SpanReader(this.digest, opts.source, opts.stores, opts);
  }

  /** Bytes [offset, offset + length) of one of this layer's regular files, clamped at its end. */
  async read(target: TocEntry, offset: number, length: number, signal?: AbortSignal, opts: LayerReadOptions = {}): Promise<Uint8Array> {
    const entry = ownRegularFile(this, target);
    const range = clampedRange(entry, offset, length);
    if (range.offset >= range.end) return new Uint8Array(0);
    const chunks: TocEntry['chunks'][number][] = [];
    for (let i = firstChunkEndingAfter(entry.chunks, range.offset); i < entry.chunks.length && entry.chunks[i]!.fileOffset < range.end; i++) {
      chunks.push(entry.chunks[i]!);
    }
    const spans: SociSpan[] = [];
    const used: number[] = [];
    for (const c of chunks) {
      const span = this.#toc.spans.spanOf(c.span!);
      if (spans.at(-1) !== span) {
        spans.push(span);
        used.push(0);
      }
      // A prefetch's read serves no reader: the figures count what readers took.
      if (!opts.background) used[used.length - 1]! += Math.min(c.fileOffset + c.size, range.end) - Math.max(c.fileOffset, range.offset);
    }
    const inflated = await this.#reader.read(spans, used, signal);
    const byIndex = new Map(spans.map((s, i) => [s.index, inflated[i]!]));
    const slice = (c: (typeof chunks)[number]): Uint8Array => {
      const from = Math.max(c.fileOffset, range.offset) - c.fileOffset;
      const to = Math.min(c.fileOffset + c.size, range.end) - c.fileOffset;
      return byIndex.get(c.span!)!.subarray(c.innerOffset + from, c.innerOffset + to);
    };
    // Most reads fall in one span: a view of the cached span, no copy.
    if (chunks.length === 1) return slice(chunks[0]!);
    const out = new Uint8Array(range.end - range.offset);
    for (const c of chunks) out.set(slice(c), Math.max(c.fileOffset, range.offset) - range.offset);
    return out;
  }

  figures(): LayerFigures {
    const f = this.#reader.fetched;
    return {
      format: 'soci',
      tocSource: this.tocSource,
      source: 'registry',
      blobBytes: this.#source.size,
      bytesFetched: f.bytesFetched,
      bytesCache: f.bytesFromMemory + f.bytesFromDisk,
      fetchedRatio: ratio(f.bytesFetched, this.#source.size),
      requests: f.requests,
    };
  }
}
