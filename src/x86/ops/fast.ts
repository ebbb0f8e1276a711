/**
 * PERF: specialised handlers for the instruction forms compiled code executes most (32-bit
 * operands, flat 32-bit addressing): the decoder swaps them in for the generic family handlers.
 * Each does exactly what the generic handler does for that form, without the size and operand
 * dispatch; the differential and whole-program tests cover both paths.
 */
import type { Cpu } from '../Cpu.ts';
import * as F from '../flags.ts';
import type { Handler, Instr } from '../instr.ts';
import { jumpTo } from './control.ts';

function ea32(cpu: Cpu, i: Instr): number {
  let v = i.disp;
  if (i.base >= 0) v += cpu.regs[i.base];
  if (i.index >= 0) v += cpu.regs[i.index] << i.scale;
  return v | 0;
}

function load32(cpu: Cpu, i: Instr): number {
  return cpu.read32(cpu.linear(i.seg, ea32(cpu, i), 4, false));
}

// ---- register–register ALU (01/03, 09/0B, 21/23, 29/2B, 31/33, 39/3B, 85 with mod 3) ----

/** Destination and source registers for the r/m,reg (even) and reg,r/m (odd) directions. */
function dstReg(i: Instr): number {
  return (i.opcode & 2) === 0 ? i.rm : i.reg;
}
function srcReg(i: Instr): number {
  return (i.opcode & 2) === 0 ? i.reg : i.rm;
}

const addRR: Handler = (cpu, i) => {
  const d = cpu.regs[dstReg(i)];
  const s = cpu.regs[srcReg(i)];
  const r = (d + s) | 0;
  cpu.setLazy(F.LAZY_ADD, d, s, r, -1);
  cpu.regs[dstReg(i)] = r;
};
const subRR: Handler = (cpu, i) => {
  const d = cpu.regs[dstReg(i)];
  const s = cpu.regs[srcReg(i)];
  const r = (d - s) | 0;
  cpu.setLazy(F.LAZY_SUB, d, s, r, -1);
  cpu.regs[dstReg(i)] = r;
};
const cmpRR: Handler = (cpu, i) => {
  const d = cpu.regs[dstReg(i)];
  const s = cpu.regs[srcReg(i)];
  cpu.setLazy(F.LAZY_SUB, d, s, (d - s) | 0, -1);
};
const andRR: Handler = (cpu, i) => {
  const r = cpu.regs[dstReg(i)] & cpu.regs[srcReg(i)];
  cpu.setLazy(F.LAZY_LOGIC, 0, 0, r, -1);
  cpu.regs[dstReg(i)] = r;
};
const orRR: Handler = (cpu, i) => {
  const r = cpu.regs[dstReg(i)] | cpu.regs[srcReg(i)];
  cpu.setLazy(F.LAZY_LOGIC, 0, 0, r, -1);
  cpu.regs[dstReg(i)] = r;
};
const xorRR: Handler = (cpu, i) => {
  const r = cpu.regs[dstReg(i)] ^ cpu.regs[srcReg(i)];
  cpu.setLazy(F.LAZY_LOGIC, 0, 0, r, -1);
  cpu.regs[dstReg(i)] = r;
};
const testRR: Handler = (cpu, i) => {
  cpu.setLazy(F.LAZY_LOGIC, 0, 0, cpu.regs[i.rm] & cpu.regs[i.reg], -1);
};

// ---- ALU with a memory source (03, 2B, 3B, 0B, 23, 33 with a memory operand) ----

const addRM: Handler = (cpu, i) => {
  const d = cpu.regs[i.reg];
  const s = load32(cpu, i);
  const r = (d + s) | 0;
  cpu.setLazy(F.LAZY_ADD, d, s, r, -1);
  cpu.regs[i.reg] = r;
};
const cmpRM: Handler = (cpu, i) => {
  const d = cpu.regs[i.reg];
  const s = load32(cpu, i);
  cpu.setLazy(F.LAZY_SUB, d, s, (d - s) | 0, -1);
};
const cmpMR: Handler = (cpu, i) => {
  const d = load32(cpu, i);
  const s = cpu.regs[i.reg];
  cpu.setLazy(F.LAZY_SUB, d, s, (d - s) | 0, -1);
};

// ---- group 1 with an immediate on a register (81/83 mod 3) ----

const addRI: Handler = (cpu, i) => {
  const d = cpu.regs[i.rm];
  const r = (d + i.imm) | 0;
  cpu.setLazy(F.LAZY_ADD, d, i.imm, r, -1);
  cpu.regs[i.rm] = r;
};
const subRI: Handler = (cpu, i) => {
  const d = cpu.regs[i.rm];
  const r = (d - i.imm) | 0;
  cpu.setLazy(F.LAZY_SUB, d, i.imm, r, -1);
  cpu.regs[i.rm] = r;
};
const cmpRI: Handler = (cpu, i) => {
  const d = cpu.regs[i.rm];
  cpu.setLazy(F.LAZY_SUB, d, i.imm, (d - i.imm) | 0, -1);
};
const andRI: Handler = (cpu, i) => {
  const r = cpu.regs[i.rm] & i.imm;
  cpu.setLazy(F.LAZY_LOGIC, 0, 0, r, -1);
  cpu.regs[i.rm] = r;
};
const cmpMI: Handler = (cpu, i) => {
  const d = load32(cpu, i);
  cpu.setLazy(F.LAZY_SUB, d, i.imm, (d - i.imm) | 0, -1);
};

