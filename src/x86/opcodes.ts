/**
 * The opcode table: one declarative description of every opcode (operand format and semantics)
 * from which the decoder works (STYLE.md principle 4). One-byte opcodes are 0x00–0xFF, the 0F
 * map is 0x100–0x1FF (SDM Vol. 2 Appendix A).
 */
import type { Handler } from './instr.ts';
import * as alu from './ops/alu.ts';
import * as ctl from './ops/control.ts';
import * as data from './ops/data.ts';
import * as shift from './ops/shift.ts';
import * as str from './ops/string.ts';
import * as io from './system/io.ts';
import * as sys from './system/instructions.ts';

/** Operand format flags. */
export const MODRM = 1;
/** imm8. */
export const IB = 2;
/** imm8 sign-extended to the operand size. */
export const IBS = 4;
/** imm16 or imm32 by operand size. */
export const IV = 8;
/** imm16. */
export const IW = 16;
/** rel8. */
export const JB = 32;
/** rel16/rel32 by operand size. */
export const JV = 64;
/** ptr16:16/32: offset by operand size, then a selector. */
export const AP = 128;
/** moffs: an offset of the address size, no ModRM. */
export const MOFFS = 256;
/** ENTER: imm16 then imm8. */
export const IW_IB = 512;
/** The operand size is one byte. */
export const BYTE = 1024;
/** Group 3 (F6/F7): an immediate only for /0 and /1 (TEST). */
export const TEST_IMM = 2048;
/** The ModRM byte always names registers (MOV CR/DR). */
export const REG_ONLY = 4096;
/** LOCK is allowed (with a memory destination). */
export const LOCKABLE = 8192;

export interface OpSpec {
  flags: number;
  exec: Handler;
  /** Per ModRM reg field, for group opcodes; overrides `exec`. */
  group?: (Handler | undefined)[];
}

const table: (OpSpec | undefined)[] = new Array<OpSpec | undefined>(512);

function def(
  opcodes: number | number[],
  flags: number,
  exec: Handler,
  group?: (Handler | undefined)[],
): void {
  for (const op of Array.isArray(opcodes) ? opcodes : [opcodes]) table[op] = { flags, exec, group };
}

function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, k) => first + k);
}

