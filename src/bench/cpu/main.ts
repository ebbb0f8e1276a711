/**
 * `npm run bench:cpu`: guest MIPS of previrt's CPU on CPU-bound workloads, with compiled blocks
 * (the default) and interpreting every instruction (`previrt run --interpret`), which must give
 * the same instruction count, simulated cycles and checksum; and of the npm package v86 (JIT off
 * and on) and qemu-system-i386 (TCG) on the same multiboot ELF in the same run. Two workloads:
 * `cpu` (workload/: the project's own — checksums, copies, sorting, function calls, paging on)
 * and `realcode` (realcode/: Linux's LZ4, heapsort and SHA-256 compiled unchanged from Debian's
 * linux-source-6.1: code nobody tuned for previrt). The instruction count between a workload's
 * markers is counted exactly by previrt and is the same on the others (same binary, same path),
 * so MIPS = that count / host time between the markers on each emulator.
 *
 * It runs as compiled JavaScript (`npm run bench:cpu` builds dist/ when stale), as the
 * `previrt` command does: the TypeScript sources through tsx measured about 3x slower.
 *
 * Options: --rounds N (workload size, default 4), --runs N (best of N, default 3; the emulators
 * take turns run by run), --workload cpu|realcode (default both), --json, --skip-v86,
 * --skip-qemu.
 */
import { join } from 'node:path';
import { buildWorkload, type Workload } from './build.ts';
import { runOnPrevirt } from './previrt.ts';
import { runOnQemu } from './qemu.ts';
import { runOnV86 } from './v86.ts';

interface Options {
  rounds: number;
  runs: number;
  json: boolean;
  skipV86: boolean;
  skipQemu: boolean;
  workloads: Workload[];
}

interface Row {
  emulator: string;
  ms: number;
  mips: number;
  checksum: string;
}

interface Table {
  workload: Workload;
  instructions: number;
  rows: Row[];
}

function parse(argv: string[]): Options | string {
  const o: Options = {
    rounds: 4,
    runs: 3,
    json: false,
    skipV86: false,
    skipQemu: false,
    workloads: ['cpu', 'realcode'],
  };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '--json') o.json = true;
    else if (a === '--skip-v86') o.skipV86 = true;
    else if (a === '--skip-qemu') o.skipQemu = true;
    else if (a === '--workload') {
      const w = argv[++k];
      if (w !== 'cpu' && w !== 'realcode') return `--workload needs cpu or realcode`;
      o.workloads = [w];
    } else if (a === '--rounds' || a === '--runs') {
      const n = Number(argv[++k]);
      if (!Number.isInteger(n) || n < 1) return `${a} needs a positive integer`;
      if (a === '--rounds') o.rounds = n;
      else o.runs = n;
    } else if (a === '--help' || a === '-h') {
      return 'usage: npm run bench:cpu -- [--rounds N] [--runs N] [--workload cpu|realcode] [--json] [--skip-v86] [--skip-qemu]';
    } else return `unknown option '${a}'`;
  }
  return o;
}

/** One workload on every emulator, taking turns run by run; a Table, or an error message. */
async function measure(
  o: Options,
  workload: Workload,
  log: (s: string) => void,
): Promise<Table | string> {
  const elf = buildWorkload(join('build', 'bench-cpu'), o.rounds, false, workload);
  const exiting = buildWorkload(join('build', 'bench-cpu'), o.rounds, true, workload);
  log(`${workload}: ${elf} (rounds ${o.rounds}), best of ${o.runs} runs`);
  // The emulators take turns, run by run, so a slow spell on a shared machine falls on all of
  // them alike; each keeps its best run.
  type Best = { ms: number; checksum: string };
  let previrt = runOnPrevirt(elf);
  let interpreter = runOnPrevirt(elf, false);
  const others: { name: string; run: () => Promise<Best>; best: Best | undefined }[] = [];
  if (!o.skipV86) {
    for (const jit of [false, true])
      others.push({
        name: `v86 (JIT ${jit ? 'on' : 'off'})`,
        run: () => runOnV86(elf, jit, 600_000),
        best: undefined,
      });
  }
  if (!o.skipQemu) {
    others.push({
      name: 'qemu-system-i386 (TCG)',
      run: () => runOnQemu(exiting, 600_000),
      best: undefined,
    });
  }
  for (let r = 0; r < o.runs; r++) {
    if (r > 0) {
      const next = runOnPrevirt(elf);
      if (next.ms < previrt.ms) previrt = next;
      const alone = runOnPrevirt(elf, false);
      if (alone.ms < interpreter.ms) interpreter = alone;
    }
    for (const other of others) {
      const result = await other.run();
      if (other.best === undefined || result.ms < other.best.ms) other.best = result;
    }
  }
  if (interpreter.instructions !== previrt.instructions || interpreter.cycles !== previrt.cycles) {
    return `${workload}: blocks and the interpreter disagree: ${previrt.instructions} / ${interpreter.instructions} instructions, ${previrt.cycles} / ${interpreter.cycles} cycles`;
  }
  const mips = (ms: number): number => previrt.instructions / ms / 1000;
  log(`${workload}: previrt: ${previrt.instructions} instructions in ${previrt.ms.toFixed(0)} ms`);
  const rows: Row[] = [
    { emulator: 'previrt', ms: previrt.ms, mips: mips(previrt.ms), checksum: previrt.checksum },
    {
      emulator: 'previrt (interpreter only)',
      ms: interpreter.ms,
      mips: mips(interpreter.ms),
      checksum: interpreter.checksum,
    },
  ];
  for (const other of others) {
    const best = other.best as Best;
    log(`${workload}: ${other.name}: ${best.ms.toFixed(0)} ms`);
    rows.push({ emulator: other.name, ms: best.ms, mips: mips(best.ms), checksum: best.checksum });
  }
  const mismatch = rows.find((r) => r.checksum !== previrt.checksum);
  if (mismatch !== undefined) {
    return `${workload}: checksum mismatch: ${mismatch.emulator} printed ${mismatch.checksum}, previrt ${previrt.checksum}`;
  }
  return { workload, instructions: previrt.instructions, rows };
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
  const tables: Table[] = [];
  for (const workload of o.workloads) {
    const table = await measure(o, workload, log);
    if (typeof table === 'string') {
      console.error(`bench:cpu: ${table}`);
      return 1;
    }
    tables.push(table);
  }
  if (o.json) {
    console.log(JSON.stringify({ rounds: o.rounds, workloads: tables }, null, 2));
    return 0;
  }
  for (const t of tables) {
    console.log(
      `\n${t.workload}: ${t.instructions} guest instructions between the markers; checksum ${t.rows[0].checksum}\n`,
    );
    console.log(`| emulator | host ms | guest MIPS | previrt / this |`);
    console.log(`|---|---:|---:|---:|`);
    for (const r of t.rows) {
      const ratio = r.mips === 0 ? '' : (t.rows[0].mips / r.mips).toFixed(2);
      console.log(`| ${r.emulator} | ${r.ms.toFixed(0)} | ${r.mips.toFixed(1)} | ${ratio} |`);
    }
  }
  return 0;
}

process.exitCode = await main();
