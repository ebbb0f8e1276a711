import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

/**
 * Builds an l4 test guest (guest/NAME.c with l4.h and sys.S, linked by link.ld at 1 MB) with the
 * machine's gcc and ld; cached by content under build/test-l4.
 */
export function buildL4Guest(name: string): Uint8Array {
  const hash = createHash('sha256');
  for (const f of [`${name}.c`, 'l4.h', 'sys.S', 'link.ld'])
    hash.update(readFileSync(join(here, f)));
  const dir = join('build', 'test-l4', hash.digest('hex').slice(0, 12));
  const elf = join(dir, `${name}.elf`);
  if (!existsSync(elf)) {
    mkdirSync(dir, { recursive: true });
    const flags = [
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
    const c = join(dir, `${name}.o`);
    const s = join(dir, 'sys.o');
    execFileSync('gcc', [...flags, join(here, `${name}.c`), '-o', c]);
    execFileSync('gcc', ['-m32', '-c', join(here, 'sys.S'), '-o', s]);
    const tmp = `${elf}.${process.pid}`;
    execFileSync('ld', [
      '-m',
      'elf_i386',
      '--no-warn-rwx-segments',
      '-T',
      join(here, 'link.ld'),
      '-o',
      tmp,
      s,
      c,
    ]);
    renameSync(tmp, elf);
  }
  return new Uint8Array(readFileSync(elf));
}
