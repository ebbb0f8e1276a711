/**
 * `npm run conformance -- [--max-instructions N] [NAME...]`: kvm-unit-tests' i386 entries on
 * previrt's raw PC beside QEMU's results (test/conformance/kvmUnitTests.ts). Builds the suite
 * from ../shared/kvm-unit-tests (PREVIRT_KVM_UNIT_TESTS=DIR for another copy) into build/ the
 * first time, then runs every i386 entry of x86/unittests.cfg, or the ones named, and prints one
 * line per entry: previrt's outcome, the one test/conformance/kvm-unit-tests.expected expects
 * (`=` when they agree), QEMU's, the instructions run and the test's last word (or the
 * expected file's reason). Each test runs until it exits or has run its budget of
 * instructions: 3e9 (about 8 s of the host), or the entry's `instructions=N` in the expected
 * file; `--max-instructions N` sets every budget. Exits 1 if a result differs from the expected
 * file, 2 on bad usage or a failed build.
 */
import {
  buildSuite,
  canBuildSuite,
  DEFAULT_MAX_INSTRUCTIONS,
  i386Entries,
  qemuResults,
  readExpected,
  runEntry,
  suiteSource,
  summaryLine,
} from '../test/conformance/kvmUnitTests.ts';

const argv = process.argv.slice(2);
let maxInstructions = DEFAULT_MAX_INSTRUCTIONS;
let budgetGiven = false;
const names: string[] = [];
for (let k = 0; k < argv.length; k++) {
  if (argv[k] === '--max-instructions') {
    maxInstructions = Number(argv[++k]);
    budgetGiven = true;
    if (!Number.isFinite(maxInstructions) || maxInstructions <= 0) {
      console.error('conformance: --max-instructions takes a positive number');
      process.exit(2);
    }
  } else if (argv[k].startsWith('-')) {
    console.error(`conformance: unknown option '${argv[k]}'`);
    console.error('usage: npm run conformance -- [--max-instructions N] [NAME...]');
    process.exit(2);
  } else names.push(argv[k]);
}

const missing = canBuildSuite();
if (missing !== undefined) {
  console.error(`conformance: cannot build kvm-unit-tests: ${missing}`);
  process.exit(2);
}
let dir: string;
try {
  dir = buildSuite(suiteSource(), (line) => console.error(line));
} catch (e) {
  console.error(`conformance: building kvm-unit-tests failed: ${(e as Error).message}`);
  process.exit(2);
}
const qemu = qemuResults();
const expected = readExpected();
const entries = i386Entries(dir).filter((e) => names.length === 0 || names.includes(e.name));
const unknown = names.filter((n) => !entries.some((e) => e.name === n));
if (unknown.length > 0) {
  console.error(`conformance: no i386 entry named ${unknown.join(', ')}`);
  process.exit(2);
}

console.log(
  `${'test'.padEnd(43)}${'previrt'.padEnd(9)}${'expected'.padEnd(9)}${'QEMU'.padEnd(6)}${'instructions'.padStart(13)}  why`,
);
const tally = new Map<string, number>();
const differences: string[] = [];
const passed = new Set<string>();
for (const entry of entries) {
  const e = expected.get(entry.name);
  const r = runEntry(
    dir,
    entry,
    budgetGiven ? maxInstructions : (e?.maxInstructions ?? maxInstructions),
  );
  const q = qemu.get(entry.name) ?? '?';
  tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1);
  if (r.outcome === 'PASS') passed.add(entry.name);
  if (e?.outcome !== r.outcome)
    differences.push(`${entry.name} (${e?.outcome ?? 'not listed'} → ${r.outcome})`);
  const agrees = e?.outcome === r.outcome;
  const why =
    r.outcome === 'PASS'
      ? ''
      : agrees && e !== undefined
        ? e.reason
        : r.outcome === 'crash'
          ? r.detail
          : summaryLine(r.output);
  console.log(
    `${entry.name.padEnd(43)}${r.outcome.padEnd(9)}${(agrees ? '=' : (e?.outcome ?? '-')).padEnd(9)}${q.padEnd(6)}${r.instructions.toExponential(2).padStart(13)}  ${why}`,
  );
}
const counts = [...tally].map(([o, n]) => `${n} ${o}`).join(', ');
const qemuPasses = entries.filter((e) => qemu.get(e.name) === 'PASS');
const both = qemuPasses.filter((e) => passed.has(e.name));
console.log(
  `\n${entries.length} entries: ${counts}; QEMU passes ${qemuPasses.length}, previrt ${both.length} of those`,
);
if (differences.length > 0) {
  console.log(`differs from kvm-unit-tests.expected: ${differences.join(', ')}`);
  process.exitCode = 1;
}
