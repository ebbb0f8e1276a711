/**
 * Delivery of exceptions, hardware interrupts and INT n (SDM Vol. 3A ch. 6): to the attached
 * monitor (DESIGN.md decision 5), or through the IDT's interrupt and trap gates with a TSS stack
 * switch on a privilege change; double fault and triple fault.
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector, gp, np } from '../fault.ts';
import * as F from '../flags.ts';
import { CS, SS } from '../segment.ts';
import { switchTask } from './task.ts';
import { deliverReal } from './realMode.ts';
import {
  checkStackSegment,
  dplOf,
  isCode,
  isConforming,
  isPresent,
  loadCache,
  readDescriptor,
  tssStack,
  type Descriptor,
} from './descriptors.ts';

/** 'software' is INT n, INT3, INTO: a trap with the gate DPL check and no EXT bit. */
export type EventKind = 'exception' | 'interrupt' | 'software';

/** #DE, #TS, #NP, #SS, #GP: the contributory exceptions (SDM 3A Table 6-4). */
function contributory(v: number): boolean {
  return v === 0 || (v >= 10 && v <= 13);
}

/** Exceptions that push an error code (SDM 3A Table 6-1). */
export function hasErrorCode(v: number): boolean {
  return v === 8 || (v >= 10 && v <= 14) || v === 17;
}

/**
 * Delivers an event. EIP must already be what the handler's frame should hold: the faulting
 * instruction for faults, the next instruction for traps, INT n and interrupts.
 */
export function deliverEvent(
  cpu: Cpu,
  vector: number,
  errorCode: number | undefined,
  kind: EventKind,
): void {
  if (cpu.monitor !== null) {
    cpu.counters.monitorExits++;
    cpu.cycles += cpu.costs.gatePrivilege;
    cpu.monitor.onEvent(
      kind === 'exception'
        ? { kind: 'exception', vector, errorCode }
        : kind === 'interrupt'
          ? { kind: 'interrupt', vector }
          : { kind: 'software', vector },
    );
    return;
  }
  let v = vector;
  let code = errorCode;
  let k = kind;
  // Each round delivers one event; a fault during delivery becomes the next event, a #DF, or a
  // triple fault (SDM 3A 6.15, "Interrupt 8—Double Fault Exception").
  for (;;) {
    try {
      deliverThroughIdt(cpu, v, code, k);
      return;
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      cpu.eip = cpu.instrEip;
      if (v === Vector.DF) {
        cpu.shutdown(`triple fault: exception ${e.vector} while delivering a double fault`);
        return;
      }
      const first = k === 'exception' ? v : -1;
      const second = e.vector;
      const double =
        (contributory(first) && contributory(second)) ||
        (first === Vector.PF && (second === Vector.PF || contributory(second)));
      if (second < 32) cpu.counters.exceptions[second]++;
      if (double) {
        cpu.counters.exceptions[Vector.DF]++;
        v = Vector.DF;
        code = 0;
      } else {
        v = second;
        code = e.errorCode;
      }
      k = 'exception';
    }
  }
}

/** Pushes onto a stack described by explicit base/limit (a new SS not yet loaded). */
class FramePusher {
  constructor(
    private readonly cpu: Cpu,
    private readonly base: number,
    public esp: number,
    private readonly big: boolean,
    private readonly size: number,
    private readonly user: boolean,
  ) {}

  push(v: number): void {
    this.esp = this.big ? (this.esp - this.size) >>> 0 : (this.esp - this.size) & 0xffff;
    this.cpu.writeLinear(
      this.base + this.esp,
      this.size,
      v & (this.size === 4 ? 0xffffffff : 0xffff),
      !this.user,
    );
  }
}

function deliverThroughIdt(
  cpu: Cpu,
  vector: number,
  errorCode: number | undefined,
  kind: EventKind,
): void {
  if (cpu.realMode) {
    deliverReal(cpu, vector);
    return;
  }
  const ext = kind === 'software' ? 0 : 1;
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > cpu.idtr.limit) throw gp(idtErr);
  const lo = cpu.readLinear(cpu.idtr.base + vector * 8, 4, true);
  const hi = cpu.readLinear(cpu.idtr.base + vector * 8 + 4, 4, true);
  const type = (hi >> 8) & 0x1f;
  // 0x5: task gate; 0x6/0x7: 16-bit interrupt/trap gate; 0xE/0xF: 32-bit.
  if (type !== 0x5 && type !== 0x6 && type !== 0x7 && type !== 0xe && type !== 0xf)
    throw gp(idtErr);
  if (kind === 'software' && dplOf(hi) < cpu.cpl) throw gp(vector * 8 + 2);
  if (!isPresent(hi)) throw np(idtErr);
  const withCode = kind === 'exception' && hasErrorCode(vector) ? (errorCode ?? 0) : undefined;
  if (type === 0x5) {
    // Through a task gate (SDM 3A 6.11): a task switch, the error code on the new task's stack.
    switchTask(cpu, lo >>> 16, 'interrupt', ext, withCode);
    return;
  }
  const gate32 = (type & 8) !== 0;
  const selector = lo >>> 16;
  const offset = gate32 ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
  if ((selector & 0xfffc) === 0) throw gp(ext);
  const d = readDescriptor(cpu, selector, Vector.GP, ext);
  const err = (selector & 0xfffc) | ext;
  if (!isCode(d.hi) || dplOf(d.hi) > cpu.cpl) throw gp(err);
  if (!isPresent(d.hi)) throw np(err);
  const newCpl = isConforming(d.hi) ? cpu.cpl : dplOf(d.hi);
  transferToHandler(cpu, selector, d, offset, newCpl, gate32 ? 4 : 2, withCode, ext);
  if ((type & 1) === 0) cpu.flagsBits &= ~F.IF;
}

