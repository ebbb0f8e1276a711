/**
 * kvm-unit-tests in the project's checks, the quick part: the suite is built from
 * ../shared/kvm-unit-tests into build/ when gcc -m32 is there (skipped, with the reason,
 * where it is not; the build needs the host's gcc, never an i386 program run on the host), and
 * the fast entries test/conformance/kvm-unit-tests.expected says previrt passes must still pass.
 * The whole suite, slow entries included, is `npm run conformance`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  buildSuite,
  canBuildSuite,
  i386Entries,
  readExpected,
  runEntry,
  suiteSource,
} from './kvmUnitTests.ts';

/**
 * Fast entries (each at most about a second on the host) that previrt passes, among them those
 * of the local APIC and fw_cfg (every one), task switches (taskswitch, eventinj's #PF task),
 * NMI (eventinj), the TSC-deadline timer (vmexit_tscdeadline_immed), SMAP/SMEP (smap), UMIP
 * (umip), RDTSCP (tsc) and EFER (la57).
 */
const QUICK = [
  'cmpxchg8b',
  'setjmp',
  'smptest',
  'umip',
  'smap',
  'tsc',
  'la57',
  'taskswitch',
  'eventinj',
  'vmexit_mov_to_cr8',
  'vmexit_ipi',
  'vmexit_tscdeadline_immed',
  'vmexit_inl_pmtimer',
];

const skip = existsSync(suiteSource())
  ? canBuildSuite()
  : `the suite is not at ${suiteSource()} (PREVIRT_KVM_UNIT_TESTS=DIR)`;

describe('kvm-unit-tests on the raw PC', { skip }, () => {
  test('the quick entries pass, as kvm-unit-tests.expected says', () => {
    const dir = buildSuite();
    const expected = readExpected();
    const entries = i386Entries(dir);
    for (const name of QUICK) {
      assert.equal(expected.get(name)?.outcome, 'PASS', `${name} is a PASS in the expected file`);
      const entry = entries.find((e) => e.name === name);
      assert.ok(entry !== undefined, `${name} is an i386 entry of unittests.cfg`);
      const r = runEntry(dir, entry, 400_000_000);
      assert.equal(r.outcome, 'PASS', `${name}: ${r.detail}\n${r.output.slice(-2000)}`);
    }
  });

  test('a test runs the same twice: the same output and instruction count', () => {
    const dir = buildSuite();
    const entry = i386Entries(dir).find((e) => e.name === 'eventinj');
    assert.ok(entry !== undefined);
    const a = runEntry(dir, entry, 200_000_000);
    const b = runEntry(dir, entry, 200_000_000);
    assert.equal(a.output, b.output);
    assert.equal(a.instructions, b.instructions);
  });

  test('every i386 entry has an expected outcome, and every listed name is an entry', () => {
    const names = i386Entries(buildSuite()).map((e) => e.name);
    const listed = [...readExpected().keys()];
    assert.deepEqual([...listed].sort(), [...names].sort());
  });
});
