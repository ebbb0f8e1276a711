/**
 * PERF: compiled blocks. A run of decoded instructions in one code page, from a hot entry point
 * to the first control transfer (or an instruction only the generic path may run), is translated
 * into one JavaScript function. The function does exactly what the interpreter loop
 * (Cpu.runInner) would do for those instructions — the same registers, memory, lazy flags,
 * cycles and counters — without the loop's per-instruction bookkeeping.
 *
 * Exactness rules (the block must be indistinguishable from interpreting it):
 * - The loop enters a block only when the interpreter would run all of it: enough instruction
 *   budget, and the clock would not reach the end of the run slice before its last instruction
 *   (see `Block.fits`). Interrupts, bound entries and the slice end are checked by the loop
 *   before the block, and nothing inside a block can change them except a slow-path memory access
 *   (MMIO, a TLB miss, a write to a code page) or a generic instruction; after each of those the
 *   block charges the clock up to date and leaves at the next instruction if an interrupt is
 *   pending, the slice would end, or its own code page was written.
 * - The fast memory paths need flat segments (and a 32-bit stack for PUSH/POP/CALL/RET); the
 *   block records which ones it uses and the loop checks them on entry.
 * - A fault inside a block charges the instructions up to and including the faulting one, sets
 *   `instrEip` to it and propagates, as the interpreter does.
 * - Blocks are found through their first instruction (`Instr.block`), and are valid for the
 *   EIP, CS base and code-page generation they were compiled for (`Cpu.codeGeneration`).
 */
import type { Cpu, CpuCounters } from './Cpu.ts';
import type { CpuCosts } from './cost.ts';
import type { CpuFault } from './fault.ts';
import * as F from './flags.ts';
import * as Fast from './ops/fast.ts';
import type { Instr } from './instr.ts';
import { SS } from './segment.ts';

/** The compiled code: runs the block and returns how many instructions it executed. */
export type BlockCode = (
  cpu: Cpu,
  regs: Int32Array,
  view: DataView,
  ram: Uint8Array,
  dtlb: Int32Array,
  readMask: number,
  writeMask: number,
  generation: Int32Array,
  costs: CpuCosts,
  counters: CpuCounters,
  instrs: Instr[],
  gp: (code: number) => CpuFault,
  csLimit: number,
  eips: number[],
  budget: number,
) => number;

/** A flat-segment requirement bit per segment register, and one for a 32-bit stack (SS.B). */
export const STACK_BIG = 1 << 6;

/** Entry points run this many times in the interpreter before their block is compiled. */
export const HOT = 256;
/** Longest block, in instructions. */
const MAX_LENGTH = 48;

export class Block {
  constructor(
    readonly code: BlockCode,
    /** The instructions, in order; the generic ones are called through `exec`. */
    readonly instrs: Instr[],
    /** EIP of each instruction, and one past the last. */
    readonly eips: number[],
    /** CS base the block was compiled for (bound entries are found by linear address). */
    readonly csBase: number,
    /** Physical code page and its generation when compiled. */
    readonly page: number,
    readonly generation: number,
    /** Value of `Cpu.blockEpoch` when compiled (bound entries, a code reset). */
    readonly epoch: number,
    /** Segments that must be flat, bit per register, plus STACK_BIG. */
    readonly segments: number,
    /** Offset of the block's last byte, for the CS limit check. */
    readonly lastByte: number,
    /** Instructions before the last one, and how many of those are multiplies (costs.mul). */
    readonly before: number,
    readonly multiplies: number,
    /** The last instruction went through its generic handler (it may change anything). */
    readonly generic: boolean,
  ) {}

  get length(): number {
    return this.instrs.length;
  }

  /**
   * True when the interpreter would run every instruction of the block from `cycles`: the
   * clock stays below `sliceEnd` before the last one.
   */
  fits(cycles: number, sliceEnd: number, costs: CpuCosts): boolean {
    return (
      cycles + this.before * costs.base + this.multiplies * (costs.mul - costs.base) < sliceEnd
    );
  }
}

