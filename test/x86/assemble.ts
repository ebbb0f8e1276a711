/** Assembles test programs with the machine's binutils (as, ld) into flat binaries. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const work = mkdtempSync(join(tmpdir(), 'previrt-as-'));
let serial = 0;

/** Assembles 32-bit AT&T source (after a `_start` label) into a flat binary linked at `at`. */
export function assemble(source: string, at = 0x1000): Uint8Array {
  const s = join(work, `t${serial++}.S`);
  writeFileSync(s, `\t.code32\n\t.text\n\t.globl _start\n_start:\n${source}\n`);
  execFileSync('as', ['--32', '-o', `${s}.o`, s]);
  execFileSync('ld', [
    '-m',
    'elf_i386',
    `-Ttext=0x${at.toString(16)}`,
    '--oformat',
    'binary',
    '-o',
    `${s}.bin`,
    `${s}.o`,
  ]);
  return readFileSync(`${s}.bin`);
}
