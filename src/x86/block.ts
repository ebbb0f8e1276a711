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
import type { Cpu } from './Cpu.ts';
import type { CpuCounters } from './counters.ts';
import type { CpuCosts } from './cost.ts';
import type { CpuFault } from './fault.ts';
import * as F from './flags.ts';
import * as Fast from './ops/fast.ts';
import type { Instr } from './instr.ts';
import { SS } from './segment.ts';

/**
 * The compiled code: runs the block and returns how many instructions it executed. `readMask`
 * and `writeMask` are the data TLB bits a fast access needs at the current CPL.
 */
export type BlockCode = (
  readMask: number,
  writeMask: number,
  csLimit: number,
  budget: number,
) => number;

/** What every block of one CPU works on (captured by the compiled code). */
export interface BlockContext {
  cpu: Cpu;
  regs: Int32Array;
  view: DataView;
  ram: Uint8Array;
  dtlb: Int32Array;
  counters: CpuCounters;
  gp: (code: number) => CpuFault;
}

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

  /** EIP of the first instruction, and how many instructions the block has. */
  get eip(): number {
    return this.eips[0];
  }
  get count(): number {
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
  // ALU, and DAA DAS AAA AAS (27 2F 37 3F); not PUSH/POP of segment registers (x6, x7 below 27)
  if (op < 0x40) return (op & 7) < 6 || ((op & 7) === 7 && op >= 0x27);
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
  if (op === 0x1b3 || op === 0x1b6 || op === 0x1b7) return true; // BTR, MOVZX (not LFS, LGS)
  if (op >= 0x1ba && op <= 0x1bf) return true; // BT* imm, BTC, BSF, BSR, MOVSX
  if (op >= 0x1c0 && op <= 0x1c1) return true; // XADD
  if (op === 0x1c7) return i.reg === 1; // CMPXCHG8B
  return op >= 0x1c8 && op <= 0x1cf; // BSWAP
}

/**
 * Collects and compiles the block that starts with `head` at `eip` (physical address
 * `physical`, CS base `csBase`, 32-bit code). Returns undefined when there is nothing worth
 * compiling (the head itself must go through the generic path).
 */
export function compileBlock(
  context: BlockContext,
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
  const ops: Op[] = [];
  const eips: number[] = [];
  let at = eip;
  let p = physical;
  let instr: Instr | undefined = head;
  while (instr !== undefined && instr.codeBig && !instr.dead && instrs.length < MAX_LENGTH) {
    if (instrs.length > 0 && isBound((csBase + at) | 0)) break;
    const o = classify(instr);
    instrs.push(instr);
    ops.push(o);
    eips.push(at);
    at = (at + instr.length) >>> 0;
    p += instr.length;
    if (ends(o.form) || (o.form === Form.Generic && !plainGeneric(instr))) break;
    if ((p & 0xfff) === 0 || p >>> 12 !== physical >>> 12) break;
    instr = decodedAt(p);
  }
  eips.push(at);
  const n = instrs.length;
  if (n === 0 || (n === 1 && ops[0].form === Form.Generic)) return undefined;
  let segments = 0;
  let multiplies = 0;
  for (let k = 0; k < n; k++) {
    const form = ops[k].form;
    if (memoryForm(form)) segments |= 1 << instrs[k].seg;
    if (stackForm(form)) segments |= (1 << SS) | STACK_BIG;
    if (k < n - 1 && form === Form.ImulRRI) multiplies++;
  }
  const source = new Writer(instrs, ops, eips, physical >>> 12, generation, epoch).source();
  const factory = new Function(
    'X',
    'I',
    'E',
    'const cpu = X.cpu, regs = X.regs, view = X.view, ram = X.ram, dtlb = X.dtlb, counters = X.counters, gp = X.gp;\n' +
      `return function block_${eip.toString(16)}(rm, wm, lim, budget) {\n${source}\n};`,
  ) as (context: BlockContext, instrs: Instr[], eips: number[]) => BlockCode;
  const code = factory(context, instrs, eips);
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
    ops[n - 1].form === Form.Generic,
  );
}

// ---- instruction forms the compiler writes out -------------------------------------------

