/**
 * The `as` wrapper behind `gcc -B src/afterburner/bin`: afterburns each assembly input into a
 * temporary file and runs the real GNU as on it with the same options. gcc passes its
 * temporary `.s` file (or `-` with -pipe); preprocessed `.S` files arrive the same way.
 *
 * Environment: PREVIRT_REAL_AS (the real as; default: the first `as` on PATH that is not this
 * wrapper), PREVIRT_AFTERBURN_REPORT (a file to append each input's report to, or `-` for
 * standard error).
 */
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  appendFileSync,
  constants,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { AfterburnError, formatReport } from './afterburn.ts';
import { afterburnText } from './files.ts';

/** as options whose value is the next argument (GNU as 2.40, `as --help`). */
const TAKES_VALUE = new Set([
  '-o',
  '-I',
  '--defsym',
  '--MD',
  '-MD',
  '--debug-prefix-map',
  '--sectname-subst',
]);

/** The real assembler: $PREVIRT_REAL_AS, or the first `as` on PATH other than `self`. */
function realAs(self: string): string {
  const env = process.env['PREVIRT_REAL_AS'];
  if (env !== undefined && env !== '') return env;
  const me = realpathSync(self);
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'as');
    try {
      accessSync(candidate, constants.X_OK);
      const real = realpathSync(candidate);
      if (real !== me && !real.endsWith('/afterburner/bin/as')) return candidate;
    } catch {
      // not here
    }
  }
  return '/usr/bin/as';
}

/** Runs the wrapper with as's arguments; returns the exit status. `self` is the wrapper path. */
export function runAs(argv: string[], self: string): number {
  const includes: string[] = [];
  const inputs: number[] = [];
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k]!;
    if (TAKES_VALUE.has(arg)) {
      if (arg === '-I' && argv[k + 1] !== undefined) includes.push(argv[k + 1]!);
      k++;
    } else if (arg.startsWith('-I') && arg.length > 2) includes.push(arg.slice(2));
    else if (arg === '-' || !arg.startsWith('-')) inputs.push(k);
    else if (arg === '--version' || arg === '--help' || arg === '-v' || arg === '--target-help')
      return spawnSync(realAs(self), argv, { stdio: 'inherit' }).status ?? 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'previrt-as-'));
  try {
    const args = [...argv];
    const sources =
      inputs.length > 0 ? inputs.map((k) => ({ k, path: argv[k]! })) : [{ k: -1, path: '-' }];
    for (const { k, path } of sources) {
      const text = readFileSync(path === '-' ? 0 : path, 'latin1');
      const name = path === '-' ? 'stdin.s' : basename(path);
      // The same base name, so as's messages name the file gcc gave it (line numbers match).
      const out = join(dir, `${sources.length > 1 ? `${k}-` : ''}${name}`);
      // gcc's temporary files say little; name the source from gcc's `.file` directive too.
      const source = /^\s*\.file\s+"([^"]+)"/m.exec(text.slice(0, 4096))?.[1];
      const label = `${path === '-' ? '<stdin>' : path}${source !== undefined ? ` (${source})` : ''}`;
      const result = afterburnText(text, path === '-' ? '<stdin>' : path, includes);
      writeFileSync(out, result.text, 'latin1');
      if (k >= 0) args[k] = out;
      else args.push(out);
      for (const w of result.report.warnings) console.error(w);
      const report = process.env['PREVIRT_AFTERBURN_REPORT'];
      if (report !== undefined && report !== '') {
        const line = formatReport(result.report, label) + '\n';
        if (report === '-') process.stderr.write(line);
        else appendFileSync(report, line);
      }
    }
    const as = realAs(self);
    const run = spawnSync(as, args, { stdio: 'inherit' });
    if (run.error !== undefined) {
      console.error(
        `previrt as wrapper: cannot run ${as}: ${run.error.message} (set PREVIRT_REAL_AS)`,
      );
      return 1;
    }
    return run.status ?? 1;
  } catch (e) {
    if (e instanceof AfterburnError) {
      console.error(e.message);
      return 1;
    }
    console.error(`previrt as wrapper: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
