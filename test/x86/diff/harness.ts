/**
 * The differential test against the host CPU (issue 2, "Correct: checked against real things").
 * One generated assembly routine, `run_cases`, runs every case: it loads random register, flag
 * and memory inputs, executes one instruction, and stores registers, flags and the memory
 * operand into `out`. The same routine is linked twice: into a 32-bit Linux program (gcc -m32)
 * that runs natively on the host, or under qemu-i386 where the host cannot execute i386 programs
 * (test/hostI386.ts), and into a flat image that runs on previrt's CPU. The two `out` arrays are
 * compared, masking only the flags the SDM leaves undefined.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageEnd, loadSegments } from '../../../src/bench/cpu/previrt.ts';
import { TEST_COSTS, testPlatform } from '../../../src/x86/testing.ts';
import { Cpu } from '../../../src/x86/Cpu.ts';
import { xorshift32 } from '../../random.ts';
import { i386Runner, type I386Runner } from '../../hostI386.ts';
import { AF, CF, OF, PF, SF, TEMPLATES, ZF, type Template } from './templates.ts';

const ARITH = CF | PF | AF | ZF | SF | OF;
/** Output record per case: EAX ECX EDX EBX ESI EDI, EFLAGS, buf[0..3] (11 dwords). */
const RECORD = 11;
const REGS = ['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi'];

export interface Case {
  template: Template;
  regs: number[];
  flags: number;
  buf: number[];
}

export interface Mismatch {
  asm: string;
  field: string;
  input: Case;
  /** The value the reference (the host CPU or qemu-i386) computed. */
  reference: number;
  previrt: number;
}

export interface DiffResult {
  /** Which reference ran the host program and why (I386Runner.description). */
  reference: string;
  cases: number;
  /** Cases per template mnemonic that matched. */
  passed: number;
  mismatches: Mismatch[];
  byMnemonic: Map<string, { run: number; passed: number }>;
  /** Compiled blocks previrt ran (0 when interpreting). */
  blockEntries: number;
}

const SPECIAL = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe,
];

export function generateCases(perTemplate: number, seed: number, filter?: string): Case[] {
  const rand = xorshift32(seed);
  const value = (): number => {
    const r = rand() % 4;
    if (r === 0) return SPECIAL[rand() % SPECIAL.length];
    if (r === 1) return rand() & 0xff;
    return rand();
  };
  const cases: Case[] = [];
  for (const template of TEMPLATES) {
    if (filter !== undefined && !template.asm.includes(filter)) continue;
    for (let k = 0; k < perTemplate; k++) {
      const regs = REGS.map(() => value());
      const buf = [value(), value(), value(), value()];
      constrain(template, regs, rand);
      cases.push({ template, regs, flags: rand() & ARITH, buf });
    }
  }
  return cases;
}

/** Keeps divisions from raising #DE and string instructions inside `buf`. */
function constrain(t: Template, r: number[], rand: () => number): void {
  const [EAX, ECX, EDX, EBX, ESI] = [0, 1, 2, 3, 4];
  switch (t.setup) {
    case 'div32':
      r[EBX] = r[EBX] || 1;
      r[EDX] = r[EDX] % r[EBX];
      break;
    case 'div16':
      r[EBX] = (r[EBX] & ~0xffff) | (r[EBX] & 0xffff || 1);
      r[EDX] = (r[EDX] & ~0xffff) | ((r[EDX] & 0xffff) % (r[EBX] & 0xffff));
      break;
    case 'div8': {
      const d = r[EBX] & 0xff || 1;
      r[EBX] = (r[EBX] & ~0xff) | d;
      r[EAX] = (r[EAX] & ~0xff00) | ((((r[EAX] >>> 8) & 0xff) % d) << 8);
      break;
    }
    case 'idiv32':
      r[EBX] = ((rand() % 2001) - 1000 || 3) >>> 0;
      r[EDX] = (r[EAX] | 0) < 0 ? 0xffffffff : 0;
      if (r[EAX] === 0x80000000) r[EAX] = 0x80000001;
      break;
    case 'idiv16':
      r[EBX] = (r[EBX] & ~0xffff) | (((rand() % 201) - 100 || 3) & 0xffff);
      if ((r[EAX] & 0xffff) === 0x8000) r[EAX] ^= 1;
      r[EDX] = (r[EDX] & ~0xffff) | ((r[EAX] & 0x8000) !== 0 ? 0xffff : 0);
      break;
    case 'idiv8':
      r[EBX] = (r[EBX] & ~0xff) | (((rand() % 21) - 10 || 3) & 0xff);
      if ((r[EAX] & 0xff) === 0x80) r[EAX] ^= 1;
      r[EAX] = (r[EAX] & ~0xff00) | ((r[EAX] & 0x80) !== 0 ? 0xff00 : 0);
      break;
    case 'string':
      r[ECX] = rand() % 4;
      r[ESI] = -1; // replaced by buf+8 in the generated code
      break;
    case 'xlat':
      r[EBX] = -1; // replaced by buf
      r[EAX] = (r[EAX] & ~0xff) | (rand() % 16);
      break;
  }
  for (let k = 0; k < r.length; k++) r[k] >>>= 0;
}

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