/** Reads the decoded instruction at a physical address in the head's page (or undefined). */
export type DecodedAt = (physical: number) => Instr | undefined;

/**
 * Generic instructions a block may run in its middle: they touch only registers, flags (not IF,
 * TF, IOPL) and memory through the ordinary paths, never EIP, CS, segments, control registers or
 * the interrupt state. Everything else ends the block.
 */
function plainGeneric(i: Instr): boolean {
  const op = i.opcode;
  if (op < 0x40) return (op & 7) < 6 || (op & 7) === 7; // ALU, DAA/DAS/AAA/AAS; not segments
  if (op < 0x62) return true; // INC, DEC, PUSH, POP, PUSHA, POPA
  if (op === 0x68 || op === 0x69 || op === 0x6a || op === 0x6b) return true;
  if (op >= 0x80 && op <= 0x8b) return true;
  if (op === 0x8d || op === 0x8f) return true;
  if (op >= 0x90 && op <= 0x99) return true; // XCHG, CBW/CWDE, CWD/CDQ
  if (op === 0x9e || op === 0x9f) return true; // SAHF, LAHF
  if (op >= 0xa0 && op <= 0xa3) return true; // MOV moffs
  if (op >= 0xa4 && op <= 0xaf) return i.rep === 0; // string ops restart themselves under REP
  if (op >= 0xa8 && op <= 0xa9) return true;
  if (op >= 0xb0 && op <= 0xc1) return true; // MOV imm, shifts
  if (op === 0xc6 || op === 0xc7 || op === 0xc8 || op === 0xc9) return true; // MOV, ENTER, LEAVE
  if (op >= 0xd0 && op <= 0xd5) return true; // shifts, AAM, AAD
  if (op === 0xd7 || op === 0xf5 || op === 0xf6 || op === 0xf7) return true;
  if (op >= 0xf8 && op <= 0xf9) return true; // CLC, STC
  if (op === 0xfc || op === 0xfd) return true; // CLD, STD
  if (op === 0xfe) return i.reg <= 1;
  if (op === 0xff) return i.reg <= 1 || i.reg === 6; // INC, DEC, PUSH r/m
  if (op >= 0x140 && op <= 0x14f) return true; // CMOVcc
  if (op >= 0x190 && op <= 0x19f) return true; // SETcc
  if (op === 0x1a3 || op === 0x1a4 || op === 0x1a5 || op === 0x1ab) return true;
  if (op === 0x1ac || op === 0x1ad || op === 0x1af) return true;
  if (op >= 0x1b0 && op <= 0x1b1) return true; // CMPXCHG
  if (op >= 0x1b3 && op <= 0x1bf && op !== 0x1b9) return true; // BTR, MOVZX, BT*, BSF, MOVSX
  if (op >= 0x1c0 && op <= 0x1c1) return true; // XADD
  if (op === 0x1c7) return i.reg === 1; // CMPXCHG8B
  return op >= 0x1c8 && op <= 0x1cf; // BSWAP
}

/** Forms that end a block (they set EIP); a Jcc only leaves it when taken. */
function ends(code: number): boolean {
  return code === Fast.FAST_JMP || code === Fast.FAST_CALL || code === Fast.FAST_RET;
}

/** Inline forms that access memory (the segment or stack they use must be flat). */
function memorySegments(i: Instr): number {
  switch (i.fast) {
    case Fast.FAST_MOV_LOAD:
    case Fast.FAST_MOV_STORE:
    case Fast.FAST_MOVZX8_LOAD:
      return 1 << i.seg;
    case Fast.FAST_PUSH:
    case Fast.FAST_POP:
    case Fast.FAST_CALL:
    case Fast.FAST_RET:
      return (1 << SS) | STACK_BIG;
    default:
      return 0;
  }
}

