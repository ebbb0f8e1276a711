/**
 * Integer arithmetic and logic (SDM Vol. 1 7.3.2–7.3.5, Vol. 2 instruction pages): the eight
 * ALU operations, INC/DEC/NEG/NOT, TEST, multiply and divide, BCD adjusts, sign extensions.
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';

/**
 * PERF: 32-bit values travel as signed int32 (V8 small integers, no heap numbers); the mask for
 * 32 bits is therefore -1 and the sign bit is -2^31. Convert with `>>> 0` only where an unsigned
 * value is compared or shown.
 */
export function sizeMask(size: number): number {
  return size === 4 ? -1 : size === 2 ? 0xffff : 0xff;
}

export function signBit(size: number): number {
  return size === 4 ? -0x80000000 : size === 2 ? 0x8000 : 0x80;
}

/** Sign-extends a value of `size` bytes to a signed 32-bit number. */
export function signExtend(v: number, size: number): number {
  return size === 4 ? v | 0 : size === 2 ? (v << 16) >> 16 : (v << 24) >> 24;
}

/** ADD OR ADC SBB AND SUB XOR CMP, in ModRM reg-field order. Returns the masked result. */
export function alu(cpu: Cpu, op: number, dst: number, src: number, size: number): number {
  const m = sizeMask(size);
  let r: number;
  switch (op) {
    case 0:
      r = (dst + src) & m;
      cpu.setLazy(F.LAZY_ADD, dst, src, r, m);
      return r;
    case 1:
      r = (dst | src) & m;
      cpu.setLazy(F.LAZY_LOGIC, dst, src, r, m);
      return r;
    case 2: {
      const c = cpu.getCF() ? 1 : 0;
      r = (dst + src + c) & m;
      cpu.setLazy(F.LAZY_ADD, dst, src, r, m, c);
      return r;
    }
    case 3: {
      const c = cpu.getCF() ? 1 : 0;
      r = (dst - src - c) & m;
      cpu.setLazy(F.LAZY_SUB, dst, src, r, m, c);
      return r;
    }
    case 4:
      r = dst & src & m;
      cpu.setLazy(F.LAZY_LOGIC, dst, src, r, m);
      return r;
    case 6:
      r = (dst ^ src) & m;
      cpu.setLazy(F.LAZY_LOGIC, dst, src, r, m);
      return r;
    default:
      // SUB and CMP
      r = (dst - src) & m;
      cpu.setLazy(F.LAZY_SUB, dst, src, r, m);
      return r;
  }
}

/** 00–3B (op r/m, reg): the ALU operation is opcode bits 3–5. */
export function aluRmReg(cpu: Cpu, i: Instr): void {
  const op = (i.opcode >> 3) & 7;
  const src = cpu.getReg(i.reg, i.size);
  if (i.mod === 3) {
    const r = alu(cpu, op, cpu.getReg(i.rm, i.size), src, i.size);
    if (op !== 7) cpu.setReg(i.rm, i.size, r);
    return;
  }
  const lin = cpu.eaLinear(i, i.size, op !== 7);
  const r = alu(cpu, op, cpu.readSized(lin, i.size), src, i.size);
  if (op !== 7) cpu.writeSized(lin, i.size, r);
}

/** 02–3B (op reg, r/m). */
export function aluRegRm(cpu: Cpu, i: Instr): void {
  const op = (i.opcode >> 3) & 7;
  const r = alu(cpu, op, cpu.getReg(i.reg, i.size), cpu.readRm(i), i.size);
  if (op !== 7) cpu.setReg(i.reg, i.size, r);
}

/** 04–3D (op AL/eAX, imm). */
export function aluAccImm(cpu: Cpu, i: Instr): void {
  const op = (i.opcode >> 3) & 7;
  const r = alu(cpu, op, cpu.getReg(0, i.size), i.imm & sizeMask(i.size), i.size);
  if (op !== 7) cpu.setReg(0, i.size, r);
}

