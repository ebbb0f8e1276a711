#!/usr/bin/env node
// Benchmark: afterburner time against GNU as on the same large file of real gcc output.
// Compiles the repository's C sources with gcc -S -m32 -O2, concatenates copies (labels and
// symbols renamed per copy) up to --mb megabytes (default 32), then times, best of --runs (3):
//   as --32 on the file; `previrt afterburn` on it (a process, startup included) and the
//   afterburner in-process; as on the afterburned file.
// Prints figures; the goal is afterburner <= 0.5 x as. Not a test: nothing is asserted.
// Usage: node scripts/bench-afterburner.mjs [--mb N] [--runs N] [--keep DIR]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { register } from 'tsx/esm/api';

register();
const { afterburn } = await import('../src/afterburner/afterburn.ts');

const root = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const k = args.indexOf(name);
  return k >= 0 && args[k + 1] !== undefined ? args[k + 1] : fallback;
};
const megabytes = Number(option('--mb', '32'));
const runs = Number(option('--runs', '3'));
const keep = option('--keep', undefined);
if (!(megabytes > 0) || !(runs > 0)) {
  console.error('bench-afterburner: --mb and --runs need positive numbers');
  process.exit(2);
}

function cFiles(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'build' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) cFiles(path, out);
    else if (name.endsWith('.c')) out.push(path);
  }
  return out;
}

const dir = keep ?? mkdtempSync(join(tmpdir(), 'previrt-bench-ab-'));
try {
  // 1. Real gcc output: every C file of the repository that compiles freestanding.
  const includes = ['guest/include', 'guest/kernel', 'src/afterburner/include'].map(
    (d) => `-I${join(root, d)}`,
  );
  const units = [];
  for (const file of cFiles(root)) {
    const r = spawnSync(
      'gcc',
      ['-m32', '-O2', '-ffreestanding', '-fno-pie', '-S', '-o', '-', ...includes, file],
      {
        encoding: 'latin1',
        maxBuffer: 1 << 28,
      },
    );
    if (r.status === 0) units.push(r.stdout);
  }
  if (units.length === 0) throw new Error('no C file compiled');
  // 2. Copies with renamed labels and symbols until the size is reached.
  // Symbols a unit defines: labels, and .comm/.local/.set names (static data).
  const defined = (text) => [
    ...new Set(
      [
        ...text.matchAll(
          /^([A-Za-z_][\w.$]*):|^\s*\.(?:comm|lcomm|local|set|equ)\s+([A-Za-z_][\w.$]*)/gm,
        ),
      ].map((m) => m[1] ?? m[2]),
    ),
  ];
  const renames = units.map((unit) => {
    const names = defined(unit);
    return names.length === 0
      ? null
      : new RegExp(`\\b(${names.map((n) => n.replace(/[.$]/g, '\\$&')).join('|')})\\b`, 'g');
  });
  const target = megabytes * 1024 * 1024;
  const parts = [];
  let size = 0;
  for (let copy = 0; size < target; copy++) {
    for (const [u, unit] of units.entries()) {
      const rename = renames[u];
      let text = unit.replace(/\.L(?=\w)/g, `.L${copy}_${u}_`);
      if (rename !== null) text = text.replace(rename, `$1_${copy}_${u}`);
      parts.push(text);
      size += text.length;
      if (size >= target) break;
    }
  }
  const input = join(dir, 'big.s');
  writeFileSync(input, parts.join('\n'), 'latin1');
  const text = readFileSync(input, 'latin1');
  const lines = text.split('\n').length;

  const time = (fn) => {
    let best = Infinity;
    for (let k = 0; k < runs; k++) {
      const t0 = process.hrtime.bigint();
      fn();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return best;
  };
  const must = (r, what) => {
    if (r.status !== 0) throw new Error(`${what} failed: ${String(r.stderr).slice(0, 300)}`);
  };
  const asTime = time(() => must(spawnSync('as', ['--32', '-o', join(dir, 'big.o'), input]), 'as'));
  const output = join(dir, 'big.ab.s');
  const cliTime = time(() =>
    must(
      spawnSync(process.execPath, [
        join(root, 'bin', 'previrt.mjs'),
        'afterburn',
        input,
        '-o',
        output,
      ]),
      'previrt afterburn',
    ),
  );
  let report;
  const inTime = time(() => {
    report = afterburn(text, { file: input }).report;
  });
  const asBurnedTime = time(() =>
    must(spawnSync('as', ['--32', '-o', join(dir, 'big.ab.o'), output]), 'as (afterburned)'),
  );
  const outSize = statSync(output).size;
  const mb = (n) => (n / 1024 / 1024).toFixed(1);
  console.log(
    `input: ${mb(text.length)} MB of gcc -S -m32 -O2 output (${units.length} C files, ${lines} lines); ${report.total} sites`,
  );
  console.log(`as --32 on the input:                ${asTime.toFixed(2)} s`);
  console.log(
    `previrt afterburn (process):         ${cliTime.toFixed(2)} s  = ${(cliTime / asTime).toFixed(3)} x as`,
  );
  console.log(
    `afterburner in-process:              ${inTime.toFixed(2)} s  = ${(inTime / asTime).toFixed(3)} x as  (${mb(text.length / inTime)} MB/s)`,
  );
  console.log(
    `as --32 on the afterburned output:   ${asBurnedTime.toFixed(2)} s  (${mb(outSize)} MB)`,
  );
  console.log(`goal: afterburner <= 0.5 x as: ${cliTime / asTime <= 0.5 ? 'met' : 'NOT met'}`);
} finally {
  if (keep === undefined) rmSync(dir, { recursive: true, force: true });
}
