import assert from 'node:assert/strict';
import { test } from 'node:test';
import { i386Runner, type I386Runner } from '../../hostI386.ts';
import { generateCases, runDifferential } from './harness.ts';
import { TEMPLATES } from './templates.ts';

/** Runs 12 cases per form against `runner` and asserts that every one matches. */
function check(runner: I386Runner, blocks: boolean): void {
  const cases = generateCases(12, 0x5eed);
  const result = runDifferential(cases, 'build/cpu-diff', blocks, runner);
  const shown = result.mismatches
    .slice(0, 10)
    .map(
      (m) =>
        `${m.asm}: ${m.field} ${runner.via} ${m.reference.toString(16)} previrt ${m.previrt.toString(16)}`,
    );
  assert.equal(result.cases, TEMPLATES.length * 12);
  assert.deepEqual(shown, []);
  assert.equal(result.passed, result.cases);
  // Each case's instruction runs in the block that starts after its POPF.
  if (blocks) assert.ok(result.blockEntries >= result.cases, `${result.blockEntries} blocks`);
}

for (const blocks of [false, true]) {
  const how = blocks ? 'compiled into blocks' : 'interpreted';
  test(`user-level instructions ${how} match the host CPU (registers, defined flags, memory)`, (t) => {
    // Natively, or under qemu-i386 if this host cannot execute i386 programs (PREVIRT_I386).
    const runner = i386Runner();
    t.diagnostic(runner.description);
    check(runner, blocks);
  });
}

// The qemu-i386 path forced (PREVIRT_I386=qemu), so that a host that runs the tests above
// natively checks the other reference too.
test('user-level instructions interpreted match qemu-i386 (the reference forced)', (t) => {
  const runner = i386Runner('qemu');
  t.diagnostic(runner.description);
  check(runner, false);
});
