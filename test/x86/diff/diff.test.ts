import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateCases, runDifferential } from './harness.ts';
import { TEMPLATES } from './templates.ts';

for (const blocks of [false, true]) {
  const how = blocks ? 'compiled into blocks' : 'interpreted';
  test(`user-level instructions ${how} match the host CPU (registers, defined flags, memory)`, () => {
    const cases = generateCases(12, 0x5eed);
    const result = runDifferential(cases, 'build/cpu-diff', blocks);
    const shown = result.mismatches
      .slice(0, 10)
      .map(
        (m) => `${m.asm}: ${m.field} host ${m.host.toString(16)} previrt ${m.previrt.toString(16)}`,
      );
    assert.equal(result.cases, TEMPLATES.length * 12);
    assert.deepEqual(shown, []);
    assert.equal(result.passed, result.cases);
    // Each case's instruction runs in the block that starts after its POPF.
    if (blocks) assert.ok(result.blockEntries >= result.cases, `${result.blockEntries} blocks`);
  });
}
