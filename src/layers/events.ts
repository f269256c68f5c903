/**
 * The diagnostics channels of src/layers (STYLE.md item 12). Failures that do not fail a read (a cache
 * that could not be written, a corrupt cache file, a background prefetch) are reported here and nowhere
 * else: nothing in src/layers prints.
 */
import { channel } from 'node:diagnostics_channel';

/** `{ layer, start, end, bytes, spans, startedMs, ms }`: one range read from a source (`startedMs`: performance.now()). */
export const fetchRangeChannel = channel('tocfs:fetch:range');
/** `{ layer, path, chunk, fileOffset, expected, actual?, attempt, error? }`: a chunk that failed verification. */
export const verifyFailChannel = channel('tocfs:verify:fail');
/** `{ store: 'chunks' | 'tocs', digest, file, reason }`: a cache file whose bytes did not verify; deleted. */
export const cacheCorruptChannel = channel('tocfs:cache:corrupt');
/** `{ store, op, digest?, error }`: a cache operation that failed; the read it served went on without it. */
export const cacheErrorChannel = channel('tocfs:cache:error');
/** `{ layer, error }`: a background prefetch that failed; reads fetch what they need themselves. */
export const prefetchFailChannel = channel('tocfs:prefetch:fail');

export function publish(ch: ReturnType<typeof channel>, message: object): void {
  if (ch.hasSubscribers) ch.publish(message);
}