/** The forms compiled inline; anything else is GENERIC (called through `exec`). */
const enum Form {
  Generic,
  Nop,
  MovRR, // regs[dst] = regs[src]
  MovRI, // regs[dst] = imm
  Lea,
  Load, // regs[reg] = [ea], 32 bits (8B, A1)
  Store, // [ea] = regs[reg] or imm (89, C7, A3)
  LoadExtend, // MOVZX/MOVSX r32, m8/m16
  ExtendRR, // MOVZX/MOVSX r32, r8/r16
  Load8, // MOV r8, m8
  Store8, // MOV m8, r8 / imm8
  AluRR, // add or and sub xor cmp, r32 with r32 or imm (also TEST)
  AluRM, // add or and sub xor cmp, r32 with m32 as the source (also CMP m32, r32/imm)
  IncDec,
  ImulRRI,
  Push, // register or imm
  Pop,
  SetCC, // SETcc r8
  CmovRR,
  Jcc,
  Jmp,
  Call,
  Ret,
}

/** ALU operations (ModRM reg-field order) the compiler writes out, and their lazy kind. */
const LAZY_OF_ALU = [
  F.LAZY_ADD,
  F.LAZY_LOGIC,
  0,
  0,
  F.LAZY_LOGIC,
  F.LAZY_SUB,
  F.LAZY_LOGIC,
  F.LAZY_SUB,
];

/** A decoded instruction as the compiler sees it: its form and operands. */
interface Op {
  form: Form;
  /** ALU operation 0–7 (AluRR/AluRM), 8 for TEST; condition code (Jcc, SetCC, CmovRR). */
  alu: number;
  /** Destination and source register (-1 none); `imm` when the source is an immediate. */
  dst: number;
  src: number;
  imm: number;
  /** Memory access size (Load*, Store*); sign-extend (LoadExtend, ExtendRR). */
  size: number;
  signed: boolean;
}

function op(form: Form, alu = 0, dst = -1, src = -1, imm = 0, size = 4, signed = false): Op {
  return { form, alu, dst, src, imm, size, signed };
}

