/**
 * Helpers for the machine's unit tests: a clock whose time the test moves on, and the
 * save → JSON → restore round trip a snapshot takes.
 */
import type { DmaMemory } from './device.ts';
import { SimClock } from './clock.ts';

export interface TestClock {
  clock: SimClock;
  /** Moves time to `to` and fires what is due. */
  advance: (to: number) => void;
  now: () => number;
}

/** A simulated clock at `hz` whose time moves only when the test calls `advance`. */
export function testClock(hz = 2_800_000_000, start = 0): TestClock {
  let now = start;
  const clock = new SimClock(hz, () => now);
  return {
    clock,
    advance: (to) => {
      now = to;
      clock.fireDue(to);
    },
    now: () => now,
  };
}

/** What a snapshot file does to a state: JSON out and back in (a new process would see this). */
export function throughJson<T>(state: T): T {
  return JSON.parse(JSON.stringify(state)) as T;
}

/**
 * A second clock at the first one's time with its saved queue numbering: restore the devices
 * onto it, then `audit` says whether every pending event came back.
 */
export function cloneClock(from: TestClock): TestClock & { audit: () => string | undefined } {
  const saved = throughJson(from.clock.save());
  const twin = testClock(from.clock.hz, from.now());
  twin.clock.restore(saved);
  return { ...twin, audit: () => twin.clock.unrestored(saved) };
}

/** Bus-master access to a test's own memory: a transfer outside it fails, as off the end of RAM. */
export function ramDma(ram: Uint8Array): DmaMemory {
  return {
    read: (p, into) => {
      if (p < 0 || p + into.length > ram.length) return false;
      into.set(ram.subarray(p, p + into.length));
      return true;
    },
    write: (p, from) => {
      if (p < 0 || p + from.length > ram.length) return false;
      ram.set(from, p);
      return true;
    },
  };
}
