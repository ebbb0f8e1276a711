#!/usr/bin/env node
// `npm run build`: compiles src/ (tests aside) to plain JavaScript in dist/ with tsc
// (tsconfig.build.json) and bundles the command from it (dist/bundle/), which bin/previrt.mjs
// runs instead of loading TypeScript through tsx.
// dist/.built is written last, with the build's start time as its modification time: a
// source edited during or after the build is newer than it, and bin/previrt.mjs then runs the
// sources through tsx (saying so on stderr) until the next build. A failed build leaves no
// dist/.built, so a half-written dist/ is never run. --if-stale builds only when dist/ is not
// current (scripts/setup.sh).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.some((a) => a !== '--if-stale')) {
  console.error(
    `build: unknown option '${args.find((a) => a !== '--if-stale')}' (usage: --if-stale)`,
  );
  process.exit(2);
}
if (args.includes('--if-stale')) {
  const { staleReason } = await import('../bin/stale.mjs');
  if (staleReason() === undefined) process.exit(0);
}
const dist = join(root, 'dist');
const start = new Date();
// A clean dist/: a source deleted since the last build leaves no module behind.
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
if (r.status !== 0) {
  console.error('build: tsc failed (above); bin/previrt.mjs runs the sources through tsx');
  process.exit(1);
}
// Then the command and the netperf worker, each bundled into one file (dist/bundle/main.mjs,
// dist/bundle/worker.js) with esbuild (tsx's own dependency): one file loads much faster than the
// ~180 modules of dist/. Without esbuild, bin/previrt.mjs runs dist/cli/main.js.
try {
  const esbuild = await import('esbuild');
  for (const [entry, out] of [
    ['cli/main.js', 'main.mjs'],
    ['bench/netperf/worker.js', 'worker.js'],
  ])
    esbuild.buildSync({
      entryPoints: [join(dist, entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: join(dist, 'bundle', out),
      logLevel: 'error',
    });
} catch (e) {
  rmSync(join(dist, 'bundle'), { recursive: true, force: true });
  console.error(`build: no bundle (${e instanceof Error ? e.message : e}); dist/cli/main.js runs`);
}
mkdirSync(dist, { recursive: true });
const stamp = join(dist, '.built');
writeFileSync(stamp, `built from src/ by scripts/build.mjs, started ${start.toISOString()}\n`);
utimesSync(stamp, start, start);