// ---- IMUL r32, r32, imm (69/6B with mod 3) ----

const imulRegImm: Handler = (cpu, i) => {
  cpu.cycles += cpu.costs.mul - cpu.costs.base;
  const a = cpu.regs[i.rm];
  const low = Math.imul(a, i.imm);
  cpu.regs[i.reg] = low;
  cpu.setMulFlags(low, -1, a * i.imm !== low);
};

// ---- moves ----

const movRR: Handler = (cpu, i) => {
  cpu.regs[dstReg(i)] = cpu.regs[srcReg(i)];
};
const movLoad: Handler = (cpu, i) => {
  cpu.regs[i.reg] = load32(cpu, i);
};
const movStore: Handler = (cpu, i) => {
  cpu.write32(cpu.linear(i.seg, ea32(cpu, i), 4, true), cpu.regs[i.reg]);
};
const movStoreImm: Handler = (cpu, i) => {
  cpu.write32(cpu.linear(i.seg, ea32(cpu, i), 4, true), i.imm);
};
const movRegImm: Handler = (cpu, i) => {
  cpu.regs[i.opcode & 7] = i.imm;
};
const movzxByteLoad: Handler = (cpu, i) => {
  cpu.regs[i.reg] = cpu.read8(cpu.linear(i.seg, ea32(cpu, i), 1, false));
};
const lea: Handler = (cpu, i) => {
  cpu.regs[i.reg] = ea32(cpu, i);
};

// ---- INC/DEC r32 (40–4F) ----

const incReg: Handler = (cpu, i) => {
  const r = i.opcode & 7;
  const v = cpu.regs[r];
  const res = (v + 1) | 0;
  cpu.setLazyKeepCarry(F.LAZY_ADD, v, 1, res, -1);
  cpu.regs[r] = res;
};
const decReg: Handler = (cpu, i) => {
  const r = i.opcode & 7;
  const v = cpu.regs[r];
  const res = (v - 1) | 0;
  cpu.setLazyKeepCarry(F.LAZY_SUB, v, 1, res, -1);
  cpu.regs[r] = res;
};

// ---- stack and control flow with a 32-bit flat stack ----

const pushReg: Handler = (cpu, i) => {
  cpu.push(cpu.regs[i.opcode & 7], 4);
};
const popReg: Handler = (cpu, i) => {
  const v = cpu.pop(4);
  cpu.regs[i.opcode & 7] = v;
};
const jccRel: Handler = (cpu, i) => {
  if (cpu.condition(i.opcode & 15)) jumpTo(cpu, cpu.eip + i.imm, 4);
};
const jmpRel: Handler = (cpu, i) => {
  jumpTo(cpu, cpu.eip + i.imm, 4);
};
const callRel: Handler = (cpu, i) => {
  const target = cpu.eip + i.imm;
  cpu.push(cpu.eip, 4);
  jumpTo(cpu, target, 4);
};
const ret: Handler = (cpu) => {
  const target = cpu.peek(4, 0);
  jumpTo(cpu, target, 4);
  cpu.adjustSp(4);
};

const ALU_RR: (Handler | undefined)[] = [
  addRR,
  orRR,
  undefined,
  undefined,
  andRR,
  subRR,
  xorRR,
  cmpRR,
];
const ALU_RI: (Handler | undefined)[] = [
  addRI,
  undefined,
  undefined,
  undefined,
  andRI,
  subRI,
  undefined,
  cmpRI,
];

/**
 * PERF: codes for the forms the interpreter loop (Cpu.runInner) executes inline, without a call
 * through `exec`. Each case there does exactly what the handler named beside it does; `exec`
 * stays the reference (single-stepping and every other path use it).
 */
export const FAST_NONE = 0;
export const FAST_MOV_RR = 1; // movRR
export const FAST_MOV_LOAD = 2; // movLoad
export const FAST_MOV_STORE = 3; // movStore
export const FAST_MOV_IMM = 4; // movRegImm
export const FAST_JCC = 5; // jccRel
export const FAST_CMP_RR = 6; // cmpRR
export const FAST_CMP_RI = 7; // cmpRI
export const FAST_ADD_RI = 8; // addRI
export const FAST_INC = 9; // incReg
export const FAST_PUSH = 10; // pushReg
export const FAST_POP = 11; // popReg
export const FAST_LEA = 12; // lea
export const FAST_JMP = 13; // jmpRel
export const FAST_ADD_RR = 14; // addRR
export const FAST_TEST_RR = 15; // testRR
export const FAST_DEC = 16; // decReg
export const FAST_XOR_RR = 17; // xorRR
export const FAST_SUB_RR = 18; // subRR
export const FAST_SUB_RI = 19; // subRI
export const FAST_MOVZX8_LOAD = 20; // movzxByteLoad
export const FAST_IMUL_RRI = 21; // imulRegImm
export const FAST_CALL = 22; // callRel
export const FAST_RET = 23; // ret