/** 80, 81, 83 (group 1: op r/m, imm). */
export function aluRmImm(cpu: Cpu, i: Instr): void {
  const op = i.reg;
  const src = i.imm & sizeMask(i.size);
  if (i.mod === 3) {
    const r = alu(cpu, op, cpu.getReg(i.rm, i.size), src, i.size);
    if (op !== 7) cpu.setReg(i.rm, i.size, r);
    return;
  }
  const lin = cpu.eaLinear(i, i.size, op !== 7);
  const r = alu(cpu, op, cpu.readSized(lin, i.size), src, i.size);
  if (op !== 7) cpu.writeSized(lin, i.size, r);
}

/** 84, 85, A8, A9, F6/F7 /0: TEST. */
export function testRmReg(cpu: Cpu, i: Instr): void {
  alu(cpu, 4, cpu.readRm(i), cpu.getReg(i.reg, i.size), i.size);
}
export function testAccImm(cpu: Cpu, i: Instr): void {
  alu(cpu, 4, cpu.getReg(0, i.size), i.imm & sizeMask(i.size), i.size);
}
export function testRmImm(cpu: Cpu, i: Instr): void {
  alu(cpu, 4, cpu.readRm(i), i.imm & sizeMask(i.size), i.size);
}

function incdec(cpu: Cpu, v: number, size: number, dec: boolean): number {
  const m = sizeMask(size);
  const r = (dec ? v - 1 : v + 1) & m;
  cpu.setLazyKeepCarry(dec ? F.LAZY_SUB : F.LAZY_ADD, v, 1, r, m);
  return r;
}

/** 40–4F: INC/DEC r16/r32. */
export function incDecReg(cpu: Cpu, i: Instr): void {
  const r = i.opcode & 7;
  cpu.setReg(r, i.size, incdec(cpu, cpu.getReg(r, i.size), i.size, (i.opcode & 8) !== 0));
}

/** FE/FF /0 /1: INC/DEC r/m. */
export function incDecRm(cpu: Cpu, i: Instr): void {
  const dec = i.reg === 1;
  if (i.mod === 3) {
    cpu.setReg(i.rm, i.size, incdec(cpu, cpu.getReg(i.rm, i.size), i.size, dec));
    return;
  }
  const lin = cpu.eaLinear(i, i.size, true);
  cpu.writeSized(lin, i.size, incdec(cpu, cpu.readSized(lin, i.size), i.size, dec));
}

/** F6/F7 /2: NOT (no flags). */
export function notRm(cpu: Cpu, i: Instr): void {
  if (i.mod === 3) {
    cpu.setReg(i.rm, i.size, ~cpu.getReg(i.rm, i.size));
    return;
  }
  const lin = cpu.eaLinear(i, i.size, true);
  cpu.writeSized(lin, i.size, ~cpu.readSized(lin, i.size) & sizeMask(i.size));
}

/** F6/F7 /3: NEG (CF set unless the operand was 0). */
export function negRm(cpu: Cpu, i: Instr): void {
  const m = sizeMask(i.size);
  const lin = i.mod === 3 ? 0 : cpu.eaLinear(i, i.size, true);
  const v = i.mod === 3 ? cpu.getReg(i.rm, i.size) : cpu.readSized(lin, i.size);
  const r = (0 - v) & m;
  cpu.setLazy(F.LAZY_SUB, 0, v, r, m);
  if (i.mod === 3) cpu.setReg(i.rm, i.size, r);
  else cpu.writeSized(lin, i.size, r);
}

/**
 * Flags after MUL/IMUL: CF and OF say whether the upper half is significant; SF, ZF, PF follow
 * the low result as the host CPU leaves them (the SDM calls them undefined), AF cleared.
 */
function mulFlags(cpu: Cpu, carry: boolean, low: number, size: number): void {
  cpu.setMulFlags(low & sizeMask(size), sizeMask(size), carry);
}

