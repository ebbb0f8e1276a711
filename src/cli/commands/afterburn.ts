import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from '../command.ts';
import { AfterburnError, formatReport } from '../../afterburner/afterburn.ts';
import { afterburnText, wrapperDir } from '../../afterburner/files.ts';

const usage = `usage: previrt afterburn IN.s [-o OUT.s] [--report] [-I DIR]...
       previrt afterburn --print-wrapper-dir

Reads GNU as (AT&T) assembly, as gcc -S -m32 emits it or gcc -E leaves a .S file, pads every
sensitive instruction with NOP bytes and records each site as a {start, end} pair in section
.afterburn. Everything else passes through unchanged. IN.s '-' reads standard input.

  -o OUT.s             write here (default: standard output; '-' is standard output)
  --report             print the sites by kind and the bytes of padding added (standard error)
  -I DIR               directory searched for .include files (repeatable)
  --print-wrapper-dir  print the directory of the 'as' wrapper, for gcc -B DIR

Errors (an unparseable operand of a sensitive instruction) name file:line and exit 1.

The as wrapper: gcc -B$(previrt afterburn --print-wrapper-dir) ... afterburns every file gcc
assembles, then runs the real as. Environment: PREVIRT_REAL_AS (the real as; default the first
as on PATH that is not the wrapper), PREVIRT_AFTERBURN_REPORT (append each file's report to this
file; '-' for standard error).`;

function fail(message: string): number {
  console.error(`previrt afterburn: ${message}`);
  return 2;
}

/** `previrt afterburn`: the afterburner on one assembly file. */
export const afterburnCommand: Command = {
  name: 'afterburn',
  summary: 'pad and annotate the sensitive instructions of an assembly file',
  usage,
  async run(argv) {
    let input: string | undefined;
    let output = '-';
    let report = false;
    const includes: string[] = [];
    for (let k = 0; k < argv.length; k++) {
      const arg = argv[k]!;
      if (arg === '-o' || arg === '-I') {
        const value = argv[++k];
        if (value === undefined) return fail(`${arg} needs a value`);
        if (arg === '-o') output = value;
        else includes.push(value);
      } else if (arg.startsWith('-I') && arg.length > 2) includes.push(arg.slice(2));
      else if (arg === '--report') report = true;
      else if (arg === '--print-wrapper-dir') {
        console.log(wrapperDir());
        return 0;
      } else if (arg.startsWith('-') && arg !== '-') return fail(`unknown option '${arg}'`);
      else if (input !== undefined) return fail('one input file only');
      else input = arg;
    }
    if (input === undefined) return fail('no input file (previrt afterburn --help)');
    let text: string;
    try {
      text = readFileSync(input === '-' ? 0 : input, 'latin1');
    } catch (e) {
      return fail(`cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const name = input === '-' ? '<stdin>' : input;
    try {
      const result = afterburnText(text, name, includes);
      if (output === '-') process.stdout.write(Buffer.from(result.text, 'latin1'));
      else writeFileSync(output, result.text, 'latin1');
      for (const w of result.report.warnings) console.error(w);
      if (report) console.error(formatReport(result.report, name));
      return 0;
    } catch (e) {
      if (e instanceof AfterburnError) {
        console.error(e.message);
        return 1;
      }
      if (e instanceof Error && 'code' in e)
        return fail(`cannot write ${output}: ${String(e.code)}`);
      throw e;
    }
  },
};