/**
 * Collects and compiles the block that starts with `head` at `eip` (physical address
 * `physical`, CS base `csBase`, 32-bit code). Returns undefined when there is nothing worth
 * compiling (the head itself must go through the generic path).
 */
export function compileBlock(
  head: Instr,
  eip: number,
  physical: number,
  csBase: number,
  generation: number,
  epoch: number,
  decodedAt: DecodedAt,
  isBound: (linear: number) => boolean,
): Block | undefined {
  const instrs: Instr[] = [];
  const eips: number[] = [];
  let at = eip;
  let p = physical;
  let instr: Instr | undefined = head;
  while (instr !== undefined && instr.codeBig && !instr.dead && instrs.length < MAX_LENGTH) {
    if (instrs.length > 0 && isBound((csBase + at) | 0)) break;
    instrs.push(instr);
    eips.push(at);
    at = (at + instr.length) >>> 0;
    p += instr.length;
    if (ends(instr.fast)) break;
    if (instr.fast === Fast.FAST_NONE && !plainGeneric(instr)) break;
    if ((p & 0xfff) === 0 || p >>> 12 !== physical >>> 12) break;
    instr = decodedAt(p);
  }
  eips.push(at);
  const n = instrs.length;
  if (n === 0 || (n === 1 && instrs[0].fast === Fast.FAST_NONE)) return undefined;
  let segments = 0;
  let multiplies = 0;
  for (let k = 0; k < n; k++) {
    segments |= memorySegments(instrs[k]);
    if (k < n - 1 && instrs[k].fast === Fast.FAST_IMUL_RRI) multiplies++;
  }
  const source = generate(instrs, eips, physical >>> 12, generation, epoch);
  const code = new Function(
    'cpu',
    'regs',
    'view',
    'ram',
    'dtlb',
    'rm',
    'wm',
    'gen',
    'costs',
    'counters',
    'I',
    'gp',
    'lim',
    'E',
    'budget',
    source,
  ) as BlockCode;
  return new Block(
    code,
    instrs,
    eips,
    csBase,
    physical >>> 12,
    generation,
    epoch,
    segments,
    (at - 1) >>> 0,
    n - 1,
    multiplies,
    instrs[n - 1].fast === Fast.FAST_NONE,
  );
}

/** What the compiler knows about the lazy flags: the last producer in this block, if simple. */
const enum Known {
  None,
  Sub, // fd - fs = fr (CMP, SUB)
  Add, // fd + fs = fr (ADD)
  Logic, // fr (TEST, XOR)
  IncDec, // fr, CF unknown
}

/**
 * Source of the block function (see BlockCode for the parameters). Locals: `c` instructions
 * of this pass already charged to the clock, `t` instructions of earlier passes (a block whose
 * branch goes back to its own start loops inside the function), `k` the instruction running
 * (for faults), `fd fs fr` the operands and result of the last flag-setting instruction.
 */
