import * as F from './flags.ts';

/**
 * The lazy status-flag state (fields of `Cpu` by the same names): the arithmetic instructions
 * record their operands and result (`Cpu.setLazy` and friends), and a status flag named in
 * `lazyMask` is computed from them only when something reads it. The other EFLAGS bits are in
 * `flagsBits`.
 */
export interface LazyFlags {
  flagsBits: number;
  lazyMask: number;
  /** F.LAZY_ADD, F.LAZY_SUB or F.LAZY_LOGIC. */
  lazyOp: number;
  lazyRes: number;
  lazyDst: number;
  lazySrc: number;
  /** The carry in of ADC and SBB (0 or 1). */
  lazyCin: number;
  /** 0xff, 0xffff or -1 (32 bits): the operand size. */
  lazySizeMask: number;
}

/** The sign bit at the recorded operand size. */
function lazySign(f: LazyFlags): number {
  const m = f.lazySizeMask;
  return m === 0xff ? 0x80 : m === 0xffff ? 0x8000 : -0x80000000;
}

/** CF from the recorded operation (the unsigned carry or borrow out of the operand size). */
export function lazyCF(f: LazyFlags): boolean {
  const m = f.lazySizeMask;
  const d = (f.lazyDst & m) >>> 0;
  const s = (f.lazySrc & m) >>> 0;
  if (f.lazyOp === F.LAZY_ADD) return d + s + f.lazyCin > m >>> 0;
  if (f.lazyOp === F.LAZY_SUB) return d < s + f.lazyCin;
  return false;
}

/** OF from the recorded operation (signed overflow). */
function lazyOF(f: LazyFlags): boolean {
  const d = f.lazyDst;
  const s = f.lazySrc;
  const r = f.lazyRes;
  if (f.lazyOp === F.LAZY_ADD) return ((d ^ r) & (s ^ r) & lazySign(f)) !== 0;
  if (f.lazyOp === F.LAZY_SUB) return ((d ^ s) & (d ^ r) & lazySign(f)) !== 0;
  return false;
}

/** One status flag (`bit`, an F.* constant) from the recorded operation. */
function lazyFlag(f: LazyFlags, bit: number): boolean {
  switch (bit) {
    case F.ZF:
      return (f.lazyRes & f.lazySizeMask) === 0;
    case F.SF:
      return (f.lazyRes & lazySign(f)) !== 0;
    case F.PF:
      return F.PARITY[f.lazyRes & 0xff] === 1;
    case F.AF:
      return f.lazyOp !== F.LAZY_LOGIC && ((f.lazyDst ^ f.lazySrc ^ f.lazyRes) & 0x10) !== 0;
    case F.CF:
      return lazyCF(f);
    default:
      return lazyOF(f);
  }
}

/** A status flag, lazy or not. */
export function flag(f: LazyFlags, bit: number): boolean {
  if ((f.lazyMask & bit) !== 0) return lazyFlag(f, bit);
  return (f.flagsBits & bit) !== 0;
}

export function getCF(f: LazyFlags): boolean {
  if ((f.lazyMask & F.CF) !== 0) return lazyCF(f);
  return (f.flagsBits & F.CF) !== 0;
}

export function getZF(f: LazyFlags): boolean {
  if ((f.lazyMask & F.ZF) !== 0) return (f.lazyRes & f.lazySizeMask) === 0;
  return (f.flagsBits & F.ZF) !== 0;
}

/** `flagsBits` with the lazy status flags folded in (the caller then clears `lazyMask`). */
export function materializedBits(f: LazyFlags): number {
  const lazy = f.lazyMask;
  let bits = f.flagsBits & ~lazy;
  // Any subset may be lazy (Cpu.setFlagBits sets some flags and leaves the rest lazy).
  if ((lazy & F.CF) !== 0 && lazyFlag(f, F.CF)) bits |= F.CF;
  if ((lazy & F.PF) !== 0 && lazyFlag(f, F.PF)) bits |= F.PF;
  if ((lazy & F.AF) !== 0 && lazyFlag(f, F.AF)) bits |= F.AF;
  if ((lazy & F.ZF) !== 0 && lazyFlag(f, F.ZF)) bits |= F.ZF;
  if ((lazy & F.SF) !== 0 && lazyFlag(f, F.SF)) bits |= F.SF;
  if ((lazy & F.OF) !== 0 && lazyFlag(f, F.OF)) bits |= F.OF;
  return bits;
}

/**
 * Evaluates condition code `cc` (SDM Vol. 1 Appendix B). PERF: after CMP/SUB/TEST/AND, the
 * usual state before a Jcc, the condition comes straight from the operands.
 */
export function condition(f: LazyFlags, cc: number): boolean {
  if (f.lazyMask === F.ARITH && f.lazyCin === 0) {
    const op = f.lazyOp;
    const m = f.lazySizeMask;
    let r: boolean | undefined;
    if (op === F.LAZY_SUB) {
      const d = f.lazyDst & m;
      const s = f.lazySrc & m;
      switch (cc >> 1) {
        case 1:
          r = d >>> 0 < s >>> 0;
          break;
        case 2:
          r = d === s;
          break;
        case 3:
          r = d >>> 0 <= s >>> 0;
          break;
        case 6:
        case 7: {
          const shift = m === 0xff ? 24 : m === 0xffff ? 16 : 0;
          const sd = (d << shift) >> shift;
          const ss = (s << shift) >> shift;
          r = cc >> 1 === 6 ? sd < ss : sd <= ss;
          break;
        }
      }
    } else if (op === F.LAZY_LOGIC) {
      const res = f.lazyRes & m;
      switch (cc >> 1) {
        case 0:
        case 1:
          r = false;
          break;
        case 2:
        case 3:
          r = res === 0;
          break;
        case 4:
        case 6:
          r = (res & lazySign(f)) !== 0;
          break;
        case 7:
          r = res === 0 || (res & lazySign(f)) !== 0;
          break;
      }
    }
    if (r !== undefined) return (cc & 1) === 0 ? r : !r;
  }
  let r: boolean;
  switch (cc >> 1) {
    case 0:
      r = flag(f, F.OF);
      break;
    case 1:
      r = getCF(f);
      break;
    case 2:
      r = getZF(f);
      break;
    case 3:
      r = getCF(f) || getZF(f);
      break;
    case 4:
      r = flag(f, F.SF);
      break;
    case 5:
      r = flag(f, F.PF);
      break;
    case 6:
      r = flag(f, F.SF) !== flag(f, F.OF);
      break;
    default:
      r = getZF(f) || flag(f, F.SF) !== flag(f, F.OF);
      break;
  }
  return (cc & 1) === 0 ? r : !r;
}
