/**
 * Data movement, conditions and bit operations (SDM Vol. 1 7.3.1, 7.3.7, 7.3.8; Vol. 2 pages):
 * MOV forms, LEA, XCHG, MOVZX/MOVSX, BSWAP, CMOVcc, SETcc, XLAT, LAHF/SAHF, CMPXCHG, XADD,
 * CMPXCHG8B, BT/BTS/BTR/BTC, BSF/BSR.
 */
import type { Cpu } from '../Cpu.ts';
import { ud } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { alu, signExtend, sizeMask } from './alu.ts';

/** Condition codes 0–15 (SDM Vol. 1 Appendix B). */
export function condition(cpu: Cpu, cc: number): boolean {
  return cpu.condition(cc);
}

/** 88/89: MOV r/m, reg. */
export function movRmReg(cpu: Cpu, i: Instr): void {
  cpu.writeRm(i, cpu.getReg(i.reg, i.size));
}

/** 8A/8B: MOV reg, r/m. */
export function movRegRm(cpu: Cpu, i: Instr): void {
  cpu.setReg(i.reg, i.size, cpu.readRm(i));
}

/** C6/C7 /0: MOV r/m, imm. */
export function movRmImm(cpu: Cpu, i: Instr): void {
  cpu.writeRm(i, i.imm);
}

/** B0–BF: MOV reg, imm. */
export function movRegImm(cpu: Cpu, i: Instr): void {
  cpu.setReg(i.opcode & 7, i.size, i.imm);
}

/** A0–A3: MOV AL/eAX to and from a memory offset (moffs). */
export function movAccMoffs(cpu: Cpu, i: Instr): void {
  const store = (i.opcode & 2) !== 0;
  const lin = cpu.linear(i.seg, i.disp >>> 0, i.size, store);
  if (store) cpu.writeSized(lin, i.size, cpu.getReg(0, i.size));
  else cpu.setReg(0, i.size, cpu.readSized(lin, i.size));
}

/** 8D: LEA (a register operand is #UD). */
export function lea(cpu: Cpu, i: Instr): void {
  if (i.mod === 3) throw ud();
  cpu.setReg(i.reg, i.size, cpu.ea(i));
}

/** 86/87: XCHG r/m, reg. */
export function xchgRmReg(cpu: Cpu, i: Instr): void {
  const a = cpu.getReg(i.reg, i.size);
  if (i.mod === 3) {
    cpu.setReg(i.reg, i.size, cpu.getReg(i.rm, i.size));
    cpu.setReg(i.rm, i.size, a);
    return;
  }
  const lin = cpu.eaLinear(i, i.size, true);
  const b = cpu.readSized(lin, i.size);
  cpu.writeSized(lin, i.size, a);
  cpu.setReg(i.reg, i.size, b);
}

/** 91–97: XCHG eAX, reg. */
export function xchgAccReg(cpu: Cpu, i: Instr): void {
  const r = i.opcode & 7;
  const a = cpu.getReg(0, i.size);
  cpu.setReg(0, i.size, cpu.getReg(r, i.size));
  cpu.setReg(r, i.size, a);
}

/** 0F B6/B7 MOVZX, 0F BE/BF MOVSX: the source is a byte (B6/BE) or a word (B7/BF). */
export function movExtend(cpu: Cpu, i: Instr): void {
  const srcSize = (i.opcode & 1) === 0 ? 1 : 2;
  const v =
    i.mod === 3
      ? cpu.getReg(i.rm, srcSize)
      : cpu.readSized(cpu.eaLinear(i, srcSize, false), srcSize);
  cpu.setReg(i.reg, i.size, i.opcode >= 0x1be ? signExtend(v, srcSize) : v);
}

/** 0F C8–CF: BSWAP (16-bit form undefined; the host zeroes the register's low word). */
export function bswap(cpu: Cpu, i: Instr): void {
  const r = i.opcode & 7;
  if (i.size === 2) {
    cpu.setReg(r, 2, 0);
    return;
  }
  const v = cpu.regs[r];
  cpu.regs[r] = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}

/** 0F 40–4F: CMOVcc (the source is read, and may fault, even when the condition is false). */
export function cmov(cpu: Cpu, i: Instr): void {
  const v = cpu.readRm(i);
  if (condition(cpu, i.opcode & 15)) cpu.setReg(i.reg, i.size, v);
}

/** 0F 90–9F: SETcc r/m8. */
export function setcc(cpu: Cpu, i: Instr): void {
  cpu.writeRm(i, condition(cpu, i.opcode & 15) ? 1 : 0);
}

/** D7: XLAT (AL = [seg:eBX + AL]). */
export function xlat(cpu: Cpu, i: Instr): void {
  const base = i.addr32 ? cpu.ebx : cpu.regs[3] & 0xffff;
  const off = i.addr32 ? (base + cpu.getReg(0, 1)) >>> 0 : (base + cpu.getReg(0, 1)) & 0xffff;
  cpu.setReg(0, 1, cpu.read8(cpu.linear(i.seg, off, 1, false)));
}

/** 9F: LAHF. */
export function lahf(cpu: Cpu): void {
  cpu.setReg(4, 1, cpu.getEflags() & 0xd7);
}

/**
 * D6: SALC, AL = CF ? 0xFF : 0, flags unchanged. Undocumented in the SDM's opcode map (a
 * reserved slot), but executed by every Intel IA-32 processor of this era and by QEMU; 16-bit
 * test code uses it (kvm-unit-tests realmode).
 */
