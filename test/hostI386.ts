/**
 * How to run a 32-bit Linux program built with `gcc -m32` on this host: natively, or under
 * qemu-i386 (QEMU's user-mode emulator, Debian package qemu-user) when the host's kernel cannot
 * execute i386 programs (an x86-64 kernel built without CONFIG_IA32_EMULATION, or booted with
 * `ia32_emulation=0`: exec gives ENOEXEC, and Node's spawn, through execvp, then hands the ELF
 * to /bin/sh, which says `Syntax error: "(" unexpected`).
 *
 * The answer comes from running a tiny probe program once per process; the probe is built once
 * into build/host-i386 (by content). `PREVIRT_I386=native|qemu` forces one way (`auto`, the
 * default, tries native first). Used by the differential test against the host CPU
 * (test/x86/diff), `npm run cpu-diff` and the afterburner's native-program test.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type I386Mode = 'auto' | 'native' | 'qemu';

export interface I386Runner {
  /** How programs run: on the host CPU, or translated by qemu-i386. */
  readonly via: 'native' | 'qemu-i386';
  /** One line naming the reference and why it was chosen, for test diagnostics and scripts. */
  readonly description: string;
  /** The command line that runs `program` with `args`. */
  command(program: string, args?: readonly string[]): { file: string; args: string[] };
}

const ROOT = join(import.meta.dirname, '..');
const PROBE_C = `#include <stdio.h>
int main(void) {
  printf("i386 probe: %u-byte pointers\\n", (unsigned)sizeof(void *));
  return 0;
}
`;
/** What the probe prints when it ran as an i386 program. */
export const I386_PROBE_OUTPUT = 'i386 probe: 4-byte pointers\n';

/** `PREVIRT_I386` as a mode; anything else is a usage error with one clear line. */
export function i386ModeFromEnv(value = process.env.PREVIRT_I386): I386Mode {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'native' || value === 'qemu') return value;
  throw new Error(`PREVIRT_I386=${value}: expected native, qemu or auto`);
}

/** Builds the probe (once per content) and returns its path. */
export function i386Probe(): string {
  const key = createHash('sha256').update(PROBE_C).digest('hex').slice(0, 16);
  const dir = join(ROOT, 'build', 'host-i386', key);
  const probe = join(dir, 'probe');
  if (existsSync(probe)) return probe;
  mkdirSync(dir, { recursive: true });
  // Test files run in parallel processes: build under a private name, then rename (atomic).
  const tmp = `${probe}.${process.pid}`;
  writeFileSync(join(dir, 'probe.c'), PROBE_C);
  const r = spawnSync('gcc', ['-m32', '-o', tmp, join(dir, 'probe.c')], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `cannot build an i386 program (gcc -m32; gcc-multilib missing? bash scripts/setup.sh installs it): ${firstLine(r.stderr) || r.error?.message}`,
    );
  renameSync(tmp, probe);
  return probe;
}

function firstLine(text: string | undefined): string {
  return (text ?? '').trim().split('\n')[0] ?? '';
}

/** Runs the probe one way; null if it printed what it should, else why not. */
function tryRun(file: string, args: string[]): string | null {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined)
    return (r.error as NodeJS.ErrnoException).code === 'ENOENT'
      ? `${file} not found`
      : r.error.message;
  if (r.status === 0 && r.stdout === I386_PROBE_OUTPUT) return null;
  // The kernel refused the ELF (ENOEXEC) and execvp's fallback ran it as a shell script.
  if (/Syntax error|Exec format error|cannot execute binary file/.test(r.stderr))
    return 'Exec format error: the kernel does not run i386 programs';
  const what = r.status === null ? `signal ${r.signal}` : `exit status ${r.status}`;
  return `${what}${r.stderr ? `: ${firstLine(r.stderr)}` : ''}`;
}

function runner(via: I386Runner['via'], description: string): I386Runner {
  return {
    via,
    description,
    command: (program, args = []) =>
      via === 'native'
        ? { file: program, args: [...args] }
        : { file: 'qemu-i386', args: [program, ...args] },
  };
}

/**
 * Finds out how to run i386 programs in `mode` by running the probe. Throws one clear message
 * if the mode cannot work here (forced native on a host without i386 execution, forced qemu
 * without qemu-i386, or neither in auto).
 */
export function detectI386(mode: I386Mode): I386Runner {
  const probe = i386Probe();
  const install = 'install qemu-user (bash scripts/setup.sh does)';
  if (mode === 'qemu') {
    const qemu = tryRun('qemu-i386', [probe]);
    if (qemu === null)
      return runner(
        'qemu-i386',
        'reference: qemu-i386 (qemu forced: PREVIRT_I386=qemu or a test that forces it)',
      );
    throw new Error(
      `qemu-i386 was forced (PREVIRT_I386=qemu or a test that forces it), but it fails (${qemu}); ${install}`,
    );
  }
  const native = tryRun(probe, []);
  if (native === null)
    return runner(
      'native',
      mode === 'native'
        ? 'reference: the host CPU (native forced: PREVIRT_I386=native)'
        : 'reference: the host CPU (this host executes i386 programs)',
    );
  if (mode === 'native')
    throw new Error(
      `native i386 execution was forced (PREVIRT_I386=native), but this host cannot execute i386 programs (${native}); unset PREVIRT_I386 to use qemu-i386`,
    );
  const qemu = tryRun('qemu-i386', [probe]);
  if (qemu === null)
    return runner('qemu-i386', 'reference: qemu-i386 (this host cannot execute i386 programs)');
  throw new Error(
    `this host cannot execute i386 programs (${native}) and qemu-i386 fails (${qemu}); ${install}, or run on a host with i386 execution`,
  );
}

// A fact about the host, not state of anything previrt models: asked once per process and mode.
const detected = new Map<I386Mode, I386Runner | Error>();

/**
 * How to run i386 programs here, in the mode `PREVIRT_I386` asks for (or `mode`), cached per
 * process. Throws the detection's message (again on every call) if there is no way.
 */
export function i386Runner(mode: I386Mode = i386ModeFromEnv()): I386Runner {
  let answer = detected.get(mode);
  if (answer === undefined) {
    try {
      answer = detectI386(mode);
    } catch (e) {
      answer = e instanceof Error ? e : new Error(String(e));
    }
    detected.set(mode, answer);
  }
  if (answer instanceof Error) throw answer;
  return answer;
}
