import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

/**
 * Builds a para-virtual test guest (guest/NAME.S with pv.h, linked by link.ld at 0xC0000000) with
 * the machine's gcc and ld; cached by content under build/test-xen.
 */
export function buildPvGuest(name: string): Uint8Array {
  const hash = createHash('sha256');
  for (const f of [`${name}.S`, 'pv.h', 'link.ld']) hash.update(readFileSync(join(here, f)));
  const dir = join('build', 'test-xen', hash.digest('hex').slice(0, 12));
  const elf = join(dir, `${name}.elf`);
  if (!existsSync(elf)) {
    mkdirSync(dir, { recursive: true });
    const obj = join(dir, `${name}.o`);
    execFileSync('gcc', ['-m32', '-c', '-I', here, join(here, `${name}.S`), '-o', obj]);
    const tmp = `${elf}.${process.pid}`;
    execFileSync('ld', [
      '-m',
      'elf_i386',
      '--no-warn-rwx-segments',
      '-T',
      join(here, 'link.ld'),
      '-o',
      tmp,
      obj,
    ]);
    renameSync(tmp, elf);
  }
  return new Uint8Array(readFileSync(elf));
}
