/**
 * zstd decompression off the JS thread (DESIGN.md §5: every FUSE op runs on the JS thread, so a large
 * chunk must not be decompressed there). zstd-napi is synchronous, unlike node:zlib's async API, so large
 * spans go to a small pool of worker threads; small ones (most files of an image) decompress inline,
 * where a worker round trip would cost more than the work (bench/zstd-throughput.ts).
 *
 * The worker is a self-contained CommonJS script (eval), so it runs the same from dist/ and under the
 * test loader; its loop is `zstdDecompressBounded` of src/formats/zstd/decompress.ts, which the tests
 * compare it against byte for byte.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TocfsError } from '../../errors.js';
import { zstdSpanError } from '../../formats/zstd/codec.js';
import { ZstdDataError, zstdDecompressInline } from '../../formats/zstd/decompress.js';
import type { TocCodec } from '../../formats/toc.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const binding = require(workerData.binding);
const dctx = new binding.DCtx();
function bounded(src, max) {
  if (max === 0 || src.length === 0) return Buffer.alloc(0);
  dctx.reset(binding.ResetDirective.sessionOnly);
  let hint = null;
  try { hint = binding.getFrameContentSize(src); } catch { hint = null; }
  let out = Buffer.allocUnsafe(Math.min(max, Math.max(hint || 0, 65536, src.length * 4)));
  let produced = 0, input = src;
  for (;;) {
    if (produced === out.length) {
      if (out.length >= max) break;
      const grown = Buffer.allocUnsafe(Math.min(max, out.length * 2));
      out.copy(grown, 0, 0, produced);
      out = grown;
    }
    let r;
    try { r = dctx.decompressStream(out.subarray(produced), input); }
    catch (e) { throw Object.assign(new Error(e.message), { reason: 'corrupt' }); }
    const [ret, p, c] = r;
    produced += p;
    input = input.subarray(c);
    if (input.length === 0) {
      if (ret === 0) break;
      if (p === 0 && produced < out.length) throw Object.assign(new Error('input ends inside a zstd frame (' + src.length + ' bytes read)'), { reason: 'truncated' });
    } else if (p === 0 && c === 0 && produced < out.length) {
      throw Object.assign(new Error('no progress decompressing'), { reason: 'corrupt' });
    }
  }
  return out.subarray(0, produced);
}
parentPort.on('message', ({ id, span, max }) => {
  try {
    const out = bounded(Buffer.from(span.buffer, span.byteOffset, span.byteLength), max);
    const copy = new Uint8Array(out.length);
    copy.set(out);
    parentPort.postMessage({ id, bytes: copy }, [copy.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: { reason: e.reason || 'corrupt', message: e.message } });
  }
});
`;

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
  readonly #binding: string;
  #next = 0;
  #seq = 0;
  #closed = false;

  constructor(opts: ZstdWorkerPoolOptions = {}) {
    this.#size = Math.max(1, opts.size ?? Math.min(2, availableParallelism()));
    this.#slots = new Array<Slot | undefined>(this.#size).fill(undefined);
    this.#binding = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
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
      slot.worker.postMessage({ id, span: copy, max: maxOutputBytes }, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s?.worker.terminate()));
  }

  #slot(i: number): Slot {
    const existing = this.#slots[i];
    if (existing) return existing;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { binding: this.#binding } });
    worker.unref(); // an idle pool never keeps the process alive
    const slot: Slot = { worker, jobs: new Map() };
    const done = (id: number): Job | undefined => {
      const job = slot.jobs.get(id);
      slot.jobs.delete(id);
      if (slot.jobs.size === 0) worker.unref();
      return job;
    };
    worker.on('message', (m: { id: number; bytes?: Uint8Array; error?: { reason: 'truncated' | 'corrupt'; message: string } }) => {
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
