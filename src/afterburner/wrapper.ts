/**
 * The `as` wrapper behind `gcc -B src/afterburner/bin`: afterburns each assembly input into a
 * temporary file and runs the real GNU as on it with the same options. gcc passes its
 * temporary `.s` file (or `-` with -pipe); preprocessed `.S` files arrive the same way.
 *
 * The work is split in two so that the afterburner server (server.ts) can do the first half
 * for many `as` runs in one Node process: `prepareAs` afterburns the inputs and returns the
 * real as's command line; `runAs` does that and runs it.
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
import { basename, delimiter, join, resolve } from 'node:path';
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

/** What one `as` run sees of its process: the wrapper's own one, or a server client's. */
export interface AsContext {
  /** The directory the paths on the command line are relative to. */
  cwd: string;
  /** The environment variables the wrapper reads (PATH, PREVIRT_REAL_AS, PREVIRT_AFTERBURN_REPORT, TMPDIR). */
  env: Record<string, string | undefined>;
  /** Whether standard input can be read (a server's client passes none: it falls back). */
  stdin: boolean;
}

/** The first half of an `as` run. */
export type PreparedAs =
  /** Run `as` with `args`, then remove `dir` (when not empty); write `messages` first. */
  | { kind: 'run'; as: string; args: string[]; dir: string; messages: string }
  /** Stop with `status` after writing `messages` (an afterburner error). */
  | { kind: 'exit'; status: number; messages: string }
  /** The input is standard input and the context has none (server clients only). */
  | { kind: 'needs-stdin' };

/** The real assembler: $PREVIRT_REAL_AS, or the first `as` on PATH other than `self`. */
function realAs(self: string, env: AsContext['env']): string {
  const given = env['PREVIRT_REAL_AS'];
  if (given !== undefined && given !== '') return given;
  const me = realpathSync(self);
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
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

/**
 * Afterburns the assembly inputs of an `as` command line into a temporary directory and returns
 * the real as's command line with those files in their places. `self` is the wrapper's path
 * (so that it is not taken for the real as).
 */
export function prepareAs(argv: string[], self: string, context: AsContext): PreparedAs {
  const { cwd, env } = context;
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
      return { kind: 'run', as: realAs(self, env), args: argv, dir: '', messages: '' };
  }
  const sources =
    inputs.length > 0 ? inputs.map((k) => ({ k, path: argv[k]! })) : [{ k: -1, path: '-' }];
  if (!context.stdin && sources.some((s) => s.path === '-')) return { kind: 'needs-stdin' };
  const tmp = env['TMPDIR'] !== undefined && env['TMPDIR'] !== '' ? env['TMPDIR'] : tmpdir();
  const dir = mkdtempSync(join(tmp, 'previrt-as-'));
  let messages = '';
  try {
    const args = [...argv];
    for (const { k, path } of sources) {
      const text = readFileSync(path === '-' ? 0 : resolve(cwd, path), 'latin1');
      const name = path === '-' ? 'stdin.s' : basename(path);
      // The same base name, so as's messages name the file gcc gave it (line numbers match).
      const out = join(dir, `${sources.length > 1 ? `${k}-` : ''}${name}`);
      // gcc's temporary files say little; name the source from gcc's `.file` directive too.
      const source = /^\s*\.file\s+"([^"]+)"/m.exec(text.slice(0, 4096))?.[1];
      const label = `${path === '-' ? '<stdin>' : path}${source !== undefined ? ` (${source})` : ''}`;
      const result = afterburnText(text, path === '-' ? '<stdin>' : path, includes, cwd);
      writeFileSync(out, result.text, 'latin1');
      if (k >= 0) args[k] = out;
      else args.push(out);
      for (const w of result.report.warnings) messages += `${w}\n`;
      const report = env['PREVIRT_AFTERBURN_REPORT'];
      if (report !== undefined && report !== '') {
        const line = formatReport(result.report, label) + '\n';
        if (report === '-') messages += line;
        else appendFileSync(resolve(cwd, report), line);
      }
    }
    return { kind: 'run', as: realAs(self, env), args, dir, messages };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const message =
      e instanceof AfterburnError
        ? e.message
        : `previrt as wrapper: ${e instanceof Error ? e.message : String(e)}`;
    return { kind: 'exit', status: 1, messages: `${messages}${message}\n` };
  }
}

/** Runs the wrapper with as's arguments; returns the exit status. `self` is the wrapper path. */
export function runAs(argv: string[], self: string): number {
  const prepared = prepareAs(argv, self, { cwd: process.cwd(), env: process.env, stdin: true });
  if (prepared.kind === 'needs-stdin') throw new Error('unreachable: the wrapper has stdin');
  process.stderr.write(prepared.messages);
  if (prepared.kind === 'exit') return prepared.status;
  try {
    const run = spawnSync(prepared.as, prepared.args, { stdio: 'inherit' });
    if (run.error !== undefined) {
      console.error(
        `previrt as wrapper: cannot run ${prepared.as}: ${run.error.message} (set PREVIRT_REAL_AS)`,
      );
      return 1;
    }
    return run.status ?? 1;
  } finally {
    if (prepared.dir !== '') rmSync(prepared.dir, { recursive: true, force: true });
  }
}
