/** EFLAGS bits (SDM Vol. 1 3.4.3). */
export const CF = 0x1;
export const PF = 0x4;
export const AF = 0x10;
export const ZF = 0x40;
export const SF = 0x80;
export const TF = 0x100;
export const IF = 0x200;
export const DF = 0x400;
export const OF = 0x800;
export const IOPL = 0x3000;
export const NT = 0x4000;
export const RF = 0x10000;
export const VM = 0x20000;
export const AC = 0x40000;
export const ID = 0x200000;

/** The six status flags the arithmetic instructions compute. */
export const ARITH = CF | PF | AF | ZF | SF | OF;
/** Bit 1 always reads as 1. */
export const FIXED = 0x2;
/** Flags software can change on an i686 (no VIF/VIP: no virtual-8086 extensions). */
export const WRITABLE = ARITH | TF | IF | DF | IOPL | NT | RF | VM | AC | ID;

/**
 * Kinds of the last flag-setting operation, for lazy flags: the interpreter records the
 * operands and the result and computes a status flag only when something reads it.
 */
export const LAZY_ADD = 1;
export const LAZY_SUB = 2;
export const LAZY_LOGIC = 3;

/** PF: set when the low byte of the result has an even number of 1 bits. */
export const PARITY = (() => {
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let bits = 0;
    for (let b = i; b !== 0; b >>= 1) bits += b & 1;
    table[i] = (bits & 1) === 0 ? 1 : 0;
  }
  return table;
})();
