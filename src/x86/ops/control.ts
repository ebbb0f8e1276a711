/**
 * Near control transfers, the stack, and flag instructions (SDM Vol. 1 6.2–6.5, 7.3.8, 7.3.13):
 * JMP/Jcc/CALL/RET/LOOP/JCXZ, PUSH/POP forms, PUSHA/POPA, ENTER/LEAVE, CLC/STC/CMC/CLD/STD,
 * NOP, UD2, and the software-interrupt instructions that hand over to system/interrupts.ts.
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector, gp, ud } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { CS } from '../segment.ts';
import { signExtend } from './alu.ts';
import { condition } from './data.ts';

/** Sets EIP to a new offset, truncated to 16 bits for 16-bit operand size, checked against CS. */
export function jumpTo(cpu: Cpu, target: number, size: number): void {
  const eip = size === 2 ? target & 0xffff : target >>> 0;
  if (eip > cpu.segs[CS].limit) throw gp(0);
  cpu.eip = eip;
}

/** EB, E9: JMP rel. */
export function jmpRel(cpu: Cpu, i: Instr): void {
  jumpTo(cpu, cpu.eip + i.imm, i.size);
}

/** 70–7F, 0F 80–8F: Jcc rel. */
export function jcc(cpu: Cpu, i: Instr): void {
  if (condition(cpu, i.opcode & 15)) jumpTo(cpu, cpu.eip + i.imm, i.size);
}

/** E8: CALL rel. */
export function callRel(cpu: Cpu, i: Instr): void {
  const target = cpu.eip + i.imm;
  cpu.push(cpu.eip, i.size);
  jumpTo(cpu, target, i.size);
}

/** FF /2: CALL r/m. */
export function callRm(cpu: Cpu, i: Instr): void {
  const target = cpu.readRm(i);
  if (target >>> 0 > cpu.segs[CS].limit) throw gp(0);
  cpu.push(cpu.eip, i.size);
  cpu.eip = target >>> 0;
}

/** FF /4: JMP r/m. */
export function jmpRm(cpu: Cpu, i: Instr): void {
  jumpTo(cpu, cpu.readRm(i), i.size);
}

/** C3, C2 iw: RET (near), optionally releasing iw bytes of parameters. */
export function retNear(cpu: Cpu, i: Instr): void {
  const target = cpu.peek(i.size, 0);
  if (target > cpu.segs[CS].limit) throw gp(0);
  cpu.adjustSp(i.size + (i.opcode === 0xc2 ? i.imm & 0xffff : 0));
  cpu.eip = target;
}

/** E0 LOOPNE, E1 LOOPE, E2 LOOP, E3 JCXZ/JECXZ; the counter's size is the address size. */
export function loop(cpu: Cpu, i: Instr): void {
  let count: number;
  if (i.opcode === 0xe3) {
    count = i.addr32 ? cpu.regs[1] : cpu.regs[1] & 0xffff;
    if (count === 0) jumpTo(cpu, cpu.eip + i.imm, i.size);
    return;
  }
  if (i.addr32) {
    count = cpu.regs[1] - 1;
    cpu.regs[1] = count;
  } else {
    count = (cpu.regs[1] - 1) & 0xffff;
    cpu.setReg(1, 2, count);
  }
  let go = count !== 0;
  if (i.opcode === 0xe0) go = go && !cpu.getZF();
  else if (i.opcode === 0xe1) go = go && cpu.getZF();
  if (go) jumpTo(cpu, cpu.eip + i.imm, i.size);
}

/** 50–57: PUSH reg (PUSH ESP pushes the value before the push). */
export function pushReg(cpu: Cpu, i: Instr): void {
  cpu.push(cpu.getReg(i.opcode & 7, i.size), i.size);
}

/** 58–5F: POP reg. */
export function popReg(cpu: Cpu, i: Instr): void {
  const v = cpu.pop(i.size);
  cpu.setReg(i.opcode & 7, i.size, v);
}

/** 68, 6A: PUSH imm. */
export function pushImm(cpu: Cpu, i: Instr): void {
  cpu.push(i.imm, i.size);
}

/** FF /6: PUSH r/m. */
export function pushRm(cpu: Cpu, i: Instr): void {
  cpu.push(cpu.readRm(i), i.size);
}

/**
 * 8F /0: POP r/m. ESP is incremented before the destination address is computed (SDM Vol. 2
 * POP), and restored if the store faults.
 */
export function popRm(cpu: Cpu, i: Instr): void {
  const v = cpu.peek(i.size, 0);
  if (i.mod === 3) {
    cpu.adjustSp(i.size);
    cpu.setReg(i.rm, i.size, v);
    return;
  }
  const saved = cpu.regs[4];
  cpu.adjustSp(i.size);
  try {
    cpu.writeSized(cpu.eaLinear(i, i.size, true), i.size, v);
  } catch (e) {
    cpu.regs[4] = saved;
    throw e;
  }
}

