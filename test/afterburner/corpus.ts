/**
 * The generated corpus: every sensitive mnemonic × operand form × size suffix × prefix, as
 * candidate lines. Gas decides which candidates are valid (filterValid); the test then places
 * the valid ones in several sections, inside macro bodies, after labels, several to a line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MEM = ['(%eax)', '8(%ebx,%ecx,4)', 'sym', '%fs:12(%esi)', '0x1000', 'sym+4(,%eax,4)'];
const R16 = ['%ax', '%bx'];
const R32 = ['%eax', '%esi'];
const SEG = ['%cs', '%ds', '%es', '%fs', '%gs', '%ss'];
const SPECIAL = [
  ...[0, 2, 3, 4].map((n) => `%cr${n}`),
  ...[0, 1, 2, 3, 6, 7].flatMap((n) => [`%db${n}`, `%dr${n}`]),
  ...[3, 4, 5, 6, 7].map((n) => `%tr${n}`),
];
const SUFFIXES = ['', 'b', 'w', 'l'];

function forms(mnemonics: string[], suffixes: string[], operands: string[]): string[] {
  const out: string[] = [];
  for (const m of mnemonics)
    for (const s of suffixes)
      for (const ops of operands) out.push(ops === '' ? m + s : `${m + s} ${ops}`);
  return out;
}

/** Candidate sensitive instructions (some invalid; filterValid drops those). */
export function candidates(): string[] {
  const lines: string[] = [];
  const add = (xs: string[]): void => {
    lines.push(...xs);
  };
  add(forms(['pushf', 'popf', 'iret'], SUFFIXES, ['']));
  add(forms(['lgdt', 'sgdt', 'lidt', 'sidt', 'invlpg'], SUFFIXES, MEM));
  add(
    forms(['lldt', 'sldt', 'ltr', 'str', 'smsw', 'lmsw', 'verr', 'verw'], SUFFIXES, [
      ...R16,
      ...R32,
      ...MEM,
    ]),
  );
  add(
    forms(['ljmp', 'lcall'], SUFFIXES, [
      '$0x10,$sym',
      '$8,$0x1000',
      '*(%eax)',
      '*sym',
      '(%eax)',
      '*%fs:4(%ebx)',
    ]),
  );
  add(forms(['jmp', 'call'], SUFFIXES, ['$0x10,$sym', '$8,$0x1000']));
  add(forms(['lret'], SUFFIXES, ['', '$4', '$0x10']));
  add(forms(['int'], SUFFIXES, ['$0x80', '$3', '$0x21']));
  add(
    forms(
      ['lds', 'les', 'lfs', 'lgs', 'lss'],
      SUFFIXES,
      MEM.flatMap((m) => [`${m},%ebx`, `${m},%bx`]),
    ),
  );
  const inOps = [
    '$0x60,%al',
    '$0x60,%ax',
    '$0x60,%eax',
    '%dx,%al',
    '(%dx),%ax',
    '%dx,%eax',
    '$0x60',
    '%dx',
    '(%dx)',
  ];
  add(forms(['in'], SUFFIXES, inOps));
  const outOps = [
    '%al,$0x80',
    '%ax,$0x80',
    '%eax,$0x80',
    '%al,%dx',
    '%ax,(%dx)',
    '%eax,%dx',
    '$0x80',
    '%dx',
    '(%dx)',
  ];
  add(forms(['out'], SUFFIXES, outOps));
  add(forms(['ins'], [...SUFFIXES, 'd'], ['', '(%dx),%es:(%edi)']));
  add(
    forms(
      ['outs'],
      [...SUFFIXES, 'd'],
      ['', '%ds:(%esi),(%dx)', '%fs:(%esi),(%dx)', '(%esi),(%dx)'],
    ),
  );
  add(forms(['arpl'], SUFFIXES, ['%ax,%bx', '%ax,(%eax)', '%bx,sym']));
  add(
    forms(['lar', 'lsl'], SUFFIXES, [
      '%ax,%bx',
      '%eax,%ebx',
      '(%eax),%eax',
      '(%eax),%bx',
      'sym,%ecx',
    ]),
  );
  const simple = [
    'clts',
    'hlt',
    'cli',
    'sti',
    'cpuid',
    'rdmsr',
    'wrmsr',
    'ud2',
    'ud2a',
    'invd',
    'wbinvd',
  ];
  add([
    ...simple,
    'wbnoinvd',
    'rsm',
    'sysenter',
    'sysexit',
    'syscall',
    'sysret',
    'rdtsc',
    'rdtscp',
  ]);
  add(['rdpmc', 'xsetbv', 'monitor', 'mwait', 'invlpga', 'int3', 'into', 'int1', 'icebp']);
  add([
    'ud0 %eax,%ebx',
    'ud1 %eax,%ebx',
    'ud1 (%eax),%ecx',
    'monitor %eax,%ecx,%edx',
    'mwait %eax,%ecx',
  ]);
  const movSeg = SEG.flatMap((s) => [
    `${s},%eax`,
    `${s},%ax`,
    `%eax,${s}`,
    `%bx,${s}`,
    `${s},(%eax)`,
    `(%eax),${s}`,
    `sym,${s}`,
    `${s},sym`,
  ]);
  add(forms(['mov'], SUFFIXES, movSeg));
  add(
    forms(
      ['mov'],
      SUFFIXES,
      SPECIAL.flatMap((r) => [`${r},%eax`, `%ecx,${r}`]),
    ),
  );
  add(forms(['push', 'pop'], SUFFIXES, SEG));
  // Spellings: upper case, encoding suffixes, pseudo-prefixes.
  add([
    'CLI',
    'Sti',
    'PUSHFL',
    'MOV %CR0,%EAX',
    'mov.s %ds,%eax',
    '{load} mov %ds,%eax',
    '{disp32} lgdt (%eax)',
  ]);
  return lines;
}

