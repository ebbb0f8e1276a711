/**
 * The block compiler's code generator (block.ts): the source of one block's function.
 */
import * as F from './flags.ts';
import type { Instr } from './instr.ts';
import { Form, LAZY_OF_ALU, ends, genericTouchesMemory, type Op } from './blockForms.ts';

/** Markers in the generated code, replaced once the registers the block uses are known. */
const WRITE_BACK = '/*write back*/';
const RELOAD = '/*reload*/';

/** The lazy-flag state the generated code holds in locals and has not stored in the CPU. */
enum Pending {
  None = 0,
  Add = F.LAZY_ADD, // fd + fs = fr
  Sub = F.LAZY_SUB, // fd - fs = fr
  Logic = F.LAZY_LOGIC, // fr
  Inc = 4, // fd + 1 = fr, CF = fc (INC keeps CF)
  Dec = 5, // fd - 1 = fr, CF = fc
  IncKeep = 6, // fd + 1 = fr, CF as the CPU has it (nothing was pending before the INC)
  DecKeep = 7,
  Mul = 8, // IMUL: result fr, CF = OF = fm
  Shift = 9, // SHL SHR SAR by 1-31: result fr, CF and OF in fc (F.CF, F.OF bits), AF clear
  Adc = 10, // fd + fs + fc = fr (fc the carry in)
  Sbb = 11, // fd - fs - fc = fr
}

