#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with Node's test runner (TypeScript through tsx).
// Usage: node scripts/test.mjs [substring...]   — only test files whose path contains a substring.
// Files run one per core at once (Node's default leaves a core out: on a 2-core machine, one at a
// time); the tests are simulated-clock figures, so running side by side changes none of them.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = ['src', 'test']
  .flatMap((dir) => find(dir, []))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('test: no test files match');
  process.exit(1);
}
const concurrency = `--test-concurrency=${Math.max(1, availableParallelism())}`;
// PREVIRT_TSX=1: the `previrt` processes the tests start run the TypeScript sources through tsx
// too (bin/previrt.mjs), not a compiled dist/.
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', concurrency, ...files], {
  stdio: 'inherit',
  env: { ...process.env, PREVIRT_TSX: '1' },
});
process.exit(result.status ?? 1);
