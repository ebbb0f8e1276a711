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