/** Classifies an instruction (32-bit code, flat addressing assumed; see `segmentsOf`). */
function classify(i: Instr): Op {
  switch (i.fast) {
    case Fast.FAST_MOV_RR:
      return op(Form.MovRR, 0, i.dst, i.src);
    case Fast.FAST_MOV_IMM:
      return op(Form.MovRI, 0, i.dst, -1, i.imm | 0);
    case Fast.FAST_LEA:
      return op(Form.Lea, 0, i.reg);
    case Fast.FAST_MOV_LOAD:
      return op(Form.Load, 0, i.reg);
    case Fast.FAST_MOV_STORE:
      return op(Form.Store, 0, -1, i.reg);
    case Fast.FAST_MOVZX8_LOAD:
      return op(Form.LoadExtend, 0, i.reg, -1, 0, 1);
    case Fast.FAST_CMP_RR:
      return op(Form.AluRR, 7, i.dst, i.src);
    case Fast.FAST_CMP_RI:
      return op(Form.AluRR, 7, i.dst, -1, i.imm | 0);
    case Fast.FAST_ADD_RR:
      return op(Form.AluRR, 0, i.dst, i.src);
    case Fast.FAST_ADD_RI:
      return op(Form.AluRR, 0, i.dst, -1, i.imm | 0);
    case Fast.FAST_SUB_RR:
      return op(Form.AluRR, 5, i.dst, i.src);
    case Fast.FAST_SUB_RI:
      return op(Form.AluRR, 5, i.dst, -1, i.imm | 0);
    case Fast.FAST_XOR_RR:
      return op(Form.AluRR, 6, i.dst, i.src);
    case Fast.FAST_TEST_RR:
      return op(Form.AluRR, 8, i.dst, i.src);
    case Fast.FAST_INC:
      return op(Form.IncDec, 0, i.dst);
    case Fast.FAST_DEC:
      return op(Form.IncDec, 5, i.dst);
    case Fast.FAST_IMUL_RRI:
      return op(Form.ImulRRI, 0, i.dst, i.src, i.imm | 0);
    case Fast.FAST_PUSH:
      return op(Form.Push, 0, -1, i.dst);
    case Fast.FAST_POP:
      return op(Form.Pop, 0, i.dst);
    case Fast.FAST_JCC:
      return op(Form.Jcc, i.opcode & 15, -1, -1, i.imm | 0);
    case Fast.FAST_JMP:
      return op(Form.Jmp, 0, -1, -1, i.imm | 0);
    case Fast.FAST_CALL:
      return op(Form.Call, 0, -1, -1, i.imm | 0);
    case Fast.FAST_RET:
      return op(Form.Ret);
  }
  const o = i.opcode;
  if (i.lock || i.length > 15) return op(Form.Generic); // the handler raises the fault
  if (o === 0x90) return op(Form.Nop); // NOP, XCHG (E)AX,(E)AX, PAUSE
  if (i.rep !== 0 || !i.addr32) return op(Form.Generic);
  const reg = i.mod === 3;
  if (i.size === 4) {
    if (o < 0x40 && (o & 7) <= 3 && (o & 1) === 1) {
      const alu = (o >> 3) & 7;
      if (alu === 2 || alu === 3) return op(Form.Generic); // ADC, SBB
      if (reg)
        return (o & 2) === 0 ? op(Form.AluRR, alu, i.rm, i.reg) : op(Form.AluRR, alu, i.reg, i.rm);
      if ((o & 2) !== 0) return op(Form.AluRM, alu, i.reg, -1);
      return alu === 7 ? op(Form.AluRM, 7, -1, i.reg) : op(Form.Generic); // CMP m32, r32
    }
    if (o < 0x40 && (o & 7) === 5) {
      const alu = (o >> 3) & 7;
      return alu === 2 || alu === 3 ? op(Form.Generic) : op(Form.AluRR, alu, 0, -1, i.imm | 0);
    }
    if ((o === 0x81 || o === 0x83) && i.reg !== 2 && i.reg !== 3) {
      if (reg) return op(Form.AluRR, i.reg, i.rm, -1, i.imm | 0);
      if (i.reg === 7) return op(Form.AluRM, 7, -1, -1, i.imm | 0); // CMP m32, imm
    }
    if (o === 0xa9) return op(Form.AluRR, 8, 0, -1, i.imm | 0);
    if (o === 0xf7 && i.reg === 0 && reg) return op(Form.AluRR, 8, i.rm, -1, i.imm | 0);
    if (o === 0xc7 && i.reg === 0) {
      return reg ? op(Form.MovRI, 0, i.rm, -1, i.imm | 0) : op(Form.Store, 0, -1, -1, i.imm | 0);
    }
    if (o === 0xa1) return op(Form.Load, 0, 0);
    if (o === 0xa3) return op(Form.Store, 0, -1, 0);
    if (o === 0x68 || o === 0x6a) return op(Form.Push, 0, -1, -1, i.imm | 0);
    if (o >= 0x1b6 && o <= 0x1bf && (o & 7) >= 6) {
      const size = (o & 1) === 0 ? 1 : 2;
      const signed = o >= 0x1be;
      return reg
        ? op(Form.ExtendRR, 0, i.reg, i.rm, 0, size, signed)
        : op(Form.LoadExtend, 0, i.reg, -1, 0, size, signed);
    }
    if (o >= 0x140 && o <= 0x14f && reg) return op(Form.CmovRR, o & 15, i.reg, i.rm);
  }
  if (i.size === 1) {
    if (o === 0x88 && !reg) return op(Form.Store8, 0, -1, i.reg, 0, 1);
    if (o === 0xc6 && !reg && i.reg === 0) return op(Form.Store8, 0, -1, -1, i.imm & 0xff, 1);
    if (o === 0x8a && !reg) return op(Form.Load8, 0, i.reg, -1, 0, 1);
  }
  if (o >= 0x190 && o <= 0x19f && reg) return op(Form.SetCC, o & 15, i.rm);
  return op(Form.Generic);
}

/** Forms that always leave the block (they set EIP); a Jcc leaves it only when taken. */
function ends(form: Form): boolean {
  return form === Form.Jmp || form === Form.Call || form === Form.Ret;
}

function memoryForm(form: Form): boolean {
  return (
    form === Form.Load ||
    form === Form.Store ||
    form === Form.LoadExtend ||
    form === Form.Load8 ||
    form === Form.Store8 ||
    form === Form.AluRM
  );
}