// ALU: 00–3F (except the segment pushes/pops, BCD adjusts and prefixes in column 6/7).
for (let op = 0; op < 8; op++) {
  const base = op * 8;
  const lockable = op === 7 ? 0 : LOCKABLE;
  def(base + 0, MODRM | BYTE | lockable, alu.aluRmReg);
  def(base + 1, MODRM | lockable, alu.aluRmReg);
  def(base + 2, MODRM | BYTE, alu.aluRegRm);
  def(base + 3, MODRM, alu.aluRegRm);
  def(base + 4, IB | BYTE, alu.aluAccImm);
  def(base + 5, IV, alu.aluAccImm);
}
def([0x06, 0x0e, 0x16, 0x1e], 0, sys.pushSreg);
def([0x07, 0x17, 0x1f], 0, sys.popSreg);
def([0x27, 0x2f], 0, alu.daaDas);
def([0x37, 0x3f], 0, alu.aaaAas);
def(range(0x40, 16), 0, alu.incDecReg);
def(range(0x50, 8), 0, ctl.pushReg);
def(range(0x58, 8), 0, ctl.popReg);
def(0x60, 0, ctl.pusha);
def(0x61, 0, ctl.popa);
def(0x62, MODRM, ctl.bound);
def(0x63, MODRM, sys.arpl);
def(0x68, IV, ctl.pushImm);
def(0x69, MODRM | IV, alu.imulRegRm);
def(0x6a, IBS, ctl.pushImm);
def(0x6b, MODRM | IBS, alu.imulRegRm);
def(0x6c, BYTE, str.ins);
def(0x6d, 0, str.ins);
def(0x6e, BYTE, str.outs);
def(0x6f, 0, str.outs);
def(range(0x70, 16), JB, ctl.jcc);
def(0x80, MODRM | IB | BYTE | LOCKABLE, alu.aluRmImm);
def(0x81, MODRM | IV | LOCKABLE, alu.aluRmImm);
def(0x82, MODRM | IB | BYTE | LOCKABLE, alu.aluRmImm);
def(0x83, MODRM | IBS | LOCKABLE, alu.aluRmImm);
def(0x84, MODRM | BYTE, alu.testRmReg);
def(0x85, MODRM, alu.testRmReg);
def(0x86, MODRM | BYTE | LOCKABLE, data.xchgRmReg);
def(0x87, MODRM | LOCKABLE, data.xchgRmReg);
def(0x88, MODRM | BYTE, data.movRmReg);
def(0x89, MODRM, data.movRmReg);
def(0x8a, MODRM | BYTE, data.movRegRm);
def(0x8b, MODRM, data.movRegRm);
def(0x8c, MODRM, sys.movRmSreg);
def(0x8d, MODRM, data.lea);
def(0x8e, MODRM, sys.movSregRm);
def(0x8f, MODRM, ctl.undefinedOpcode, [ctl.popRm]);
def(0x90, 0, ctl.nop);
def(range(0x91, 7), 0, data.xchgAccReg);
def(0x98, 0, alu.cbw);
def(0x99, 0, alu.cwd);
def(0x9a, AP, sys.farDirect);
def(0x9b, 0, sys.fwait);
def(0x9c, 0, sys.pushf);
def(0x9d, 0, sys.popf);
def(0x9e, 0, data.sahf);
def(0x9f, 0, data.lahf);
def([0xa0, 0xa2], MOFFS | BYTE, data.movAccMoffs);
def([0xa1, 0xa3], MOFFS, data.movAccMoffs);
def(0xa4, BYTE, str.movs);
def(0xa5, 0, str.movs);
def(0xa6, BYTE, str.cmps);
def(0xa7, 0, str.cmps);
def(0xa8, IB | BYTE, alu.testAccImm);
def(0xa9, IV, alu.testAccImm);
def(0xaa, BYTE, str.stos);
def(0xab, 0, str.stos);
def(0xac, BYTE, str.lods);
def(0xad, 0, str.lods);
def(0xae, BYTE, str.scas);
def(0xaf, 0, str.scas);
def(range(0xb0, 8), IB | BYTE, data.movRegImm);
def(range(0xb8, 8), IV, data.movRegImm);
def([0xd0, 0xd2], MODRM | BYTE, shift.shiftRm);
def([0xc1], MODRM | IB, shift.shiftRm);
def([0xd1, 0xd3], MODRM, shift.shiftRm);
def(0xc0, MODRM | IB | BYTE, shift.shiftRm);
def(0xc2, IW, ctl.retNear);
def(0xc3, 0, ctl.retNear);
def(0xc4, MODRM, sys.loadFarPointer);
def(0xc5, MODRM, sys.loadFarPointer);
def(0xc6, MODRM | IB | BYTE, ctl.undefinedOpcode, [data.movRmImm]);
def(0xc7, MODRM | IV, ctl.undefinedOpcode, [data.movRmImm]);
def(0xc8, IW_IB, ctl.enter);
def(0xc9, 0, ctl.leave);
def(0xca, IW, sys.farReturn);
def(0xcb, 0, sys.farReturn);
def(0xcc, 0, ctl.softwareInterrupt);
def(0xcd, IB, ctl.softwareInterrupt);
def(0xce, 0, ctl.softwareInterrupt);
def(0xcf, 0, sys.iret);
def(0xd4, IB, alu.aam);
def(0xd5, IB, alu.aad);
def(0xd6, 0, data.salc);
def(0xd7, BYTE, data.xlat);
def(range(0xd8, 8), MODRM, sys.fpu);
def(range(0xe0, 4), JB, ctl.loop);
def(0xe4, IB | BYTE, io.inOp);
def(0xe5, IB, io.inOp);
def(0xe6, IB | BYTE, io.outOp);
def(0xe7, IB, io.outOp);
def(0xe8, JV, ctl.callRel);
def(0xe9, JV, ctl.jmpRel);
def(0xea, AP, sys.farDirect);
def(0xeb, JB, ctl.jmpRel);
def(0xec, BYTE, io.inOp);
def(0xed, 0, io.inOp);
def(0xee, BYTE, io.outOp);
def(0xef, 0, io.outOp);
def(0xf4, 0, sys.hlt);
def([0xf5, 0xf8, 0xf9, 0xfc, 0xfd], 0, ctl.flagOp);
def(0xf6, MODRM | BYTE | TEST_IMM | LOCKABLE, ctl.undefinedOpcode, [
  alu.testRmImm,
  alu.testRmImm,
  alu.notRm,
  alu.negRm,
  alu.mulRm,
  alu.imulRm,
  alu.divRm,
  alu.divRm,
]);
def(0xf7, MODRM | TEST_IMM | LOCKABLE, ctl.undefinedOpcode, [
  alu.testRmImm,
  alu.testRmImm,
  alu.notRm,
  alu.negRm,
  alu.mulRm,
  alu.imulRm,
  alu.divRm,
  alu.divRm,
]);
def(0xfa, 0, sys.cli);
def(0xfb, 0, sys.sti);
def(0xfe, MODRM | BYTE | LOCKABLE, ctl.undefinedOpcode, [alu.incDecRm, alu.incDecRm]);
def(0xff, MODRM | LOCKABLE, ctl.undefinedOpcode, [
  alu.incDecRm,
  alu.incDecRm,
  ctl.callRm,
  sys.farIndirect,
  ctl.jmpRm,
  sys.farIndirect,
  ctl.pushRm,
]);

