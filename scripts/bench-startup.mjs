#!/usr/bin/env node
// `npm run bench:startup [-- --runs N]`: the start-up time of the `previrt` command, whole
// process, wall clock, the median of N runs (default 11): `previrt --help`, and `previrt run`
// of the smallest kernel (a multiboot header, cli, hlt: built here with gcc into
// build/startup/halt.elf; the run ends at once with exit status 4), each run through the
// TypeScript sources with tsx (PREVIRT_TSX=1, as before dist/) and from the compiled dist/
// (`npm run build`: dist/bundle/main.mjs, or dist/cli/main.js without a bundle), beside
// `node -e 0` (Node's own start-up on this machine). The variants take turns within each
// round, so a busy machine slows them alike; the ratios are of one run.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let runs = 11;
for (let k = 0; k < args.length; k++) {
  if (args[k] === '--runs') {
    runs = Number(args[++k]);
    if (!Number.isSafeInteger(runs) || runs < 1 || runs > 1000) {
      console.error(`bench-startup: --runs: '${args[k]}' is not a whole number from 1 to 1000`);
      process.exit(2);
    }
  } else {
    console.error(`bench-startup: unknown option '${args[k]}' (usage: --runs N)`);
    process.exit(2);
  }
}

const bin = join(root, 'bin', 'previrt.mjs');
// dist/ must be current, or the "compiled" figures would be tsx's (bin/previrt.mjs falls back).
const probe = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
if (probe.stderr.includes('running the TypeScript sources through tsx')) {
  console.error(`bench-startup: ${probe.stderr.trim()}\nbench-startup: run npm run build first`);
  process.exit(2);
}

const dir = join(root, 'build', 'startup');
mkdirSync(dir, { recursive: true });
const source = join(dir, 'halt.S');
const kernel = join(dir, 'halt.elf');
writeFileSync(
  source,
  [
    '\t.text',
    '\t.globl _start',
    '\t.align 4',
    '\t.long 0x1BADB002, 0, -0x1BADB002 /* multiboot: magic, no flags, checksum */',
    '_start:\tcli',
    '\thlt',
    '\t.section .note.GNU-stack, "", @progbits',
    '',
  ].join('\n'),
);
try {
  execFileSync('gcc', [
    '-m32',
    '-nostdlib',
    '-static',
    '-Wl,--build-id=none',
    '-Wl,-N',
    '-Wl,-Ttext=0x100000',
    '-Wl,--no-warn-rwx-segments',
    '-o',
    kernel,
    source,
  ]);
} catch (e) {
  console.error(`bench-startup: building ${kernel} failed (gcc -m32; bash scripts/setup.sh)`);
  console.error(String(e instanceof Error ? e.message : e));
  process.exit(2);
}

const cases = [
  { name: 'node -e 0', argv: ['-e', '0'], env: {}, status: 0 },
  { name: 'previrt --help, tsx', argv: [bin, '--help'], env: { PREVIRT_TSX: '1' }, status: 0 },
  { name: 'previrt --help, dist/', argv: [bin, '--help'], env: {}, status: 0 },
  {
    name: 'previrt run (halt), tsx',
    argv: [bin, 'run', '--kernel', kernel],
    env: { PREVIRT_TSX: '1' },
    status: 4,
  },
  { name: 'previrt run (halt), dist/', argv: [bin, 'run', '--kernel', kernel], env: {}, status: 4 },
];
const times = cases.map(() => []);
for (let round = 0; round < runs; round++) {
  cases.forEach((c, k) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, c.argv, {
      env: { ...process.env, PREVIRT_TSX: '', ...c.env },
      encoding: 'utf8',
    });
    times[k].push((performance.now() - t0) / 1000);
    if (r.status !== c.status) {
      console.error(`bench-startup: ${c.name} exited ${r.status} (expected ${c.status})`);
      console.error(r.stderr);
      process.exit(1);
    }
  });
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const m = times.map(median);
console.log(`Start-up, wall clock, median of ${runs} runs (node ${process.version}):`);
console.log('');
console.log('| process | median s | min s |');
console.log('|---|---:|---:|');
cases.forEach((c, k) =>
  console.log(`| ${c.name} | ${m[k].toFixed(3)} | ${Math.min(...times[k]).toFixed(3)} |`),
);
console.log('');
console.log(
  `dist/ against tsx: --help ${(m[1] / m[2]).toFixed(2)}× faster, run ${(m[3] / m[4]).toFixed(2)}× faster; ` +
    `previrt run from dist/ is ${(m[4] - m[0]).toFixed(3)} s above node -e 0`,
);