function stackForm(form: Form): boolean {
  return form === Form.Push || form === Form.Pop || form === Form.Call || form === Form.Ret;
}

/**
 * Generic instructions that may touch memory (or devices through it): a ModRM memory operand,
 * or an implicit stack, string or moffs access. The others work on registers and flags only.
 */
function genericTouchesMemory(i: Instr): boolean {
  if (i.mod !== 3) return true;
  const o = i.opcode;
  return (
    (o >= 0x50 && o <= 0x61) ||
    o === 0x68 ||
    o === 0x6a ||
    o === 0x8f ||
    (o >= 0xa0 && o <= 0xaf) ||
    o === 0xc8 ||
    o === 0xc9 ||
    o === 0xd7 ||
    (o === 0xff && i.reg === 6)
  );
}

// ---- the generated code ------------------------------------------------------------------

/** Markers in the generated code, replaced once the registers the block uses are known. */
const WRITE_BACK = '/*write back*/';
const RELOAD = '/*reload*/';

/** The lazy-flag state the generated code holds in locals and has not stored in the CPU. */
const enum Pending {
  None = 0,
  Add = F.LAZY_ADD, // fd + fs = fr
  Sub = F.LAZY_SUB, // fd - fs = fr
  Logic = F.LAZY_LOGIC, // fr
  Inc = 4, // fd + 1 = fr, CF = fc (INC keeps CF)
  Dec = 5, // fd - 1 = fr, CF = fc
  IncKeep = 6, // fd + 1 = fr, CF as the CPU has it (nothing was pending before the INC)
  DecKeep = 7,
  Mul = 8, // IMUL: result fr, CF = OF = fm
}

/** Byte register `r` (AL CL DL BL AH CH DH BH) as an expression, and an assignment to it. */
function byteReg(r: number): string {
  return r < 4 ? `(regs[${r}] & 0xff)` : `((regs[${r - 4}] >> 8) & 0xff)`;
}
function setByteReg(r: number, v: string): string {
  return r < 4
    ? `regs[${r}] = (regs[${r}] & ~0xff) | (${v});`
    : `regs[${r - 4}] = (regs[${r - 4}] & ~0xff00) | ((${v}) << 8);`;
}

/**
 * Writes the source of a block function (parameters: BlockCode). Locals: `c` the instructions
 * of this pass already charged to the clock, `t` those of earlier passes (a block whose branch
 * goes back to its start loops inside the function), `k` the instruction running (for faults),
 * `s` set by a slow memory path, `fd fs fr` the operands and result of the last flag-setting
 * instruction, kept out of the CPU until something could look at them (`Pending`).
 */
class Writer {
  private readonly out: string[] = [];
  private pending = Pending.None;
  /** `fr` holds the result ZF and SF come from (also after INC, DEC, IMUL). */
  private resultKnown = false;
  /** Pending state before each instruction, for the fault handler. */
  private readonly pendingAt: number[] = [];

  constructor(
    private readonly instrs: Instr[],
    private readonly ops: Op[],
    private readonly eips: number[],
    private readonly page: number,
    private readonly generation: number,
    private readonly epoch: number,
  ) {}

  private get n(): number {
    return this.instrs.length;
  }

  /** Stores the pending flags into the CPU (code for it; `forget` ends the pending state). */
  private flush(forget: boolean): string {
    const p = this.pending;
    if (forget) this.pending = Pending.None;
    if (p === Pending.None) return '';
    if (p === Pending.Inc || p === Pending.Dec) {
      return `cpu.setLazyIncDec(${p === Pending.Inc ? F.LAZY_ADD : F.LAZY_SUB}, fd, fr, fc);`;
    }
    if (p === Pending.IncKeep || p === Pending.DecKeep) {
      return `cpu.setLazyKeepCarry(${p === Pending.IncKeep ? F.LAZY_ADD : F.LAZY_SUB}, fd, 1, fr, -1);`;
    }
    if (p === Pending.Mul) return 'cpu.setMulFlags(fr, -1, fm);';
    return p === Pending.Logic
      ? `cpu.setLazy(${p}, 0, 0, fr, -1);`
      : `cpu.setLazy(${p}, fd, fs, fr, -1);`;
  }