export function salc(cpu: Cpu): void {
  cpu.setReg(0, 1, (cpu.getEflags() & F.CF) !== 0 ? 0xff : 0);
}

/** 9E: SAHF (SF ZF AF PF CF from AH). */
export function sahf(cpu: Cpu): void {
  cpu.setFlagBits(F.SF | F.ZF | F.AF | F.PF | F.CF, cpu.getReg(4, 1));
}

/** 0F B0/B1: CMPXCHG r/m, reg (the destination is written back either way, as on hardware). */
export function cmpxchg(cpu: Cpu, i: Instr): void {
  const lin = i.mod === 3 ? 0 : cpu.eaLinear(i, i.size, true);
  const dst = i.mod === 3 ? cpu.getReg(i.rm, i.size) : cpu.readSized(lin, i.size);
  const acc = cpu.getReg(0, i.size);
  alu(cpu, 7, acc, dst, i.size);
  const equal = acc === dst;
  const value = equal ? cpu.getReg(i.reg, i.size) : dst;
  if (i.mod === 3) cpu.setReg(i.rm, i.size, value);
  else cpu.writeSized(lin, i.size, value);
  if (!equal) cpu.setReg(0, i.size, dst);
}

/** 0F C0/C1: XADD r/m, reg. */
export function xadd(cpu: Cpu, i: Instr): void {
  const lin = i.mod === 3 ? 0 : cpu.eaLinear(i, i.size, true);
  const dst = i.mod === 3 ? cpu.getReg(i.rm, i.size) : cpu.readSized(lin, i.size);
  const src = cpu.getReg(i.reg, i.size);
  const sum = alu(cpu, 0, dst, src, i.size);
  cpu.setReg(i.reg, i.size, dst);
  if (i.mod === 3) cpu.setReg(i.rm, i.size, sum);
  else cpu.writeSized(lin, i.size, sum);
}

/** 0F C7 /1: CMPXCHG8B m64 (a register operand is #UD). */
export function cmpxchg8b(cpu: Cpu, i: Instr): void {
  if (i.mod === 3 || i.reg !== 1) throw ud();
  const lin = cpu.eaLinear(i, 8, true);
  const lo = cpu.read32(lin) >>> 0;
  const hi = cpu.read32(lin + 4) >>> 0;
  if (lo === cpu.eax && hi === cpu.edx) {
    cpu.write32(lin, cpu.regs[3]);
    cpu.write32(lin + 4, cpu.regs[1]);
    cpu.setFlagBits(F.ZF, F.ZF);
  } else {
    // The processor writes the old value back (a locked read-modify-write).
    cpu.write32(lin, lo);
    cpu.write32(lin + 4, hi);
    cpu.eax = lo;
    cpu.edx = hi;
    cpu.setFlagBits(F.ZF, 0);
  }
}

/**
 * BT/BTS/BTR/BTC. With a register bit offset and a memory operand, the offset is signed and
 * may address outside the operand (SDM Vol. 2 BT: "bit string").
 */
function bitOp(cpu: Cpu, i: Instr, op: number, offset: number, fromRegister: boolean): void {
  const size = i.size;
  const bits = size * 8;
  if (i.mod === 3) {
    const n = offset & (bits - 1);
    const v = cpu.getReg(i.rm, size);
    cpu.setFlagBits(F.CF, (v >>> n) & 1);
    if (op !== 0) cpu.setReg(i.rm, size, apply(v, n, op));
    return;
  }
  let ea = cpu.ea(i);
  let n = offset & (bits - 1);
  if (fromRegister) {
    const signed = signExtend(offset, size);
    ea = (ea + Math.floor(signed / bits) * size) >>> 0;
    n = ((signed % bits) + bits) % bits;
    if (!i.addr32) ea &= 0xffff;
  }
  const lin = cpu.linear(i.seg, ea, size, op !== 0);
  const v = cpu.readSized(lin, size);
  cpu.setFlagBits(F.CF, (v >>> n) & 1);
  if (op !== 0) cpu.writeSized(lin, size, apply(v, n, op));
}

function apply(v: number, n: number, op: number): number {
  const bit = (1 << n) >>> 0;
  if (op === 1) return (v | bit) >>> 0;
  if (op === 2) return (v & ~bit) >>> 0;
  return (v ^ bit) >>> 0;
}

/** 0F A3 BT, AB BTS, B3 BTR, BB BTC with a register offset. */
export function bitReg(cpu: Cpu, i: Instr): void {
  const op = i.opcode === 0x1a3 ? 0 : i.opcode === 0x1ab ? 1 : i.opcode === 0x1b3 ? 2 : 3;
  bitOp(cpu, i, op, cpu.getReg(i.reg, i.size), true);
}

/** 0F BA /4–/7 with an immediate offset. */
export function bitImm(cpu: Cpu, i: Instr): void {
  if (i.reg < 4) throw ud();
  bitOp(cpu, i, i.reg - 4, i.imm & 0xff, false);
}

/** 0F BC BSF, 0F BD BSR: ZF set and the destination unchanged when the source is 0. */
export function bitScan(cpu: Cpu, i: Instr): void {
  const v = cpu.readRm(i) & sizeMask(i.size);
  if (v === 0) {
    cpu.setFlagBits(F.ARITH, F.ZF | F.PF);
    return;
  }
  const n = i.opcode === 0x1bc ? 31 - Math.clz32(v & -v) : 31 - Math.clz32(v);
  cpu.setReg(i.reg, i.size, n);
  cpu.setFlagBits(F.ARITH, F.PARITY[n] === 1 ? F.PF : 0);
}
