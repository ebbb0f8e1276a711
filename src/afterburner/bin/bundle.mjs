// Loads one of the afterburner's Node entry points (wrapper.ts, server.ts) quickly: gcc runs
// the `as` wrapper once per source file, and loading TypeScript through tsx costs about 0.2 s
// per run. So the first run bundles the entry into plain JavaScript under build/afterburner/
// (with esbuild, which tsx already depends on) and later runs import that; the bundle is
// rebuilt whenever a source is newer. Without esbuild or a writable build/ it falls back to tsx.
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(here, '..');
const root = resolve(source, '..', '..');

function newestSource(launcher) {
  let newest = 0;
  for (const name of readdirSync(source)) {
    if (name.endsWith('.ts') && !name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(join(source, name)).mtimeMs);
  }
  for (const file of [fileURLToPath(import.meta.url), launcher])
    newest = Math.max(newest, statSync(file).mtimeMs);
  return newest;
}

/**
 * Imports src/afterburner/NAME.ts, bundled. Returns the module, the URL it was loaded from (for
 * worker threads) and the Node options a worker thread needs to load that URL.
 */
export async function loadEntry(name, launcher) {
  const entry = join(source, `${name}.ts`);
  const bundle = join(root, 'build', 'afterburner', `${name}.mjs`);
  try {
    if (!existsSync(bundle) || statSync(bundle).mtimeMs < newestSource(launcher)) {
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
    const url = pathToFileURL(bundle);
    return { module: await import(url.href), url, execArgv: [] };
  } catch {
    const { register } = await import('tsx/esm/api');
    register();
    const url = pathToFileURL(entry);
    return { module: await import(url.href), url, execArgv: ['--import', 'tsx'] };
  }
}
