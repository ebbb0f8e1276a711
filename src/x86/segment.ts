import { gp, ss } from './fault.ts';

/**
 * A segment register: the visible selector and the hidden descriptor cache (SDM Vol. 3A 3.4.3).
 * `attributes` holds bits 8–23 of the descriptor's high doubleword: the access byte in bits 0–7
 * (type, S, DPL, P) and AVL, L, D/B, G in bits 12–15, as VMX access rights and QEMU lay them out.
 */
export class SegmentRegister {
  selector = 0;
  base = 0;
  /** Effective limit in bytes (granularity already applied). */
  limit = 0xffff;
  attributes = 0x93;
  /** False for a null selector loaded into DS/ES/FS/GS: any access raises #GP(0). */
  usable = true;
  /** D/B bit: 32-bit default operand size (CS) or 32-bit stack pointer (SS). */
  big = false;
  /**
   * Base 0, limit 4 GB, expand-up, readable and writable: accesses need no limit or type check.
   * Computed by `update()`; the hot path reads only this flag.
   */
  flatRead = false;
  flatWrite = false;

  constructor(readonly name: string) {}

  get dpl(): number {
    return (this.attributes >> 5) & 3;
  }

  /** Recomputes the derived fields after the cache changed. */
  update(): void {
    const a = this.attributes;
    this.big = (a & 0x4000) !== 0;
    const isCode = (a & 0x08) !== 0;
    const expandDown = !isCode && (a & 0x04) !== 0;
    const readable = isCode ? (a & 0x02) !== 0 : true;
    const writable = !isCode && (a & 0x02) !== 0;
    const full = this.usable && this.base === 0 && this.limit === 0xffffffff && !expandDown;
    this.flatRead = full && readable;
    this.flatWrite = full && writable;
  }

  load(selector: number, base: number, limit: number, attributes: number): void {
    this.selector = selector & 0xffff;
    this.base = base >>> 0;
    this.limit = limit >>> 0;
    this.attributes = attributes & 0xf0ff;
    this.usable = true;
    this.update();
  }

  /** A null selector in a data segment register (SDM 3A 5.4.1). */
  loadNull(selector: number): void {
    this.selector = selector & 0xffff;
    this.base = 0;
    this.limit = 0;
    this.attributes = 0;
    this.usable = false;
    this.update();
  }
}

/** Segment register indices, in the order of the ModRM `sreg` field (SDM Vol. 2 3.1.1.3). */
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;

/** Decodes a segment descriptor's base, limit and attributes from its two doublewords. */
export function descriptorBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
}

export function descriptorLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0x000f0000);
  return (hi & 0x00800000) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

export function descriptorAttributes(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

/**
 * Checks an access of `size` bytes at `offset` through a segment that is not flat (SDM 3A 5.3
 * limit checking, 5.4 type checking) and returns the linear address. A violation raises #SS(0)
 * for the stack segment (`stack`), else #GP(0); a null data selector always raises #GP(0).
 */
export function checkedLinear(
  s: SegmentRegister,
  stack: boolean,
  offset: number,
  size: number,
  write: boolean,
): number {
  const fault = stack ? ss(0) : gp(0);
  if (!s.usable) throw gp(0);
  const a = s.attributes;
  const isCode = (a & 0x08) !== 0;
  if (write && (isCode || (a & 0x02) === 0)) throw fault;
  if (!write && isCode && (a & 0x02) === 0) throw fault;
  const last = offset + size - 1;
  if (!isCode && (a & 0x04) !== 0) {
    const upper = s.big ? 0xffffffff : 0xffff;
    if (offset <= s.limit || last > upper) throw fault;
  } else if (last > s.limit) {
    throw fault;
  }
  return (s.base + offset) | 0;
}
