/**
 * A whole blob as a stream, checked against its descriptor's digest and size as it flows. A broken
 * transfer resumes where it stopped (`Range: bytes=N-`), so a long layer download survives a reset.
 *
 * The consumer must not trust (act on, cache, or show) any chunk before the iteration has finished
 * without error: only the end proves the bytes are the blob, and a mismatch is thrown there as a
 * DigestMismatchError (BAD_DATA).
 */
import { FormatError, TocfsError } from '../errors.js';
import { blobPath } from './blob-location.js';
import { openBlob, type BlobDeps, type OpenedBlob } from './blobs.js';
import { createDigestVerifier } from './digest.js';
import { contentLength, describe, drop, header, parseContentRange, statusError, TransientError } from './http.js';
import { afterFailure } from './retry.js';
import type { Descriptor, RepositoryRef } from './types.js';

export async function* streamBlob(
  deps: BlobDeps,
  repo: RepositoryRef,
  blob: Descriptor,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  const { digest, size } = blob;
  const verifier = createDigestVerifier(digest);
  if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(`blob ${digest}: invalid size ${size}`);
  const ctx = deps.transport.context(repo.registry, 'GET', blobPath(repo.repository, digest));
  let failures = 0;
  const recover = (err: unknown): Promise<void> => afterFailure(ctx, deps.policy, ++failures, err, signal, deps.hooks);

  let offset = 0;
  while (offset < size) {
    let opened: OpenedBlob;
    let skip: number;
    try {
      opened = await openBlob(deps, repo, digest, offset === 0 ? {} : { range: `bytes=${offset}-${size - 1}` }, signal);
      skip = await expectBody(opened, digest, offset, size);
    } catch (err) {
      await recover(err);
      continue;
    }
    const { res } = opened;
    const chunks = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    let failure: unknown;
    try {
      for (;;) {
        let step: IteratorResult<Buffer>;
        try {
          step = await chunks.next();
        } catch (err) {
          failure = err;
          break;
        }
        if (step.done) break;
        let chunk: Uint8Array = step.value;
        if (skip > 0) {
          // The server ignored our resume Range and started from byte 0 again.
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) continue;
        }
        if (offset + chunk.length > size) {
          throw new TocfsError('BAD_DATA', `${describe(opened.ctx)}: blob is longer than its descriptor's ${size} bytes`);
        }
        verifier.update(chunk);
        offset += chunk.length;
        yield chunk;
      }
    } finally {
      // Ends the request when the consumer stops early or a check fails; a no-op once fully read.
      drop(res.body);
    }
    if (failure === undefined && offset < size) {
      failure = new TransientError(`body ended after ${offset} of ${size} bytes`, undefined, opened.ctx);
    }
    if (failure !== undefined) await recover(failure);
  }
  verifier.verify(`blob ${digest}`);
}

/** Checks the status and framing of a (resumed) blob GET; returns how many leading bytes to skip. */
async function expectBody({ res, ctx }: OpenedBlob, digest: string, offset: number, size: number): Promise<number> {
  const n = contentLength(res);
  if (res.statusCode === 200) {
    if (n !== undefined && n !== size) {
      drop(res.body);
      throw new TocfsError('BAD_DATA', `${describe(ctx)}: blob of ${n} bytes, its descriptor says ${size}`);
    }
    return offset;
  }
  if (res.statusCode === 206 && offset > 0) {
    const cr = parseContentRange(header(res, 'content-range'));
    if (!cr || cr.start !== offset || cr.end !== size - 1 || (n !== undefined && n !== size - offset)) {
      drop(res.body);
      const got = header(res, 'content-range') ?? 'no Content-Range';
      throw new TocfsError('PROTOCOL', `${describe(ctx)}: resumed at byte ${offset} but got ${got}`);
    }
    return 0;
  }
  throw await statusError(ctx, res, `blob ${digest}`);
}
