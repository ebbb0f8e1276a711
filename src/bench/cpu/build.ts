import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const workloadDir = join(dirname(fileURLToPath(import.meta.url)), 'workload');

/** Flags for freestanding i686 code without an FPU, as every previrt guest is built. */
const cflags = [
  '-m32',
  '-march=i686',
  '-ffreestanding',
  '-fno-pic',
  '-fno-stack-protector',
  '-nostdlib',
  '-mno-sse',
  '-mno-mmx',
  '-mno-80387',
  '-O2',
  '-Wall',
  '-Wextra',
  '-Werror',
];

/**
 * Builds the benchmark workload (a multiboot ELF) with the machine's gcc and binutils into
 * `outDir`, keyed by a hash of its sources and options, and returns its path. A rebuild happens
 * only when a source changes. `exitPort`: write to isa-debug-exit after the END marker (QEMU).
 */
export function buildWorkload(outDir: string, rounds: number, exitPort = false): string {
  const sources = readdirSync(workloadDir).sort();
  const hash = createHash('sha256').update(`${rounds} ${exitPort}`);
  for (const name of sources) hash.update(name).update(readFileSync(join(workloadDir, name)));
  const dir = join(outDir, hash.digest('hex').slice(0, 16));
  const elf = join(dir, 'workload.elf');
  if (existsSync(elf)) return elf;
  mkdirSync(dir, { recursive: true });
  const run = (cmd: string, args: string[]): void => {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  };
  run('gcc', [
    ...cflags,
    `-DROUNDS=${rounds}`,
    ...(exitPort ? ['-DEXIT_PORT=0xf4'] : []),
    '-c',
    join(workloadDir, 'workload.c'),
    '-o',
    join(dir, 'workload.o'),
  ]);
  run('gcc', ['-m32', '-c', join(workloadDir, 'boot.S'), '-o', join(dir, 'boot.o')]);
  run('ld', [
    '-m',
    'elf_i386',
    '--no-warn-rwx-segments',
    '-T',
    join(workloadDir, 'link.ld'),
    '-o',
    elf,
    join(dir, 'boot.o'),
    join(dir, 'workload.o'),
  ]);
  return elf;
}
