/**
 * kvm-unit-tests (x86, i386) on previrt's raw PC, as the suite's own runner runs them on QEMU
 * (`x86/run`, scripts/runtime.bash): each entry of x86/unittests.cfg that is not for x86_64
 * boots its .flat as a multiboot kernel with the entry's `test_args` on the command line; the
 * test ends by writing to isa-debug-exit at 0xF4 (exit status 1 PASS, 77 SKIP, anything else
 * odd FAIL). The suite lives read-only in ../shared/kvm-unit-tests; it is built in a copy under
 * build/ (`buildSuite`), cached by the content of its sources.
 *
 * What previrt does not offer, an entry's `qemu_params` (`-cpu max`, `+x2apic`) and `smp` cannot
 * ask for: the machine has one processor with the CPU it has; the runner shows QEMU's result
 * (from the suite's ORIGIN.md) beside previrt's so the difference is visible.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import { createMachine } from '../../src/machine/Machine.ts';

/** Where the suite's sources are (PREVIRT_KVM_UNIT_TESTS overrides). */
export function suiteSource(): string {
  return resolve(process.env.PREVIRT_KVM_UNIT_TESTS ?? '../shared/kvm-unit-tests');
}

/** Whether the host can build the suite: gcc with -m32 (gcc-multilib) and make. */
export function canBuildSuite(): string | undefined {
  try {
    execFileSync('make', ['--version'], { stdio: 'ignore' });
    execFileSync('gcc', ['-m32', '-x', 'c', '-c', '-o', '/dev/null', '-'], {
      input: 'int x;',
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  } catch {
    return 'gcc -m32 or make is missing (gcc-multilib)';
  }
  return undefined;
}

/** Every regular file under `dir`, relative, sorted (the build's cache key reads them all). */
function files(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    const st = statSync(join(dir, rel));
    if (st.isDirectory()) out.push(...files(dir, rel));
    else if (st.isFile()) out.push(rel);
  }
  return out;
}

/**
 * Builds the suite for i386 in build/kvm-unit-tests/<hash of its sources>/ (a copy: the shared
 * folder is read-only) and returns that folder; the .flat kernels are in its x86/. The shared
 * copy's x86/sieve.c stands for common/sieve.c and is replaced by it, as upstream's symlink
 * would be. About 10 s on two cores, the first time.
 */
export function buildSuite(source = suiteSource(), log: (line: string) => void = () => {}): string {
  const hash = createHash('sha256');
  for (const f of files(source)) hash.update(f).update(readFileSync(join(source, f)));
  const dir = resolve('build', 'kvm-unit-tests', hash.digest('hex').slice(0, 12));
  if (existsSync(join(dir, '.built'))) return dir;
  log(`building kvm-unit-tests (i386) in ${dir}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(source, dir, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', dir]);
  cpSync(join(dir, 'common', 'sieve.c'), join(dir, 'x86', 'sieve.c'));
  execFileSync('./configure', ['--arch=i386'], { cwd: dir, stdio: 'ignore' });
  execFileSync('make', ['-j2'], { cwd: dir, stdio: 'ignore' });
  execFileSync('touch', [join(dir, '.built')]);
  return dir;
}

/** One entry of x86/unittests.cfg. */
export interface SuiteEntry {
  name: string;
  file: string;
  args: string;
  smp: number;
  arch: string | undefined;
  qemuParams: string;
}

/** The entries of x86/unittests.cfg (INI-like: `[name]`, then `key = value` lines). */
export function parseUnittestsCfg(text: string): SuiteEntry[] {
  const entries: SuiteEntry[] = [];
  let current: SuiteEntry | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section !== null) {
      current = { name: section[1], file: '', args: '', smp: 1, arch: undefined, qemuParams: '' };
      entries.push(current);
      continue;
    }
    const kv = /^(\w+)\s*=\s*(.*)$/.exec(line);
    if (kv === null || current === undefined) continue;
    const value = kv[2].replace(/^'(.*)'$/, '$1');
    if (kv[1] === 'file') current.file = value;
    else if (kv[1] === 'test_args') current.args = value.replace(/^"(.*)"$/, '$1');
    else if (kv[1] === 'smp') current.smp = Number(value);
    else if (kv[1] === 'arch') current.arch = value;
    else if (kv[1] === 'qemu_params') current.qemuParams = value;
  }
  return entries;
}

/** The entries an i386 build runs (`arch` unset or i386). */
export function i386Entries(dir: string): SuiteEntry[] {
  const cfg = readFileSync(join(dir, 'x86', 'unittests.cfg'), 'utf8');
  return parseUnittestsCfg(cfg).filter((e) => e.arch === undefined || e.arch === 'i386');
}

export type Outcome = 'PASS' | 'FAIL' | 'SKIP' | 'timeout' | 'crash' | 'missing';

/** QEMU's results from the suite's ORIGIN.md ("PASS (23): a b c ..."). */
export function qemuResults(source = suiteSource()): Map<string, Outcome> {
  const text = readFileSync(join(source, 'ORIGIN.md'), 'utf8');
  const results = new Map<string, Outcome>();
  for (const m of text.matchAll(
    /^(PASS|FAIL|SKIP) \(\d+\):([\s\S]*?)(?=\n(?:PASS|FAIL|SKIP) \(|\n\n|(?![\s\S]))/gm,
  )) {
    const names = m[2]
      .replace(/\([^)]*\)/g, ' ') // FAIL's notes in parentheses
      .split(/[\s,.]+/)
      .filter((n) => /^[\w-]+$/.test(n) && n !== 'and');
    for (const n of names) results.set(n, m[1] as Outcome);
  }
  return results;
}

/** The expected outcome of an entry and, for anything but PASS, why. */
export interface Expected {
  outcome: Outcome;
  reason: string;
  /** The entry's own instruction budget (`instructions=N` in the file), for long tests. */
  maxInstructions: number | undefined;
}

/**
 * The expected-results file beside this one: `NAME OUTCOME [instructions=N] [reason]` per
 * line, # comments.
 */
export const EXPECTED_FILE = new URL('./kvm-unit-tests.expected', import.meta.url);

export function readExpected(text = readFileSync(EXPECTED_FILE, 'utf8')): Map<string, Expected> {
  const expected = new Map<string, Expected>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m =
      /^(\S+)\s+(PASS|FAIL|SKIP|timeout|crash|missing)\b(?:\s+instructions=(\S+))?\s*(.*)$/.exec(
        line,
      );
    const budget = m?.[3] === undefined ? undefined : Number(m[3]);
    if (m === null || (budget !== undefined && !(budget > 0)))
      throw new Error(`kvm-unit-tests.expected: cannot read '${line}'`);
    if (m[2] !== 'PASS' && m[4] === '')
      throw new Error(`kvm-unit-tests.expected: ${m[1]} is ${m[2]} without a reason`);
    expected.set(m[1], { outcome: m[2] as Outcome, reason: m[4], maxInstructions: budget });
  }
  return expected;
}

export interface RunResult {
  outcome: Outcome;
  /** How the run ended, in one line. */
  detail: string;
  instructions: number;
  /** The test's console output. */
  output: string;
}

/** Default budget per test: about 8 s of the host at previrt's usual speed. */
export const DEFAULT_MAX_INSTRUCTIONS = 3_000_000_000;

/**
 * Boots one test kernel on the raw PC with QEMU's test devices (pc-testdev, as the suite's
 * runner gives QEMU `-device pc-testdev`; isa-debug-exit at 0xF4 is always there) and runs it
 * until it exits through isa-debug-exit, stops otherwise, or has run `maxInstructions`
 * instructions.
 */
export function runEntry(
  dir: string,
  entry: SuiteEntry,
  maxInstructions = DEFAULT_MAX_INSTRUCTIONS,
): RunResult {
  const path = join(dir, 'x86', entry.file);
  if (!existsSync(path))
    return { outcome: 'missing', detail: `${entry.file} not built`, instructions: 0, output: '' };
  const out: number[] = [];
  const machine = createMachine({ serialOut: (b) => out.push(b), testDevices: true });
  if (typeof machine === 'string')
    return { outcome: 'crash', detail: machine, instructions: 0, output: '' };
  const booted = bootMultiboot(machine, {
    kernel: readFileSync(path),
    kernelName: entry.file,
    cmdline: entry.args,
    modules: [],
  });
  if (booted !== undefined)
    return { outcome: 'crash', detail: booted.message, instructions: 0, output: '' };
  const slice = 100_000_000;
  let end = machine.run(slice);
  while (end.kind === 'cycle-limit' && machine.cpu.counters.instructions < maxInstructions) {
    machine.resume();
    end = machine.run(machine.cpu.cycles + slice);
  }
  const output = Buffer.from(out).toString('latin1');
  const instructions = machine.cpu.counters.instructions;
  if (end.kind === 'exit') {
    const status = ((end.value << 1) | 1) & 0xff;
    const outcome: Outcome = status === 1 ? 'PASS' : status === 77 ? 'SKIP' : 'FAIL';
    return { outcome, detail: `exit status ${status}`, instructions, output };
  }
  if (end.kind === 'cycle-limit')
    return { outcome: 'timeout', detail: `${maxInstructions} instructions`, instructions, output };
  const detail = end.kind === 'triple-fault' ? `triple fault: ${end.detail}` : `ended: ${end.kind}`;
  return { outcome: 'crash', detail, instructions, output };
}

/** The last line of a test's output that says something (a FAIL line if there is one). */
export function summaryLine(output: string): string {
  const lines = output.split(/\r?\n/).filter((l) => l.trim() !== '');
  const fail = lines.find((l) => l.startsWith('FAIL'));
  return (fail ?? lines.at(-1) ?? '').slice(0, 100);
}
