/**
 * `npm run bench:cpu`: guest MIPS of previrt's CPU on a CPU-bound workload (compiled C with
 * paging on: checksums, copies, sorting, function calls), with compiled blocks (the default) and
 * interpreting every instruction (`previrt run --interpret`), which must give the same
 * instruction count, simulated cycles and checksum; and of the npm package v86 on the same
 * multiboot ELF in the same run, with its JIT off and on. The instruction count between the
 * workload's markers is counted exactly by previrt and is the same on v86 (same binary, same
 * path), so MIPS = that count / host time between the markers on each emulator.
 *
 * Options: --rounds N (workload size, default 4), --runs N (best of N, default 3; the emulators
 * take turns run by run), --json, --skip-v86.
 */
import { join } from 'node:path';
import { buildWorkload } from './build.ts';
import { runOnPrevirt } from './previrt.ts';
import { runOnV86 } from './v86.ts';

interface Options {
  rounds: number;
  runs: number;
  json: boolean;
  skipV86: boolean;
}

function parse(argv: string[]): Options | string {
  const o: Options = { rounds: 4, runs: 3, json: false, skipV86: false };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '--json') o.json = true;
    else if (a === '--skip-v86') o.skipV86 = true;
    else if (a === '--rounds' || a === '--runs') {
      const n = Number(argv[++k]);
      if (!Number.isInteger(n) || n < 1) return `${a} needs a positive integer`;
      if (a === '--rounds') o.rounds = n;
      else o.runs = n;
    } else if (a === '--help' || a === '-h') {
      return 'usage: npm run bench:cpu -- [--rounds N] [--runs N] [--json] [--skip-v86]';
    } else return `unknown option '${a}'`;
  }
  return o;
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (typeof o === 'string') {
    console.error(`bench:cpu: ${o}`);
    return 2;
  }
  const log = (s: string): void => {
    if (!o.json) console.error(s);
  };
  const elf = buildWorkload(join('build', 'bench-cpu'), o.rounds);
  log(`workload: ${elf} (rounds ${o.rounds}), best of ${o.runs} runs`);

  // The emulators take turns, run by run, so a slow spell on a shared machine falls on all of
  // them alike; each keeps its best run.
  type Best = { ms: number; checksum: string };
  let previrt = runOnPrevirt(elf);
  let interpreter = runOnPrevirt(elf, false);
  const v86Best: { jit: boolean; best: Best | undefined }[] = o.skipV86
    ? []
    : [
        { jit: false, best: undefined },
        { jit: true, best: undefined },
      ];
  for (let r = 0; r < o.runs; r++) {
    if (r > 0) {
      const next = runOnPrevirt(elf);
      if (next.ms < previrt.ms) previrt = next;
      const alone = runOnPrevirt(elf, false);
      if (alone.ms < interpreter.ms) interpreter = alone;
    }
    for (const v of v86Best) {
      const result = await runOnV86(elf, v.jit, 600_000);
      if (v.best === undefined || result.ms < v.best.ms)
        v.best = { ms: result.ms, checksum: result.checksum };
    }
  }
  const mips = (ms: number): number => previrt.instructions / ms / 1000;
  log(`previrt: ${previrt.instructions} instructions in ${previrt.ms.toFixed(0)} ms`);

  const rows: { emulator: string; ms: number; mips: number; checksum: string }[] = [
    { emulator: 'previrt', ms: previrt.ms, mips: mips(previrt.ms), checksum: previrt.checksum },
    {
      emulator: 'previrt (interpreter only)',
      ms: interpreter.ms,
      mips: mips(interpreter.ms),
      checksum: interpreter.checksum,
    },
  ];
  if (interpreter.instructions !== previrt.instructions || interpreter.cycles !== previrt.cycles) {
    console.error(
      `bench:cpu: blocks and the interpreter disagree: ${previrt.instructions} / ${interpreter.instructions} instructions, ${previrt.cycles} / ${interpreter.cycles} cycles`,
    );
    return 1;
  }
  for (const v of v86Best) {
    const name = `v86 (JIT ${v.jit ? 'on' : 'off'})`;
    const best = v.best as Best;
    log(`${name}: ${best.ms.toFixed(0)} ms`);
    rows.push({ emulator: name, ms: best.ms, mips: mips(best.ms), checksum: best.checksum });
  }
  const mismatch = rows.find((r) => r.checksum !== previrt.checksum);
  if (o.json) {
    console.log(
      JSON.stringify({ rounds: o.rounds, instructions: previrt.instructions, rows }, null, 2),
    );
  } else {
    console.log(`| emulator | host ms | guest MIPS | previrt / this |`);
    console.log(`|---|---:|---:|---:|`);
    for (const r of rows) {
      const ratio = r.mips === 0 ? '' : (rows[0].mips / r.mips).toFixed(2);
      console.log(`| ${r.emulator} | ${r.ms.toFixed(0)} | ${r.mips.toFixed(1)} | ${ratio} |`);
    }
    console.log(
      `\n${previrt.instructions} guest instructions between the markers; checksum ${previrt.checksum}`,
    );
  }
  if (mismatch !== undefined) {
    console.error(
      `bench:cpu: checksum mismatch: ${mismatch.emulator} printed ${mismatch.checksum}, previrt ${previrt.checksum}`,
    );
    return 1;
  }
  return 0;
}

process.exitCode = await main();
