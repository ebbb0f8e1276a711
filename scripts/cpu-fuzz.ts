/**
 * `npm run cpu-fuzz -- [--instructions N] [--block-instructions M] [--seed S]`: executes N random
 * instructions (default 5,000,000) at CPL 0 and again at CPL 3 (test/x86/fuzz.ts) and prints
 * what happened. Any host exception escapes and fails the run; architectural faults are counted
 * by vector. Then M random instructions (default 300,000; 0 skips it) per CPL run twice more,
 * interpreted and with every entry point compiled into a block at its first run: the events and
 * the CPU state at each of them must be the same (exit status 1 if not).
 */
import { fuzz } from '../test/x86/fuzz.ts';

function option(name: string, fallback: number): number {
  const k = process.argv.indexOf(name);
  const v = k >= 0 ? Number(process.argv[k + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) {
    console.error(`cpu-fuzz: ${name} takes a non-negative integer`);
    process.exit(2);
  }
  return v;
}

const instructions = option('--instructions', 5_000_000);
const blockInstructions = option('--block-instructions', 300_000);
const seed = option('--seed', Date.now() % 1_000_000);
for (const cpl of [0, 3] as const) {
  const t0 = performance.now();
  const r = fuzz(instructions, seed + cpl, cpl);
  const vectors = r.exceptionsByVector
    .map((n, v) => (n > 0 ? `#${v}:${n}` : ''))
    .filter((s) => s !== '')
    .join(' ');
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `CPL ${cpl}: ${r.instructions} instructions, ${r.events} events (${vectors}), ${r.shutdowns} shutdowns, seed ${seed + cpl}, ${s} s`,
  );
}
console.log('cpu-fuzz: no host exception');
if (blockInstructions > 0) {
  let differ = false;
  for (const cpl of [0, 3] as const) {
    const t0 = performance.now();
    const interpreted = fuzz(blockInstructions, seed + 10 + cpl, cpl);
    const compiled = fuzz(blockInstructions, seed + 10 + cpl, cpl, { blockThreshold: 1 });
    const same = JSON.stringify(compiled) === JSON.stringify(interpreted);
    differ ||= !same;
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `CPL ${cpl} with blocks: ${compiled.instructions} instructions, ${compiled.events} events, ` +
        `${same ? 'same as interpreted' : 'DIFFERENT from interpreted'}, seed ${seed + 10 + cpl}, ${s} s`,
    );
  }
  if (differ) {
    console.error('cpu-fuzz: compiled blocks and the interpreter disagree');
    process.exitCode = 1;
  } else console.log('cpu-fuzz: blocks agree with the interpreter');
}
