import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A test guest built by the machine's gcc and ld, cached by content: `build/<cache>/<hash of the
 * inputs>/<output>`. `build(dir, out)` writes `out` (a temporary name, renamed into place when it
 * returns, so that test files built in parallel never see half an ELF). Returns the output's path.
 */
export function cachedBuild(
  cache: string,
  inputs: string[],
  output: string,
  build: (dir: string, out: string) => void,
): string {
  const hash = createHash('sha256');
  for (const f of inputs) hash.update(readFileSync(f));
  const dir = join('build', cache, hash.digest('hex').slice(0, 12));
  const path = join(dir, output);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${process.pid}`;
  build(dir, tmp);
  renameSync(tmp, path);
  return path;
}

/** Links i386 objects with a linker script (`ld -m elf_i386 -T script`). */
export function linkI386(script: string, objects: string[], out: string): void {
  execFileSync('ld', [
    '-m',
    'elf_i386',
    '--no-warn-rwx-segments',
    '-T',
    script,
    '-o',
    out,
    ...objects,
  ]);
}
