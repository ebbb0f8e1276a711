// Shared by the guest tests and the report: build the guest kernel, run it on QEMU or on
// `previrt run`, and pick the comparable lines out of its console output.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LoadError, parseElf } from '../../src/loader/elf.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const GUEST = join(ROOT, 'guest');
export const BUILD = join(GUEST, 'build');

export type Variant = 'native' | 'afterburned' | 'xen-para' | 'l4-para';

export function kernelPath(variant: Variant): string {
  return join(BUILD, variant, 'kernel.elf');
}

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/**
 * Why the guest cannot be built here, or undefined if it can: a missing tool of the machine's
 * (scripts/setup.sh installs them). Nothing of the repository's own is checked here: the
 * afterburner's `as` wrapper, `previrt run` and the rest are part of it, and a test that finds
 * them missing or broken fails instead of skipping.
 */
export function buildSkipReason(): string | undefined {
  for (const tool of ['make', 'gcc', 'ld', 'objcopy'])
    if (!hasCommand(tool)) return `${tool} is not installed (bash scripts/setup.sh)`;
  return undefined;
}

/** Runs `make -C guest <target>` (incremental, so a second call is nearly free). */
export function make(target: Variant | 'user'): { ok: boolean; output: string } {
  // Test files run in parallel: one build at a time (flock), so no test reads a half-written ELF.
  mkdirSync(BUILD, { recursive: true });
  const argv = ['make', '-s', '-C', GUEST, target];
  if (hasCommand('flock')) argv.unshift('flock', join(BUILD, '.make.lock'));
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/** What a `previrt` process did: its exit status and its output. */
export interface PrevirtProcess {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `previrt ARGS` (bin/previrt.mjs) in a process of its own without waiting for it, so a
 * test can run several at once (each is a simulation of its own: running side by side changes
 * none of its figures). Its standard input is empty, as spawnSync's.
 */
export function previrtAsync(
  args: string[],
  options: { cwd?: string; timeout?: number } = {},
): Promise<PrevirtProcess> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), ...args], {
      cwd: options.cwd,
      timeout: options.timeout ?? 120_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end();
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

export interface GuestRun {
  /** Host exit status: isa-debug-exit makes it (code << 1) | 1. */
  status: number | null;
  console: string;
  /** The emulator's own messages (not the guest's). */
  stderr: string;
}

export interface RunOptions {
  /** Typed into COM1 (both QEMU and previrt feed piped standard input to the UART). */
  input?: string;
  /** Multiboot modules: a file name, optionally followed by a space and the module's string. */
  modules?: string[];
  memMb?: number;
}

/** Runs argv[1..] with this process's stdin held back until the program's first output. */
const QEMU_FEEDER = `
const { spawn } = require('node:child_process');
const chunks = [];
process.stdin.on('data', (d) => chunks.push(d));
const child = spawn(process.argv[1], process.argv.slice(2), { stdio: ['pipe', 'pipe', 'inherit'] });
let fed = false;
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  if (fed) return;
  fed = true;
  const send = () => child.stdin.end(Buffer.concat(chunks));
  if (process.stdin.readableEnded) send();
  else process.stdin.on('end', send);
});
child.stdin.on('error', () => {});
child.on('close', (code) => (process.exitCode = code ?? 1));
`;

/** Boots a kernel on QEMU with the isa-debug-exit device and COM1 on stdio. */
export function runQemu(kernel: string, append: string, opts: RunOptions = {}): GuestRun {
  const args = [
    '-kernel',
    kernel,
    '-append',
    append,
    '-device',
    'isa-debug-exit,iobase=0xf4,iosize=4',
    '-serial',
    'stdio',
    '-display',
    'none',
    '-no-reboot',
    '-m',
    String(opts.memMb ?? 256),
  ];
  // QEMU separates modules with commas.
  if (opts.modules) args.push('-initrd', opts.modules.join(','));
  // The console input goes in once the kernel has printed (so its UART is set up): given at
  // QEMU's start, it could reach the UART's FIFO before the kernel's FIFO reset cleared it (a
  // line lost under load). A small Node process feeds it and passes QEMU's status on.
  const r = spawnSync(process.execPath, ['-e', QEMU_FEEDER, 'qemu-system-i386', ...args], {
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, console: r.stdout.replace(/\r/g, ''), stderr: r.stderr };
}

/** Boots a kernel on previrt's own PC (`previrt run`), which takes QEMU's conventions. */
export function runPrevirt(kernel: string, append: string, opts: RunOptions = {}): GuestRun {
  const args = [join(ROOT, 'bin', 'previrt.mjs'), 'run', '--kernel', kernel, '--append', append];
  args.push('--memory', String(opts.memMb ?? 256));
  for (const m of opts.modules ?? []) args.push('--module', m);
  const r = spawnSync(process.execPath, args, {
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, console: `${r.stdout}`.replace(/\r/g, ''), stderr: `${r.stderr}` };
}

/**
 * The lines a self-test run must print identically everywhere: test results, summaries and
 * the kernel's kill messages. Boot lines (memory size, PCI devices, CMOS time) differ between
 * machines and are left out.
 */
export function comparableLines(console: string): string[] {
  return console
    .split('\n')
    .filter((l) => /^(test: |selftest: |kernel: pid |kernel: init exited|hello from )/.test(l));
}

/** The guest-physical ranges [start, bytes] a kernel's loadable segments occupy (for fuzzers). */
export function loadedRanges(kernel: Uint8Array): [number, number][] {
  const image = parseElf(kernel, 'kernel.elf');
  if (image instanceof LoadError) throw new Error(`kernel.elf: ${image.message}`);
  return image.segments.filter((s) => s.memsz > 0).map((s) => [s.paddr, s.memsz]);
}
