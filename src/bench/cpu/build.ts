import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The C sources stay in src/ (this module also runs compiled, from dist/bench/cpu): the
 * repository root is three folders up either way.
 */
const sourceDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src/bench/cpu');
const workloadDir = join(sourceDir, 'workload');
const realcodeDir = join(sourceDir, 'realcode');

/** Debian's linux-source-6.1 (scripts/setup.sh installs it; guest/linux builds from it too). */
export const LINUX_SOURCE = process.env.LINUX_SOURCE ?? '/usr/src/linux-source-6.1.tar.xz';
/** The library files the real-code workload compiles unchanged (realcode/main.c says why). */
const LINUX_FILES = [
  'lib/lz4/lz4_compress.c',
  'lib/lz4/lz4_decompress.c',
  'lib/lz4/lz4defs.h',
  'include/linux/lz4.h',
  'lib/sort.c',
  'include/linux/sort.h',
  'lib/crypto/sha256.c',
  'include/crypto/sha2.h',
];
const LINUX_OBJECTS = LINUX_FILES.filter((f) => f.endsWith('.c'));

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

/** The workloads: `cpu` (workload/, the project's own) and `realcode` (realcode/). */
export type Workload = 'cpu' | 'realcode';

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Every file under `dir`, sorted, for the cache key. */
function files(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    });
}

/**
 * Builds a benchmark workload (a multiboot ELF) with the machine's gcc and binutils into
 * `outDir`, keyed by a hash of its sources and options, and returns its path. A rebuild happens
 * only when a source changes. `exitPort`: write to isa-debug-exit after the END marker (QEMU).
 * The real-code workload extracts its library files from LINUX_SOURCE first; a missing tarball
 * is an Error that says how to get it.
 */
export function buildWorkload(
  outDir: string,
  rounds: number,
  exitPort = false,
  workload: Workload = 'cpu',
): string {
  const own = workload === 'cpu' ? [workloadDir] : [workloadDir, realcodeDir];
  const hash = createHash('sha256').update(`${workload} ${rounds} ${exitPort}`);
  for (const path of own.flatMap(files)) hash.update(path.slice(sourceDir.length));
  for (const path of own.flatMap(files)) hash.update(readFileSync(path));
  if (workload === 'realcode') hash.update(`${basename(LINUX_SOURCE)} ${LINUX_FILES.join(' ')}`);
  const dir = join(outDir, hash.digest('hex').slice(0, 16));
  const elf = join(dir, `${workload}.elf`);
  if (existsSync(elf)) return elf;
  mkdirSync(dir, { recursive: true });
  const defines = [`-DROUNDS=${rounds}`, ...(exitPort ? ['-DEXIT_PORT=0xf4'] : [])];
  const objects = [join(dir, 'boot.o')];
  run('gcc', ['-m32', '-c', join(workloadDir, 'boot.S'), '-o', objects[0]]);
  if (workload === 'cpu') {
    objects.push(join(dir, 'workload.o'));
    run('gcc', [...cflags, ...defines, '-c', join(workloadDir, 'workload.c'), '-o', objects[1]]);
  } else {
    if (!existsSync(LINUX_SOURCE)) {
      throw new Error(
        `the real-code workload needs ${LINUX_SOURCE} (Debian's linux-source-6.1: bash scripts/setup.sh)`,
      );
    }
    const linux = join(dir, 'linux');
    mkdirSync(linux, { recursive: true });
    run('tar', [
      '-xJf',
      LINUX_SOURCE,
      '-C',
      linux,
      '--strip-components=1',
      ...LINUX_FILES.map((f) => `linux-source-6.1/${f}`),
    ]);
    // The stand-in headers first, then the kernel's own (lz4.h, sort.h, sha2.h).
    const includes = [`-I${join(realcodeDir, 'include')}`, `-I${join(linux, 'include')}`];
    for (const source of [
      join(realcodeDir, 'main.c'),
      ...LINUX_OBJECTS.map((f) => join(linux, f)),
    ]) {
      const object = join(dir, `${basename(source, '.c')}.o`);
      run('gcc', [...cflags, ...includes, ...defines, '-c', source, '-o', object]);
      objects.push(object);
    }
  }
  run('ld', [
    '-m',
    'elf_i386',
    '--no-warn-rwx-segments',
    '-T',
    join(workloadDir, 'link.ld'),
    '-o',
    elf,
    ...objects,
  ]);
  return elf;
}