// The 0F map.
def(0x100, MODRM, ctl.undefinedOpcode, [
  sys.group6,
  sys.group6,
  sys.group6,
  sys.group6,
  sys.group6,
  sys.group6,
]);
def(0x101, MODRM, ctl.undefinedOpcode, [
  sys.group7,
  sys.group7,
  sys.group7,
  sys.group7,
  sys.group7,
  undefined,
  sys.group7,
  sys.group7,
]);
def([0x102, 0x103], MODRM, sys.larLsl);
def(0x106, 0, sys.clts);
def([0x108, 0x109], 0, sys.cacheFlush);
def(0x10b, 0, ctl.undefinedOpcode);
// The hint-NOP space (SDM Vol. 2 Table A-3, "Reserved-NOP", and NOP's page: "0F 1F /0"): on a
// P6-class CPU 0F 19–0F 1F with any ModRM execute as NOPs and touch no memory. Later CPUs gave
// some of them meanings that are NOPs to CPUs without the feature: the MPX bound instructions
// (0F 1A, 0F 1B) and CET's ENDBR32/ENDBR64 (F3 0F 1E FB/FA), which gcc puts at every function
// entry with -fcf-protection (Debian's static glibc has them).
def(0x118, MODRM, ctl.prefetchHint);
def([0x119, 0x11a, 0x11b, 0x11c, 0x11d, 0x11e, 0x11f], MODRM, ctl.nop);
def([0x120, 0x122], MODRM | REG_ONLY, sys.movCr);
def([0x121, 0x123], MODRM | REG_ONLY, sys.movDr);
def([0x130, 0x132], 0, sys.msr);
def(0x131, 0, sys.rdtsc);
def(0x133, 0, sys.rdpmc);
def(0x134, 0, sys.sysenter);
def(0x135, 0, sys.sysexit);
def(range(0x140, 16), MODRM, data.cmov);
def(range(0x180, 16), JV, ctl.jcc);
def(range(0x190, 16), MODRM | BYTE, data.setcc);
def([0x1a0, 0x1a8], 0, sys.pushSreg);
def([0x1a1, 0x1a9], 0, sys.popSreg);
def(0x1a2, 0, sys.cpuid);
def(0x1a3, MODRM, data.bitReg);
def([0x1a4, 0x1ac], MODRM | IB, shift.shiftDouble);
def([0x1a5, 0x1ad], MODRM, shift.shiftDouble);
def(0x1af, MODRM, alu.imulRegRm);
def(0x1b0, MODRM | BYTE | LOCKABLE, data.cmpxchg);
def(0x1b1, MODRM | LOCKABLE, data.cmpxchg);
def([0x1b2, 0x1b4, 0x1b5], MODRM, sys.loadFarPointer);
def([0x1b6, 0x1b7, 0x1be, 0x1bf], MODRM, data.movExtend);
def([0x1ab, 0x1b3, 0x1bb], MODRM | LOCKABLE, data.bitReg);
def(0x1ba, MODRM | IB | LOCKABLE, data.bitImm);
def([0x1bc, 0x1bd], MODRM, data.bitScan);
def(0x1c0, MODRM | BYTE | LOCKABLE, data.xadd);
def(0x1c1, MODRM | LOCKABLE, data.xadd);
def(0x1c7, MODRM | LOCKABLE, ctl.undefinedOpcode, [
  undefined,
  data.cmpxchg8b,
  undefined,
  undefined,
  undefined,
  undefined,
  undefined,
  sys.rdpid,
]);
def(range(0x1c8, 8), 0, data.bswap);
def(0x1ae, MODRM, sys.fenceGroup);
// MMX and SSE opcode space: #NM or #UD (an i686 without these units).
for (const op of [
  ...range(0x110, 8),
  ...range(0x128, 8),
  ...range(0x150, 48),
  ...range(0x1c2, 5),
  ...range(0x1d0, 48),
]) {
  def(op, MODRM, sys.fpu);
}

export function opSpec(opcode: number): OpSpec | undefined {
  return table[opcode];
}
