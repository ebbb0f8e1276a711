/**
 * The block compiler's view of decoded instructions (block.ts): which forms it writes out
 * inline (`classify`), which generic ones may run in the middle of a block (`plainGeneric`), and
 * which of those may touch memory.
 */
import * as F from './flags.ts';
import type { Instr } from './instr.ts';
import * as Fast from './ops/fast.ts';

/**
 * Generic instructions a block may run in its middle: they touch only registers, flags (not IF,
 * TF, IOPL) and memory through the ordinary paths, never EIP, CS, segments, control registers or
 * the interrupt state. Everything else ends the block.
 */
export function plainGeneric(i: Instr): boolean {
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

/** The forms compiled inline; anything else is GENERIC (called through `exec`). */
export enum Form {
  Generic,
  Nop,
  MovRR, // regs[dst] = regs[src]
  MovRI, // regs[dst] = imm
  Lea,
  Load, // regs[reg] = [ea], 32 or 16 bits (8B, A1)
  Store, // [ea] = regs[reg] or imm, 32 or 16 bits (89, C7, A3)
  LoadExtend, // MOVZX/MOVSX r32, m8/m16
  ExtendRR, // MOVZX/MOVSX r32, r8/r16
  Load8, // MOV r8, m8
  Store8, // MOV m8, r8 / imm8
  MovSmall, // MOV r8, r8 / r16, r16 (`size`); MOV r8, imm8 (`src` -1)
  /**
   * The eight ALU operations and TEST (alu 8) on 8 or 16 bits (`size`): `dst` a register or -1
   * (memory), `src` a register, -1 (`imm`) or -2 (memory). The flags go to the CPU at once.
   */
  AluSized,
  Not, // NOT r32
  Bswap, // BSWAP r32
  AluRR, // the eight ALU operations, r32 with r32 or imm (also TEST)
  AluRM, // the eight ALU operations, r32 with m32 as the source (also CMP m32, r32/imm)
  IncDec,
  ImulRRI,
  Push, // register or imm
  Pop,
  SetCC, // SETcc r8
  CmovRR,
  AluMR, // add or adc sbb and sub xor, m32 with r32 or imm as the source, result to memory
  Neg, // NEG r32
  ShiftR, // group 2 (ROL ROR RCL RCR SHL SHR SAL SAR) on r32 by 1, imm8 or CL
  ShiftM, // SHL SHR SAL SAR on m32 by 1, imm8 or CL
  Jcc,
  Jmp,
  Call,
  Ret,
  CallR, // CALL r32 (FF /2, register operand `src`)
  CallM, // CALL m32 (FF /2, memory operand)
  JmpR, // JMP r32 (FF /4, register operand `src`)
  /**
   * A direct JMP the block follows (block.ts): its target, in the same page, is the block's
   * next instruction, so only the CS limit check is left of it.
   */
  JmpOn,
  /**
   * A direct CALL the block follows (block.ts): it pushes the return address, and its target,
   * in the same page, is the block's next instruction.
   */
  CallOn,
  /**
   * A RET the block follows (block.ts) to the return address a CallOn of the same block pushed
   * (`imm`): the block goes on there when the address popped is that one, and leaves for the
   * address popped when it is not.
   */
  RetOn,
}

/** ALU operations (ModRM reg-field order) and their lazy kind (ADC and SBB: blockWriter.ts). */
export const LAZY_OF_ALU = [
  F.LAZY_ADD,
  F.LAZY_LOGIC,
  F.LAZY_ADD,
  F.LAZY_SUB,
  F.LAZY_LOGIC,
  F.LAZY_SUB,
  F.LAZY_LOGIC,
  F.LAZY_SUB,
];

/** A decoded instruction as the compiler sees it: its form and operands. */
export interface Op {
  form: Form;
  /**
   * ALU operation 0–7 (AluRR/AluRM), 8 for TEST; condition code (Jcc, SetCC, CmovRR); group 2
   * operation (ShiftR).
   */
  alu: number;
  /**
   * Destination and source register (-1 none); `imm` when the source is an immediate (ShiftR:
   * the count, or -1 for CL).
   */
  dst: number;
  src: number;
  imm: number;
  /** Memory access size (Load*, Store*); sign-extend (LoadExtend, ExtendRR). */
  size: number;
  signed: boolean;
}

export function op(form: Form, alu = 0, dst = -1, src = -1, imm = 0, size = 4, signed = false): Op {
  return { form, alu, dst, src, imm, size, signed };
}

/** Classifies an instruction (32-bit code, flat addressing assumed; see `segmentsOf`). */
export function classify(i: Instr): Op {
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
  // The hint NOPs 0F 19-0F 1F (opcodes.ts): any operand size, prefix or ModRM, no memory access.
  // The afterburner's padding is NOPW (0F 1F), at every annotated site.
  if (o >= 0x119 && o <= 0x11f) return op(Form.Nop);
  if (i.rep !== 0 || !i.addr32) return op(Form.Generic);
  const reg = i.mod === 3;
  if (i.size === 4) {
    if (o < 0x40 && (o & 7) <= 3 && (o & 1) === 1) {
      const alu = (o >> 3) & 7;
      if (reg)
        return (o & 2) === 0 ? op(Form.AluRR, alu, i.rm, i.reg) : op(Form.AluRR, alu, i.reg, i.rm);
      if ((o & 2) !== 0) return op(Form.AluRM, alu, i.reg, -1);
      return alu === 7 ? op(Form.AluRM, 7, -1, i.reg) : op(Form.AluMR, alu, -1, i.reg);
    }
    if (o < 0x40 && (o & 7) === 5) {
      return op(Form.AluRR, (o >> 3) & 7, 0, -1, i.imm | 0);
    }
    if (o === 0x81 || o === 0x83) {
      if (reg) return op(Form.AluRR, i.reg, i.rm, -1, i.imm | 0);
      if (i.reg === 7) return op(Form.AluRM, 7, -1, -1, i.imm | 0); // CMP m32, imm
      return op(Form.AluMR, i.reg, -1, -1, i.imm | 0);
    }
    if (o === 0xf7 && i.reg === 3 && reg) return op(Form.Neg, 5, i.rm);
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
    if (o === 0xf7 && i.reg === 2 && reg) return op(Form.Not, 0, i.rm);
    if (o >= 0x1c8 && o <= 0x1cf) return op(Form.Bswap, 0, o & 7);
    if (o === 0xff && i.reg === 2) return reg ? op(Form.CallR, 0, -1, i.rm) : op(Form.CallM);
    if (o === 0xff && i.reg === 4 && reg) return op(Form.JmpR, 0, -1, i.rm);
    if (o === 0xc1 || o === 0xd1 || o === 0xd3) {
      const count = o === 0xd1 ? 1 : o === 0xd3 ? -1 : i.imm & 0xff;
      if (reg) return op(Form.ShiftR, i.reg, i.rm, -1, count);
      if (i.reg >= 4) return op(Form.ShiftM, i.reg, -1, -1, count);
    }
  }
  if (i.size === 1 || i.size === 2) {
    const sized = aluSized(i);
    if (sized !== undefined) return sized;
  }
  if (i.size === 2) {
    if (o === 0x89)
      return reg ? op(Form.MovSmall, 0, i.rm, i.reg, 0, 2) : op(Form.Store, 0, -1, i.reg, 0, 2);
    if (o === 0x8b)
      return reg ? op(Form.MovSmall, 0, i.reg, i.rm, 0, 2) : op(Form.Load, 0, i.reg, -1, 0, 2);
    if (o === 0xc7 && i.reg === 0 && !reg) return op(Form.Store, 0, -1, -1, i.imm & 0xffff, 2);
  }
  if (i.size === 1) {
    if (o >= 0xb0 && o <= 0xb7) return op(Form.MovSmall, 0, o & 7, -1, i.imm & 0xff, 1);
    if (o === 0x88 && reg) return op(Form.MovSmall, 0, i.rm, i.reg, 0, 1);
    if (o === 0x8a && reg) return op(Form.MovSmall, 0, i.reg, i.rm, 0, 1);
    if (o === 0x88 && !reg) return op(Form.Store8, 0, -1, i.reg, 0, 1);
    if (o === 0xc6 && !reg && i.reg === 0) return op(Form.Store8, 0, -1, -1, i.imm & 0xff, 1);
    if (o === 0x8a && !reg) return op(Form.Load8, 0, i.reg, -1, 0, 1);
  }
  if (o >= 0x190 && o <= 0x19f && reg) return op(Form.SetCC, o & 15, i.rm);
  return op(Form.Generic);
}

/**
 * The 8- and 16-bit ALU and TEST forms (Form.AluSized), or undefined: 00-3D, 80, 81, 83, 84,
 * 85, A8, A9, F6 /0, F7 /0.
 */
function aluSized(i: Instr): Op | undefined {
  const o = i.opcode;
  const size = i.size;
  const reg = i.mod === 3;
  // Byte opcodes are even (80: odd 81 and 83 are the 16-bit ones); the decoder set the size.
  const imm = i.imm & (size === 1 ? 0xff : 0xffff);
  if (o < 0x40 && (o & 7) <= 3) {
    const alu = (o >> 3) & 7;
    if ((o & 2) === 0)
      return reg
        ? op(Form.AluSized, alu, i.rm, i.reg, 0, size)
        : op(Form.AluSized, alu, -1, i.reg, 0, size);
    return op(Form.AluSized, alu, i.reg, reg ? i.rm : -2, 0, size);
  }
  if (o < 0x40 && ((o & 7) === 4 || (o & 7) === 5))
    return op(Form.AluSized, (o >> 3) & 7, 0, -1, imm, size);
  if (o === 0x80 || o === 0x81 || o === 0x83)
    return op(Form.AluSized, i.reg, reg ? i.rm : -1, -1, imm, size);
  if (o === 0x84 || o === 0x85) return op(Form.AluSized, 8, reg ? i.rm : -1, i.reg, 0, size);
  if (o === 0xa8 || o === 0xa9) return op(Form.AluSized, 8, 0, -1, imm, size);
  if ((o === 0xf6 || o === 0xf7) && i.reg === 0)
    return op(Form.AluSized, 8, reg ? i.rm : -1, -1, imm, size);
  return undefined;
}

/** Forms that always leave the block (they set EIP); a Jcc leaves it only when taken. */
export function ends(form: Form): boolean {
  return (
    form === Form.Jmp ||
    form === Form.Call ||
    form === Form.Ret ||
    form === Form.CallR ||
    form === Form.CallM ||
    form === Form.JmpR
  );
}

export function memoryForm(op: Op): boolean {
  const form = op.form;
  return (
    form === Form.Load ||
    form === Form.Store ||
    form === Form.LoadExtend ||
    form === Form.Load8 ||
    form === Form.Store8 ||
    form === Form.AluRM ||
    form === Form.AluMR ||
    form === Form.ShiftM ||
    (form === Form.AluSized && (op.dst < 0 || op.src === -2)) ||
    form === Form.CallM
  );
}

export function stackForm(form: Form): boolean {
  return (
    form === Form.Push ||
    form === Form.Pop ||
    form === Form.Call ||
    form === Form.CallOn ||
    form === Form.RetOn ||
    form === Form.Ret ||
    form === Form.CallR ||
    form === Form.CallM
  );
}

/**
 * Generic instructions that may touch memory (or devices through it): a ModRM memory operand,
 * or an implicit stack, string or moffs access. The others work on registers and flags only.
 */
export function genericTouchesMemory(i: Instr): boolean {
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
