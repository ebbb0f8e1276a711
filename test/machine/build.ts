import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

/** Builds the machine-test guest (guest/probe.c) with the machine's gcc; cached by content. */
export function buildProbe(): string {
  const hash = createHash('sha256');
  for (const f of ['boot.S', 'probe.c', 'link.ld']) hash.update(readFileSync(join(here, f)));
  const dir = join('build', 'test-machine', hash.digest('hex').slice(0, 12));
  const elf = join(dir, 'probe.elf');
  if (existsSync(elf)) return elf;
  mkdirSync(dir, { recursive: true });
  const cflags = [
    '-m32',
    '-march=i686',
    '-ffreestanding',
    '-fno-pic',
    '-fno-stack-protector',
    '-nostdlib',
  ];
  execFileSync('gcc', [
    ...cflags,
    '-mno-sse',
    '-mno-mmx',
    '-mno-80387',
    '-O2',
    '-c',
    join(here, 'probe.c'),
    '-o',
    join(dir, 'probe.o'),
  ]);
  execFileSync('gcc', ['-m32', '-c', join(here, 'boot.S'), '-o', join(dir, 'boot.o')]);
  execFileSync('ld', [
    '-m',
    'elf_i386',
    '--no-warn-rwx-segments',
    '-T',
    join(here, 'link.ld'),
    '-o',
    elf,
    join(dir, 'boot.o'),
    join(dir, 'probe.o'),
  ]);
  return elf;
}
