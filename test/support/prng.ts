// xorshift32 (Marsaglia): deterministic "random" numbers, so a test or bench does the same thing every run.

/** The raw generator: each call returns the next 32-bit state as an unsigned integer. A zero seed is never left, so pass a non-zero one. */
export function xorshift32(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Uniform numbers in [0, 1) from xorshift32. */
export function prng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 2 ** 32;
}
