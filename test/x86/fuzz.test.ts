import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz } from './fuzz.ts';

test('random bytes at CPL 0 and CPL 3 cause only architectural events', () => {
  for (const cpl of [0, 3] as const) {
    const r = fuzz(100_000, 42 + cpl, cpl);
    assert.ok(r.instructions > 10_000, `executed ${r.instructions}`);
    assert.ok(r.events > 0);
  }
});

test('random code compiled into blocks gives the interpreter’s events and states', () => {
  // Every entry point is compiled the first (or second) time it runs, so random code goes
  // through the block compiler; the digest covers the CPU state at every event.
  for (const seed of [7, 101]) {
    for (const cpl of [0, 3] as const) {
      const interpreted = fuzz(20_000, seed + cpl, cpl);
      for (const blockThreshold of [1]) {
        const compiled = fuzz(20_000, seed + cpl, cpl, { blockThreshold });
        assert.deepEqual(compiled, interpreted, `seed ${seed + cpl}, threshold ${blockThreshold}`);
      }
    }
  }
});
