// Real gcc output through the `previrt afterburn` command (gcc -S -m32 -O2, inline asm, the
// annotation header), the verify-annotations command on the linked result, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { includeDir } from '../../src/afterburner/files.ts';
import { WRAPPER_CFLAGS } from './wrapperFlags.ts';

const root = join(import.meta.dirname, '..', '..');
const previrt = join(root, 'bin', 'previrt.mjs');

function run(
  cmd: string,
  args: string[],
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(cmd, args, { encoding: 'utf8' });
}
function ok(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `as` and `ld` of `source` into DIR/NAME.elf (entry `_start`), then `verify-annotations --json` of it. */
function linkAndVerify(dir: string, name: string, source: string): ReturnType<typeof run> {
  ok('as', ['--32', '-o', join(dir, `${name}.o`), source]);
  ok('ld', [
    '-m',
    'elf_i386',
    '-e',
    '_start',
    '-o',
    join(dir, `${name}.elf`),
    join(dir, `${name}.o`),
  ]);
  return run(process.execPath, [previrt, 'verify-annotations', join(dir, `${name}.elf`), '--json']);
}

/** Runs `work` in a new temporary folder, removed afterwards whatever happens. */
function inTempDir(prefix: string, work: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('gcc -S output round-trips: afterburn, assemble, link, verify-annotations', (t) => {
  inTempDir('previrt-ab-gcc-', (dir) => {
    const src = join(import.meta.dirname, 'gcc', 'kernel.c');
    const s = join(dir, 'kernel.s');
    const flags = [
      '-m32',
      '-O2',
      '-ffreestanding',
      '-fno-pie',
      '-fno-asynchronous-unwind-tables',
      `-I${includeDir()}`,
    ];
    ok('gcc', [...flags, '-S', '-o', s, src]);
    const ab = join(dir, 'kernel.ab.s');
    const r = run(process.execPath, [previrt, 'afterburn', s, '-o', ab, '--report']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /kernel\.s: \d+ sites, \d+ bytes of padding added/);
    for (const kind of [
      'cli',
      'sti',
      'hlt',
      'pushf',
      'popf',
      'mov_cr',
      'mov_seg',
      'in',
      'out',
      'ins',
      'lgdt',
      'lidt',
      'ltr',
      'ljmp',
      'invlpg',
    ])
      assert.match(r.stderr, new RegExp(`\\n  ${kind} +\\d+`), kind);
    const text = readFileSync(s, 'latin1');
    const burned = readFileSync(ab, 'latin1');
    assert.equal(burned.split('\n').length, text.split('\n').length);

    for (const [name, file] of [
      ['plain', s],
      ['burned', ab],
    ] as const) {
      ok('as', ['--32', '-o', join(dir, `${name}.o`), file]);
      ok('ld', [
        '-m',
        'elf_i386',
        '-e',
        '_start',
        '-o',
        join(dir, `${name}.elf`),
        join(dir, `${name}.o`),
      ]);
    }
    const good = run(process.execPath, [
      previrt,
      'verify-annotations',
      join(dir, 'burned.elf'),
      '--json',
    ]);
    assert.equal(good.status, 0, good.stdout);
    const result = JSON.parse(good.stdout) as {
      sensitive: number;
      annotated: number;
      headerSites: Record<string, number>;
    };
    assert.equal(result.annotated, result.sensitive);
    assert.ok(result.sensitive >= 20);
    for (const kind of [
      'pte_set',
      'pgd_set',
      'pte_read',
      'pgd_read',
      'pte_test_clear',
      'mmio_read',
      'mmio_write',
    ])
      assert.ok((result.headerSites[`.afterburn.${kind}`] ?? 0) >= 1, kind);

    const bad = run(process.execPath, [
      previrt,
      'verify-annotations',
      join(dir, 'plain.elf'),
      '--max',
      '3',
    ]);
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, new RegExp(`${result.sensitive} offenders`));
    assert.match(bad.stdout, /not annotated\n/);
    assert.match(bad.stdout, /\.\.\. and \d+ more \(--max N\)/);
    t.diagnostic(
      `gcc output: ${result.sensitive} sensitive instructions, all annotated; header sites ${JSON.stringify(result.headerSites)}`,
    );
  });
});

test('bad input: one line with file:line, non-zero exit, no stack trace', () => {
  inTempDir('previrt-ab-bad-', (dir) => {
    const bad = join(dir, 'bad.s');
    writeFileSync(bad, '\tnop\n\tlgdt %eax\n');
    const r = run(process.execPath, [previrt, 'afterburn', bad, '-o', join(dir, 'out.s')]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`^${bad.replace(/[.]/g, '\\.')}:2: cannot parse the operands`),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);

    const missing = run(process.execPath, [previrt, 'afterburn', join(dir, 'none.s')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /cannot read .*none\.s: ENOENT/);

    const obj = join(dir, 'x.o');
    const okSource = join(dir, 'ok.s');
    writeFileSync(okSource, '\tcli\n');
    ok('as', ['--32', '-o', obj, okSource]);
    const rel = run(process.execPath, [previrt, 'verify-annotations', obj]);
    assert.equal(rel.status, 2);
    assert.match(rel.stderr, /relocatable object .* link it first/);
    const notElf = run(process.execPath, [previrt, 'verify-annotations', bad]);
    assert.equal(notElf.status, 2);
    assert.match(notElf.stderr, /not an ELF file/);
  });
});

test('as wrapper: gcc -B, with -pipe (standard input) the same object; a missing real as is one message', () => {
  inTempDir('previrt-ab-wrap-', (dir) => {
    const src = join(import.meta.dirname, 'gcc', 'kernel.c');
    const flags = [...WRAPPER_CFLAGS, '-c', src];
    ok('gcc', [...flags, '-o', join(dir, 'a.o')]);
    ok('gcc', [...flags, '-pipe', '-o', join(dir, 'b.o')]);
    assert.deepEqual(readFileSync(join(dir, 'a.o')), readFileSync(join(dir, 'b.o')));
    const r = spawnSync('gcc', [...flags, '-o', join(dir, 'c.o')], {
      encoding: 'utf8',
      env: { ...process.env, PREVIRT_REAL_AS: join(dir, 'no-such-as') },
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /previrt as wrapper: cannot run .*no-such-as/);
  });
});

test('verify-annotations: int3 bytes no path reaches are fill; a reachable int3 is an offender', () => {
  inTempDir('previrt-ab-fill-', (dir) => {
    const s = join(dir, 'fill.s');
    writeFileSync(
      s,
      [
        '\t.text',
        '\t.globl _start',
        '_start:',
        '\tcall 1f', // return-stack filling: the int3 between is never reached
        '\tint3',
        '1:\tret',
        '\tint3', // after a return: fill, as the linker's 0xCC between objects
        '\tint3',
        'f2:\tnop',
        '\tint3', // falls through from the nop: an offender
        '\tjmp 2f',
        '2:\tint3', // a branch's target: an offender
        '\tjmp *%eax',
        '\tnop',
        '\tint3', // after a jump and a NOP: fill
        '\tud2',
        '\tint3', // after ud2: fill
        '\tret',
        '',
      ].join('\n'),
    );
    const r = linkAndVerify(dir, 'fill', s);
    assert.equal(r.status, 1, r.stderr);
    const result = JSON.parse(r.stdout) as {
      fill: number;
      offenders: { instruction: string; where: string }[];
    };
    assert.equal(result.fill, 5);
    assert.deepEqual(
      result.offenders.map((o) => `${o.where} ${o.instruction}`),
      ['f2+0x1 int3', 'f2+0x4 int3', 'f2+0x9 ud2'],
    );
  });
});

test('a macro parameter as the whole statement: gas makes a site of each sensitive expansion', () => {
  inTempDir('previrt-ab-defer-', (dir) => {
    // As Linux's arch/x86/lib/msr-reg.S: one macro body for rdmsr and wrmsr.
    const s = join(dir, 'defer.s');
    writeFileSync(
      s,
      [
        '.macro op_safe_regs op',
        '1:\t\\op',
        '\tret',
        '.endm',
        '\t.text',
        '\t.globl _start',
        '_start:',
        '\top_safe_regs rdmsr',
        '\top_safe_regs wrmsr',
        '\top_safe_regs nop',
        '\top_safe_regs cli',
        // A parameter that opens a block, closed later on its line (Linux's FILL_RETURN_BUFFER).
        '\top_safe_regs ".rept 2; nop; .endr; nop"',
        '',
      ].join('\n'),
    );
    const ab = join(dir, 'defer.ab.s');
    const burned = run(process.execPath, [previrt, 'afterburn', s, '-o', ab, '--report']);
    assert.equal(burned.status, 0, burned.stderr);
    assert.match(burned.stderr, /1 macro-parameter statements decided by gas/);
    const r = linkAndVerify(dir, 'defer', ab);
    assert.equal(r.status, 0, r.stdout);
    const result = JSON.parse(r.stdout) as { sites: number; byKind: Record<string, number> };
    assert.equal(result.sites, 3);
    assert.deepEqual(result.byKind, { rdmsr: 1, wrmsr: 1, cli: 1 });
  });
});
