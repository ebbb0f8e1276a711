// Whether dist/ (scripts/build.mjs, `npm run build`) is current with src/: shared by
// bin/previrt.mjs, which falls back to tsx when it is not, and `npm run build -- --if-stale`
// (scripts/setup.sh). Plain JavaScript, cheap: one walk of src/ for modification times.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

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

/**
 * Why dist/ cannot be run (undefined: it can): no dist/.built (never built, or the last build
 * failed), or a source or tsconfig newer than it (dist/.built carries the build's start time).
 * `repo` is the repository (a test gives a folder of its own).
 */
export function staleReason(repo = root) {
  let built;
  try {
    built = statSync(join(repo, 'dist', '.built')).mtimeMs;
  } catch {
    return 'dist/ is not built';
  }
  const configs = ['tsconfig.base.json', 'tsconfig.build.json'];
  const newest = configs.reduce(
    (n, name) => Math.max(n, statSync(join(repo, name)).mtimeMs),
    newestSource(join(repo, 'src'), 0),
  );
  return newest > built ? 'src/ is newer than dist/' : undefined;
}
