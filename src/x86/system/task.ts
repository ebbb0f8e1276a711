/**
 * Hardware task switching with 32-bit TSSs (SDM Vol. 3A chapter 7 "Task Management"; Vol. 2
 * JMP, CALL, IRET, INT n): a far JMP or CALL to a TSS descriptor or a task gate, an interrupt or
 * exception through a task gate in the IDT, and IRET with EFLAGS.NT set (a return to the task
 * in the back link). The busy bit, the back link, NT and CR0.TS follow 7.3, "Task Switching",
 * and table 7-2 ("Effect of a Task Switch on Busy Flag, NT Flag, Previous Task Link Field, and
 * TS Flag"). 16-bit TSSs (types 1 and 3) are refused with #GP, as virtual-8086 mode in a new
 * task's EFLAGS is ignored: neither is in scope for this CPU.
 *
 * The order is the SDM's: every check that can fault in the old task (the new TSS descriptor,
 * its limit, reading the whole new TSS) comes before anything changes; from the moment the old
 * task's state is saved the switch is committed, and a fault while loading the new task's
 * segment registers is raised in the new task (its EIP is where the fault restarts).
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector, gp, np, ts } from '../fault.ts';
import * as F from '../flags.ts';
import { CS, SS, descriptorAttributes, descriptorBase, descriptorLimit } from '../segment.ts';
import {
  dplOf,
  isCode,
  isConforming,
  isPresent,
  isSegment,
  loadCache,
  readDescriptor,
  rwBit,
  systemType,
  type Descriptor,
} from './descriptors.ts';

/** What started the switch (table 7-2 differs by source). */
export type TaskSwitchSource = 'jmp' | 'call' | 'iret' | 'interrupt';

const TSS32_AVAILABLE = 0x09;
const TSS32_BUSY = 0x0b;
const TASK_GATE = 0x05;
const BUSY_BIT = 0x200; // type bit 1 in the descriptor's high word
/** The smallest limit of a 32-bit TSS (SDM 7.2.2: "the limit must be at least 67H"). */
const TSS32_MIN_LIMIT = 0x67;

/** Offsets in a 32-bit TSS (SDM 7.2.1, figure 7-2). */
const TSS = {
  link: 0x00,
  cr3: 0x1c,
  eip: 0x20,
  eflags: 0x24,
  regs: 0x28, // EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI
  segs: 0x48, // ES, CS, SS, DS, FS, GS
  ldt: 0x60,
} as const;

/**
 * A far JMP or CALL whose selector names a system descriptor that is a TSS or a task gate
 * (SDM Vol. 2 JMP/CALL, "task gate" and "TSS" paths). Returns false for other descriptors.
 */
export function farTransferToTask(
  cpu: Cpu,
  selector: number,
  d: Descriptor,
  source: 'jmp' | 'call',
): boolean {
  const type = systemType(d.hi);
  const err = selector & 0xfffc;
  if (type === TASK_GATE) {
    const dpl = dplOf(d.hi);
    if (dpl < cpu.cpl || dpl < (selector & 3)) throw gp(err);
    if (!isPresent(d.hi)) throw np(err);
    switchTask(cpu, d.lo >>> 16, source, 0);
    return true;
  }
  if (type === TSS32_AVAILABLE || type === TSS32_BUSY || type === 0x01 || type === 0x03) {
    const dpl = dplOf(d.hi);
    if (dpl < cpu.cpl || dpl < (selector & 3)) throw gp(err);
    switchTask(cpu, selector, source, 0);
    return true;
  }
  return false;
}

/** IRET with NT set: back to the task whose selector is the current TSS's back link. */
export function taskReturn(cpu: Cpu): void {
  const link = cpu.readLinear(cpu.tr.base + TSS.link, 2, true);
  switchTask(cpu, link, 'iret', 0);
}

/**
 * The switch to the task whose TSS `selector` names (from a gate or a JMP/CALL operand, or the
 * back link). `ext` is the EXT bit for error codes (1 for an event not caused by the program).
 * `errorCode`, for an exception that has one, is pushed on the new task's stack.
 */