/** The assembly of `run_cases` for the given cases. */
export function generateAssembly(cases: Case[]): string {
  const lines = ['\t.text', '\t.globl run_cases', 'run_cases:', '\tpushal', '\tcld'];
  cases.forEach((c, n) => {
    const o = n * RECORD * 4;
    c.buf.forEach((v, k) => lines.push(`\tmovl $${hex(v)}, buf+${k * 4}`));
    lines.push(`\tpushl $${hex(c.flags | 2)}`, '\tpopfl');
    c.regs.forEach((v, k) => {
      let src = `$${hex(v)}`;
      if (k === 5) src = '$buf';
      else if (k === 4 && c.template.setup === 'string') src = '$buf+8';
      else if (k === 3 && c.template.setup === 'xlat') src = '$buf';
      lines.push(`\tmovl ${src}, %${REGS[k]}`);
    });
    lines.push(`\t${c.template.asm}`, '\tpushfl');
    // Pointers into `buf` differ between the two images: store them as offsets from buf (the
    // flags are saved already).
    lines.push('\tsubl $buf, %edi');
    if (c.template.setup === 'string') lines.push('\tsubl $buf, %esi');
    if (c.template.setup === 'xlat') lines.push('\tsubl $buf, %ebx');
    REGS.forEach((r, k) => lines.push(`\tmovl %${r}, out+${o + k * 4}`));
    lines.push(`\tpopl out+${o + 24}`);
    for (let k = 0; k < 4; k++)
      lines.push(`\tmovl buf+${k * 4}, %eax`, `\tmovl %eax, out+${o + 28 + k * 4}`);
  });
  lines.push(
    '\tpopal',
    '\tret',
    '\t.data',
    '\t.align 16',
    'buf:\t.space 16',
    '\t.globl out',
    '\t.bss',
    '\t.align 16',
    `out:\t.space ${cases.length * RECORD * 4}`,
    '\t.section .note.GNU-stack,"",@progbits',
  );
  return lines.join('\n') + '\n';
}

const HOST_MAIN = `#include <stdio.h>
extern void run_cases(void);
extern unsigned out[];
int main(int argc, char **argv) {
  (void)argc;
  run_cases();
  fwrite(out, 4, ${'${COUNT}'}, stdout);
  return 0;
}
`;

const FLAT_START = `\t.text\n\t.globl _start\n_start:\n\tmovl $0x90000, %esp\n\tcall run_cases\n\thlt\n\t.section .note.GNU-stack,"",@progbits\n`;

