/**
 * String instructions (SDM Vol. 1 7.3.9, Vol. 2 MOVS/CMPS/SCAS/LODS/STOS/INS/OUTS and REP):
 * source DS:eSI (override allowed), destination ES:eDI (no override), counter eCX, all of
 * address size; DF selects the direction. A REP-prefixed instruction executes its elements
 * one by one, so a fault in the middle leaves the registers describing the remaining work and
 * restarts the instruction, as on hardware.
 */
import type { Cpu } from '../Cpu.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { ES } from '../segment.ts';
import { alu } from './alu.ts';
import { portIn, portOut, checkIo } from '../system/io.ts';

/** Elements handled per execution before the loop yields (interrupts are taken in between). */
const CHUNK = 4096;

function indexReg(cpu: Cpu, r: number, addr32: boolean): number {
  return addr32 ? cpu.regs[r] >>> 0 : cpu.regs[r] & 0xffff;
}

function advance(cpu: Cpu, r: number, delta: number, addr32: boolean): void {
  if (addr32) cpu.regs[r] = cpu.regs[r] + delta;
  else cpu.regs[r] = (cpu.regs[r] & ~0xffff) | ((cpu.regs[r] + delta) & 0xffff);
}

function counter(cpu: Cpu, addr32: boolean): number {
  return addr32 ? cpu.regs[1] >>> 0 : cpu.regs[1] & 0xffff;
}

function decCounter(cpu: Cpu, addr32: boolean): void {
  advance(cpu, 1, -1, addr32);
}

/**
 * Runs `element` once, or under REP until eCX is 0 (or the REPE/REPNE condition fails for
 * CMPS/SCAS). After CHUNK elements it rewinds EIP so the instruction continues next time:
 * pending interrupts are recognised between chunks (SDM Vol. 2 REP: "interruptible").
 */
function repeat(cpu: Cpu, i: Instr, compares: boolean, element: () => void): void {
  if (i.rep === 0) {
    element();
    return;
  }
  const a32 = i.addr32;
  let n = 0;
  while (counter(cpu, a32) !== 0) {
    element();
    decCounter(cpu, a32);
    cpu.cycles += cpu.costs.repElement;
    n++;
    if (compares && cpu.getZF() !== (i.rep === 1)) return;
    if (n >= CHUNK && counter(cpu, a32) !== 0) {
      cpu.eip = cpu.instrEip;
      return;
    }
  }
}

function step(cpu: Cpu, size: number): number {
  return (cpu.flagsBits & F.DF) !== 0 ? -size : size;
}

/**
 * PERF: REP MOVS and REP STOS with 32-bit addressing, DF = 0 and flat segments move whole runs
 * inside a page at once where both pages take the fast path (cached TLB entries, ordinary RAM,
 * no decoded code in the destination); everything else goes element by element. The registers,
 * memory, clock (repElement per element) and the chunk boundary are exactly those of the
 * element loop. `fill(dst, n)` writes `n` elements at RAM offset `dst`, `copy` moves them from
 * a source; an element the runs cannot take (page crossing, slow path) goes through `element`.
 */
function bulk(
  cpu: Cpu,
  size: number,
  source: boolean,
  run: (dst: number, src: number, n: number) => void,
  element: () => void,
): void {
  let n = 0;
  while (cpu.regs[1] !== 0) {
    const src = cpu.regs[6];
    const dst = cpu.regs[7];
    let count = Math.min(cpu.regs[1] >>> 0, CHUNK - n, ((0x1000 - (dst & 0xfff)) / size) | 0);
    if (source) count = Math.min(count, ((0x1000 - (src & 0xfff)) / size) | 0);
    const pd = count > 0 ? cpu.fastAddress(dst, true) : -1;
    const ps = source && pd >= 0 ? cpu.fastAddress(src, false) : 0;
    // A forward element copy equals a block move unless the destination starts inside the
    // source run (then each element copies one written just before: a repeating pattern).
    if (pd >= 0 && ps >= 0 && !(source && pd > ps && pd < ps + count * size)) {
      run(pd, ps, count);
      cpu.regs[7] = dst + count * size;
      if (source) cpu.regs[6] = src + count * size;
      cpu.regs[1] = cpu.regs[1] - count;
      cpu.cycles += count * cpu.costs.repElement;
      n += count;
    } else {
      element();
      cpu.regs[1] = cpu.regs[1] - 1;
      cpu.cycles += cpu.costs.repElement;
      n++;
    }
    if (n >= CHUNK && cpu.regs[1] !== 0) {
      cpu.eip = cpu.instrEip;
      return;
    }
  }
}

