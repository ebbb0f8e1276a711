// Starts the `as` wrapper (src/afterburner/wrapper.ts) quickly: gcc runs it once per source
// file, and loading TypeScript through tsx costs about 0.2 s per run. So the first run bundles
// the afterburner into plain JavaScript under build/afterburner/ (with esbuild, which tsx
// already depends on) and later runs import that; the bundle is rebuilt whenever a source is
// newer. Without esbuild or a writable build/ it falls back to tsx.
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(here, '..');
const root = resolve(source, '..', '..');
const entry = join(source, 'wrapper.ts');
const bundle = join(root, 'build', 'afterburner', 'as.mjs');

function newestSource() {
  let newest = 0;
  for (const name of readdirSync(source)) {
    if (name.endsWith('.ts') && !name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(join(source, name)).mtimeMs);
  }
  return Math.max(newest, statSync(fileURLToPath(import.meta.url)).mtimeMs);
}

async function load() {
  try {
    if (!existsSync(bundle) || statSync(bundle).mtimeMs < newestSource()) {
      const esbuild = await import('esbuild');
      mkdirSync(dirname(bundle), { recursive: true });
      // Build under a unique name and rename: parallel make jobs may race here.
      const temp = `${bundle}.${process.pid}.tmp`;
      esbuild.buildSync({
        entryPoints: [entry],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outfile: temp,
        logLevel: 'error',
      });
      renameSync(temp, bundle);
    }
    return await import(pathToFileURL(bundle).href);
  } catch {
    const { register } = await import('tsx/esm/api');
    register();
    return await import(pathToFileURL(entry).href);
  }
}

const { runAs } = await load();
process.exitCode = runAs(process.argv.slice(2), join(here, 'as'));
