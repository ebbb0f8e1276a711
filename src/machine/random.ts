/**
 * A small deterministic PRNG (mulberry32) returning numbers in [0, 1): the seeded randomness of
 * the simulation (the link's fault injector, the client machine's sequence numbers and stream).
 * Same seed, same sequence, on every host.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
