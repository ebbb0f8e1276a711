/**
 * The decoder: prefixes, opcode, ModRM/SIB with 16- and 32-bit addressing, displacement and
 * immediates (SDM Vol. 2 ch. 2), driven by the opcode table (opcodes.ts). It runs once per
 * instruction address; the CPU caches the result.
 */
import { CpuFault, Vector, ud } from './fault.ts';
import { Instr } from './instr.ts';
import * as T from './opcodes.ts';
import { undefinedOpcode } from './ops/control.ts';
import { markFast, specialize } from './ops/fast.ts';

const tooLong = (): never => {
  throw new CpuFault(Vector.GP, 0);
};
const lockFault = (): never => {
  throw ud();
};

/** Regs of the 16-bit ModRM forms (base, index) by rm (SDM Vol. 2 Table 2-1). */
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3];
const INDEX16 = [6, 7, 6, 7, -1, -1, -1, -1];

/**
 * Decodes the instruction at `bytes[start]` for a code segment with the given default size.
 * Returns an Instr with `length` 0 if the bytes ran out before the instruction ended.
 */
export function decode(bytes: Uint8Array, start: number, big: boolean): Instr {
  const end = bytes.length;
  let p = start;
  let opsize32 = big;
  let addr32 = big;
  let seg = -1;
  let rep = 0;
  let lock = false;
  let b: number;
  for (;;) {
    if (p >= end) return incomplete();
    b = bytes[p++];
    if (b === 0x66) opsize32 = !big;
    else if (b === 0x67) addr32 = !big;
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) seg = (b >> 3) & 3;
    else if (b === 0x64 || b === 0x65) seg = b - 0x60;
    else if (b === 0xf0) lock = true;
    else if (b === 0xf2) rep = 2;
    else if (b === 0xf3) rep = 1;
    else break;
  }
  let opcode = b;
  if (b === 0x0f) {
    if (p >= end) return incomplete();
    opcode = 0x100 | bytes[p++];
  }
  const spec = T.opSpec(opcode);
  const i = new Instr(spec?.exec ?? undefinedOpcode);
  i.opcode = opcode;
  i.addr32 = addr32;
  i.codeBig = big;
  i.rep = rep;
  i.lock = lock;
  i.segOverride = seg >= 0;
  i.seg = seg >= 0 ? seg : 3;
  const flags = spec?.flags ?? 0;
  i.size = (flags & T.BYTE) !== 0 ? 1 : opsize32 ? 4 : 2;

  if ((flags & T.MODRM) !== 0) {
    if (p >= end) return incomplete();
    const modrm = bytes[p++];
    i.mod = (flags & T.REG_ONLY) !== 0 ? 3 : modrm >> 6;
    i.reg = (modrm >> 3) & 7;
    i.rm = modrm & 7;
    if (i.mod !== 3) {
      p = addr32 ? decodeEa32(bytes, p, i, seg) : decodeEa16(bytes, p, i, seg);
      if (p < 0) return incomplete();
    }
    if (spec?.group !== undefined) i.exec = spec.group[i.reg] ?? undefinedOpcode;
  }

  // Immediates.
  const need = (n: number): boolean => p + n <= end;
  if ((flags & (T.IB | T.IBS | T.JB)) !== 0 && (flags & T.TEST_IMM) === 0) {
    if (!need(1)) return incomplete();
    const v = bytes[p++];
    i.imm = (flags & (T.IBS | T.JB)) !== 0 ? (v << 24) >> 24 : v;
  }
  if ((flags & T.TEST_IMM) !== 0 && i.reg < 2) {
    const n = i.size;
    if (!need(n)) return incomplete();
    i.imm = readImm(bytes, p, n);
    p += n;
  }
  if ((flags & (T.IV | T.JV)) !== 0) {
    const n = opsize32 ? 4 : 2;
    if (!need(n)) return incomplete();
    i.imm = readImm(bytes, p, n);
    if ((flags & T.JV) !== 0 && n === 2) i.imm = (i.imm << 16) >> 16;
    else if (n === 4) i.imm |= 0;
    p += n;
  }
  if ((flags & (T.IW | T.IW_IB)) !== 0) {
    if (!need(2)) return incomplete();
    i.imm = readImm(bytes, p, 2);
    p += 2;
    if ((flags & T.IW_IB) !== 0) {
      if (!need(1)) return incomplete();
      i.imm2 = bytes[p++];
    }
  }
  if ((flags & T.AP) !== 0) {
    const n = opsize32 ? 4 : 2;
    if (!need(n + 2)) return incomplete();
    i.imm = readImm(bytes, p, n);
    i.imm2 = readImm(bytes, p + n, 2);
    p += n + 2;
  }
  if ((flags & T.MOFFS) !== 0) {
    const n = addr32 ? 4 : 2;
    if (!need(n)) return incomplete();
    i.disp = readImm(bytes, p, n);
    p += n;
  }
  i.length = p - start;
  if (i.length > 15) i.exec = tooLong;
  else if (lock && ((flags & T.LOCKABLE) === 0 || i.mod === 3)) i.exec = lockFault;
  else if (spec !== undefined) {
    i.exec = specialize(i) ?? i.exec;
    markFast(i);
  }
  return i;
}

