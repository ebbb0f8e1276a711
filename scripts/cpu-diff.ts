/**
 * `npm run cpu-diff -- [--cases N] [--seed S] [--filter TEXT] [--blocks]`: the long
 * differential run of previrt's CPU against the host CPU (test/x86/diff). N cases per instruction
 * form (default 200), forms whose assembly contains TEXT only; with --blocks every instruction
 * runs inside a compiled block instead of the interpreter. The host program runs natively, or
 * under qemu-i386 where the host cannot execute i386 programs (PREVIRT_I386=native|qemu forces
 * one; test/hostI386.ts); the first line says which. Prints cases run and passed per mnemonic
 * and the first mismatches; exits non-zero if any case differs.
 */
import { generateCases, runDifferential } from '../test/x86/diff/harness.ts';
import { i386ModeFromEnv, i386Runner, type I386Runner } from '../test/hostI386.ts';

function option(name: string, fallback: string): string {
  const k = process.argv.indexOf(name);
  return k >= 0 && k + 1 < process.argv.length ? process.argv[k + 1] : fallback;
}

const perForm = Number(option('--cases', '200'));
const seed = Number(option('--seed', String(Date.now() % 1_000_000)));
const filter = process.argv.includes('--filter') ? option('--filter', '') : undefined;
if (!Number.isInteger(perForm) || perForm < 1 || !Number.isInteger(seed)) {
  console.error('cpu-diff: --cases and --seed take integers');
  process.exit(2);
}
const cases = generateCases(perForm, seed, filter);
if (cases.length === 0) {
  console.error(`cpu-diff: no instruction form matches '${filter ?? ''}'`);
  process.exit(2);
}
let runner: I386Runner;
try {
  runner = i386Runner(i386ModeFromEnv());
} catch (e) {
  console.error(`cpu-diff: ${(e as Error).message}`);
  process.exit(2);
}
const blocks = process.argv.includes('--blocks');
console.log(
  `cpu-diff: ${cases.length} cases, seed ${seed}${blocks ? ', compiled blocks' : ''}; ${runner.description}`,
);
const result = runDifferential(cases, 'build/cpu-diff', blocks, runner);
for (const [name, r] of [...result.byMnemonic].sort()) {
  console.log(`${name.padEnd(12)} ${String(r.passed).padStart(6)} / ${r.run}`);
}
for (const m of result.mismatches.slice(0, 20)) {
  const regs = m.input.regs.map((v) => v.toString(16)).join(' ');
  console.log(
    `MISMATCH ${m.asm}: ${m.field} ${runner.via === 'native' ? 'host' : 'qemu-i386'} ${m.reference.toString(16)} previrt ${m.previrt.toString(16)} (regs ${regs}, flags ${m.input.flags.toString(16)})`,
  );
}
console.log(
  `cpu-diff: ${result.passed} of ${result.cases} cases match` +
    (blocks ? ` (${result.blockEntries} compiled blocks run)` : ''),
);
process.exit(result.passed === result.cases ? 0 : 1);
