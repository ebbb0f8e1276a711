/**
 * `npm run cpu-fuzz -- [--instructions N] [--seed S]`: executes N random instructions (default
 * 5,000,000) at CPL 0 and again at CPL 3 (test/x86/fuzz.ts) and prints what happened. Any host
 * exception escapes and fails the run; architectural faults are counted by vector.
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
