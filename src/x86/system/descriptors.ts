/**
 * Segment descriptors and segment-register loads in protected mode (SDM Vol. 3A 3.4–3.5, 5.4,
 * 5.5, 5.6; Vol. 2 MOV/POP to a segment register, LDS/LES/LFS/LGS/LSS).
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector, gp, np, ss } from '../fault.ts';
import { SS, descriptorAttributes, descriptorBase, descriptorLimit } from '../segment.ts';
import { loadRealSegment } from './realMode.ts';

export interface Descriptor {
  lo: number;
  hi: number;
}

/** Access byte helpers on the high doubleword. */
export const isPresent = (hi: number): boolean => (hi & 0x8000) !== 0;
export const dplOf = (hi: number): number => (hi >> 13) & 3;
/** S bit: a code or data segment (not a system descriptor or gate). */
export const isSegment = (hi: number): boolean => (hi & 0x1000) !== 0;
export const isCode = (hi: number): boolean => isSegment(hi) && (hi & 0x800) !== 0;
export const isConforming = (hi: number): boolean => (hi & 0x400) !== 0;
/** Readable (code) or writable (data): the same bit. */
export const rwBit = (hi: number): boolean => (hi & 0x200) !== 0;
export const systemType = (hi: number): number => (hi >> 8) & 0x1f;

/**
 * Reads the descriptor a selector names from the GDT or LDT (implicit supervisor accesses).
 * A selector beyond the table limit raises `fault` with the selector as error code (#GP by
 * default).
 */
export function readDescriptor(
  cpu: Cpu,
  selector: number,
  faultVector: number = Vector.GP,
  ext = 0,
): Descriptor {
  const table = (selector & 4) !== 0 ? cpu.ldtr : undefined;
  const base = table !== undefined ? table.base : cpu.gdtr.base;
  const limit = table !== undefined ? (table.usable ? table.limit : -1) : cpu.gdtr.limit;
  const index = selector & 0xfff8;
  if (index + 7 > limit) throw new CpuFault(faultVector, (selector & 0xfffc) | ext);
  return {
    lo: cpu.readLinear(base + index, 4, true),
    hi: cpu.readLinear(base + index + 4, 4, true),
  };
}

/** Sets the accessed bit of a descriptor in memory (SDM 3A 3.4.5.1), if it is clear. */
export function markAccessed(cpu: Cpu, selector: number, d: Descriptor): void {
  if ((d.hi & 0x100) !== 0) return;
  d.hi = (d.hi | 0x100) >>> 0;
  const base = (selector & 4) !== 0 ? cpu.ldtr.base : cpu.gdtr.base;
  cpu.writeLinear(base + (selector & 0xfff8) + 4, 4, d.hi, true);
}

/** Loads a segment register's cache from a descriptor. */
export function loadCache(cpu: Cpu, seg: number, selector: number, d: Descriptor): void {
  cpu.segs[seg].load(
    selector,
    descriptorBase(d.lo, d.hi),
    descriptorLimit(d.lo, d.hi),
    descriptorAttributes(d.hi),
  );
}

/**
 * MOV/POP/LxS to DS, ES, FS, GS or SS in protected mode, with the checks of SDM Vol. 2 "MOV"
 * (Operation, protected mode). CS is loaded only by far transfers (system/transfer.ts).
 */
export function loadSegment(cpu: Cpu, seg: number, selector: number): void {
  selector &= 0xffff;
  cpu.cycles += cpu.costs.segmentLoad - cpu.costs.base;
  if (cpu.realMode) {
    loadRealSegment(cpu, seg, selector);
    return;
  }
  const rpl = selector & 3;
  const cpl = cpu.cpl;
  if ((selector & 0xfffc) === 0) {
    if (seg === SS) throw gp(0);
    cpu.segs[seg].loadNull(selector);
    return;
  }
  const d = readDescriptor(cpu, selector);
  const hi = d.hi;
  const err = selector & 0xfffc;
  if (seg === SS) {
    if (rpl !== cpl || !isSegment(hi) || isCode(hi) || !rwBit(hi) || dplOf(hi) !== cpl)
      throw gp(err);
    if (!isPresent(hi)) throw ss(err);
    // MOV/POP SS inhibits interrupts until after the next instruction (SDM 3A 6.8.3).
    cpu.interruptShadow = true;
  } else {
    if (!isSegment(hi) || (isCode(hi) && !rwBit(hi))) throw gp(err);
    if (!isCode(hi) || !isConforming(hi)) {
      if (dplOf(hi) < Math.max(cpl, rpl)) throw gp(err);
    }
    if (!isPresent(hi)) throw np(err);
  }
  markAccessed(cpu, selector, d);
  loadCache(cpu, seg, selector, d);
}

/**
 * Checks a new stack segment for a privilege change (interrupt, call gate, RET/IRET to an outer
 * level): SDM 3A 6.12.1 and Vol. 2 IRET/RET. `vector` is #TS for a TSS-supplied stack, #GP
 * for a stack popped by RET/IRET.
 */
export function checkStackSegment(
  cpu: Cpu,
  selector: number,
  newCpl: number,
  vector: number,
  ext = 0,
): Descriptor {
  const err = (selector & 0xfffc) | ext;
  if ((selector & 0xfffc) === 0) throw new CpuFault(vector, ext);
  const d = readDescriptor(cpu, selector, vector, ext);
  const hi = d.hi;
  if (
    (selector & 3) !== newCpl ||
    !isSegment(hi) ||
    isCode(hi) ||
    !rwBit(hi) ||
    dplOf(hi) !== newCpl
  ) {
    throw new CpuFault(vector, err);
  }
  if (!isPresent(hi)) throw new CpuFault(Vector.SS, err);
  return d;
}

/**
 * After a return to an outer privilege level, data segment registers whose descriptors the new
 * level may not use are loaded with null (SDM Vol. 2 RET, IRET: "validate segment registers").
 */
export function nullInaccessibleSegments(cpu: Cpu): void {
  for (const seg of [0, 3, 4, 5]) {
    const s = cpu.segs[seg];
    const a = s.attributes;
    const code = (a & 0x08) !== 0;
    const conforming = code && (a & 0x04) !== 0;
    if (s.usable && (!code || !conforming) && s.dpl < cpu.cpl) s.loadNull(0);
  }
}

/** Reads the stack pointer for privilege level `level` from the current TSS (SDM 3A 7.2.1). */
export function tssStack(cpu: Cpu, level: number, ext: number): { ss: number; esp: number } {
  const tr = cpu.tr;
  const type = (tr.attributes & 0x0f) >>> 0;
  const is32 = (type & 8) !== 0;
  const offset = is32 ? 4 + level * 8 : 2 + level * 4;
  const width = is32 ? 4 : 2;
  if (offset + width + (is32 ? 2 : 2) - 1 > tr.limit)
    throw new CpuFault(Vector.TS, (tr.selector & 0xfffc) | ext);
  const esp = cpu.readLinear(tr.base + offset, width, true);
  const ssSel = cpu.readLinear(tr.base + offset + width, 2, true);
  return { ss: ssSel, esp };
}