const FAST_CODES = new Map<Handler, number>([
  [movRR, FAST_MOV_RR],
  [movLoad, FAST_MOV_LOAD],
  [movStore, FAST_MOV_STORE],
  [movRegImm, FAST_MOV_IMM],
  [jccRel, FAST_JCC],
  [cmpRR, FAST_CMP_RR],
  [cmpRI, FAST_CMP_RI],
  [addRI, FAST_ADD_RI],
  [incReg, FAST_INC],
  [pushReg, FAST_PUSH],
  [popReg, FAST_POP],
  [lea, FAST_LEA],
  [jmpRel, FAST_JMP],
  [addRR, FAST_ADD_RR],
  [testRR, FAST_TEST_RR],
  [decReg, FAST_DEC],
  [xorRR, FAST_XOR_RR],
  [subRR, FAST_SUB_RR],
  [subRI, FAST_SUB_RI],
  [movzxByteLoad, FAST_MOVZX8_LOAD],
  [imulRegImm, FAST_IMUL_RRI],
  [callRel, FAST_CALL],
  [ret, FAST_RET],
]);

/** Sets `fast`, `dst` and `src` for an instruction whose handler the loop runs inline. */
export function markFast(i: Instr): void {
  const code = FAST_CODES.get(i.exec) ?? FAST_NONE;
  i.fast = code;
  if (
    code === FAST_MOV_RR ||
    code === FAST_CMP_RR ||
    code === FAST_ADD_RR ||
    code === FAST_XOR_RR ||
    code === FAST_SUB_RR
  ) {
    i.dst = dstReg(i);
    i.src = srcReg(i);
  } else if (code === FAST_TEST_RR) {
    i.dst = i.rm;
    i.src = i.reg;
  } else if (code === FAST_MOV_IMM || code === FAST_INC || code === FAST_DEC) i.dst = i.opcode & 7;
  else if (code === FAST_PUSH || code === FAST_POP) i.dst = i.opcode & 7;
  else if (code === FAST_CMP_RI || code === FAST_ADD_RI || code === FAST_SUB_RI) i.dst = i.rm;
  else if (code === FAST_IMUL_RRI) {
    i.dst = i.reg;
    i.src = i.rm;
  }
}

/**
 * Returns the specialised handler for a decoded instruction, or undefined to keep the generic
 * one. Only 32-bit operand and address size, no prefixes that change the semantics (LOCK, REP).
 */
export function specialize(i: Instr): Handler | undefined {
  if (i.size !== 4 || !i.addr32 || i.lock || i.rep !== 0) return undefined;
  const op = i.opcode;
  const reg = i.mod === 3;
  if (op < 0x40 && (op & 7) <= 3 && (op & 1) === 1) {
    const alu = (op >> 3) & 7;
    if (reg) return ALU_RR[alu];
    if ((op & 2) !== 0) return alu === 0 ? addRM : alu === 7 ? cmpRM : undefined;
    return alu === 7 ? cmpMR : undefined;
  }
  // 05, 25, 2D, 3D: the accumulator forms of group 1 (no ModRM: rm is 0, EAX).
  if (op < 0x40 && (op & 7) === 5 && i.rm === 0) return ALU_RI[(op >> 3) & 7];
  if ((op === 0x69 || op === 0x6b) && reg) return imulRegImm;
  if ((op === 0x81 || op === 0x83) && reg) return ALU_RI[i.reg];
  if ((op === 0x81 || op === 0x83) && i.reg === 7) return cmpMI;
  if (op === 0x85 && reg) return testRR;
  if (op === 0x89 || op === 0x8b) return reg ? movRR : op === 0x8b ? movLoad : movStore;
  if (op === 0xc7 && !reg && i.reg === 0) return movStoreImm;
  if (op >= 0xb8 && op <= 0xbf) return movRegImm;
  if (op === 0x1b6 && !reg) return movzxByteLoad;
  if (op === 0x8d && !reg) return lea;
  if (op >= 0x40 && op <= 0x47) return incReg;
  if (op >= 0x48 && op <= 0x4f) return decReg;
  if (op >= 0x50 && op <= 0x57) return pushReg;
  if (op >= 0x58 && op <= 0x5f && op !== 0x5c) return popReg;
  if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) return jccRel;
  if (op === 0xe9 || op === 0xeb) return jmpRel;
  if (op === 0xe8) return callRel;
  if (op === 0xc3) return ret;
  return undefined;
}