/**
 * Builds the handler's frame and enters it (SDM 3A 6.12.1): on a privilege change the stack
 * comes from the TSS and the old SS:ESP is pushed first. Shared by the IDT path and `bounce`.
 */
function transferToHandler(
  cpu: Cpu,
  selector: number,
  d: Descriptor,
  offset: number,
  newCpl: number,
  size: number,
  errorCode: number | undefined,
  ext: number,
  stack?: { ss: number; esp: number },
): void {
  const oldCpl = cpu.cpl;
  const eflags = cpu.getEflags();
  const oldCs = cpu.segs[CS].selector;
  const oldEip = cpu.eip;
  const targetLimit =
    (d.hi & 0x00800000) !== 0
      ? (((d.lo & 0xffff) | (d.hi & 0xf0000)) << 12) | 0xfff
      : (d.lo & 0xffff) | (d.hi & 0xf0000);
  if (offset > targetLimit >>> 0) throw gp(ext);
  if (newCpl !== oldCpl || stack !== undefined) {
    const next = stack ?? tssStack(cpu, newCpl, ext);
    const ssDesc = checkStackSegment(cpu, next.ss, newCpl, Vector.TS, ext);
    const ssBase =
      ((ssDesc.lo >>> 16) | ((ssDesc.hi & 0xff) << 16) | (ssDesc.hi & 0xff000000)) >>> 0;
    const ssBig = (ssDesc.hi & 0x00400000) !== 0;
    const frame = new FramePusher(cpu, ssBase, next.esp >>> 0, ssBig, size, newCpl === 3);
    frame.push(cpu.segs[SS].selector);
    frame.push(cpu.esp);
    frame.push(eflags);
    frame.push(oldCs);
    frame.push(oldEip);
    if (errorCode !== undefined) frame.push(errorCode);
    loadCache(cpu, SS, next.ss, ssDesc);
    cpu.esp = ssBig ? frame.esp : (cpu.esp & ~0xffff) | frame.esp;
    cpu.cycles += cpu.costs.gatePrivilege;
  } else {
    cpu.push(eflags, size);
    cpu.push(oldCs, size);
    cpu.push(oldEip, size);
    if (errorCode !== undefined) cpu.push(errorCode, size);
    cpu.cycles += cpu.costs.gateSame;
  }
  loadCache(cpu, CS, (selector & 0xfffc) | newCpl, d);
  cpu.setCpl(newCpl);
  cpu.eip = offset;
  cpu.flagsBits &= ~(F.TF | F.NT | F.RF | F.VM);
}

/**
 * Delivers an event into a guest-level handler with a hardware-like frame, for monitors that
 * bounce traps and interrupts into a de-privileged guest kernel (Xen-style trap bounce). No gate
 * is read: the monitor names the handler. The target privilege is the handler selector's RPL.
 * With `stack`, the frame goes onto that stack and includes the old SS:ESP (as a privilege
 * change does); without it, onto the current stack. `clearIf` clears EFLAGS.IF as an interrupt
 * gate would. Raises the architectural fault if the handler or stack is invalid.
 */
export function bounce(
  cpu: Cpu,
  vector: number,
  errorCode: number | undefined,
  handler: { cs: number; eip: number },
  options: { stack?: { ss: number; esp: number }; clearIf?: boolean } = {},
): void {
  void vector;
  const d = readDescriptor(cpu, handler.cs);
  if (!isCode(d.hi)) throw gp(handler.cs & 0xfffc);
  if (!isPresent(d.hi)) throw np(handler.cs & 0xfffc);
  transferToHandler(
    cpu,
    handler.cs,
    d,
    handler.eip >>> 0,
    handler.cs & 3,
    4,
    errorCode,
    0,
    options.stack,
  );
  if (options.clearIf === true) cpu.flagsBits &= ~F.IF;
}