/** F6/F7 /4: MUL (unsigned, AX or eDX:eAX). */
export function mulRm(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.mul - cpu.costs.base;
  const src = cpu.readRm(i);
  if (i.size === 1) {
    const r = (cpu.getReg(0, 1) * src) & 0xffff;
    cpu.setReg(0, 2, r);
    mulFlags(cpu, r >> 8 !== 0, r, 1);
  } else if (i.size === 2) {
    const r = cpu.getReg(0, 2) * src;
    cpu.setReg(0, 2, r & 0xffff);
    cpu.setReg(2, 2, (r >>> 16) & 0xffff);
    mulFlags(cpu, r >>> 16 !== 0, r, 2);
  } else {
    const { lo, hi } = mul32(cpu.eax, src >>> 0);
    cpu.eax = lo;
    cpu.edx = hi;
    mulFlags(cpu, hi !== 0, lo, 4);
  }
}

/** Signed multiply of two sign-extended values; returns [low, significant-high]. */
/** Unsigned 32 × 32 → 64-bit product in 16-bit pieces (exact, no BigInt). */
function mul32(a: number, b: number): { lo: number; hi: number } {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const mid = a1 * b0 + a0 * b1 + Math.floor(p00 / 0x10000);
  const lo = ((mid % 0x10000) * 0x10000 + (p00 & 0xffff)) >>> 0;
  const hi = (a1 * b1 + Math.floor(mid / 0x10000)) >>> 0;
  return { lo, hi };
}

function imul(
  a: number,
  b: number,
  size: number,
): { low: number; overflow: boolean; high: number } {
  if (size === 4) {
    const r = BigInt(a | 0) * BigInt(b | 0);
    const low = Number(BigInt.asUintN(32, r));
    const high = Number(BigInt.asUintN(32, r >> 32n));
    return { low, high, overflow: r !== BigInt(low | 0) };
  }
  const r = signExtend(a, size) * signExtend(b, size);
  const m = sizeMask(size);
  const low = r & m;
  return { low, high: (r >> (size * 8)) & m, overflow: r !== signExtend(low, size) };
}

/** F6/F7 /5: IMUL one operand. */
export function imulRm(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.mul - cpu.costs.base;
  const { low, high, overflow } = imul(cpu.getReg(0, i.size), cpu.readRm(i), i.size);
  if (i.size === 1) cpu.setReg(0, 2, (high << 8) | low);
  else {
    cpu.setReg(0, i.size, low);
    cpu.setReg(2, i.size, high);
  }
  mulFlags(cpu, overflow, low, i.size);
}

/** 0F AF (IMUL reg, r/m), 69 and 6B (IMUL reg, r/m, imm). */
export function imulRegRm(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.mul - cpu.costs.base;
  const b = i.opcode === 0x1af ? cpu.getReg(i.reg, i.size) : i.imm;
  if (i.size === 4) {
    // PERF: the common 32-bit form without allocating.
    const a = cpu.readRm(i);
    const low = Math.imul(a, b);
    cpu.regs[i.reg] = low;
    cpu.setMulFlags(low, -1, a * b !== low);
    return;
  }
  const { low, overflow } = imul(cpu.readRm(i), b, i.size);
  cpu.setReg(i.reg, i.size, low);
  mulFlags(cpu, overflow, low, i.size);
}

/** F6/F7 /6 and /7: DIV and IDIV; #DE on a zero divisor or a quotient that does not fit. */
export function divRm(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.div - cpu.costs.base;
  const signed = i.reg === 7;
  const size = i.size;
  const divisor = cpu.readRm(i);
  if (divisor === 0) throw new CpuFault(Vector.DE);
  const bits = BigInt(size * 8);
  let dividend: bigint;
  if (size === 1) dividend = BigInt(cpu.getReg(0, 2));
  else dividend = (BigInt(cpu.getReg(2, size) >>> 0) << bits) | BigInt(cpu.getReg(0, size) >>> 0);
  let q: bigint;
  let r: bigint;
  if (signed) {
    const n = BigInt.asIntN(size * 16, dividend);
    const d = BigInt(signExtend(divisor, size));
    q = n / d;
    r = n % d;
    const limit = 1n << (bits - 1n);
    if (q >= limit || q < -limit) throw new CpuFault(Vector.DE);
  } else {
    const d = BigInt(divisor >>> 0);
    q = dividend / d;
    r = dividend % d;
    if (q >= 1n << bits) throw new CpuFault(Vector.DE);
  }
  const qn = Number(BigInt.asUintN(size * 8, q));
  const rn = Number(BigInt.asUintN(size * 8, r));
  if (size === 1) cpu.setReg(0, 2, (rn << 8) | qn);
  else {
    cpu.setReg(0, size, qn);
    cpu.setReg(2, size, rn);
  }
}

