/**
 * Real-address mode (SDM Vol. 3A 20.1 "Real-Address Mode"; Vol. 2 MOV, JMP, CALL, RET, IRET,
 * INT n in their real-address-mode operation): what differs from protected mode once software
 * clears CR0.PE. A segment load sets the selector and base (selector × 16) and leaves the
 * hidden limit and attributes as they were, so a segment set up in protected mode keeps its
 * 4 GB limit ("big real mode", as on real processors and QEMU); CS keeps its D bit, which
 * decides the default operand size. Interrupts and exceptions go through the interrupt vector
 * table at IDTR (4 bytes per vector: offset, segment) with a 16-bit frame of FLAGS, CS and IP
 * and no error code. The CPL is 0: there are no privilege checks. Virtual-8086 mode is not
 * implemented.
 */
import type { Cpu } from '../Cpu.ts';
import { gp } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { CS, SS } from '../segment.ts';

/** MOV/POP/LxS to a segment register, and a far transfer's CS: selector and base only. */
export function loadRealSegment(cpu: Cpu, seg: number, selector: number): void {
  const s = cpu.segs[seg];
  selector &= 0xffff;
  // A register nulled in protected mode becomes a 64 KB read/write data segment again.
  if (!s.usable) s.load(selector, selector << 4, 0xffff, 0x93);
  else s.load(selector, selector << 4, s.limit, s.attributes);
  // MOV/POP SS inhibits interrupts until after the next instruction (SDM 3A 6.8.3).
  if (seg === SS) cpu.interruptShadow = true;
}

/** A far JMP or CALL in real mode: CS:IP from the operand, the return address pushed first. */
export function realFarTransfer(
  cpu: Cpu,
  selector: number,
  offset: number,
  size: number,
  call: boolean,
): void {
  const eip = size === 2 ? offset & 0xffff : offset >>> 0;
  if (eip > cpu.segs[CS].limit) throw gp(0);
  if (call) {
    const savedEsp = cpu.regs[4];
    try {
      cpu.push(cpu.segs[CS].selector, size);
      cpu.push(cpu.eip, size);
    } catch (e) {
      cpu.regs[4] = savedEsp;
      throw e;
    }
  }
  loadRealSegment(cpu, CS, selector);
  cpu.eip = eip;
}

/** RETF in real mode: IP and CS from the stack, then `release` bytes of parameters. */
export function realFarReturn(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const release = i.opcode === 0xca ? i.imm & 0xffff : 0;
  const eip = cpu.peek(size, 0);
  const cs = cpu.peek(size, size) & 0xffff;
  if (eip > cpu.segs[CS].limit) throw gp(0);
  cpu.adjustSp(2 * size + release);
  loadRealSegment(cpu, CS, cs);
  cpu.eip = eip;
}

/** IRET in real mode: IP, CS and FLAGS (EFLAGS with a 32-bit operand) from the stack. */
export function realIret(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const eip = cpu.peek(size, 0);
  const cs = cpu.peek(size, size) & 0xffff;
  let flags = cpu.peek(size, 2 * size);
  if (eip > cpu.segs[CS].limit) throw gp(0);
  cpu.adjustSp(3 * size);
  loadRealSegment(cpu, CS, cs);
  cpu.eip = eip;
  const mask = size === 2 ? 0xffff : F.WRITABLE & ~(F.VM | F.RF);
  flags = (cpu.getEflags() & ~mask) | (flags & mask);
  cpu.setEflags(flags);
  cpu.cycles += cpu.costs.iretSame - cpu.costs.base;
}

/**
 * An interrupt or exception in real mode (SDM 3A 20.1.4): through the vector table, FLAGS, CS
 * and IP pushed as words, IF, TF and AC cleared. A vector past the table's limit is #GP, which
 * becomes a double fault and a shutdown the usual way.
 */
export function deliverReal(cpu: Cpu, vector: number): void {
  const at = vector * 4;
  if (at + 3 > cpu.idtr.limit) throw gp(0);
  const ip = cpu.readLinear(cpu.idtr.base + at, 2, true);
  const cs = cpu.readLinear(cpu.idtr.base + at + 2, 2, true);
  const flags = cpu.getEflags() & 0xffff;
  const savedEsp = cpu.regs[4];
  try {
    cpu.push(flags, 2);
    cpu.push(cpu.segs[CS].selector, 2);
    cpu.push(cpu.eip, 2);
  } catch (e) {
    cpu.regs[4] = savedEsp;
    throw e;
  }
  loadRealSegment(cpu, CS, cs);
  cpu.eip = ip;
  cpu.flagsBits &= ~(F.IF | F.TF | F.AC | F.RF);
  cpu.cycles += cpu.costs.gateSame;
}
