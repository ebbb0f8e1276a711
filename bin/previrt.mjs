#!/usr/bin/env node
// The `previrt` command. It runs the JavaScript that `npm run build` (scripts/build.mjs, run by
// scripts/setup.sh) compiles into dist/: a fast start, no TypeScript loader. When dist/ is
// missing or stale — a file under src/ (or a tsconfig) is newer than dist/.built — it runs the
// TypeScript sources through tsx instead and says so once on stderr, so an edit is never
// silently ignored. PREVIRT_TSX=1 always runs the sources through tsx, silently (the tests do).
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest modification time of the sources dist/ is built from (tests aside). */
function newestSource(dir, newest) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = newestSource(path, newest);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Why dist/ cannot be run (undefined: it can). */
function staleReason() {
  let built;
  try {
    built = statSync(join(root, 'dist', '.built')).mtimeMs;
  } catch {
    return 'dist/ is not built';
  }
  const configs = ['tsconfig.base.json', 'tsconfig.build.json'];
  const newest = configs.reduce(
    (n, name) => Math.max(n, statSync(join(root, name)).mtimeMs),
    newestSource(join(root, 'src'), 0),
  );
  return newest > built ? 'src/ is newer than dist/' : undefined;
}

const forced = process.env.PREVIRT_TSX === '1';
const reason = forced ? 'PREVIRT_TSX=1' : staleReason();
let main;
if (reason === undefined) {
  ({ main } = await import(pathToFileURL(join(root, 'dist', 'cli', 'main.js')).href));
} else {
  if (!forced)
    console.error(
      `previrt: ${reason}; running the TypeScript sources through tsx (npm run build for a fast start)`,
    );
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
