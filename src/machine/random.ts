/**
 * A small deterministic PRNG (mulberry32) returning numbers in [0, 1): the seeded randomness of
 * the simulation (the link's fault injector, the client machine's sequence numbers and stream).
 * Same seed, same sequence, on every host. Its whole state is one u32, so a snapshot saves it
 * as a number (`Mulberry32.state`).
 */
export class Mulberry32 {
  /** The generator's state (u32): save it, and set it to go on from there. */
  state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    const a = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** The generator as a function, for callers that need no snapshot of it. */
export function mulberry32(seed: number): () => number {
  const g = new Mulberry32(seed);
  return () => g.next();
}
