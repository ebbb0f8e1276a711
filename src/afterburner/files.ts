/** Node-side helpers shared by the command and the `as` wrapper: files, includes, paths. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterburn, type AfterburnOptions, type AfterburnReport } from './afterburn.ts';

/**
 * src/afterburner, also when this file runs compiled from dist/afterburner (bin/previrt.mjs):
 * the wrapper and the headers are not compiled, they stay in the sources.
 */
function sourceDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'afterburner');
}

/** The directory holding the `as` wrapper, for `gcc -B`. */
export function wrapperDir(): string {
  return join(sourceDir(), 'bin');
}

/** The header directory, for `-I` when a guest includes afterburn.h. */
export function includeDir(): string {
  return join(sourceDir(), 'include');
}

/**
 * Resolves `.include "name"` as gas does: the name as given (relative to `cwd`, as's working
 * directory), then each -I directory.
 */
export function includeReader(
  dirs: string[],
  cwd = process.cwd(),
): NonNullable<AfterburnOptions['include']> {
  return (name) => {
    const candidates = isAbsolute(name) ? [name] : [name, ...dirs.map((d) => join(d, name))];
    for (const path of candidates) {
      const file = resolve(cwd, path);
      if (existsSync(file)) return { path, text: readFileSync(file, 'latin1') };
    }
    return null;
  };
}

/**
 * Afterburns `text` (read as latin1 so every byte passes through unchanged). Throws
 * AfterburnError on bad input.
 */
export function afterburnText(
  text: string,
  file: string,
  includeDirs: string[],
  cwd = process.cwd(),
): { text: string; report: AfterburnReport } {
  return afterburn(text, { file, include: includeReader(includeDirs, cwd) });
}
