/**
 * `TOCFS_TRACE=FILE`: a timeline of one mount for profiling (issue 8's "where does the time go"): every
 * filesystem call the FUSE ops make and every registry request, one JSON line each, with its start and
 * duration in ms since the mount began. `bench/trace-summary.ts` reads it: the critical path of a
 * workload is the reads that waited on requests, and the gaps between them are the workload's own time.
 *
 * Lines: `{ "t": start, "ms": duration, "op": "lookup" | "open" | "readdir" | "read" | "xattrs", "path",
 * "offset"?, "length"?, "error"? }` and `{ "t", "ms", "op": "http", "method", "path", "status", "bytes",
 * "error"? }`. A read through an open file's handle is a "read" line like any other.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createWriteStream, fchmod, type WriteStream } from 'node:fs';
import { PRIVATE_FILE_MODE } from '../util/private-files.js';
import { requestChannel } from '../registry/figures.js';
import type { FileHandle, Filesystem, FsNode, FsSpace, ReadOptions } from '../image/filesystem.js';

interface RequestMessage {
  method: string;
  path: string;
  statusCode: number;
  bytes: number;
  startedMs: number;
  durationMs: number;
  error?: Error;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

export class OpTrace implements Filesystem {
  readonly #inner: Filesystem;
  readonly #out: WriteStream;
  readonly #t0 = performance.now();
  readonly #onRequest = (message: unknown): void => {
    const m = message as RequestMessage;
    this.#line({ t: round(m.startedMs - this.#t0), ms: round(m.durationMs), op: 'http', method: m.method, path: m.path, status: m.statusCode, bytes: m.bytes, ...(m.error ? { error: m.error.message } : {}) });
  };

  constructor(inner: Filesystem, file: string) {
    this.#inner = inner;
    // The trace names every path read: private to the daemon like its cache (DESIGN.md §2). A file that
    // already existed keeps its mode through O_TRUNC, hence the fchmod.
    this.#out = createWriteStream(file, { flags: 'w', mode: PRIVATE_FILE_MODE });
    this.#out.once('open', (fd: number) => fchmod(fd, PRIVATE_FILE_MODE, () => {}));
    this.#out.on('error', () => {}); // a trace that cannot be written must not take the mount down
    subscribe(requestChannel.name, this.#onRequest);
  }

  lookup(path: string, opts?: ReadOptions): Promise<FsNode> {
    return this.#timed({ op: 'lookup', path }, this.#inner.lookup(path, opts));
  }

  readdir(path: string, opts?: ReadOptions): Promise<readonly string[]> {
    return this.#timed({ op: 'readdir', path }, this.#inner.readdir(path, opts));
  }

  async open(path: string, opts?: ReadOptions): Promise<FileHandle> {
    const file = await this.#timed({ op: 'open', path }, this.#inner.open(path, opts));
    return {
      node: file.node,
      read: (offset, length, readOpts) => this.#timed({ op: 'read', path, offset, length }, file.read(offset, length, readOpts)),
    };
  }

  read(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array> {
    return this.#timed({ op: 'read', path, offset, length }, this.#inner.read(path, offset, length, opts));
  }

  xattrs(path: string, opts?: ReadOptions): Promise<ReadonlyMap<string, Uint8Array>> {
    return this.#timed({ op: 'xattrs', path }, this.#inner.xattrs(path, opts));
  }

  space(): FsSpace {
    return this.#inner.space?.() ?? { totalBytes: 0, usedBytes: 0, files: 0 };
  }

  async close(): Promise<void> {
    unsubscribe(requestChannel.name, this.#onRequest);
    await new Promise<void>((resolve) => this.#out.end(resolve));
    await this.#inner.close();
  }

  async #timed<T>(what: Record<string, unknown>, work: Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work;
    } catch (err) {
      what['error'] = (err as Error).message;
      throw err;
    } finally {
      this.#line({ t: round(started - this.#t0), ms: round(performance.now() - started), ...what });
    }
  }

  #line(record: object): void {
    this.#out.write(`${JSON.stringify(record)}\n`);
  }
}
