import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, linkI386 } from '../../cachedBuild.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

/**
 * Builds a para-virtual test guest (guest/NAME.S with pv.h, linked by link.ld at 0xC0000000) with
 * the machine's gcc and ld; cached by content under build/test-xen.
 */
export function buildPvGuest(name: string): Uint8Array {
  const inputs = [`${name}.S`, 'pv.h', 'link.ld'].map((f) => join(here, f));
  const elf = cachedBuild('test-xen', inputs, `${name}.elf`, (dir, out) => {
    const obj = join(dir, `${name}.o`);
    execFileSync('gcc', ['-m32', '-c', '-I', here, join(here, `${name}.S`), '-o', obj]);
    linkI386(join(here, 'link.ld'), [obj], out);
  });
  return new Uint8Array(readFileSync(elf));
}
