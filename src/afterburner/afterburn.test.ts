import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterburn, AfterburnError } from './afterburn.ts';
import { nopBytes, nopSizes } from './nops.ts';
import { classifyBytes } from './opcode.ts';
import { PADDING } from './sensitive.ts';
import { parseElf32 } from './elf.ts';

const burn = (text: string): string => afterburn(text, { file: 'x.s' }).text;

test('a site keeps its line: label, instruction, padding, record', () => {
  const out = burn('\tcli\n\tmovl %eax, %ebx\n');
  const lines = out.split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^\t77701: cli; \.byte 0x0f,0x1f,0x80,0x00,0x00,0x00,0x00; 77702: ; /);
  assert.match(
    lines[0]!,
    /\.pushsection \.afterburn,"a"; \.balign 4; \.long 77701b, 77702b; \.popsection$/,
  );
  assert.equal(lines[1], '\tmovl %eax, %ebx');
});

test('labels, comments and several statements on a line', () => {
  const out = burn('foo: bar:\tsti # sti\n\tnop; hlt /* hlt */ ; nop\n');
  assert.match(out, /^foo: bar:\t77701: sti; .* # sti\n/);
  assert.match(out, /\tnop; 77701: hlt; .*\.popsection \/\* hlt \*\/ ; nop\n$/);
});

test('prefixes: inline, as a statement of their own, with a slash, pseudo-prefixes', () => {
  assert.match(burn('\trep outsb\n'), /^\t77701: rep outsb;/);
  assert.match(burn('\trep; outsb\n'), /^\t77701: rep; outsb;/);
  assert.match(burn('\trep\n\toutsb\n'), /^\t77701: rep\n\toutsb;/);
  assert.match(burn('\trep/outsb\n'), /^\t77701: rep\/outsb;/);
  assert.match(burn('\t{load} mov %ds,%eax\n'), /^\t77701: \{load\} mov %ds,%eax;/);
  assert.match(burn('\tdata16 pushf\n'), /^\t77701: data16 pushf;/);
  // A prefix before a non-sensitive instruction is not a site.
  assert.equal(burn('\trep\n\tmovsb\n\tcli\n').match(/77701:/g)?.length, 1);
});

test('operand-dependent mnemonics: only segment, control, debug and test registers', () => {
  const sensitive = [
    'mov %cr3,%eax',
    'movl %eax,%cr0',
    'mov %db7,%ecx',
    'movw %ax,%ds',
    'mov %ES,(%eax)',
    'pushl %fs',
    'popw %gs',
    'mov %tr6,%eax',
    'jmp $0x10,$foo',
    'call $8,$bar',
  ];
  for (const insn of sensitive) assert.match(burn(`\t${insn}\n`), /77701:/, insn);
  const plain = [
    'mov %eax,%ebx',
    'movl %ds:(%eax),%ebx',
    'push %eax',
    'pushl %es:4(%eax)',
    'movl %esi,%edi',
    'jmp *(%eax,%ebx,4)',
    'call foo',
    'mov %dx,%ax',
    'mov %esp,%ebp',
  ];
  for (const insn of plain) assert.equal(burn(`\t${insn}\n`), `\t${insn}\n`, insn);
});

test('padding per kind follows the reference table', () => {
  const r = afterburn(
    '\tpopf\n\tpushf\n\tsti\n\tout %al,%dx\n\tiret\n\tmov %eax,%cr3\n\tcpuid\n',
  ).report;
  assert.equal(r.total, 7);
  assert.equal(r.paddingBytes, 21 + 5 + 23 + 16 + 4 + 12 + 8);
  assert.deepEqual(r.sites, { popf: 1, pushf: 1, sti: 1, out: 1, iret: 1, mov_cr: 1, cpuid: 1 });
  assert.equal(PADDING.popf, 21);
});

test('bad operands of a sensitive instruction: file:line and AfterburnError', () => {
  for (const bad of [
    'lgdt %eax',
    'lgdt (%eax',
    'mov %cr0',
    'int %eax',
    'ljmp %eax',
    'cli %eax',
    'jmp %eax,$1',
  ]) {
    assert.throws(
      () => afterburn(`\tnop\n\t${bad}\n`, { file: 'bad.s' }),
      (e: unknown) =>
        e instanceof AfterburnError && e.message.startsWith('bad.s:2: ') && e.line === 2,
      bad,
    );
  }
});

test('macros: each expansion gets its own site; parameter operands decided by .ifc', () => {
  const out = burn('.macro m reg\n\tcli\n\tmov \\reg, %eax\n.endm\n');
  assert.match(out, /\t77701: cli;/);
  assert.match(out, /\.ifc \\reg,%ds; \.set \.Lab_sens, 1; \.endif/);
  assert.match(
    out,
    /\.if \.Lab_sens; 77701: mov \\reg, %eax;.*; \.else; mov \\reg, %eax; \.endif\n/,
  );
  assert.equal(out.split('\n').length, 5);
  // An immediate parameter can never be a register.
  assert.equal(burn('.macro v n\n\tpushl $\\n\n.endm\n'), '.macro v n\n\tpushl $\\n\n.endm\n');
  // A macro named like an instruction: its body is annotated, not its uses.
  assert.equal(burn('.macro cli\n\tnop\n.endm\n\tcli\n'), '.macro cli\n\tnop\n.endm\n\tcli\n');
  assert.match(burn('.macro cli\n\tnop\n.endm\n.purgem cli\n\tcli\n'), /\t77701: cli;/);
  // A statement that is one parameter goes to the gas macro that decides at each expansion,
  // defined on the first line (the line numbers stay).
  const d = afterburn('.macro op x\n1:\t\\x\n.endm\n', { file: 'm.s' });
  assert.equal(d.report.deferred, 1);
  assert.deepEqual(d.report.warnings, []);
  const lines = d.text.split('\n');
  assert.equal(lines.length, 4);
  assert.match(
    lines[0]!,
    /^\.macro __previrt_ab_insn insn:vararg; .*\.ifc \\insn,rdmsr; \.set \.Lab_pad, 8;.*\.endm; \.macro op x$/,
  );
  assert.equal(lines[1], '1:\t__previrt_ab_insn \\x');
  // A mnemonic that is a parameter, with operands, cannot be decided: a warning, never silence.
  const r = afterburn('.macro op x\n\t\\x %eax\n.endm\n', { file: 'm.s' });
  assert.match(r.report.warnings[0]!, /^m\.s:2: warning: mnemonic/);
});

test('.afterburn_noannotate regions are left alone and recorded', () => {
  const r = afterburn('\t.afterburn_noannotate\n\tcli\n\t.afterburn_annotate\n\tsti\n');
  assert.equal(r.text.split('\n')[0], '\t77703:');
  assert.match(r.text.split('\n')[1]!, /^\tcli$/);
  assert.match(
    r.text,
    /77704: \.pushsection \.afterburn_noannotate,"a"; \.balign 4; \.long 77703b, 77704b/,
  );
  assert.equal(r.report.total, 1);
  assert.equal(r.report.notAnnotated, 1);
  assert.throws(() => afterburn('\t.afterburn_annotate\n'), AfterburnError);
});

test('.code16 gets NOPs of the same length in 16- and 32-bit code', () => {
  const out = burn('.code16\n\tsti\n.code32\n\tsti\n');
  const pad16 = /sti; \.byte ([^;]*);/.exec(out.split('\n')[1]!)![1]!;
  assert.ok(!pad16.includes('0x84') && !pad16.includes('0x44') && !pad16.includes('0x80'));
  assert.equal(pad16.split(',').length, 23);
});

test('strings, character constants and directives pass through', () => {
  const text =
    '\t.string "cli; hlt # x"\n\tmovb $\';, %al\n\t.ascii "\\"cli"\n\tstr = 5\n\t.section .x,"ax"\n/ comment cli\n';
  assert.equal(burn(text), text);
});

test('.include files are afterburned in place', () => {
  const r = afterburn('\t.include "inc.s"\n\tnop\n', {
    file: 'a.s',
    include: (name) => (name === 'inc.s' ? { path: 'inc.s', text: '\tcli\n' } : null),
  });
  assert.match(r.text, /^\t\n\t77701: cli;.*\n\n\n\tnop\n$/);
  assert.equal(r.report.total, 1);
});

test('NOP padding: few instructions, exact length', () => {
  for (let n = 1; n <= 40; n++) {
    assert.equal(nopBytes(n).length, n);
    assert.equal(nopSizes(n).length, Math.ceil(n / 11));
    assert.equal(nopBytes(n, true).length, n);
  }
  assert.deepEqual(nopSizes(21), [11, 10]);
});

test('opcode classifier (verify-annotations)', () => {
  assert.equal(classifyBytes([0xfa]), 'cli');
  assert.equal(classifyBytes([0xf3, 0x6e]), 'outs');
  assert.equal(classifyBytes([0x0f, 0x01, 0x15, 0, 0, 0, 0]), 'lgdt');
  assert.equal(classifyBytes([0x0f, 0x01, 0xf9]), 'rdtscp');
  assert.equal(classifyBytes([0x0f, 0x01, 0xe0]), 'smsw');
  assert.equal(classifyBytes([0x0f, 0x01, 0xd0]), null); // xgetbv
  assert.equal(classifyBytes([0xff, 0x28]), 'ljmp');
  assert.equal(classifyBytes([0xff, 0xe0]), null); // jmp *%eax
  assert.equal(classifyBytes([0x8b, 0x18]), null);
  assert.equal(classifyBytes([0x0f, 0x1f, 0x00]), null);
  assert.equal(classifyBytes([0x66, 0x8c, 0xd8]), 'mov_seg');
});

test('ELF reader rejects what is not ELF32', () => {
  assert.throws(() => parseElf32(new Uint8Array(10)), /not an ELF file/);
  const elf64 = new Uint8Array(64);
  elf64.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
  assert.throws(() => parseElf32(elf64), /32-bit/);
});

test('arbitrary input never throws anything but AfterburnError', () => {
  const pieces = [
    'cli',
    'mov',
    '%ds',
    '%cr0',
    ',',
    '(',
    ')',
    '"',
    "'",
    ';',
    '#',
    '/*',
    '*/',
    '/',
    '\\',
    '.macro',
    '.endm',
    '.rept',
    '.endr',
    '.code16',
    '.afterburn_noannotate',
    '.afterburn_annotate',
    '.include',
    ':',
    '$',
    '{',
    '}',
    'rep',
    ' ',
    '\t',
    '\n',
    'x',
    '1',
    '=',
    'ljmp',
    '*',
    'int',
    'in',
  ];
  let seed = 12345;
  const next = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 2000; round++) {
    let text = '';
    for (let k = next(40); k > 0; k--) text += pieces[next(pieces.length)];
    try {
      afterburn(text, { file: 'fuzz.s', include: () => null });
    } catch (e) {
      assert.ok(e instanceof AfterburnError, `${String(e)} for ${JSON.stringify(text)}`);
    }
  }
});
