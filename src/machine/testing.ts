/**
 * Helpers for the machine's unit tests: a clock whose time the test moves on.
 */
import { SimClock } from './clock.ts';

/** A simulated clock at `hz` whose time moves only when the test calls `advance`. */
export function testClock(hz = 2_800_000_000): { clock: SimClock; advance: (to: number) => void } {
  let now = 0;
  const clock = new SimClock(hz, () => now);
  return {
    clock,
    advance: (to) => {
      now = to;
      clock.fireDue(to);
    },
  };
}
