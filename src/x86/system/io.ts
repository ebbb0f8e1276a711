/**
 * Port I/O (SDM Vol. 1 ch. 19): IN/OUT/INS/OUTS are allowed when CPL <= IOPL, otherwise only for
 * ports whose bits are clear in the TSS I/O permission bit map (19.5.2); else #GP(0).
 */
import type { Cpu } from '../Cpu.ts';
import { gp } from '../fault.ts';
import type { Instr } from '../instr.ts';

export function checkIo(cpu: Cpu, port: number, size: number): void {
  if (cpu.cpl <= cpu.iopl) return;
  const tr = cpu.tr;
  const type = tr.attributes & 0x0f;
  // Only a 32-bit TSS (available 9 or busy 11) has a bit map.
  if (!tr.usable || (type !== 0x9 && type !== 0xb) || tr.limit < 0x67) throw gp(0);
  const mapBase = cpu.readLinear(tr.base + 0x66, 2, true);
  const byte = mapBase + (port >>> 3);
  if (byte + 1 > tr.limit) throw gp(0);
  const bits = cpu.readLinear(tr.base + byte, 2, true);
  const mask = ((1 << size) - 1) << (port & 7);
  if ((bits & mask) !== 0) throw gp(0);
}

export function portIn(cpu: Cpu, port: number, size: number): number {
  cpu.counters.ioReads++;
  cpu.cycles += cpu.costs.io - cpu.costs.base;
  const v = cpu.platform.ioRead(port & 0xffff, size as 1 | 2 | 4);
  return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
}

export function portOut(cpu: Cpu, port: number, size: number, v: number): void {
  cpu.counters.ioWrites++;
  cpu.cycles += cpu.costs.io - cpu.costs.base;
  cpu.platform.ioWrite(
    port & 0xffff,
    size as 1 | 2 | 4,
    size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff),
  );
}

/** E4/E5 (port imm8), EC/ED (port DX): IN. */
export function inOp(cpu: Cpu, i: Instr): void {
  const port = (i.opcode & 8) !== 0 ? cpu.regs[2] & 0xffff : i.imm & 0xff;
  checkIo(cpu, port, i.size);
  cpu.setReg(0, i.size, portIn(cpu, port, i.size));
}

/** E6/E7, EE/EF: OUT. */
export function outOp(cpu: Cpu, i: Instr): void {
  const port = (i.opcode & 8) !== 0 ? cpu.regs[2] & 0xffff : i.imm & 0xff;
  checkIo(cpu, port, i.size);
  portOut(cpu, port, i.size, cpu.getReg(0, i.size));
}