function incomplete(): Instr {
  const i = new Instr(undefinedOpcode);
  i.length = 0;
  return i;
}

function readImm(bytes: Uint8Array, p: number, n: number): number {
  if (n === 1) return bytes[p];
  if (n === 2) return bytes[p] | (bytes[p + 1] << 8);
  return bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16) | (bytes[p + 3] << 24);
}

/** 32-bit ModRM memory forms with SIB (SDM Vol. 2 Tables 2-2, 2-3). Returns -1 if truncated. */
function decodeEa32(bytes: Uint8Array, p: number, i: Instr, seg: number): number {
  const end = bytes.length;
  let base = i.rm;
  let index = -1;
  let scale = 0;
  if (i.rm === 4) {
    if (p >= end) return -1;
    const sib = bytes[p++];
    scale = sib >> 6;
    index = (sib >> 3) & 7;
    if (index === 4) index = -1;
    base = sib & 7;
    if (base === 5 && i.mod === 0) base = -1;
  } else if (i.rm === 5 && i.mod === 0) {
    base = -1;
  }
  let disp = 0;
  if (i.mod === 1) {
    if (p >= end) return -1;
    disp = (bytes[p++] << 24) >> 24;
  } else if (i.mod === 2 || base === -1) {
    if (p + 4 > end) return -1;
    disp = readImm(bytes, p, 4) | 0;
    p += 4;
  }
  i.base = base;
  i.index = index;
  i.scale = scale;
  i.disp = disp;
  // EBP- and ESP-based forms default to SS.
  if (seg < 0) i.seg = base === 4 || base === 5 ? 2 : 3;
  return p;
}

/** 16-bit ModRM memory forms (SDM Vol. 2 Table 2-1). */
function decodeEa16(bytes: Uint8Array, p: number, i: Instr, seg: number): number {
  const end = bytes.length;
  let base = BASE16[i.rm];
  const index = INDEX16[i.rm];
  let disp = 0;
  if (i.mod === 0 && i.rm === 6) {
    base = -1;
    if (p + 2 > end) return -1;
    disp = readImm(bytes, p, 2);
    p += 2;
  } else if (i.mod === 1) {
    if (p >= end) return -1;
    disp = (bytes[p++] << 24) >> 24;
  } else if (i.mod === 2) {
    if (p + 2 > end) return -1;
    disp = readImm(bytes, p, 2);
    p += 2;
  }
  i.base = base;
  i.index = index;
  i.scale = 0;
  i.disp = disp;
  if (seg < 0) i.seg = base === 5 ? 2 : 3;
  return p;
}
