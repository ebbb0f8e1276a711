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
import type { Instr } from './instr.ts';
import {
  Form,
  classify,
  ends,
  memoryForm,
  op,
  plainGeneric,
  stackForm,
  type Op,
} from './blockForms.ts';
import { Writer } from './blockWriter.ts';
import type { shift } from './ops/shift.ts';
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
  /** ops/shift.ts `shift`: group 2 on a value, setting the flags (Form.ShiftR). */
  shift: typeof shift;
}

/** A flat-segment requirement bit per segment register, and one for a 32-bit stack (SS.B). */
export const STACK_BIG = 1 << 6;

/**
 * Entry points run this many times in the interpreter before their block is compiled.
 * PERF: V8 optimizes a block's function with TurboFan after it has run a few thousand guest
 * instructions, and that costs several milliseconds per block (5-8 ms in a Linux boot, on the
 * background thread, where the interpreter loop's own re-optimizations wait behind it): a block
 * pays back only after hundreds of thousands of instructions. At 256 a Linux boot compiled 446
 * blocks (1.26 MB of source), 407 of which ran fewer than 10,000 times; at 8,192 it compiled 88
 * (301 KB) that ran 35.5 M of its 54 M instructions, and with the block ends below 71 (164 KB)
 * that run 35.3 M (src/x86/README.md, "The threshold and the blocks' shape").
 */
export const HOT = 8192;
/**
 * The compile budget (Cpu.blockBudget). V8 parses and compiles a block's source when it is
 * first called (about a millisecond per 10 KB, and blocks average several KB), and a block pays
 * that back only after thousands of runs. A Linux boot reaches thousands of different entry
 * points a few hundred times each and then leaves them: compiled all, they cost more than they
 * save. So compiling is paid for by what compiled code ran: at most this many characters of
 * source per instruction run inside blocks so far, after a first allowance.
 */
// 0.005 since the blocks nobody entered are gone (Cpu.blockShadow): bench:cpu's workloads
// compile less than the allowance, and a Linux boot took 4.9 s of user CPU at 0.005 against
// 5.2 s at 0.02 and 6.8 s at 0.05 (one run each, loaded machine; src/x86/README.md).
export const BUDGET_PER_INSTRUCTION = 0.005;
export const BUDGET_ALLOWANCE = 1024 * 1024;
/** Longest block, in instructions. */
const MAX_LENGTH = 48;
/**
 * Longest block another block takes in whole when it reaches that block's head (compileBlock).
 * PERF: deterministic counts of three workloads at 0 (the block ended there), 8, 16 and 48:
 * block entries of bench:cpu's `realcode` 8.60 M, 6.86 M, 5.81 M, 5.58 M with 177, 199, 291,
 * 345 KB of source compiled; of `cpu` 6.80 M, 4.35 M, 2.51 M, 2.21 M (60, 74, 102, 157 KB);
 * of a Linux boot 2.76 M, 1.46 M, 1.34 M, 1.28 M (164, 175, 183, 194 KB).
 */
