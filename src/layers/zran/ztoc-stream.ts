/**
 * A gzip inflater stream that also builds the layer's zTOC (ztoc-builder.ts), for a whole-layer pull that
 * should leave the layer seekable behind it (DESIGN.md §2 source 5): the tar bytes flow on as from
 * `zlib.createGunzip`, and `built` holds the zTOC once the stream has ended.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ZtocBuilder, type BuiltZtoc, type ZtocBuilderOptions } from './ztoc-builder.js';

/** Network chunks (16-64 KiB) are gathered: one thread-pool hop per batch, not per chunk. */
const BATCH_BYTES = 1 << 20;

export class ZtocInflater extends Transform {
  readonly #builder: ZtocBuilder;
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #built: BuiltZtoc | undefined;

  constructor(opts: ZtocBuilderOptions) {
    super();
    this.#builder = new ZtocBuilder(opts);
  }

  /** The zTOC of everything that went through; undefined before the stream ended. */
  get built(): BuiltZtoc | undefined {
    return this.#built;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (this.#batchBytes < BATCH_BYTES) return done();
    this.#pushBatch().then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.#pushBatch().then(() => {
      this.#built = this.#builder.end();
      done();
    }, done);
  }

  async #pushBatch(): Promise<void> {
    if (this.#batchBytes === 0) return;
    const input = this.#batch.length === 1 ? this.#batch[0]! : Buffer.concat(this.#batch, this.#batchBytes);
    this.#batch = [];
    this.#batchBytes = 0;
    for (const out of await this.#builder.push(input)) this.push(out);
  }
}