  /** CF (0 or 1) as an expression, from the pending producer or the CPU. */
  private carry(): string {
    switch (this.pending) {
      case Pending.Add:
        return '((fd >>> 0) + (fs >>> 0) > 0xffffffff ? 1 : 0)';
      case Pending.Sub:
        return '((fd >>> 0) < (fs >>> 0) ? 1 : 0)';
      case Pending.Logic:
        return '0';
      case Pending.Inc:
      case Pending.Dec:
        return 'fc';
      case Pending.Mul:
        return '(fm ? 1 : 0)';
      default:
        return '(cpu.getCF() ? 1 : 0)';
    }
  }

  /** Charges the clock and the counter for the instructions of this pass before `count`. */
  private sync(count: number): string {
    return `if (c < ${count}) { cpu.cycles += (${count} - c) * B; counters.instructions += ${count} - c; c = ${count}; }`;
  }

  /** Leaves the block at EIP `eip` after `k` instructions of this pass. */
  private leave(k: number, eip: number): string {
    return `{ ${this.flush(false)} cpu.eip = ${eip}; cpu.instrEip = ${this.eips[k - 1]}; ${this.sync(k)} ${WRITE_BACK} return t + ${k}; }`;
  }

  /** Instructions from `from` to the one before the last, and the multiplies among them. */
  private rest(from: number): [number, number] {
    let multiplies = 0;
    for (let j = from; j < this.n - 1; j++) if (this.ops[j].form === Form.ImulRRI) multiplies++;
    return [Math.max(0, this.n - 1 - from), multiplies];
  }

  /**
   * After a slow path or a generic handler in instruction `k`: leave at k + 1 if the loop must
   * see something (an interrupt, the slice end, a write to this code page, new bound entries).
   */
  private check(k: number): string {
    if (k >= this.n - 1) return '';
    const [before, multiplies] = this.rest(k + 1);
    return (
      `if (cpu.blockMustLeave(${this.page}, ${this.generation}, ${this.epoch}, ${before}, ${multiplies}))` +
      ` ${this.leave(k + 1, this.eips[k + 1])}`
    );
  }

  /** The slice would end before the last instruction of a pass from `from`. */
  private sliceEnds(from: number, charged: string): string {
    const [before, multiplies] = this.rest(from);
    return `cpu.cycles + (${charged}${before}) * B + ${multiplies} * (costs.mul - B) >= cpu.sliceEnd`;
  }

  /** A taken branch at `k` to `target`: another pass, or leave. */
  private branch(k: number, target: number): string {
    if (target === this.eips[0]) {
      return (
        `{ ${this.flush(false)} ${this.sync(k + 1)} t += ${k + 1}; c = 0;` +
        ` if (t + ${this.n} > budget || ${this.sliceEnds(0, '')})` +
        ` { cpu.eip = ${target}; cpu.instrEip = ${this.eips[k]}; ${WRITE_BACK} return t; } continue; }`
      );
    }
    return `{ if (${target} > lim) throw gp(0); ${this.leave(k + 1, target)} }`;
  }

  private ea(i: Instr): string {
    if (i.opcode === 0xa1 || i.opcode === 0xa3) return String(i.disp | 0); // moffs
    const parts: string[] = [];
    if (i.disp !== 0 || (i.base < 0 && i.index < 0)) parts.push(String(i.disp | 0));
    if (i.base >= 0) parts.push(`regs[${i.base}]`);
    if (i.index >= 0) {
      parts.push(i.scale === 0 ? `regs[${i.index}]` : `(regs[${i.index}] << ${i.scale})`);
    }
    return `(${parts.join(' + ')}) | 0`;
  }

  /** Reads `size` bytes at linear `a` (already set) into `v`: fast path or the CPU's. */
  private load(k: number, size: number): string {
    const slow = `else { ${this.sync(k + 1)} v = cpu.read${size * 8}(a); s = 1; }`;
    const at = '(e & -4096) | (a & 0xfff)';
    if (size === 1) return `e = dtlb[a >>> 12]; if ((e & rm) === rm) v = ram[${at}]; ${slow}`;
    const fits = size === 4 ? 0xffc : 0xffe;
    const get = size === 4 ? 'getInt32' : 'getUint16';
    return `e = dtlb[a >>> 12]; if ((e & rm) === rm && (a & 0xfff) <= ${fits}) v = view.${get}(${at}, true); ${slow}`;
  }