export function switchTask(
  cpu: Cpu,
  selector: number,
  source: TaskSwitchSource,
  ext: number,
  errorCode?: number,
): void {
  selector &= 0xffff;
  const err = (selector & 0xfffc) | ext;
  // The new TSS descriptor: in the GDT, a 32-bit TSS, busy exactly when returning to it.
  if ((selector & 4) !== 0 || (selector & 0xfffc) === 0)
    throw source === 'iret' ? ts(err) : gp(err);
  const d = readDescriptor(cpu, selector, source === 'iret' ? Vector.TS : Vector.GP, ext);
  const type = systemType(d.hi);
  if (isSegment(d.hi) || (type !== TSS32_AVAILABLE && type !== TSS32_BUSY)) {
    throw source === 'iret' ? ts(err) : gp(err);
  }
  const busy = type === TSS32_BUSY;
  if (source === 'iret' ? !busy : busy) throw source === 'iret' ? ts(err) : gp(err);
  if (!isPresent(d.hi)) throw np(err);
  const base = descriptorBase(d.lo, d.hi);
  if (descriptorLimit(d.lo, d.hi) < TSS32_MIN_LIMIT) throw ts(err);
  const old = cpu.tr;
  if (!old.usable || (old.attributes & 0x0f) !== TSS32_BUSY || old.limit < TSS32_MIN_LIMIT)
    throw ts((old.selector & 0xfffc) | ext);

  // Everything of the new task, read before anything changes (a #PF here is the old task's).
  const word = (offset: number): number => cpu.readLinear(base + offset, 4, true) >>> 0;
  const next = {
    cr3: word(TSS.cr3),
    eip: word(TSS.eip),
    eflags: word(TSS.eflags),
    regs: Array.from({ length: 8 }, (_, k) => word(TSS.regs + 4 * k)),
    segs: Array.from({ length: 6 }, (_, k) => word(TSS.segs + 4 * k) & 0xffff),
    ldt: word(TSS.ldt) & 0xffff,
  };

  // The old task: JMP and IRET leave it (not busy); its state goes into its TSS.
  const gdt = cpu.gdtr.base;
  if (source === 'jmp' || source === 'iret') {
    const at = gdt + (old.selector & 0xfff8) + 4;
    cpu.writeLinear(at, 4, cpu.readLinear(at, 4, true) & ~BUSY_BIT, true);
  }
  let eflags = cpu.getEflags();
  if (source === 'iret') eflags &= ~F.NT;
  const put = (offset: number, v: number): void =>
    cpu.writeLinear(old.base + offset, 4, v >>> 0, true);
  put(TSS.eip, cpu.eip);
  put(TSS.eflags, eflags);
  for (let k = 0; k < 8; k++) put(TSS.regs + 4 * k, cpu.regs[k]);
  for (let k = 0; k < 6; k++) put(TSS.segs + 4 * k, cpu.segs[k].selector);

  // The new task: back link and NT for a nested task, the busy bit, TR, CR0.TS.
  if (source === 'call' || source === 'interrupt') {
    cpu.writeLinear(base + TSS.link, 2, old.selector, true);
    next.eflags |= F.NT;
  }
  const newHi = (d.hi | BUSY_BIT) >>> 0;
  if (source !== 'iret') cpu.writeLinear(gdt + (selector & 0xfff8) + 4, 4, newHi, true);
  cpu.tr.load(selector, base, descriptorLimit(d.lo, newHi), descriptorAttributes(newHi));
  cpu.cr0 = cpu.cr0 | 8;
  cpu.cycles += cpu.costs.gatePrivilege;

  // Committed: from here a fault belongs to the new task.
  if ((cpu.cr0 & 0x80000000) !== 0) cpu.cr3 = next.cr3; // as QEMU: only with paging on
  cpu.setEflags(next.eflags & ~F.VM);
  cpu.eip = next.eip;
  cpu.instrEip = next.eip;
  next.regs.forEach((v, k) => (cpu.regs[k] = v));
  loadTaskSegments(cpu, next.segs, next.ldt, ext);
  if (errorCode !== undefined) cpu.push(errorCode, 4);
}

/**
 * The new task's LDTR and segment registers (SDM 7.3 step 12 and the "Task Switch" faults of
 * table 7-1): the selectors first, then each descriptor checked; a bad one is #TS (not present:
 * #NP, or #SS for SS) with the selector as error code.
 */
function loadTaskSegments(cpu: Cpu, segs: number[], ldt: number, ext: number): void {
  // Selectors first, with nothing usable behind them, so a fault leaves no stale cache.
  for (let k = 0; k < 6; k++) cpu.segs[k].loadNull(segs[k]);
  cpu.ldtr.loadNull(ldt);
  if ((ldt & 0xfffc) !== 0) {
    if ((ldt & 4) !== 0) throw ts((ldt & 0xfffc) | ext);
    const d = readDescriptor(cpu, ldt, Vector.TS, ext);
    if (isSegment(d.hi) || systemType(d.hi) !== 2) throw ts((ldt & 0xfffc) | ext);
    if (!isPresent(d.hi)) throw np((ldt & 0xfffc) | ext);
    cpu.ldtr.load(
      ldt,
      descriptorBase(d.lo, d.hi),
      descriptorLimit(d.lo, d.hi),
      descriptorAttributes(d.hi),
    );
  }
  const cs = segs[CS];
  const cpl = cs & 3;
  const csErr = (cs & 0xfffc) | ext;
  if ((cs & 0xfffc) === 0) throw ts(csErr);
  const csd = readDescriptor(cpu, cs, Vector.TS, ext);
  if (!isCode(csd.hi)) throw ts(csErr);
  if (isConforming(csd.hi) ? dplOf(csd.hi) > cpl : dplOf(csd.hi) !== cpl) throw ts(csErr);
  if (!isPresent(csd.hi)) throw np(csErr);
  loadCache(cpu, CS, cs, csd);
  cpu.setCpl(cpl);

  const ss = segs[SS];
  const ssErr = (ss & 0xfffc) | ext;
  if ((ss & 0xfffc) === 0) throw ts(ssErr);
  const ssd = readDescriptor(cpu, ss, Vector.TS, ext);
  if ((ss & 3) !== cpl || !isSegment(ssd.hi) || isCode(ssd.hi) || !rwBit(ssd.hi)) throw ts(ssErr);
  if (dplOf(ssd.hi) !== cpl) throw ts(ssErr);
  if (!isPresent(ssd.hi)) throw new CpuFault(Vector.SS, ssErr);
  loadCache(cpu, SS, ss, ssd);

  for (const k of [0, 3, 4, 5]) {
    const sel = segs[k];
    if ((sel & 0xfffc) === 0) continue;
    const e = (sel & 0xfffc) | ext;
    const sd = readDescriptor(cpu, sel, Vector.TS, ext);
    if (!isSegment(sd.hi) || (isCode(sd.hi) && !rwBit(sd.hi))) throw ts(e);
    if (!(isCode(sd.hi) && isConforming(sd.hi)) && dplOf(sd.hi) < Math.max(cpl, sel & 3))
      throw ts(e);
    if (!isPresent(sd.hi)) throw np(e);
    loadCache(cpu, k, sel, sd);
  }
}