/** Prefixed variants of a valid instruction: inline prefixes and a prefix statement before it. */
export function prefixed(insn: string): string[] {
  return ['rep ', 'fs ', 'data16 ', 'addr16 ', 'ds ', 'rep; ', 'data16; ', 'rep/'].map(
    (p) => p + insn,
  );
}

/**
 * The lines of `lines` that GNU as accepts in 32-bit code (one as run; a rejected line is
 * reported by line number). `sym` is defined so memory forms assemble.
 */
export function filterValid(lines: string[], as = 'as'): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-corpus-'));
  try {
    const src = join(dir, 'c.s');
    writeFileSync(src, ['.text', ...lines, '.data', 'sym: .long 0', ''].join('\n'));
    const run = spawnSync(as, ['--32', '-o', join(dir, 'c.o'), src], { encoding: 'utf8' });
    const bad = new Set<number>();
    for (const m of run.stderr.matchAll(/c\.s:(\d+): (Error|Warning)/g)) bad.add(Number(m[1]) - 2);
    return lines.filter((_, k) => !bad.has(k));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Corpus {
  /** The assembly text. */
  text: string;
  /** Sensitive instructions the assembled file holds (macro expansions counted). */
  sensitive: number;
}

/**
 * Builds the corpus from valid instructions: a section each for plain lines, prefixed lines,
 * lines with labels and comments, several instructions to a line; and a macro whose body holds
 * every instruction, expanded twice (each expansion must get its own sites).
 */
export function buildCorpus(valid: string[], validPrefixed: string[]): Corpus {
  const out: string[] = ['\t.text', '\t.globl _start', '_start:'];
  let sensitive = 0;
  const emit = (line: string, count = 1): void => {
    out.push(line);
    sensitive += count;
  };
  for (const insn of valid) emit(`\t${insn}`);
  out.push('\t.section .text.prefixed,"ax",@progbits');
  for (const insn of validPrefixed) emit(`\t${insn}`);
  out.push('\t.section .init.text,"ax",@progbits');
  valid.forEach((insn, k) =>
    emit(k % 2 === 0 ? `L${k}:\t${insn}\t# comment` : `L${k}: ${insn} /* c */`),
  );
  out.push('\t.section .text.multi,"ax",@progbits');
  for (let k = 0; k + 2 < valid.length; k += 3)
    emit(`\t${valid[k]}; ${valid[k + 1]} ;${valid[k + 2]}`, 3);
  out.push('\t.macro sensitive_all arg', ...valid.map((insn) => `\t${insn}`), '\t.endm');
  out.push('\t.section .text.macro,"ax",@progbits', '\tsensitive_all 1', '\tsensitive_all 2');
  sensitive += valid.length * 2;
  // .rept: every iteration its own sites.
  out.push(
    '\t.section .text.rept,"ax",@progbits',
    '\t.rept 2',
    ...validPrefixed.map((insn) => `\t${insn}`),
    '\t.endr',
  );
  sensitive += validPrefixed.length * 2;
  // Parameter operands: sensitive or not only once expanded (.ifc); also under .altmacro.
  const special = ['%ds', '%es', '%fs', '%gs', '%ss', '%cr0', '%cr3', '%db7'];
  const ordinary = ['%eax', '%ebx', '(%ecx)', '4(%esp)'];
  out.push('\t.section .text.param,"ax",@progbits');
  out.push(
    '\t.macro movfrom r',
    '\tmov \\r, %eax',
    '\t.endm',
    '\t.macro pushpop r',
    '\tpushl \\r',
    '\tpopl \\r',
    '\t.endm',
  );
  for (const r of [...special, ...ordinary]) out.push(`\tmovfrom ${r}`);
  for (const r of [...special.slice(0, 5), ...ordinary]) out.push(`\tpushpop ${r}`);
  sensitive += special.length + 5 * 2;
  out.push('\t.irp seg, %ds, %es, %bx', '\tmovw \\seg, %ax', '\t.endr');
  sensitive += 2;
  out.push(
    '\t.altmacro',
    '\t.macro alt n',
    '\tint $\\n',
    '\tmov %ds, %eax',
    '\t.endm',
    '\talt %(1+2)',
    '\talt 0x80',
    '\t.noaltmacro',
  );
  sensitive += 4;
  out.push('\t.data', 'sym:\t.long 0', '');
  return { text: out.join('\n'), sensitive };
}

/** Non-sensitive instructions that look like sensitive ones; the afterburner must not touch them. */
export const LOOKALIKES: readonly string[] = [
  'mov %eax,%ebx',
  'push %eax',
  'pop %ebx',
  'movl %ds:(%eax),%ebx',
  'movl %fs:4,%eax',
  'mov %es:(%edi),%eax',
  'pushl %ss:(%esp)',
  'pushl (%eax)',
  'movw %dx,%ax',
  'mov %esp,%ebp',
  'movl $cli,%eax',
  'movl ds,%eax',
  'movl %eax,cs',
  'incl in',
  'call *%eax',
  'call *(%eax,%ebx,4)',
  'jmp *(%eax,%ebx,4)',
  'call cli',
  'jmp sti',
  'movsb %ds:(%esi),%es:(%edi)',
  'lodsl %fs:(%esi)',
  'stosb %al,%es:(%edi)',
  'lea 4(%esi),%edi',
  'xchg %eax,%ebx',
  'nop',
  'ret',
  'ret $4',
  'leave',
  'pushl $0x10',
  'push $cli',
  "movb $'c, %al",
  "movb $';, %al",
  '# cli',
  '/* sti */',
  'cli_label: nop',
  'in_x = 4',
  'str = 5',
];

/** Data that spells sensitive instructions; placed in .data so it is not disassembled. */
export const DATA_LOOKALIKES: readonly string[] = [
  '.long cli, sti, hlt',
  '.ascii "cli; hlt # in %dx"',
  '.string "mov %cr0,%eax"',
];

/** Intel syntax (`.intel_syntax noprefix`): sensitive lines, then look-alikes. */
export const INTEL_SENSITIVE: readonly string[] = [
  'cli',
  'mov eax, cr0',
  'mov cr3, eax',
  'mov ds, ax',
  'mov ax, ss',
  'push ds',
  'pop es',
  'pushfd',
  'popfd',
  'lgdt [eax]',
  'int 0x80',
  'in al, 0x60',
  'out dx, al',
  'jmp far ptr [eax]',
  'jmp fword ptr [eax]',
  'call fword ptr [ebx]',
  'jmp 0x10:_start',
  'call 0x10:_start',
  'retf',
  'retf 4',
  'iretd',
  'rep outsb',
  'mov dr7, eax',
  'mov %cr4, eax',
];
export const INTEL_LOOKALIKES: readonly string[] = [
  'mov eax, DWORD PTR ds:[eax]',
  'mov eax, fs:4',
  'push eax',
  'jmp eax',
  'jmp fs:[eax]',
  'call _start',
  'mov ebx, eax',
];