/** 98: CBW / CWDE. */
export function cbw(cpu: Cpu, i: Instr): void {
  if (i.size === 2) cpu.setReg(0, 2, signExtend(cpu.getReg(0, 1), 1));
  else cpu.eax = signExtend(cpu.getReg(0, 2), 2);
}

/** 99: CWD / CDQ. */
export function cwd(cpu: Cpu, i: Instr): void {
  if (i.size === 2) cpu.setReg(2, 2, (cpu.getReg(0, 2) & 0x8000) !== 0 ? 0xffff : 0);
  else cpu.edx = cpu.regs[0] < 0 ? 0xffffffff : 0;
}

function setSzp(bits: number, al: number): number {
  if ((al & 0xff) === 0) bits |= F.ZF;
  if ((al & 0x80) !== 0) bits |= F.SF;
  if (F.PARITY[al & 0xff] === 1) bits |= F.PF;
  return bits;
}

/** 27 DAA and 2F DAS (SDM Vol. 2 pseudo-code). */
export function daaDas(cpu: Cpu, i: Instr): void {
  const sub = i.opcode === 0x2f;
  const oldAl = cpu.getReg(0, 1);
  const oldCf = cpu.getCF();
  let al = oldAl;
  let bits = 0;
  if ((al & 0x0f) > 9 || cpu.getAF()) {
    al = sub ? al - 6 : al + 6;
    bits |= F.AF;
    if (oldCf || (sub ? oldAl < 6 : al > 0xff)) bits |= F.CF;
  }
  if (oldAl > 0x99 || oldCf) {
    al = sub ? al - 0x60 : al + 0x60;
    bits |= F.CF;
  }
  al &= 0xff;
  cpu.setReg(0, 1, al);
  // OF is undefined; the host CPU computes it as for the addition/subtraction performed.
  const of = sub ? (oldAl & ~al & 0x80) !== 0 : (~oldAl & al & 0x80) !== 0;
  cpu.setFlagBits(F.ARITH, setSzp(bits, al) | (of ? F.OF : 0));
}

/** 37 AAA and 3F AAS. */
export function aaaAas(cpu: Cpu, i: Instr): void {
  const sub = i.opcode === 0x3f;
  let ax = cpu.getReg(0, 2);
  let bits = 0;
  if ((ax & 0x0f) > 9 || cpu.getAF()) {
    // As current processors do (SDM Vol. 2 AAA/AAS): a 16-bit add of 0x106, or a 16-bit
    // subtract of 6 followed by AH - 1, so a carry out of AL reaches AH.
    if (sub) {
      ax = (ax - 6) & 0xffff;
      ax = (ax & 0xff) | ((((ax >> 8) - 1) & 0xff) << 8);
    } else {
      ax = (ax + 0x106) & 0xffff;
    }
    bits = F.AF | F.CF;
  }
  ax &= 0xff0f;
  cpu.setReg(0, 2, ax);
  cpu.setFlagBits(F.ARITH, setSzp(bits, ax & 0xff));
}

/** D4 ib: AAM (#DE when the base is 0). */
export function aam(cpu: Cpu, i: Instr): void {
  const base = i.imm & 0xff;
  if (base === 0) throw new CpuFault(Vector.DE);
  const al = cpu.getReg(0, 1);
  const r = al % base;
  cpu.setReg(0, 2, (Math.floor(al / base) << 8) | r);
  cpu.setFlagBits(F.ARITH, setSzp(0, r));
}

/** D5 ib: AAD. */
export function aad(cpu: Cpu, i: Instr): void {
  const ax = cpu.getReg(0, 2);
  const r = ((ax & 0xff) + (ax >> 8) * (i.imm & 0xff)) & 0xff;
  cpu.setReg(0, 2, r);
  cpu.setFlagBits(F.ARITH, setSzp(0, r));
}