/** Code that stores pending state `p` into the CPU (nothing for None). */
function store(p: Pending): string {
  switch (p) {
    case Pending.None:
      return '';
    case Pending.Inc:
    case Pending.Dec:
      return `cpu.setLazyIncDec(${p === Pending.Inc ? F.LAZY_ADD : F.LAZY_SUB}, fd, fr, fc);`;
    case Pending.IncKeep:
    case Pending.DecKeep:
      return `cpu.setLazyKeepCarry(${p === Pending.IncKeep ? F.LAZY_ADD : F.LAZY_SUB}, fd, 1, fr, -1);`;
    case Pending.Mul:
      return 'cpu.setMulFlags(fr, -1, fm);';
    case Pending.Shift:
      return 'cpu.setShiftFlags(fr, fc);';
    case Pending.Adc:
    case Pending.Sbb:
      return `cpu.setLazy(${p === Pending.Adc ? F.LAZY_ADD : F.LAZY_SUB}, fd, fs, fr, -1, fc);`;
    case Pending.Logic:
      return `cpu.setLazy(${p}, 0, 0, fr, -1);`;
    default:
      return `cpu.setLazy(${p}, fd, fs, fr, -1);`;
  }
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

/** Register `r` of `size` bytes (1: AL CL DL BL AH CH DH BH) as an expression, and an assignment. */
function sizedReg(r: number, size: number): string {
  return size === 4 ? `regs[${r}]` : size === 2 ? `(regs[${r}] & 0xffff)` : byteReg(r);
}
function setSizedReg(r: number, size: number, v: string): string {
  if (size === 4) return `regs[${r}] = ${v};`;
  return size === 2 ? `regs[${r}] = (regs[${r}] & ~0xffff) | (${v});` : setByteReg(r, v);
}

/**
 * SHL/SAL (4, 6), SHR (5) or SAR (7) of `v` (int32) by a count of 1-31: `n`, `32 - n` and
 * `n - 1` as expressions. Sets `fr` to the result and `fc` to CF and OF as F.CF and F.OF bits,
 * as ops/shift.ts `shift` computes them (OF from the count-1 formula for every count, as the
 * host CPU does: SHL the result's sign bit ^ CF, SHR the operand's sign bit, SAR 0).
 */
function shiftBy(alu: number, n: string, rest: string, less: string): string {
  if (alu === 5) return `fr = (v >>> ${n}) | 0; fc = ((v >>> ${less}) & 1) | ((v >>> 31) << 11);`;
  if (alu === 7) return `fr = v >> ${n}; fc = (v >> ${less}) & 1;`;
  return `fr = v << ${n}; fc = (v >>> ${rest}) & 1; fc |= ((fr >>> 31) ^ fc) << 11;`;
}

/**
 * Writes the source of a block function (parameters: BlockCode). Locals: `c` the instructions
 * of this pass already charged to the clock, `t` those of earlier passes (a block whose branch
 * goes back to its start loops inside the function), `k` the instruction running (for faults),
 * `s` set by a slow memory path, `fd fs fr` the operands and result of the last flag-setting
 * instruction, kept out of the CPU until something could look at them (`Pending`).
 */
export class Writer {
  private readonly out: string[] = [];
  private pending = Pending.None;
  /** `fr` holds the result ZF and SF come from (also after INC, DEC, IMUL). */
  private resultKnown = false;
  /** Pending state before each instruction, for the fault handler. */
  private readonly pendingAt: number[] = [];
  /** Pending state at each shared exit, by the number of instructions run before it. */
  private readonly exitPending = new Map<number, Pending>();

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
    return store(p);
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
      case Pending.Shift:
        return '(fc & 1)';
      case Pending.Adc:
        return '((fd >>> 0) + (fs >>> 0) + fc > 0xffffffff ? 1 : 0)';
      case Pending.Sbb:
        return '((fd >>> 0) < (fs >>> 0) + fc ? 1 : 0)';
      default:
        return '(cpu.getCF() ? 1 : 0)';
    }
  }

  /** Charges the clock and the counter for the instructions of this pass before `count`. */
  private sync(count: number): string {
    return `cpu.blockSync(${count} - c); c = ${count};`;
  }

  /**
   * Leaves the block at EIP `eip` after `k` instructions of this pass, through the shared exit
   * at the end of the function (`source`): it stores the flags pending there, charges the clock
   * and writes the registers back. PERF: one exit instead of a copy of that code at every place
   * that may leave made bench:cpu's blocks 35% less source (978 KB to 631 KB): less for V8 to
   * parse and compile, and fewer bytecodes before a block is optimized.
   */
  private leave(k: number, eip: number | string): string {
    const known = this.exitPending.get(k);
    if (known !== undefined && known !== this.pending) {
      throw new Error(`block writer: two exits after ${k} instructions with different flags`);
    }
    this.exitPending.set(k, this.pending);
    return `{ x = ${k}; y = ${eip}; break out; }`;
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
    } else if (this.pending === Pending.Shift) {
      const of = `(fc & ${F.OF}) !== 0`;
      r = [
        of,
        '(fc & 1) !== 0',
        'fr === 0',
        '(fc & 1) !== 0 || fr === 0',
        'fr < 0',
        undefined,
        `(fr < 0) !== (${of})`,
        `fr === 0 || (fr < 0) !== (${of})`,
      ][kind];
    } else if ((this.pending === Pending.Adc || this.pending === Pending.Sbb) && kind === 1) {
      r = `${this.carry()} !== 0`;
    } else if (this.resultKnown && (kind === 2 || kind === 4)) {
      r = kind === 2 ? 'fr === 0' : 'fr < 0';
    }
    if (r === undefined) return [this.flush(true), `cpu.condition(${cc})`];
    return ['', (cc & 1) === 0 ? `(${r})` : `!(${r})`];
  }

  /** Sets the pending flags from an ALU operation on `d` and `s` (expressions); result in fr. */
  private alu(alu: number, d: string, src: string, write: string | undefined): string {
    if (alu === 2 || alu === 3) {
      // ADC, SBB: the carry in comes from what is pending (or the CPU) before it is replaced.
      const cin = this.carry();
      this.pending = alu === 2 ? Pending.Adc : Pending.Sbb;
      this.resultKnown = true;
      const sign = alu === 2 ? '+' : '-';
      const store = write === undefined ? '' : ` ${write} = fr;`;
      return `fc = ${cin}; fd = ${d}; fs = ${src}; fr = (fd ${sign} fs ${sign} fc) | 0;${store}`;
    }
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

  /**
   * An 8- or 16-bit ALU operation or TEST (Form.AluSized), as ops/alu.ts `alu`: operands and
   * result masked to the size, the flags stored in the CPU at once (what was pending is dead:
   * these set all six; ADC and SBB read CF from it first).
   */
  private aluSized(k: number, i: Instr, o: Op): void {
    const size = o.size;
    const m = size === 1 ? 0xff : 0xffff;
    const lazy = o.alu === 8 ? F.LAZY_LOGIC : LAZY_OF_ALU[o.alu];
    const sign = ['+', '|', '+', '-', '&', '-', '^', '-', '&'][o.alu];
    const writes = o.alu !== 7 && o.alu !== 8;
    const carries = o.alu === 2 || o.alu === 3;
    const compute = (d: string, src: string): string => {
      const cin = carries ? `fc = ${this.carry()}; ` : '';
      this.pending = Pending.None;
      this.resultKnown = false;
      const r = carries ? `(fd ${sign} fs ${sign} fc) & ${m}` : `(fd ${sign} fs) & ${m}`;
      return `${cin}fd = ${d}; fs = ${src}; fr = ${r}; cpu.setLazy(${lazy}, fd, fs, fr, ${m}${carries ? ', fc' : ''});`;
    };
    const src = o.src >= 0 ? sizedReg(o.src, size) : o.src === -1 ? String(o.imm) : 'v';
    const out = this.out;
    if (o.dst >= 0) {
      // Register destination; the source a register, an immediate or memory.
      const load = o.src === -2 ? `k = ${k}; a = ${this.ea(i)}; ${this.load(k, size)} ` : '';
      const code = compute(sizedReg(o.dst, size), src);
      out.push(`${load}${code} ${writes ? setSizedReg(o.dst, size, 'fr') : ''}`);
      if (o.src === -2) out.push(this.afterSlow(k));
      return;
    }
    if (!writes) {
      // CMP, TEST on memory: a read.
      const load = `k = ${k}; a = ${this.ea(i)}; ${this.load(k, size)}`;
      out.push(load, compute('v', src), this.afterSlow(k));
      return;
    }
    // Read, operate, write back, as AluMR (the flags in the CPU before a slow write can fault).
    const flush = this.flush(true);
    this.pendingAt[k] = Pending.None;
    const code = compute('v', src);
    const at = '(e & -4096) | (a & 0xfff)';
    const [fits, get, put] =
      size === 1
        ? ['', 'ram[e]', 'ram[e] = fr;']
        : [' && (a & 0xfff) <= 0xffe', 'view.getUint16(e, true)', 'view.setUint16(e, fr, true);'];
    out.push(
      `k = ${k}; ${flush} a = ${this.ea(i)}; e = dtlb[a >>> 12];`,
      `if ((e & wm) === wm && (e & rm) === rm${fits}) { e = ${at}; v = ${get}; ${code} ${put} }`,
      `else { ${this.sync(k + 1)} ${WRITE_BACK} w = 0; I[${k}].exec(cpu, I[${k}]); w = 1; s = 1; }`,
      this.afterSlow(k),
    );
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
          `k = ${k}; a = ${this.ea(i)}; ${this.load(k, o.size)} ${setSizedReg(o.dst, o.size, 'v')}`,
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
          `k = ${k}; a = ${this.ea(i)}; ${this.store(k, o.size, o.src >= 0 ? sizedReg(o.src, o.size) : String(o.imm))}`,
          this.afterSlow(k),
        );
        break;
      case Form.Store8:
        out.push(
          `k = ${k}; a = ${this.ea(i)}; ${this.store(k, 1, o.src >= 0 ? byteReg(o.src) : String(o.imm))}`,
          this.afterSlow(k),
        );
        break;
      case Form.MovSmall:
        out.push(setSizedReg(o.dst, o.size, o.src >= 0 ? sizedReg(o.src, o.size) : String(o.imm)));
        break;
      case Form.Not:
        out.push(`regs[${o.dst}] = ~regs[${o.dst}];`);
        break;
      case Form.Bswap:
        out.push(
          `v = regs[${o.dst}]; regs[${o.dst}] = (v << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);`,
        );
        break;
      case Form.AluSized:
        this.aluSized(k, i, o);
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
      case Form.AluMR: {
        // Read, operate, write back. The fast path keeps the flags out of `pending`: the slow
        // one runs the interpreter's handler, which sets them in the CPU before its write, so
        // a fault on the write (a read-only page) leaves them as the interpreter does. Either
        // way they are in the CPU afterwards; the pending ones go first, so a fault in this
        // instruction has nothing of its own to store (pendingAt).
        const flush = this.flush(true);
        this.pendingAt[k] = Pending.None;
        const src = o.src >= 0 ? `regs[${o.src}]` : String(o.imm);
        const compute = this.alu(o.alu, 'v', src, undefined);
        const lazy = this.flush(true);
        this.resultKnown = false;
        const at = '(e & -4096) | (a & 0xfff)';
        out.push(
          `k = ${k}; ${flush} a = ${this.ea(i)}; e = dtlb[a >>> 12];`,
          `if ((e & wm) === wm && (e & rm) === rm && (a & 0xfff) <= 0xffc) { e = ${at}; v = view.getInt32(e, true); ${compute} view.setInt32(e, fr, true); ${lazy} }`,
          `else { ${this.sync(k + 1)} ${WRITE_BACK} w = 0; I[${k}].exec(cpu, I[${k}]); w = 1; s = 1; }`,
          this.afterSlow(k),
        );
        break;
      }
      case Form.Neg:
        // NEG is SUB from 0, flags and all (SDM NEG: CF is set unless the operand is 0).
        out.push(this.alu(5, '0', `regs[${o.dst}]`, `regs[${o.dst}]`));
        break;
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
      case Form.ShiftR: {
        const d = `regs[${o.dst}]`;
        const n = o.imm & 0x1f;
        if (o.alu >= 4 && o.imm >= 0) {
          // SHL SHR SAR by 1 or an immediate, inline, the flags pending (the CRC-32 loop of
          // netserver shifts twice per word, and an XOR replaces those flags at once). A masked
          // count of 0 changes nothing, flags included (SDM Vol. 2B SAL/SAR/SHL/SHR).
          if (n === 0) break;
          this.pending = Pending.Shift;
          this.resultKnown = true;
          out.push(
            `v = ${d}; ${shiftBy(o.alu, String(n), String(32 - n), String(n - 1))} ${d} = fr;`,
          );
          break;
        }
        if (o.alu >= 4) {
          // By CL: the count is known only when it runs, and 0 leaves the flags as they were,
          // so they go to the CPU here.
          out.push(
            `${this.flush(true)} q = regs[1] & 31; if (q !== 0) { v = ${d};`,
            `${shiftBy(o.alu, 'q', '(32 - q)', '(q - 1)')} ${d} = fr; cpu.setShiftFlags(fr, fc); }`,
          );
          this.resultKnown = false;
          break;
        }
        if (o.alu <= 1 && o.imm >= 0 && n !== 0) {
          // ROL/ROR by an immediate, inline (SHA-256 has dozens per round): as `shift`, CF and
          // OF from the result (ROL: CF bit 0, OF bit 31 ^ CF; ROR: CF bit 31, OF bit 31 ^ bit
          // 30), the other flags left as they are.
          const [rot, bits] =
            o.alu === 0
              ? [`(v << ${n}) | (v >>> ${32 - n})`, `(v & 1) | (((v >>> 31) ^ v) & 1) << 11`]
              : [
                  `(v >>> ${n}) | (v << ${32 - n})`,
                  `(v >>> 31) | (((v >>> 31) ^ (v >>> 30)) & 1) << 11`,
                ];
          out.push(
            `${this.flush(true)} v = ${d}; v = ${rot}; ${d} = v; cpu.setFlagBits(${F.CF | F.OF}, ${bits});`,
          );
          break;
        }
        // The rest (ROL ROR by CL, RCL RCR) through ops/shift.ts's `shift`, the interpreter's
        // own code (it sets the flags in the CPU, and RCL/RCR read CF there): only the pending
        // flags go first, the registers stay in locals. These leave ZF and SF as they were, so
        // `fr` keeps the result they come from.
        const count = o.imm < 0 ? 'regs[1] & 0xff' : String(o.imm);
        out.push(`${this.flush(true)} ${d} = shift(cpu, ${o.alu}, ${d}, ${count}, 4) | 0;`);
        break;
      }
      case Form.ShiftM: {
        // SHL SHR SAR on m32 by 1, an immediate or CL: read, shift, write back, as AluMR (the
        // slow path runs the handler; the flags go to the CPU either way). The interpreter reads
        // and writes the operand even for a count of 0, so the fast path needs both rights.
        const flush = this.flush(true);
        this.pendingAt[k] = Pending.None;
        this.resultKnown = false;
        const at = '(e & -4096) | (a & 0xfff)';
        let body: string;
        if (o.imm >= 0) {
          const n = o.imm & 0x1f;
          body =
            n === 0
              ? ''
              : `v = view.getInt32(e, true); ${shiftBy(o.alu, String(n), String(32 - n), String(n - 1))} view.setInt32(e, fr, true); cpu.setShiftFlags(fr, fc);`;
        } else {
          body = `q = regs[1] & 31; if (q !== 0) { v = view.getInt32(e, true); ${shiftBy(o.alu, 'q', '(32 - q)', '(q - 1)')} view.setInt32(e, fr, true); cpu.setShiftFlags(fr, fc); }`;
        }
        out.push(
          `k = ${k}; ${flush} a = ${this.ea(i)}; e = dtlb[a >>> 12];`,
          `if ((e & wm) === wm && (e & rm) === rm && (a & 0xfff) <= 0xffc) { e = ${at}; ${body} }`,
          `else { ${this.sync(k + 1)} ${WRITE_BACK} w = 0; I[${k}].exec(cpu, I[${k}]); w = 1; s = 1; }`,
          this.afterSlow(k),
        );
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
      case Form.JmpOn:
        // The target is the next instruction of the block (`next`); a target past CS's limit is
        // #GP at the JMP, as in the interpreter.
        out.push(`k = ${k}; if (${next} > lim) throw gp(0);`);
        break;
      case Form.CallOn: {
        // As ops/control.ts callRel: the return address is pushed, then the target (the next
        // instruction of the block, `next`) is checked against CS's limit.
        const back = (this.eips[k] + i.length) >>> 0;
        out.push(
          `k = ${k}; a = (regs[4] - 4) | 0; ${this.store(k, 4, String(back))} regs[4] = a; if (${next} > lim) throw gp(0);`,
          this.afterSlow(k),
        );
        break;
      }
      case Form.RetOn: {
        // As ops/control.ts retNear: the address is read and checked against CS's limit before
        // ESP moves. The block goes on at its next instruction, the return address it expects.
        out.push(
          `k = ${k}; a = regs[4]; ${this.load(k, 4)} v = v >>> 0; if (v > lim) throw gp(0); regs[4] = (a + 4) | 0;`,
          `if (v !== ${next}) ${this.leave(k + 1, 'v')}`,
          this.afterSlow(k),
        );
        break;
      }
      case Form.Call: {
        const target = (next + o.imm) >>> 0;
        out.push(
          `k = ${k}; ${this.flush(true)} ${this.sync(k + 1)} cpu.instrEip = ${this.eips[k]};`,
          `a = (regs[4] - 4) | 0; ${this.store(k, 4, String(next))} regs[4] = a;`,
          `if (${target} > lim) throw gp(0); cpu.eip = ${target}; ${WRITE_BACK} return t + ${k + 1};`,
        );
        break;
      }
      case Form.CallR:
      case Form.CallM: {
        // As ops/control.ts callRm: the target is read and checked against CS's limit before
        // the push (a #GP pushes nothing).
        const target =
          o.form === Form.CallR
            ? `v = regs[${o.src}] >>> 0;`
            : `a = ${this.ea(i)}; ${this.load(k, 4)} v = v >>> 0;`;
        out.push(
          `k = ${k}; ${this.flush(true)} ${this.sync(k + 1)} cpu.instrEip = ${this.eips[k]};`,
          `${target} if (v > lim) throw gp(0);`,
          `a = (regs[4] - 4) | 0; ${this.store(k, 4, String(next))} regs[4] = a;`,
          `cpu.eip = v; ${WRITE_BACK} return t + ${k + 1};`,
        );
        break;
      }
      case Form.JmpR:
        out.push(
          `k = ${k}; v = regs[${o.src}] >>> 0; if (v > lim) throw gp(0); ${this.leave(k + 1, 'v')}`,
        );
        break;
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
    // The shared exit: `x` instructions of this pass ran, EIP `y` is next; the flags pending
    // there go to the CPU (exits with the same pending state share a case).
    const byPending = new Map<Pending, number[]>();
    for (const [x, p] of this.exitPending) {
      if (p !== Pending.None) byPending.set(p, [...(byPending.get(p) ?? []), x]);
    }
    const exit =
      this.exitPending.size === 0
        ? []
        : [
            byPending.size === 0 ? '' : 'switch (x) {',
            ...[...byPending].map(
              ([p, xs]) => `${xs.map((x) => `case ${x}:`).join(' ')} ${store(p)} break;`,
            ),
            byPending.size === 0 ? '' : '}',
            `cpu.eip = y; cpu.instrEip = E[x - 1]; cpu.blockSync(x - c); ${writeBack} return t + x;`,
          ];
    return [
      'const costs = cpu.costs, B = costs.base;',
      'let c = 0, t = 0, k = 0, a = 0, e = 0, v = 0, q = 0, s = 0, w = 1, x = 0, y = 0, fd = 0, fs = 0, fr = 0, fc = 0, fm = false;',
      locals.length === 0 ? '' : `let ${locals.join(', ')};`,
      'try { out: for (;;) {',
      body,
      '}',
      ...exit,
      '} catch (z) {',
      'cpu.instrEip = E[k];',
      `if (w !== 0) { ${writeBack} }`,
      'cpu.blockSync(k + 1 - c);',
      // The flags pending before the faulting instruction go to the CPU.
      `switch ([${this.pendingAt.join(',')}][k]) {`,
      ...[...new Set(this.pendingAt)]
        .filter((p) => p !== Pending.None)
        .map((p) => `case ${p}: ${store(p)} break;`),
      '}',
      'throw z; }',
    ].join('\n');
  }
}