  /** Writes `value` (`size` bytes) at linear `a`. */
  private store(k: number, size: number, value: string): string {
    const slow = `else { ${this.sync(k + 1)} cpu.write${size * 8}(a, ${value}); s = 1; }`;
    const at = '(e & -4096) | (a & 0xfff)';
    if (size === 1)
      return `e = dtlb[a >>> 12]; if ((e & wm) === wm) ram[${at}] = ${value}; ${slow}`;
    const fits = size === 4 ? 0xffc : 0xffe;
    const set = size === 4 ? 'setInt32' : 'setUint16';
    return `e = dtlb[a >>> 12]; if ((e & wm) === wm && (a & 0xfff) <= ${fits}) view.${set}(${at}, ${value}, true); ${slow}`;
  }

  /** After an instruction with a memory access: the check, if its slow path ran. */
  private afterSlow(k: number): string {
    const check = this.check(k);
    return check === '' ? '' : `if (s !== 0) { s = 0; ${check} }`;
  }

  /** The condition `cc` as an expression, from the pending producer or through the CPU. */
  private condition(cc: number): [string, string] {
    const kind = cc >> 1;
    let r: string | undefined;
    if (this.pending === Pending.Sub) {
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
    } else if (this.pending === Pending.Logic) {
      r = ['false', 'false', 'fr === 0', 'fr === 0', 'fr < 0', undefined, 'fr < 0', 'fr <= 0'][
        kind
      ];
    } else if (this.pending === Pending.Mul && kind <= 1) {
      r = 'fm'; // OF and CF
    } else if (this.resultKnown && (kind === 2 || kind === 4)) {
      r = kind === 2 ? 'fr === 0' : 'fr < 0';
    }
    if (r === undefined) return [this.flush(true), `cpu.condition(${cc})`];
    return ['', (cc & 1) === 0 ? `(${r})` : `!(${r})`];
  }

  /** Sets the pending flags from an ALU operation on `d` and `s` (expressions); result in fr. */
  private alu(alu: number, d: string, src: string, write: string | undefined): string {
    const lazy = alu === 8 ? F.LAZY_LOGIC : LAZY_OF_ALU[alu];
    this.pending = lazy as Pending;
    this.resultKnown = true;
    const sign = ['+', '|', '', '', '&', '-', '^', '-', '&'][alu];
    const compute =
      lazy === F.LAZY_LOGIC
        ? `fr = ${d} ${sign} ${src};`
        : `fd = ${d}; fs = ${src}; fr = (fd ${sign} fs) | 0;`;
    const store = alu === 7 || alu === 8 || write === undefined ? '' : ` ${write} = fr;`;
    return compute + store;
  }