/** 60: PUSHA/PUSHAD. */
export function pusha(cpu: Cpu, i: Instr): void {
  const sp = cpu.getReg(4, i.size);
  for (let r = 0; r < 8; r++) cpu.push(r === 4 ? sp : cpu.getReg(r, i.size), i.size);
}

/** 61: POPA/POPAD (the saved ESP is skipped). */
export function popa(cpu: Cpu, i: Instr): void {
  const values: number[] = [];
  for (let k = 0; k < 8; k++) values.push(cpu.peek(i.size, k * i.size));
  for (let r = 7; r >= 0; r--) if (r !== 4) cpu.setReg(r, i.size, values[7 - r]);
  cpu.adjustSp(8 * i.size);
}

/** C8 iw ib: ENTER with nesting level (mod 32). */
export function enter(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const frameSize = i.imm & 0xffff;
  const level = i.imm2 & 31;
  const big = cpu.segs[2].big;
  const savedEsp = cpu.regs[4];
  try {
    cpu.push(cpu.getReg(5, size), size);
    const frame = cpu.getReg(4, big ? 4 : 2);
    if (level > 0) {
      let bp = cpu.getReg(5, big ? 4 : 2);
      for (let k = 1; k < level; k++) {
        bp = big ? (bp - size) >>> 0 : (bp - size) & 0xffff;
        cpu.push(cpu.readSized(cpu.linear(2, bp, size, false), size), size);
      }
      cpu.push(frame, size);
    }
    cpu.setReg(5, size, frame);
    cpu.adjustSp(-frameSize);
    // The last byte of the new frame must be writable (a #PF or #SS here, not later).
    const top = cpu.getReg(4, big ? 4 : 2);
    if (frameSize > 0) cpu.linear(2, top, 1, true);
  } catch (e) {
    cpu.regs[4] = savedEsp;
    throw e;
  }
}

/** C9: LEAVE. */
export function leave(cpu: Cpu, i: Instr): void {
  const big = cpu.segs[2].big;
  const bp = cpu.getReg(5, big ? 4 : 2);
  const v = cpu.readSized(cpu.linear(2, bp, i.size, false), i.size);
  if (big) cpu.regs[4] = (bp + i.size) | 0;
  else cpu.setReg(4, 2, bp + i.size);
  cpu.setReg(5, i.size, v);
}

/** F5 CMC, F8 CLC, F9 STC, FC CLD, FD STD. */
export function flagOp(cpu: Cpu, i: Instr): void {
  switch (i.opcode) {
    case 0xf5:
      cpu.setFlagBits(F.CF, cpu.getCF() ? 0 : F.CF);
      break;
    case 0xf8:
      cpu.setFlagBits(F.CF, 0);
      break;
    case 0xf9:
      cpu.setFlagBits(F.CF, F.CF);
      break;
    case 0xfc:
      cpu.flagsBits &= ~F.DF;
      break;
    default:
      cpu.flagsBits |= F.DF;
      break;
  }
}

export function nop(): void {}

/**
 * 0F 18 /r: PREFETCHh with a memory operand is a hint, a NOP here (no caches); /4-/7 are hint
 * NOPs (SDM Vol. 2 Table A-6, group 16). The register form (mod 11) is reserved: #UD, as QEMU.
 */
export function prefetchHint(_cpu: Cpu, i: Instr): void {
  if (i.mod === 3) throw ud();
}

/** 0F 0B UD2 and every undefined opcode. */
export function undefinedOpcode(): void {
  throw ud();
}

/** CC INT3, CD ib INT n, CE INTO: software interrupts (traps: EIP after the instruction). */
export function softwareInterrupt(cpu: Cpu, i: Instr): void {
  if (i.opcode === 0xce) {
    if (!cpu.getOF()) return;
    cpu.raise(Vector.OF, undefined, 'software');
    return;
  }
  const vector = i.opcode === 0xcc ? Vector.BP : i.imm & 0xff;
  cpu.raise(vector, undefined, 'software');
}

/** 62: BOUND reg, m (#BR when out of bounds; a register operand is #UD). */
export function bound(cpu: Cpu, i: Instr): void {
  if (i.mod === 3) throw ud();
  const lin = cpu.eaLinear(i, i.size * 2, false);
  const lo = signExtend(cpu.readSized(lin, i.size), i.size);
  const hi = signExtend(cpu.readSized(lin + i.size, i.size), i.size);
  const v = signExtend(cpu.getReg(i.reg, i.size), i.size);
  if (v < lo || v > hi) throw new CpuFault(Vector.BR);
}
