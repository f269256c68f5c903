// Helpers of the throughput micro-benchmarks (bench/chunk-throughput.ts, bench/zstd-throughput.ts).

/** Runs `fn` over `items`, `width` at a time, in order of start. */
export async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** The middle sample (the upper one of an even count), as these benches have always reported. */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