  private emit(k: number): void {
    const i = this.instrs[k];
    const o = this.ops[k];
    const next = this.eips[k + 1];
    const last = k === this.n - 1;
    const out = this.out;
    this.pendingAt.push(this.pending);
    switch (o.form) {
      case Form.Nop:
        break;
      case Form.MovRR:
        out.push(`regs[${o.dst}] = regs[${o.src}];`);
        break;
      case Form.MovRI:
        out.push(`regs[${o.dst}] = ${o.imm};`);
        break;
      case Form.Lea:
        out.push(`regs[${o.dst}] = ${this.ea(i)};`);
        break;
      case Form.Load:
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.load(k, 4)} regs[${o.dst}] = v;`,
          this.afterSlow(k),
        );
        break;
      case Form.LoadExtend: {
        const v = o.signed ? (o.size === 1 ? '(v << 24) >> 24' : '(v << 16) >> 16') : 'v';
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.load(k, o.size)} regs[${o.dst}] = ${v};`,
          this.afterSlow(k),
        );
        break;
      }
      case Form.Load8:
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.load(k, 1)} ${setByteReg(o.dst, 'v')}`,
          this.afterSlow(k),
        );
        break;
      case Form.Store:
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.store(k, 4, o.src >= 0 ? `regs[${o.src}]` : String(o.imm))}`,
          this.afterSlow(k),
        );
        break;
      case Form.Store8:
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.store(k, 1, o.src >= 0 ? byteReg(o.src) : String(o.imm))}`,
          this.afterSlow(k),
        );
        break;
      case Form.ExtendRR: {
        const src = o.size === 1 ? byteReg(o.src) : `(regs[${o.src}] & 0xffff)`;
        const v = o.signed ? (o.size === 1 ? `(${src} << 24) >> 24` : `(${src} << 16) >> 16`) : src;
        out.push(`regs[${o.dst}] = ${v};`);
        break;
      }
      case Form.AluRR:
        out.push(
          this.alu(
            o.alu,
            `regs[${o.dst}]`,
            o.src >= 0 ? `regs[${o.src}]` : String(o.imm),
            `regs[${o.dst}]`,
          ),
        );
        break;
      case Form.AluRM: {
        const load = `k = ${k}; a = ${this.ea(i)}; ${this.load(k, 4)}`;
        const compute =
          o.dst >= 0
            ? this.alu(o.alu, `regs[${o.dst}]`, 'v', `regs[${o.dst}]`)
            : this.alu(o.alu, 'v', o.src >= 0 ? `regs[${o.src}]` : String(o.imm), undefined);
        out.push(load, compute, this.afterSlow(k));
        break;
      }
      case Form.IncDec: {
        // CF stays: its current value goes into fc first.
        const add = o.alu === 0;
        // After nothing pending, or another INC/DEC that kept the CPU's CF, CF is the CPU's.
        const p = this.pending;
        const keep = p === Pending.None || p === Pending.IncKeep || p === Pending.DecKeep;
        out.push(
          keep ? '' : `fc = ${this.carry()};`,
          `fd = regs[${o.dst}]; fr = (fd ${add ? '+' : '-'} 1) | 0; regs[${o.dst}] = fr;`,
        );
        if (keep) this.pending = add ? Pending.IncKeep : Pending.DecKeep;
        else this.pending = add ? Pending.Inc : Pending.Dec;
        this.resultKnown = true;
        break;
      }
      case Form.ImulRRI:
        // Overwrites all six status flags: what was pending before is dead.
        this.pending = Pending.Mul;
        out.push(
          `cpu.cycles += costs.mul - B; v = regs[${o.src}]; fr = Math.imul(v, ${o.imm}); regs[${o.dst}] = fr;`,
          `fm = v * ${o.imm} !== fr;`,
        );
        this.resultKnown = true;
        break;
      case Form.Push:
        out.push(
          `k = ${k}; v = ${o.src >= 0 ? `regs[${o.src}]` : o.imm}; a = (regs[4] - 4) | 0; ${this.store(k, 4, 'v')} regs[4] = a;`,
          this.afterSlow(k),
        );
        break;
      case Form.Pop:
        out.push(
          `k = ${k}; a = regs[4]; ${this.load(k, 4)} regs[4] = (a + 4) | 0; regs[${o.dst}] = v;`,
          this.afterSlow(k),
        );
        break;
      case Form.SetCC: {
        const [flush, cond] = this.condition(o.alu);
        out.push(`${flush} ${setByteReg(o.dst, `${cond} ? 1 : 0`)}`);
        break;
      }
      case Form.CmovRR: {
        const [flush, cond] = this.condition(o.alu);
        out.push(`${flush} if (${cond}) regs[${o.dst}] = regs[${o.src}];`);
        break;
      }
      case Form.Jcc: {
        const [flush, cond] = this.condition(o.alu);
        out.push(`k = ${k}; ${flush} if (${cond}) ${this.branch(k, (next + o.imm) >>> 0)}`);
        break;
      }
      case Form.Jmp:
        out.push(`k = ${k}; ${this.branch(k, (next + o.imm) >>> 0)}`);
        break;
      case Form.Call: {
        const target = (next + o.imm) >>> 0;
        out.push(
          `k = ${k}; ${this.flush(true)} ${this.sync(k + 1)} cpu.instrEip = ${this.eips[k]};`,
          `a = (regs[4] - 4) | 0; ${this.store(k, 4, String(next))} regs[4] = a;`,
          `if (${target} > lim) throw gp(0); cpu.eip = ${target}; ${WRITE_BACK} return t + ${k + 1};`,
        );
        break;
      }
      case Form.Ret:
        out.push(
          `k = ${k}; ${this.flush(true)} ${this.sync(k + 1)} cpu.instrEip = ${this.eips[k]};`,
          `a = regs[4]; ${this.load(k, 4)} v = v >>> 0;`,
          `if (v > lim) throw gp(0); cpu.eip = v; regs[4] = (a + 4) | 0; ${WRITE_BACK} return t + ${k + 1};`,
        );
        break;
      default: {
        // Through the handler, after the pending flags are stored (it may read them).
        // The handler works on the CPU's registers: the block's copies go back first, and
        // come back after it (`w` = 0 while the CPU's are the ones that count, for faults).
        const call = `${this.flush(true)} ${WRITE_BACK} w = 0; I[${k}].exec(cpu, I[${k}]); w = 1; ${RELOAD}`;
        this.resultKnown = false;
        if (last) {
          out.push(
            `k = ${k}; cpu.instrEip = ${this.eips[k]}; cpu.eip = ${next}; ${this.sync(k + 1)}`,
            call,
            `return t + ${k + 1};`,
          );
        } else if (genericTouchesMemory(i)) {
          out.push(`k = ${k}; ${this.sync(k + 1)}`, call, this.check(k));
        } else {
          // Registers and flags only: no device can have seen it, but a multiply or divide
          // charges the clock beyond the base cost, so the slice may end here.
          const check = `if (${this.sliceEnds(k + 1, `${k + 1} - c + `)}) ${this.leave(k + 1, next)}`;
          out.push(`k = ${k};`, call, check);
        }
        break;
      }
    }
    if (last && o.form !== Form.Generic && !ends(o.form)) out.push(this.leave(this.n, next));
  }

  source(): string {
    for (let k = 0; k < this.n; k++) this.emit(k);
    // PERF: the registers the block uses live in locals (r0–r7) while it runs; the CPU's
    // array is brought up to date where anything else could look (WRITE_BACK) and read again
    // after a generic handler (RELOAD).
    let body = this.out.filter((line) => line !== '').join('\n');
    const used = new Set<number>();
    const written = new Set<number>();
    for (const m of body.matchAll(/regs\[(\d)\]( = (?!=))?/g)) {
      used.add(Number(m[1]));
      if (m[2] !== undefined) written.add(Number(m[1]));
    }
    body = body.replace(/regs\[(\d)\]/g, 'r$1');
    const writeBack = [...written].map((r) => `regs[${r}] = r${r};`).join(' ');
    const reload = [...used].map((r) => `r${r} = regs[${r}];`).join(' ');
    body = body.replaceAll(WRITE_BACK, writeBack).replaceAll(RELOAD, reload);
    const locals = [...used].map((r) => `r${r} = regs[${r}]`);
    // The faulting instruction counts as executed (the interpreter charges before it runs).
    return [
      'const costs = cpu.costs, B = costs.base;',
      'let c = 0, t = 0, k = 0, a = 0, e = 0, v = 0, s = 0, w = 1, fd = 0, fs = 0, fr = 0, fc = 0, fm = false;',
      locals.length === 0 ? '' : `let ${locals.join(', ')};`,
      'try { for (;;) {',
      body,
      '} } catch (x) {',
      'cpu.instrEip = E[k];',
      `if (w !== 0) { ${writeBack} }`,
      'if (c < k + 1) { cpu.cycles += (k + 1 - c) * B; counters.instructions += k + 1 - c; }',
      `const p = [${this.pendingAt.join(',')}][k];`,
      `if (p === ${Pending.Logic}) cpu.setLazy(p, 0, 0, fr, -1);`,
      `else if (p === ${Pending.Inc} || p === ${Pending.Dec}) cpu.setLazyIncDec(p - 3, fd, fr, fc);`,
      `else if (p === ${Pending.IncKeep} || p === ${Pending.DecKeep}) cpu.setLazyKeepCarry(p - 5, fd, 1, fr, -1);`,
      `else if (p === ${Pending.Mul}) cpu.setMulFlags(fr, -1, fm);`,
      'else if (p !== 0) cpu.setLazy(p, fd, fs, fr, -1);',
      'throw x; }',
    ].join('\n');
  }
}