const INHERIT = 16;

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
    /** Offset of the block's last byte (the highest, JMPs followed), for the CS limit check. */
    readonly lastByte: number,
    /** Instructions before the last one, and how many of those are multiplies (costs.mul). */
    readonly before: number,
    readonly multiplies: number,
    /** The last instruction went through its generic handler (it may change anything). */
    readonly generic: boolean,
    /** Length of the compiled source (what the compile budget counts). */
    readonly size: number,
  ) {
    this.eip = eips[0];
    this.count = instrs.length;
  }

  /**
   * EIP of the first instruction, and how many instructions the block has. PERF: fields, not
   * getters on `eips` and `instrs`: `runBlocks` reads both before every block, and each
   * getter was two more dependent loads (the array, its elements) in a chain that already
   * goes page table -> Instr -> Block; see `Cpu.blockAt`.
   */
  readonly eip: number;
  readonly count: number;
  /** The last two blocks `Cpu.runBlocks` ran after this one (a cache: checked before use). */
  after0: Block | undefined = undefined;
  after1: Block | undefined = undefined;

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
  let lastByte = 0;
  let instr: Instr | undefined = head;
  // Where EIP `target` is in the head's physical page, and whether the block may go on there:
  // in the head's linear page, and not in the block yet.
  const physicalOf = (target: number): number =>
    (physical & ~0xfff) | (((csBase + target) | 0) & 0xfff);
  const onward = (target: number): boolean =>
    ((csBase + target) | 0) >>> 12 === ((csBase + eip) | 0) >>> 12 && !eips.includes(target);
  // Instructions still to take from a block met on the way (their heat is not looked at).
  let inherited = 0;
  // The return addresses of the CALLs the block followed and has not returned from.
  const returns: number[] = [];
  // The block at `at` may be taken in whole: compiled for that EIP, this CS base, code and
  // entries, not ending in a generic handler, short, and this block stays under MAX_LENGTH.
  const takes = (other: Block, at: number): boolean =>
    other.eip === at &&
    other.csBase === csBase &&
    other.generation === generation &&
    other.epoch === epoch &&
    !other.generic &&
    other.count <= INHERIT &&
    instrs.length + other.count <= MAX_LENGTH;
  while (instr !== undefined && instr.codeBig && !instr.dead && instrs.length < MAX_LENGTH) {
    if (instrs.length > 0 && isBound((csBase + at) | 0)) break;
    // PERF: the block ends before an instruction the interpreter reached less than an eighth
    // as often as the head (`Instr.heat` counts its runs there; with a threshold below 8
    // nothing is cut): the path rarely goes on to it (a Jcc before it is mostly taken). A Linux
    // boot compiled blocks of 40-43 instructions that ran 2-10 on average, and V8 compiles all
    // of a block's source, run or not. At the head of another block it takes that block's
    // instructions in whole when that one is short (INHERIT) and valid, and else ends there
    // (the loop runs that block next, as it does a JMP's target below): the instructions of a
    // compiled block no longer count their runs, so the heat rule would cut them off after the
    // head, and chains of blocks of 1-3 instructions that always ran one after the other were
    // a block entry every 1-3 instructions in `realcode` (block entries: INHERIT).
    if (inherited > 0) {
      inherited--;
    } else if (instrs.length > 0 && instr.block !== undefined) {
      if (!takes(instr.block, at)) break;
      inherited = instr.block.count - 1;
    } else if (instrs.length > 0 && instr.heat < head.heat >> 3) break;
    let o = classify(instr);
    instrs.push(instr);
    eips.push(at);
    at = (at + instr.length) >>> 0;
    p += instr.length;
    lastByte = Math.max(lastByte, (at - 1) >>> 0);
    if (o.form === Form.Jmp || o.form === Form.Call) {
      // PERF: a direct JMP to code in the same page that is not in the block yet is followed:
      // the block goes on at its target (one block run, not two). bench:cpu's `realcode` ran a
      // JMP every 50 instructions, and a block ran 11.5 instructions on average.
      const target = (at + o.imm) >>> 0;
      // A target that has a block of its own is left to it (the loop runs it next), so that
      // hot code is not compiled twice, unless the block is short (INHERIT, as above).
      const q = physicalOf(target);
      const next = decodedAt(q);
      if (
        target !== eip &&
        onward(target) &&
        (next?.block === undefined || takes(next.block, target))
      ) {
        if (o.form === Form.Call) returns.push(at);
        o = o.form === Form.Jmp ? op(Form.JmpOn) : op(Form.CallOn);
        at = target;
        p = q;
        ops.push(o);
        instr = next;
        continue;
      }
    }
    if (o.form === Form.Ret && returns.length > 0) {
      // PERF: a RET after a CALL the block followed goes on at the return address when it is
      // in the page and not in the block yet (RetOn checks at run time that it is the one
      // popped). The callee's RET no longer ends the block.
      const back = returns.pop()!;
      if (onward(back)) {
        const q = physicalOf(back);
        o = op(Form.RetOn);
        at = back;
        p = q;
        ops.push(o);
        instr = decodedAt(q);
        continue;
      }
    }
    ops.push(o);
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
    if (memoryForm(ops[k])) segments |= 1 << instrs[k].seg;
    if (stackForm(form)) segments |= (1 << SS) | STACK_BIG;
    if (k < n - 1 && form === Form.ImulRRI) multiplies++;
  }
  const source = new Writer(instrs, ops, eips, physical >>> 12, generation, epoch).source();
  // PERF: the parentheses make V8 compile the block's function with the factory, at once
  // (its eager-compile heuristic for a parenthesized function). Without them `new Function`
  // pre-parses the block and its first call parses it again in full: bench:cpu's `realcode`
  // spent 352 ms in those first calls, 7 ms with the parentheses, and compiling got no slower.
  const factory = new Function(
    'X',
    'I',
    'E',
    "'use strict'; const cpu = X.cpu, regs = X.regs, view = X.view, ram = X.ram, dtlb = X.dtlb, counters = X.counters, gp = X.gp, shift = X.shift;\n" +
      `return (function block_${eip.toString(16)}(rm, wm, lim, budget) {\n${source}\n});`,
  ) as (context: BlockContext, instrs: Instr[], eips: number[]) => BlockCode;
  const code = factory(context, instrs, eips);
  // PERF: the block's other instructions start counting again as entry points: they were a
  // few runs short of the threshold when the head reached it, and a stray run of one of them
  // in the interpreter (its head entered from elsewhere) made it the head of a block that
  // almost never ran (bench:cpu's `cpu` workload at a threshold of 8,192: 22 such blocks).
  for (let k = 1; k < n; k++) instrs[k].heat = 0;
  return new Block(
    code,
    instrs,
    eips,
    csBase,
    physical >>> 12,
    generation,
    epoch,
    segments,
    lastByte,
    n - 1,
    multiplies,
    ops[n - 1].form === Form.Generic,
    source.length,
  );
}
