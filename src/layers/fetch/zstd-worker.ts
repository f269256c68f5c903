/**
 * The worker thread of zstd-offload.ts: runs zstdDecompressBounded of src/formats/zstd/decompress.ts, the
 * one decompression loop, on the spans posted to it. Built as its own entry point next to the bundle
 * (scripts/bundle.mjs), and loaded from its .ts source under tsx.
 */
import { parentPort } from 'node:worker_threads';
import { ZstdDataError, zstdDecompressBounded } from '../../formats/zstd/decompress.js';

export interface ZstdJob {
  readonly id: number;
  readonly span: Uint8Array;
  readonly max: number;
}

export type ZstdReply =
  | { readonly id: number; readonly bytes: Uint8Array; readonly error?: undefined }
  | { readonly id: number; readonly bytes?: undefined; readonly error: { readonly reason: ZstdDataError['reason']; readonly message: string } };

const port = parentPort;
port?.on('message', ({ id, span, max }: ZstdJob) => {
  let reply: ZstdReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const out = zstdDecompressBounded(span, max);
    // A copy of exactly its bytes: `out` may be a view of a larger buffer, which would go along.
    const bytes = new Uint8Array(out.length);
    bytes.set(out);
    reply = { id, bytes };
    transfer.push(bytes.buffer);
  } catch (err) {
    reply = { id, error: { reason: err instanceof ZstdDataError ? err.reason : 'corrupt', message: (err as Error).message } };
  }
  port.postMessage(reply, transfer);
});