/** Builds both programs into `dir` (cached by content) and returns their paths. */
function build(
  dir: string,
  asm: string,
  count: number,
): { host: string; flat: string; out: number } {
  const key = createHash('sha256').update(asm).digest('hex').slice(0, 16);
  const d = join(dir, key);
  const host = join(d, 'host');
  const flat = join(d, 'flat.elf');
  if (!existsSync(flat)) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'cases.S'), asm);
    writeFileSync(join(d, 'main.c'), HOST_MAIN.replace('${COUNT}', String(count * RECORD)));
    writeFileSync(join(d, 'start.S'), FLAT_START);
    execFileSync('gcc', [
      '-m32',
      '-no-pie',
      '-O0',
      '-o',
      host,
      join(d, 'main.c'),
      join(d, 'cases.S'),
    ]);
    execFileSync('gcc', ['-m32', '-c', '-o', join(d, 'cases.o'), join(d, 'cases.S')]);
    execFileSync('gcc', ['-m32', '-c', '-o', join(d, 'start.o'), join(d, 'start.S')]);
    execFileSync('ld', [
      '-m',
      'elf_i386',
      '-Ttext=0x100000',
      '-o',
      flat,
      join(d, 'start.o'),
      join(d, 'cases.o'),
    ]);
  }
  const symbols = execFileSync('nm', [flat], { encoding: 'utf8' });
  const match = /^([0-9a-f]+) \w out$/m.exec(symbols);
  if (match === null) throw new Error('differential harness: no symbol `out` in the flat image');
  return { host, flat, out: parseInt(match[1], 16) };
}

/**
 * Runs the cases on the reference and on previrt and compares the results. `blocks`: previrt
 * runs every instruction as part of a compiled block (threshold 1: compiled and run at its first
 * execution) instead of interpreting it. `runner`: how the host program runs (natively, or under
 * qemu-i386; by default as test/hostI386.ts finds out, PREVIRT_I386 forces one).
 */
export function runDifferential(
  cases: Case[],
  buildDir: string,
  blocks = false,
  runner: I386Runner = i386Runner(),
): DiffResult {
  const { host, flat, out } = build(buildDir, generateAssembly(cases), cases.length);
  const command = runner.command(host);
  const hostOut = execFileSync(command.file, command.args, { maxBuffer: 1 << 28 });
  // As much memory as the image needs (its cases and their results grow with --cases).
  const image = readFileSync(flat);
  const platform = testPlatform(
    Math.max(16 << 20, (Math.ceil(imageEnd(image) / (1 << 20)) + 1) << 20),
  );
  const cpu = new Cpu(platform, TEST_COSTS);
  cpu.blocksEnabled = blocks;
  cpu.blockThreshold = 1;
  cpu.blockBudget = Infinity; // every hot entry compiled
  const entry = loadSegments(image, platform.ram);
  cpu.enterFlatProtectedMode();
  cpu.eip = entry;
  let why = cpu.run(cpu.cycles + 1e7);
  while (why === 'limit') why = cpu.run(cpu.cycles + 1e7);
  if (why !== 'halt')
    throw new Error(`differential harness: previrt ended with ${why} at EIP ${hex(cpu.eip)}`);
  if (hostOut.byteLength !== cases.length * RECORD * 4)
    throw new Error(
      `differential harness: the host program wrote ${hostOut.byteLength} bytes, expected ${cases.length * RECORD * 4} (${runner.description})`,
    );
  const mine = new DataView(platform.ram.buffer, out, cases.length * RECORD * 4);
  const theirs = new DataView(hostOut.buffer, hostOut.byteOffset, hostOut.byteLength);
  const result: DiffResult = {
    reference: runner.description,
    cases: cases.length,
    passed: 0,
    mismatches: [],
    byMnemonic: new Map(),
    blockEntries: cpu.blockEntries,
  };
  const fields = [...REGS, 'eflags', 'buf[0]', 'buf[1]', 'buf[2]', 'buf[3]'];
  cases.forEach((c, n) => {
    let ok = true;
    for (let f = 0; f < RECORD; f++) {
      let a = theirs.getUint32((n * RECORD + f) * 4, true);
      let b = mine.getUint32((n * RECORD + f) * 4, true);
      if (f === 6) {
        const mask = ARITH & ~c.template.undefinedFlags;
        a &= mask;
        b &= mask;
      }
      if (a !== b) {
        ok = false;
        result.mismatches.push({
          asm: c.template.asm,
          field: fields[f],
          input: c,
          reference: a >>> 0,
          previrt: b >>> 0,
        });
      }
    }
    const name = c.template.asm.split(' ')[0];
    const entry2 = result.byMnemonic.get(name) ?? { run: 0, passed: 0 };
    entry2.run++;
    if (ok) {
      entry2.passed++;
      result.passed++;
    }
    result.byMnemonic.set(name, entry2);
  });
  return result;
}
