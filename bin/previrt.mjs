#!/usr/bin/env node
// The `previrt` command. It runs the JavaScript that `npm run build` (scripts/build.mjs, run by
// scripts/setup.sh) compiles into dist/ and bundles into dist/bundle/main.mjs: a fast start, no
// TypeScript loader. When dist/ is
// missing or stale — a file under src/ (or a tsconfig) is newer than dist/.built — it runs the
// TypeScript sources through tsx instead and says so once on stderr, so an edit is never
// silently ignored. PREVIRT_TSX=1 always runs the sources through tsx, silently (the tests do).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root, staleReason } from './stale.mjs';

const forced = process.env.PREVIRT_TSX === '1';
const reason = forced ? 'PREVIRT_TSX=1' : staleReason();
let main;
if (reason === undefined) {
  // The bundle (one file, the fastest start), or the compiled modules if there is none.
  const bundle = join(root, 'dist', 'bundle', 'main.mjs');
  const entry = existsSync(bundle) ? bundle : join(root, 'dist', 'cli', 'main.js');
  ({ main } = await import(pathToFileURL(entry).href));
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
