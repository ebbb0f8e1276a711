// Seeded randomness for the tests and their fuzzers: the same seed gives the same run on every
// host, so a failure names a seed that reproduces it.

/** One step of xorshift32 (Marsaglia): the state after `x`, which is also the next number. */
export function xorshiftStep(x: number): number {
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** xorshift32: the next unsigned 32-bit number on each call. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => (x = xorshiftStep(x));
}

/**
 * Writes `writes` runs of 1 to 16 random bytes at random places inside `ranges` ([start, size]
 * pairs of guest-physical addresses), through `poke`: the whole-system fuzzers' way of wrecking
 * a running kernel's code and data.
 */
export function scribble(
  ranges: [number, number][],
  rand: () => number,
  writes: number,
  poke: (address: number, byte: number) => void,
): void {
  for (let k = 0; k < writes; k++) {
    const [base, size] = ranges[rand() % ranges.length];
    const at = base + (rand() % size);
    const n = 1 + (rand() % 16);
    for (let b = 0; b < n; b++) poke(at + b, rand() & 0xff);
  }
}
