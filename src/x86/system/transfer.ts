/**
 * Far control transfers in protected mode (SDM Vol. 2 JMP, CALL, RET, IRET; Vol. 3A 5.8):
 * direct code-segment transfers, call gates with a stack switch and parameter copy, returns
 * and IRET to an outer privilege level. Task switches (task gates, TSS descriptors, IRET with
 * NT set) are in task.ts.
 */
import type { Cpu } from '../Cpu.ts';
import { gp, np } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { CS, SS } from '../segment.ts';
import {
  checkStackSegment,
  dplOf,
  isCode,
  isConforming,
  isPresent,
  isSegment,
  loadCache,
  markAccessed,
  nullInaccessibleSegments,
  readDescriptor,
  systemType,
  tssStack,
  type Descriptor,
} from './descriptors.ts';
import { Vector } from '../fault.ts';
import { farTransferToTask, taskReturn } from './task.ts';
import { realFarReturn, realFarTransfer, realIret } from './realMode.ts';

function limitOf(d: Descriptor): number {
  const raw = (d.lo & 0xffff) | (d.hi & 0xf0000);
  return (d.hi & 0x00800000) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

function baseOf(d: Descriptor): number {
  return ((d.lo >>> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000)) >>> 0;
}

/** Checks a code descriptor for a transfer at the same privilege (SDM Vol. 2 JMP, CALL). */
function checkSameLevelCode(cpu: Cpu, selector: number, d: Descriptor): void {
  const err = selector & 0xfffc;
  if (isConforming(d.hi)) {
    if (dplOf(d.hi) > cpu.cpl) throw gp(err);
  } else if ((selector & 3) > cpu.cpl || dplOf(d.hi) !== cpu.cpl) {
    throw gp(err);
  }
  if (!isPresent(d.hi)) throw np(err);
}

function enterCode(cpu: Cpu, selector: number, d: Descriptor, offset: number, cpl: number): void {
  if (offset > limitOf(d)) throw gp(0);
  markAccessed(cpu, selector, d);
  loadCache(cpu, CS, (selector & 0xfffc) | cpl, d);
  cpu.setCpl(cpl);
  cpu.eip = offset;
}

/** EA, 9A, FF /3, FF /5: far JMP or CALL to selector:offset. */
export function farTransfer(
  cpu: Cpu,
  selector: number,
  offset: number,
  size: number,
  call: boolean,
): void {
  cpu.cycles += cpu.costs.segmentLoad - cpu.costs.base;
  selector &= 0xffff;
  offset >>>= 0;
  if (cpu.realMode) {
    realFarTransfer(cpu, selector, offset, size, call);
    return;
  }
  if ((selector & 0xfffc) === 0) throw gp(0);
  const d = readDescriptor(cpu, selector);
  const err = selector & 0xfffc;
  if (isSegment(d.hi)) {
    if (!isCode(d.hi)) throw gp(err);
    checkSameLevelCode(cpu, selector, d);
    if (offset > limitOf(d)) throw gp(0);
    if (call) {
      // Both pushes must succeed before anything changes.
      const savedEsp = cpu.regs[4];
      try {
        cpu.push(cpu.segs[CS].selector, size);
        cpu.push(cpu.eip, size);
      } catch (e) {
        cpu.regs[4] = savedEsp;
        throw e;
      }
    }
    enterCode(cpu, selector, d, offset, cpu.cpl);
    return;
  }
  if (farTransferToTask(cpu, selector, d, call ? 'call' : 'jmp')) return;
  const type = systemType(d.hi);
  if (type !== 0x04 && type !== 0x0c) throw gp(err);
  callGate(cpu, selector, d, call);
}

/** A transfer through a call gate (SDM 3A 5.8.4–5.8.5). */
function callGate(cpu: Cpu, selector: number, gate: Descriptor, call: boolean): void {
  const err = selector & 0xfffc;
  const gateDpl = dplOf(gate.hi);
  if (gateDpl < cpu.cpl || gateDpl < (selector & 3)) throw gp(err);
  if (!isPresent(gate.hi)) throw np(err);
  const gate32 = systemType(gate.hi) === 0x0c;
  const target = gate.lo >>> 16;
  const offset = gate32 ? ((gate.lo & 0xffff) | (gate.hi & 0xffff0000)) >>> 0 : gate.lo & 0xffff;
  if ((target & 0xfffc) === 0) throw gp(0);
  const d = readDescriptor(cpu, target);
  const terr = target & 0xfffc;
  if (!isCode(d.hi) || dplOf(d.hi) > cpu.cpl) throw gp(terr);
  if (!isPresent(d.hi)) throw np(terr);
  const frameSize = gate32 ? 4 : 2;
  const inner = !isConforming(d.hi) && dplOf(d.hi) < cpu.cpl;
  if (!call) {
    if (!isConforming(d.hi) && dplOf(d.hi) !== cpu.cpl) throw gp(terr);
    enterCode(cpu, target, d, offset, cpu.cpl);
    return;
  }
  if (!inner) {
    const savedEsp = cpu.regs[4];
    try {
      cpu.push(cpu.segs[CS].selector, frameSize);
      cpu.push(cpu.eip, frameSize);
    } catch (e) {
      cpu.regs[4] = savedEsp;
      throw e;
    }
    enterCode(cpu, target, d, offset, cpu.cpl);
    return;
  }
  // Inner privilege: new stack from the TSS, old SS:ESP and the parameters copied over.
  const newCpl = dplOf(d.hi);
  const next = tssStack(cpu, newCpl, 0);
  const ssDesc = checkStackSegment(cpu, next.ss, newCpl, Vector.TS);
  const count = gate.hi & 0x1f;
  const params: number[] = [];
  for (let k = count - 1; k >= 0; k--) params.push(cpu.peek(frameSize, k * frameSize));
  const ssBase = baseOf(ssDesc);
  const big = (ssDesc.hi & 0x00400000) !== 0;
  let esp = next.esp >>> 0;
  const push = (v: number): void => {
    esp = big ? (esp - frameSize) >>> 0 : (esp - frameSize) & 0xffff;
    cpu.writeLinear(ssBase + esp, frameSize, frameSize === 4 ? v : v & 0xffff, true);
  };
  push(cpu.segs[SS].selector);
  push(cpu.esp);
  for (const p of params) push(p);
  push(cpu.segs[CS].selector);
  push(cpu.eip);
  loadCache(cpu, SS, next.ss, ssDesc);
  cpu.esp = esp;
  cpu.cycles += cpu.costs.gatePrivilege;
  enterCode(cpu, target, d, offset, newCpl);
}

/** Checks the code segment a RET or IRET returns to (SDM Vol. 2 RET, IRET). */
function returnCode(cpu: Cpu, selector: number): Descriptor {
  const err = selector & 0xfffc;
  if ((selector & 0xfffc) === 0) throw gp(0);
  const rpl = selector & 3;
  if (rpl < cpu.cpl) throw gp(err);
  const d = readDescriptor(cpu, selector);
  if (!isCode(d.hi)) throw gp(err);
  if (isConforming(d.hi) ? dplOf(d.hi) > rpl : dplOf(d.hi) !== rpl) throw gp(err);
  if (!isPresent(d.hi)) throw np(err);
  return d;
}

/** Completes a return to an outer level: new SS:ESP, CPL, and invalid data segments nulled. */
function returnOuter(
  cpu: Cpu,
  d: Descriptor,
  cs: number,
  eip: number,
  ssSel: number,
  esp: number,
): void {
  const rpl = cs & 3;
  const ssDesc = checkStackSegment(cpu, ssSel, rpl, Vector.GP);
  if (eip > limitOf(d)) throw gp(0);
  loadCache(cpu, CS, cs, d);
  cpu.setCpl(rpl);
  loadCache(cpu, SS, ssSel, ssDesc);
  cpu.esp = cpu.segs[SS].big ? esp : (cpu.esp & ~0xffff) | (esp & 0xffff);
  cpu.eip = eip;
  nullInaccessibleSegments(cpu);
}

/** CA iw, CB: far RET. */
export function farReturn(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.segmentLoad - cpu.costs.base;
  if (cpu.realMode) {
    realFarReturn(cpu, i);
    return;
  }
  const size = i.size;
  const release = i.opcode === 0xca ? i.imm & 0xffff : 0;
  const eip = cpu.peek(size, 0);
  const cs = cpu.peek(size, size) & 0xffff;
  const d = returnCode(cpu, cs);
  if ((cs & 3) === cpu.cpl) {
    if (eip > limitOf(d)) throw gp(0);
    cpu.adjustSp(2 * size + release);
    loadCache(cpu, CS, cs, d);
    cpu.eip = eip;
    return;
  }
  const esp = cpu.peek(size, 2 * size + release);
  const ssSel = cpu.peek(size, 3 * size + release) & 0xffff;
  returnOuter(cpu, d, cs, eip, ssSel, esp + release);
}

/** CF: IRET/IRETD in protected mode (SDM Vol. 2 IRET), without virtual-8086 mode. */
export function iret(cpu: Cpu, i: Instr): void {
  const size = i.size;
  // IRET ends NMI blocking, even when it faults (SDM 3A 6.7.1).
  cpu.unblockNmi();
  if (cpu.realMode) {
    realIret(cpu, i);
    return;
  }
  if ((cpu.flagsBits & F.NT) !== 0) {
    taskReturn(cpu);
    return;
  }
  const eip = cpu.peek(size, 0);
  const cs = cpu.peek(size, size) & 0xffff;
  let flags = cpu.peek(size, 2 * size);
  if (size === 2) flags = (cpu.getEflags() & 0xffff0000) | flags;
  if ((flags & F.VM) !== 0 && cpu.cpl === 0) throw gp(0); // virtual-8086 mode is out of scope
  const d = returnCode(cpu, cs);
  const oldCpl = cpu.cpl;
  const iopl = cpu.iopl;
  if ((cs & 3) === oldCpl) {
    if (eip > limitOf(d)) throw gp(0);
    cpu.adjustSp(3 * size);
    loadCache(cpu, CS, cs, d);
    cpu.eip = eip;
    cpu.cycles += cpu.costs.iretSame - cpu.costs.base;
  } else {
    const esp = cpu.peek(size, 3 * size);
    const ssSel = cpu.peek(size, 4 * size) & 0xffff;
    returnOuter(cpu, d, cs, eip, ssSel, esp);
    cpu.cycles += cpu.costs.iretOuter - cpu.costs.base;
  }
  setFlagsByPrivilege(cpu, flags, size, oldCpl, iopl);
}

/**
 * The EFLAGS update shared by IRET and POPF: IOPL changes only at CPL 0, IF only when
 * CPL <= IOPL (silently kept otherwise: the sensitive-but-unprivileged behaviour), VM and RF
 * never by POPF; a 16-bit operand changes only the low word.
 */
export function setFlagsByPrivilege(
  cpu: Cpu,
  value: number,
  size: number,
  cpl: number,
  iopl: number,
): void {
  let mask = F.ARITH | F.TF | F.DF | F.NT | F.AC | F.ID;
  if (cpl === 0) mask |= F.IOPL;
  if (cpl <= iopl) mask |= F.IF;
  if (size === 2) mask &= 0xffff;
  const old = cpu.getEflags();
  cpu.setEflags((old & ~mask) | (value & mask));
}
