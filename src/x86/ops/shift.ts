/**
 * Shifts and rotates (SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD). The count is
 * masked to 5 bits; a masked count of 0 changes no flags. For counts other than 1, OF is
 * undefined: we compute it as the host CPU (the count-1 formula), which the differential tests
 * check.
 */
import type { Cpu } from '../Cpu.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { sizeMask, signBit } from './alu.ts';

function szp(r: number, size: number): number {
  let bits = 0;
  if ((r & sizeMask(size)) === 0) bits |= F.ZF;
  if ((r & signBit(size)) !== 0) bits |= F.SF;
  if (F.PARITY[r & 0xff] === 1) bits |= F.PF;
  return bits;
}

/** Group 2: ROL ROR RCL RCR SHL SHR SAL SAR on a value; sets flags; returns the result. */
export function shift(cpu: Cpu, op: number, v: number, count: number, size: number): number {
  count &= 0x1f;
  if (count === 0) return v;
  const bits = size * 8;
  const m = sizeMask(size);
  const sign = signBit(size);
  v = (v & m) >>> 0;
  let r: number;
  let cf: boolean;
  let of: boolean;
  switch (op) {
    case 0: {
      // ROL: only CF and OF change.
      const n = count % bits;
      r = n === 0 ? v : (((v << n) | (v >>> (bits - n))) & m) >>> 0;
      cf = (r & 1) !== 0;
      of = ((r & sign) !== 0) !== cf;
      cpu.setFlagBits(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 1: {
      const n = count % bits;
      r = n === 0 ? v : (((v >>> n) | (v << (bits - n))) & m) >>> 0;
      cf = (r & sign) !== 0;
      of = ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0);
      cpu.setFlagBits(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 2:
    case 3: {
      // RCL / RCR rotate through CF: a (bits+1)-bit rotation.
      const n = count % (bits + 1);
      let c = cpu.getCF() ? 1 : 0;
      r = v;
      for (let k = 0; k < n; k++) {
        if (op === 2) {
          const out = (r & sign) !== 0 ? 1 : 0;
          r = (((r << 1) | c) & m) >>> 0;
          c = out;
        } else {
          const out = r & 1;
          r = ((r >>> 1) | (c ? sign : 0)) >>> 0;
          c = out;
        }
      }
      cf = c === 1;
      of = op === 2 ? ((r & sign) !== 0) !== cf : ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0);
      cpu.setFlagBits(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 4:
    case 6: {
      // SHL/SAL
      if (count <= bits) {
        cf = ((v >>> (bits - count)) & 1) !== 0;
        r = count === 32 ? 0 : ((v << count) & m) >>> 0;
      } else {
        cf = false;
        r = 0;
      }
      of = ((r & sign) !== 0) !== cf;
      break;
    }
    case 5: {
      // SHR
      cf = count <= bits ? ((v >>> (count - 1)) & 1) !== 0 : false;
      r = count >= 32 ? 0 : v >>> count;
      of = (v & sign) !== 0;
      break;
    }
    default: {
      // SAR
      const sv = size === 4 ? v | 0 : size === 2 ? (v << 16) >> 16 : (v << 24) >> 24;
      const n = count >= bits ? bits - 1 : count;
      cf = ((sv >> (count >= bits ? bits - 1 : count - 1)) & 1) !== 0;
      r = ((sv >> n) & m) >>> 0;
      of = false;
      break;
    }
  }
  cpu.setFlagBits(F.ARITH, szp(r, size) | (cf ? F.CF : 0) | (of ? F.OF : 0));
  return r;
}

function countOf(cpu: Cpu, i: Instr): number {
  // D0/D1: by 1; D2/D3: by CL; C0/C1: by imm8.
  if (i.opcode === 0xd0 || i.opcode === 0xd1) return 1;
  if (i.opcode === 0xd2 || i.opcode === 0xd3) return cpu.regs[1] & 0xff;
  return i.imm & 0xff;
}

/** C0, C1, D0–D3: group 2 on r/m. */
export function shiftRm(cpu: Cpu, i: Instr): void {
  const count = countOf(cpu, i);
  if (i.mod === 3) {
    cpu.setReg(i.rm, i.size, shift(cpu, i.reg, cpu.getReg(i.rm, i.size), count, i.size));
    return;
  }
  const lin = cpu.eaLinear(i, i.size, true);
  const v = cpu.readSized(lin, i.size);
  cpu.writeSized(lin, i.size, shift(cpu, i.reg, v, count, i.size));
}

/** 0F A4/A5 SHLD, 0F AC/AD SHRD: double-precision shifts (16-bit counts > 16 as the host does). */
export function shiftDouble(cpu: Cpu, i: Instr): void {
  const left = i.opcode === 0x1a4 || i.opcode === 0x1a5;
  const count = (i.opcode & 1) === 1 ? cpu.regs[1] & 0x1f : i.imm & 0x1f;
  if (count === 0) return;
  const size = i.size;
  const lin = i.mod === 3 ? 0 : cpu.eaLinear(i, size, true);
  const dst = i.mod === 3 ? cpu.getReg(i.rm, size) : cpu.readSized(lin, size);
  const src = cpu.getReg(i.reg, size);
  let r: number;
  let cf: boolean;
  if (size === 4) {
    if (left) {
      r = ((dst << count) | (src >>> (32 - count))) >>> 0;
      cf = ((dst >>> (32 - count)) & 1) !== 0;
    } else {
      r = ((dst >>> count) | (src << (32 - count))) >>> 0;
      cf = ((dst >>> (count - 1)) & 1) !== 0;
    }
  } else {
    // 16-bit: the host treats dst:src:dst as a 48-bit pattern for counts above 16.
    const wide = left
      ? BigInt(dst) * 2n ** 32n + BigInt(src) * 2n ** 16n + BigInt(dst)
      : BigInt(dst) + BigInt(src) * 2n ** 16n + BigInt(dst) * 2n ** 32n;
    if (left) {
      r = Number((wide >> BigInt(32 - count)) & 0xffffn);
      cf = ((wide >> BigInt(48 - count)) & 1n) === 1n;
    } else {
      r = Number((wide >> BigInt(count)) & 0xffffn);
      cf = ((wide >> BigInt(count - 1)) & 1n) === 1n;
    }
  }
  const sign = signBit(size);
  const of = ((r ^ dst) & sign) !== 0;
  cpu.setFlagBits(F.ARITH, szp(r, size) | (cf ? F.CF : 0) | (of ? F.OF : 0));
  if (i.mod === 3) cpu.setReg(i.rm, size, r);
  else cpu.writeSized(lin, size, r);
}
