import { readFileSync } from 'node:fs';
import type { Command } from '../command.ts';
import { formatVerify, verifyAnnotations } from '../../afterburner/verify.ts';

const usage = `usage: previrt verify-annotations FILE.elf [--json] [--objdump PATH] [--max N]

Disassembles the executable sections of a linked 32-bit ELF file with GNU objdump and checks
that every sensitive instruction (found by its opcode) begins a site recorded in .afterburn,
followed by at least the padding the afterburner gives its kind, all NOP. Instructions inside
.afterburn_noannotate regions are exempt. Sites of the annotation header (.afterburn.pte_set,
.afterburn.mmio_write, ...) must each be an instruction followed by 12 bytes of NOP. Exits 0
when all is well, 1 otherwise (and lists the offenders), 2 on bad input.

  --json          print the result as JSON (all offenders)
  --objdump PATH  objdump to run (default: objdump from PATH)
  --max N         list at most N offenders (default 50)`;

function fail(message: string): number {
  console.error(`previrt verify-annotations: ${message}`);
  return 2;
}

/** `previrt verify-annotations`: are all sensitive instructions of a kernel annotated? */
export const verifyAnnotationsCommand: Command = {
  name: 'verify-annotations',
  summary: 'check that every sensitive instruction of an ELF file is annotated',
  usage,
  async run(argv) {
    let file: string | undefined;
    let json = false;
    let objdump = 'objdump';
    let max = 50;
    for (let k = 0; k < argv.length; k++) {
      const arg = argv[k]!;
      if (arg === '--json') json = true;
      else if (arg === '--objdump' || arg === '--max') {
        const value = argv[++k];
        if (value === undefined) return fail(`${arg} needs a value`);
        if (arg === '--objdump') objdump = value;
        else {
          if (!/^\d+$/.test(value)) return fail(`--max needs a number, not '${value}'`);
          max = Number(value);
        }
      } else if (arg.startsWith('-')) return fail(`unknown option '${arg}'`);
      else if (file !== undefined) return fail('one file only');
      else file = arg;
    }
    if (file === undefined) return fail('no ELF file (previrt verify-annotations --help)');
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      return fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      const result = verifyAnnotations(file, bytes, objdump);
      console.log(json ? JSON.stringify(result, null, 2) : formatVerify(result, max));
      return result.offenders.length === 0 ? 0 : 1;
    } catch (e) {
      return fail(`${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  },
};
