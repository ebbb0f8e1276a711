import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, linkI386 } from '../cachedBuild.ts';

const here = join(dirname(fileURLToPath(import.meta.url)), 'guest');

const CFLAGS = [
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
  '-c',
];

/** Builds the machine-test guest (guest/probe.c) with the machine's gcc; cached by content. */
export function buildProbe(): string {
  const inputs = ['boot.S', 'probe.c', 'link.ld'].map((f) => join(here, f));
  return cachedBuild('test-machine', inputs, 'probe.elf', (dir, out) => {
    execFileSync('gcc', [...CFLAGS, join(here, 'probe.c'), '-o', join(dir, 'probe.o')]);
    execFileSync('gcc', ['-m32', '-c', join(here, 'boot.S'), '-o', join(dir, 'boot.o')]);
    linkI386(join(here, 'link.ld'), [join(dir, 'boot.o'), join(dir, 'probe.o')], out);
  });
}
