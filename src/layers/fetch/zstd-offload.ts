/**
 * zstd decompression off the JS thread (DESIGN.md §5: every FUSE op runs on the JS thread, so a large
 * chunk must not be decompressed there). zstd-napi is synchronous, unlike node:zlib's async API, so large
 * spans go to a small pool of worker threads; small ones (most files of an image) decompress inline,
 * where a worker round trip would cost more than the work (bench/zstd-throughput.ts).
 *
 * The worker (zstd-worker.ts) runs `zstdDecompressBounded` of src/formats/zstd/decompress.ts, the same
 * loop as the inline path.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TocfsError } from '../../errors.js';
import { zstdSpanError } from '../../formats/zstd/codec.js';
import { ZstdDataError, zstdDecompressInline } from '../../formats/zstd/decompress.js';
import type { TocCodec } from '../../formats/toc.js';
import type { ZstdJob, ZstdReply } from './zstd-worker.js';

/**
 * The worker module next to this one, with this module's own extension: zstd-worker.ts beside the source
 * under tsx (a Worker inherits the parent's loader flags), zstd-worker.js beside tsc's output, and
 * dist/zstd-worker.mjs beside the bundle dist/tocfs.mjs, which scripts/bundle.mjs builds as a second
 * entry point.
 */
const WORKER_URL = new URL(`./zstd-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

interface Job {
  readonly resolve: (bytes: Uint8Array) => void;
  readonly reject: (err: unknown) => void;
  readonly spanLength: number;
}

interface Slot {
  readonly worker: Worker;
  readonly jobs: Map<number, Job>;
}

export interface ZstdWorkerPoolOptions {
  /** Worker threads; default min(2, available cores). */
  readonly size?: number;
}

export class ZstdWorkerPool {
  readonly #size: number;
  readonly #slots: (Slot | undefined)[];
  #next = 0;
  #seq = 0;
  #closed = false;

  constructor(opts: ZstdWorkerPoolOptions = {}) {
    this.#size = Math.max(1, opts.size ?? Math.min(2, availableParallelism()));
    this.#slots = new Array<Slot | undefined>(this.#size).fill(undefined);
  }

  /** Decompresses a span in a worker: at most `maxOutputBytes` bytes; BAD_DATA when it does not decode. */
  decompress(span: Uint8Array, maxOutputBytes: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new TocfsError('ABORTED', 'zstd worker pool closed'));
    const slot = this.#slot(this.#next++ % this.#size);
    const id = this.#seq++;
    // A copy: the span is usually a view of a larger fetched buffer other spans still use.
    const copy = new Uint8Array(span);
    return new Promise<Uint8Array>((resolve, reject) => {
      slot.jobs.set(id, { resolve, reject, spanLength: span.length });
      if (slot.jobs.size === 1) slot.worker.ref();
      const job: ZstdJob = { id, span: copy, max: maxOutputBytes };
      slot.worker.postMessage(job, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s?.worker.terminate()));
  }

  #slot(i: number): Slot {
    const existing = this.#slots[i];
    if (existing) return existing;
    const worker = new Worker(WORKER_URL);
    worker.unref(); // an idle pool never keeps the process alive
    const slot: Slot = { worker, jobs: new Map() };
    const done = (id: number): Job | undefined => {
      const job = slot.jobs.get(id);
      slot.jobs.delete(id);
      if (slot.jobs.size === 0) worker.unref();
      return job;
    };
    worker.on('message', (m: ZstdReply) => {
      const job = done(m.id);
      if (!job) return;
      if (m.bytes) job.resolve(m.bytes);
      else job.reject(zstdSpanError(job.spanLength, new ZstdDataError(m.error!.reason, m.error!.message)));
    });
    const fail = (err: unknown): void => {
      if (this.#slots[i] === slot) this.#slots[i] = undefined; // the next job starts a fresh worker
      for (const id of [...slot.jobs.keys()]) done(id)?.reject(new TocfsError('SOURCE_UNAVAILABLE', `zstd worker failed: ${(err as Error).message}`, { cause: err }));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.#slots[i] = slot;
    return slot;
  }
}

const ZSTD_FORMATS = new Set(['zstd-chunked', 'estargz-zstd']);

/** `codec` with its large spans decompressed in `pool`; gzip codecs come back unchanged (node:zlib is async). */
export function offloadLargeSpans(codec: TocCodec, pool: ZstdWorkerPool): TocCodec {
  if (!ZSTD_FORMATS.has(codec.format)) return codec;
  return Object.freeze({
    format: codec.format,
    footerLength: codec.footerLength,
    parseFooter: codec.parseFooter.bind(codec),
    decodeToc: codec.decodeToc.bind(codec),
    decompressSpan(span: Uint8Array, maxOutputBytes: number): Promise<Uint8Array> {
      try {
        const inline = zstdDecompressInline(span, maxOutputBytes);
        if (inline) return Promise.resolve(inline);
      } catch (err) {
        return Promise.reject(zstdSpanError(span.length, err));
      }
      return pool.decompress(span, maxOutputBytes);
    },
  });
}