function generate(
  instrs: Instr[],
  eips: number[],
  page: number,
  generation: number,
  epoch: number,
): string {
  const n = instrs.length;
  const out: string[] = [];
  let known = Known.None;

  /** Charges the clock and the counter for the instructions of this pass before `count`. */
  const sync = (count: number): string =>
    `if (c < ${count}) { const m = ${count} - c; cpu.cycles += m * costs.base; counters.instructions += m; c = ${count}; }`;
  /** Leaves the block at EIP `eip`, after `k` instructions of this pass. */
  const leave = (k: number, eip: number): string =>
    `{ cpu.eip = ${eip}; cpu.instrEip = ${eips[k - 1]}; ${sync(k)} return t + ${k}; }`;
  /** The clock would reach the slice end before the last instruction, run from `from`. */
  const slice = (from: number): string => {
    let extra = 0;
    for (let j = from; j < n - 1; j++) if (instrs[j].fast === Fast.FAST_IMUL_RRI) extra++;
    return `cpu.cycles + ${n - 1 - from} * costs.base + ${extra} * (costs.mul - costs.base) >= cpu.sliceEnd`;
  };
  /**
   * After a slow path or a generic handler in instruction `k`: leave at k + 1 if the loop must
   * see something (an interrupt, the slice end, a write to this code page, new bound entries).
   */
  const check = (k: number): string => {
    if (k >= n - 1) return '';
    return (
      `if ((cpu.interruptLine && (cpu.flagsBits & ${F.IF}) !== 0) || gen[${page}] !== ${generation}` +
      ` || cpu.blockEpoch !== ${epoch} || ${slice(k + 1)}) ${leave(k + 1, eips[k + 1])}`
    );
  };
  /** A taken branch at `k` to `target`: loop to the start, or leave. */
  const branch = (k: number, target: number): string => {
    if (target === eips[0]) {
      // Back to the start: another pass if the interpreter would run all of it too.
      return (
        `{ ${sync(k + 1)} t += ${k + 1}; c = 0;` +
        ` if (t + ${n} > budget || ${slice(0)}) { cpu.eip = ${target}; cpu.instrEip = ${eips[k]}; return t; }` +
        ' continue; }'
      );
    }
    return `{ if (${target} > lim) throw gp(0); ${leave(k + 1, target)} }`;
  };
  const ea = (i: Instr): string => {
    const parts: string[] = [];
    if (i.disp !== 0 || (i.base < 0 && i.index < 0)) parts.push(String(i.disp | 0));
    if (i.base >= 0) parts.push(`regs[${i.base}]`);
    if (i.index >= 0) {
      parts.push(i.scale === 0 ? `regs[${i.index}]` : `(regs[${i.index}] << ${i.scale})`);
    }
    return `(${parts.join(' + ')}) | 0`;
  };
  const lazy = (op: number, d: string, s: string, r: string): string =>
    `cpu.lazyOp = ${op}; cpu.lazyDst = ${d}; cpu.lazySrc = ${s}; cpu.lazyRes = ${r}; ` +
    `cpu.lazyCin = 0; cpu.lazySizeMask = -1; cpu.lazyMask = ${F.ARITH};`;
  /** The condition of Jcc `cc` as an expression, from the known producer or the CPU. */
  const condition = (cc: number): string => {
    let r: string | undefined;
    const kind = cc >> 1;
    if (known === Known.Sub) {
      r = [
        undefined,
        '(fd >>> 0) < (fs >>> 0)',
        'fd === fs',
        '(fd >>> 0) <= (fs >>> 0)',
        'fr < 0',
        undefined,
        'fd < fs',
        'fd <= fs',
      ][kind];
    } else if (known === Known.Logic) {
      r = ['false', 'false', 'fr === 0', 'fr === 0', 'fr < 0', undefined, 'fr < 0', 'fr <= 0'][
        kind
      ];
    } else if (known === Known.Add || known === Known.IncDec) {
      r = kind === 2 ? 'fr === 0' : kind === 4 ? 'fr < 0' : undefined;
    }
    if (r === undefined) return `cpu.condition(${cc})`;
    return (cc & 1) === 0 ? `(${r})` : `!(${r})`;
  };

  out.push('let c = 0, t = 0, k = 0, a = 0, e = 0, v = 0, fd = 0, fs = 0, fr = 0;');
  out.push('try { for (;;) {');
  for (let k = 0; k < n; k++) {
    const i = instrs[k];
    const next = eips[k + 1];
    const last = k === n - 1;
    const I = `I[${k}]`;
    switch (i.fast) {
      case Fast.FAST_MOV_RR:
        out.push(`regs[${i.dst}] = regs[${i.src}];`);
        break;
      case Fast.FAST_MOV_IMM:
        out.push(`regs[${i.dst}] = ${i.imm | 0};`);
        break;
      case Fast.FAST_LEA:
        out.push(`regs[${i.reg}] = ${ea(i)};`);
        break;
      case Fast.FAST_MOV_LOAD:
        out.push(
          `k = ${k}; a = ${ea(i)}; e = dtlb[a >>> 12];`,
          `if ((e & rm) === rm && (a & 0xfff) <= 0xffc) regs[${i.reg}] = view.getInt32((e & -4096) | (a & 0xfff), true);`,
          `else { ${sync(k + 1)} regs[${i.reg}] = cpu.read32(a); ${check(k)} }`,
        );
        break;
      case Fast.FAST_MOVZX8_LOAD:
        out.push(
          `k = ${k}; a = ${ea(i)}; e = dtlb[a >>> 12];`,
          `if ((e & rm) === rm) regs[${i.reg}] = ram[(e & -4096) | (a & 0xfff)];`,
          `else { ${sync(k + 1)} regs[${i.reg}] = cpu.read8(a); ${check(k)} }`,
        );
        break;
      case Fast.FAST_MOV_STORE:
        out.push(
          `k = ${k}; a = ${ea(i)}; e = dtlb[a >>> 12];`,
          `if ((e & wm) === wm && (a & 0xfff) <= 0xffc) view.setInt32((e & -4096) | (a & 0xfff), regs[${i.reg}], true);`,
          `else { ${sync(k + 1)} cpu.write32(a, regs[${i.reg}]); ${check(k)} }`,
        );
        break;
      case Fast.FAST_CMP_RR:
      case Fast.FAST_CMP_RI:
      case Fast.FAST_SUB_RR:
      case Fast.FAST_SUB_RI: {
        const rr = i.fast === Fast.FAST_CMP_RR || i.fast === Fast.FAST_SUB_RR;
        out.push(
          `fd = regs[${i.dst}]; fs = ${rr ? `regs[${i.src}]` : i.imm | 0}; fr = (fd - fs) | 0;`,
        );
        out.push(lazy(F.LAZY_SUB, 'fd', 'fs', 'fr'));
        if (i.fast === Fast.FAST_SUB_RR || i.fast === Fast.FAST_SUB_RI)
          out.push(`regs[${i.dst}] = fr;`);
        known = Known.Sub;
        break;
      }
      case Fast.FAST_ADD_RR:
      case Fast.FAST_ADD_RI: {
        const s = i.fast === Fast.FAST_ADD_RR ? `regs[${i.src}]` : String(i.imm | 0);
        out.push(`fd = regs[${i.dst}]; fs = ${s}; fr = (fd + fs) | 0;`);
        out.push(lazy(F.LAZY_ADD, 'fd', 'fs', 'fr'), `regs[${i.dst}] = fr;`);
        known = Known.Add;
        break;
      }
      case Fast.FAST_TEST_RR:
        out.push(`fr = regs[${i.dst}] & regs[${i.src}];`, lazy(F.LAZY_LOGIC, '0', '0', 'fr'));
        known = Known.Logic;
        break;
      case Fast.FAST_XOR_RR:
        out.push(`fr = regs[${i.dst}] ^ regs[${i.src}];`, lazy(F.LAZY_LOGIC, '0', '0', 'fr'));
        out.push(`regs[${i.dst}] = fr;`);
        known = Known.Logic;
        break;
      case Fast.FAST_INC:
      case Fast.FAST_DEC: {
        const inc = i.fast === Fast.FAST_INC;
        out.push(`fd = regs[${i.dst}]; fr = (fd ${inc ? '+' : '-'} 1) | 0;`);
        out.push(
          `cpu.setLazyKeepCarry(${inc ? F.LAZY_ADD : F.LAZY_SUB}, fd, 1, fr, -1); regs[${i.dst}] = fr;`,
        );
        known = Known.IncDec;
        break;
      }
      case Fast.FAST_IMUL_RRI:
        out.push(
          `cpu.cycles += costs.mul - costs.base; v = regs[${i.src}]; fr = Math.imul(v, ${i.imm | 0});`,
          `regs[${i.dst}] = fr; cpu.setMulFlags(fr, -1, v * ${i.imm | 0} !== fr);`,
        );
        known = Known.None;
        break;
      case Fast.FAST_PUSH:
        out.push(
          `k = ${k}; v = regs[${i.dst}]; a = (regs[4] - 4) | 0; e = dtlb[a >>> 12];`,
          `if ((e & wm) === wm && (a & 0xfff) <= 0xffc) { view.setInt32((e & -4096) | (a & 0xfff), v, true); regs[4] = a; }`,
          `else { ${sync(k + 1)} cpu.write32(a, v); regs[4] = a; ${check(k)} }`,
        );
        break;
      case Fast.FAST_POP:
        out.push(
          `k = ${k}; a = regs[4]; e = dtlb[a >>> 12];`,
          `if ((e & rm) === rm && (a & 0xfff) <= 0xffc) { v = view.getInt32((e & -4096) | (a & 0xfff), true); regs[4] = (a + 4) | 0; regs[${i.dst}] = v; }`,
          `else { ${sync(k + 1)} v = cpu.read32(a); regs[4] = (a + 4) | 0; regs[${i.dst}] = v; ${check(k)} }`,
        );
        break;
      case Fast.FAST_JCC: {
        // Taken: leave (or loop); not taken: go on with the next instruction.
        out.push(`k = ${k}; if (${condition(i.opcode & 15)}) ${branch(k, (next + i.imm) >>> 0)}`);
        break;
      }
      case Fast.FAST_JMP:
        out.push(`k = ${k}; ${branch(k, (next + i.imm) >>> 0)}`);
        break;
      case Fast.FAST_CALL: {
        const target = (next + i.imm) >>> 0;
        out.push(
          `k = ${k}; ${sync(k + 1)} cpu.instrEip = ${eips[k]}; a = (regs[4] - 4) | 0; e = dtlb[a >>> 12];`,
          `if ((e & wm) === wm && (a & 0xfff) <= 0xffc) view.setInt32((e & -4096) | (a & 0xfff), ${next}, true);`,
          `else cpu.write32(a, ${next});`,
          `regs[4] = a; if (${target} > lim) throw gp(0); cpu.eip = ${target}; return t + ${k + 1};`,
        );
        break;
      }
      case Fast.FAST_RET:
        out.push(
          `k = ${k}; ${sync(k + 1)} cpu.instrEip = ${eips[k]}; a = regs[4]; e = dtlb[a >>> 12];`,
          `v = (e & rm) === rm && (a & 0xfff) <= 0xffc ? view.getInt32((e & -4096) | (a & 0xfff), true) >>> 0 : cpu.read32(a) >>> 0;`,
          `if (v > lim) throw gp(0); cpu.eip = v; regs[4] = (a + 4) | 0; return t + ${k + 1};`,
        );
        break;
      default:
        // A generic instruction: through its handler, with EIP and the clock as the loop has them.
        known = Known.None;
        out.push(
          `k = ${k}; cpu.instrEip = ${eips[k]}; cpu.eip = ${next}; ${sync(k + 1)}`,
          `${I}.exec(cpu, ${I});`,
          last ? `return t + ${n};` : check(k),
        );
        break;
    }
    if (last && (i.fast === Fast.FAST_JCC || (i.fast !== Fast.FAST_NONE && !ends(i.fast)))) {
      out.push(leave(n, next));
    }
  }
  out.push('} } catch (x) {');
  // The faulting instruction counts as executed (the interpreter charges before it runs).
  out.push(
    'cpu.instrEip = E[k];',
    'if (c < k + 1) { const m = k + 1 - c; cpu.cycles += m * costs.base; counters.instructions += m; }',
    'throw x; }',
  );
  return out.join('\n');
}
