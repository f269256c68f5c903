// A fake RangeSource over bytes in memory, modelled on stargz `sampleBlob`: it records every range, FAILS
// the test when a byte is fetched twice (unless told a refetch is expected), counts requests and bytes,
// and injects faults: errors, delays, gates (hold a read until released), bodies that arrive in two parts,
// and corrupted bytes.
import type { Test } from 'tap';
import type { ByteRange, RangeSource } from '../../src/layers/sources/range-source.js';
import { checkRange } from '../../src/layers/sources/range-source.js';

export type Fault =
  | { readonly error: Error }
  | { readonly delayMs: number }
  /** The read waits for this promise before answering. */
  | { readonly gate: Promise<unknown> }
  /**
   * A body that arrives in two parts: the read reports its bytes up to blob offset `headEnd` through
   * `onData` at once, then holds the rest until `gate` settles (and reports all of it).
   */
  | { readonly headEnd: number; readonly gate: Promise<unknown> }
  /** XOR 0xff into the byte at this blob offset, when the read covers it. */
  | { readonly corruptAt: number };

export interface FaultRule {
  readonly fault: Fault;
  /** Which reads it applies to; all when absent. */
  readonly match?: (range: ByteRange) => boolean;
  /** How many reads it applies to; unlimited when absent. */
  readonly times?: number;
}

export interface RecordingSource extends RangeSource {
  /** Every range read, in order of arrival. */
  readonly reads: ByteRange[];
  readonly requests: number;
  readonly bytes: number;
  /** Reads started and not yet answered. */
  readonly inFlight: number;
  /** Reads of bytes already read pass (instead of failing the test) while this is true. */
  allowRefetch: boolean;
  inject(rule: FaultRule): void;
  clearFaults(): void;
  /** Forget what was read (requests, bytes, and the duplicate check). */
  reset(): void;
}

export interface RecordingSourceOptions {
  readonly id?: string;
  readonly allowRefetch?: boolean;
}

export function recordingSource(t: Test, blob: Uint8Array, opts: RecordingSourceOptions = {}): RecordingSource {
  const id = opts.id ?? 'sha256:' + 'ab'.repeat(32);
  const rules: { rule: FaultRule; hits: number }[] = [];
  let reads: ByteRange[] = [];
  let bytes = 0;
  let inFlight = 0;

  const overlaps = (r: ByteRange): ByteRange | undefined => reads.find((p) => p.start < r.end && r.start < p.end);

  const source: RecordingSource = {
    id,
    size: blob.byteLength,
    get reads() {
      return reads;
    },
    get requests() {
      return reads.length;
    },
    get bytes() {
      return bytes;
    },
    get inFlight() {
      return inFlight;
    },
    allowRefetch: opts.allowRefetch ?? false,
    inject(rule) {
      rules.push({ rule, hits: 0 });
    },
    clearFaults() {
      rules.length = 0;
    },
    reset() {
      reads = [];
      bytes = 0;
    },
    async read(range, signal, readOpts) {
      checkRange(id, blob.byteLength, range);
      const seen = overlaps(range);
      if (seen && !source.allowRefetch) {
        t.fail(`recording source: bytes [${range.start}, ${range.end}) fetched twice (overlap with [${seen.start}, ${seen.end}))`);
      }
      reads.push({ start: range.start, end: range.end });
      inFlight++;
      try {
        let out = Buffer.from(blob.subarray(range.start, range.end));
        for (const r of rules) {
          if (r.rule.times !== undefined && r.hits >= r.rule.times) continue;
          if (r.rule.match && !r.rule.match(range)) continue;
          const f = r.rule.fault;
          if ('corruptAt' in f && (f.corruptAt < range.start || f.corruptAt >= range.end)) continue;
          r.hits++;
          if ('error' in f) throw f.error;
          if ('delayMs' in f) await new Promise((resolve) => setTimeout(resolve, f.delayMs));
          if ('headEnd' in f) {
            const head = Math.min(out.length, f.headEnd - range.start);
            if (head > 0) readOpts?.onData?.(head, out);
            await f.gate;
            readOpts?.onData?.(out.length, out);
          } else if ('gate' in f) await f.gate;
          if ('corruptAt' in f) out[f.corruptAt - range.start]! ^= 0xff;
        }
        signal?.throwIfAborted();
        bytes += out.length;
        return out;
      } finally {
        inFlight--;
      }
    },
  };
  return source;
}
