import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, linkI386 } from '../../cachedBuild.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

const CFLAGS = [
  '-m32',
  '-march=i686',
  '-O2',
  '-ffreestanding',
  '-fno-pic',
  '-fno-pie',
  '-fno-stack-protector',
  '-fno-builtin',
  '-mgeneral-regs-only',
  '-fno-asynchronous-unwind-tables',
  '-Wall',
  '-Werror',
  '-c',
];

/**
 * Builds an l4 test guest (guest/NAME.c with l4.h and sys.S, linked by link.ld at 1 MB) with the
 * machine's gcc and ld; cached by content under build/test-l4.
 */
export function buildL4Guest(name: string): Uint8Array {
  const inputs = [`${name}.c`, 'l4.h', 'sys.S', 'link.ld'].map((f) => join(here, f));
  const elf = cachedBuild('test-l4', inputs, `${name}.elf`, (dir, out) => {
    const c = join(dir, `${name}.o`);
    const s = join(dir, 'sys.o');
    execFileSync('gcc', [...CFLAGS, join(here, `${name}.c`), '-o', c]);
    execFileSync('gcc', ['-m32', '-c', join(here, 'sys.S'), '-o', s]);
    linkI386(join(here, 'link.ld'), [s, c], out);
  });
  return new Uint8Array(readFileSync(elf));
}