/** The bulk path applies (see `bulk`). */
function bulkable(cpu: Cpu, i: Instr, source: boolean): boolean {
  return (
    i.rep !== 0 &&
    i.addr32 &&
    (cpu.flagsBits & F.DF) === 0 &&
    cpu.segs[ES].flatWrite &&
    (!source || cpu.segs[i.seg].flatRead)
  );
}

/** A4/A5: MOVS. */
export function movs(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  if (bulkable(cpu, i, true)) {
    const ram = cpu.ram;
    bulk(
      cpu,
      size,
      true,
      (dst, src, n) => ram.copyWithin(dst, src, src + n * size),
      () => {
        const v = cpu.readSized(cpu.regs[6], size);
        cpu.writeSized(cpu.regs[7], size, v);
        cpu.regs[6] = cpu.regs[6] + size;
        cpu.regs[7] = cpu.regs[7] + size;
      },
    );
    return;
  }
  repeat(cpu, i, false, () => {
    const v = cpu.readSized(cpu.linear(i.seg, indexReg(cpu, 6, a32), size, false), size);
    cpu.writeSized(cpu.linear(ES, indexReg(cpu, 7, a32), size, true), size, v);
    const d = step(cpu, size);
    advance(cpu, 6, d, a32);
    advance(cpu, 7, d, a32);
  });
}

/** AA/AB: STOS. */
export function stos(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  const v = cpu.getReg(0, size);
  if (bulkable(cpu, i, false)) {
    const ram = cpu.ram;
    bulk(
      cpu,
      size,
      false,
      (dst, _src, n) => {
        if (size === 1) ram.fill(v, dst, dst + n);
        else for (let k = 0; k < n * size; k++) ram[dst + k] = v >>> (8 * (k % size));
      },
      () => {
        cpu.writeSized(cpu.regs[7], size, v);
        cpu.regs[7] = cpu.regs[7] + size;
      },
    );
    return;
  }
  repeat(cpu, i, false, () => {
    cpu.writeSized(cpu.linear(ES, indexReg(cpu, 7, a32), size, true), size, v);
    advance(cpu, 7, step(cpu, size), a32);
  });
}

/** AC/AD: LODS. */
export function lods(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  repeat(cpu, i, false, () => {
    cpu.setReg(0, size, cpu.readSized(cpu.linear(i.seg, indexReg(cpu, 6, a32), size, false), size));
    advance(cpu, 6, step(cpu, size), a32);
  });
}

/** A6/A7: CMPS (flags of source − destination). */
export function cmps(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  repeat(cpu, i, true, () => {
    const a = cpu.readSized(cpu.linear(i.seg, indexReg(cpu, 6, a32), size, false), size);
    const b = cpu.readSized(cpu.linear(ES, indexReg(cpu, 7, a32), size, false), size);
    alu(cpu, 7, a, b, size);
    const d = step(cpu, size);
    advance(cpu, 6, d, a32);
    advance(cpu, 7, d, a32);
  });
}

/** AE/AF: SCAS (flags of accumulator − destination). */
export function scas(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  const acc = cpu.getReg(0, size);
  repeat(cpu, i, true, () => {
    const b = cpu.readSized(cpu.linear(ES, indexReg(cpu, 7, a32), size, false), size);
    alu(cpu, 7, acc, b, size);
    advance(cpu, 7, step(cpu, size), a32);
  });
}

/** 6C/6D: INS (port DX to ES:eDI); the I/O permission check comes first. */
export function ins(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  const port = cpu.regs[2] & 0xffff;
  checkIo(cpu, port, size);
  repeat(cpu, i, false, () => {
    const lin = cpu.linear(ES, indexReg(cpu, 7, a32), size, true);
    // Probe the destination before the port read, so a #PF does not lose device data.
    cpu.translate(lin, 1, cpu.cpl === 3);
    cpu.writeSized(lin, size, portIn(cpu, port, size));
    advance(cpu, 7, step(cpu, size), a32);
  });
}

/** 6E/6F: OUTS (DS:eSI, override allowed, to port DX). */
export function outs(cpu: Cpu, i: Instr): void {
  const size = i.size;
  const a32 = i.addr32;
  const port = cpu.regs[2] & 0xffff;
  checkIo(cpu, port, size);
  repeat(cpu, i, false, () => {
    const v = cpu.readSized(cpu.linear(i.seg, indexReg(cpu, 6, a32), size, false), size);
    portOut(cpu, port, size, v);
    advance(cpu, 6, step(cpu, size), a32);
  });
}
