/**
 * The CPU's saved state for snapshots and migration (DESIGN.md: typed, versioned). Decoded
 * instructions and TLB contents are caches and are not saved.
 */
import type { Cpu } from '../Cpu.ts';
import type { CpuCounters } from '../counters.ts';

export interface SegmentState {
  selector: number;
  base: number;
  limit: number;
  attributes: number;
  usable: boolean;
}

export interface CpuState {
  version: 1;
  regs: number[];
  eip: number;
  eflags: number;
  cpl: number;
  segs: SegmentState[];
  ldtr: SegmentState;
  tr: SegmentState;
  gdtr: { base: number; limit: number };
  idtr: { base: number; limit: number };
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  dr: number[];
  msr: { sysenterCs: number; sysenterEsp: number; sysenterEip: number; tscOffset: number };
  cycles: number;
  idleCycles: number;
  halted: boolean;
  interruptShadow: boolean;
  counters: CpuCounters;
}

function saveSegment(s: Cpu['tr']): SegmentState {
  return {
    selector: s.selector,
    base: s.base,
    limit: s.limit,
    attributes: s.attributes,
    usable: s.usable,
  };
}

function restoreSegment(s: Cpu['tr'], st: SegmentState): void {
  if (st.usable) s.load(st.selector, st.base, st.limit, st.attributes);
  else s.loadNull(st.selector);
}

export function saveCpu(cpu: Cpu): CpuState {
  return {
    version: 1,
    regs: Array.from(cpu.regs, (v) => v >>> 0),
    eip: cpu.eip,
    eflags: cpu.getEflags(),
    cpl: cpu.cpl,
    segs: cpu.segs.map(saveSegment),
    ldtr: saveSegment(cpu.ldtr),
    tr: saveSegment(cpu.tr),
    gdtr: { ...cpu.gdtr },
    idtr: { ...cpu.idtr },
    cr0: cpu.cr0,
    cr2: cpu.cr2,
    cr3: cpu.cr3,
    cr4: cpu.cr4,
    dr: Array.from(cpu.dr, (v) => v >>> 0),
    msr: {
      sysenterCs: cpu.sysenterCs,
      sysenterEsp: cpu.sysenterEsp,
      sysenterEip: cpu.sysenterEip,
      tscOffset: cpu.tscOffset,
    },
    cycles: cpu.cycles,
    idleCycles: cpu.idleCycles,
    halted: cpu.halted,
    interruptShadow: cpu.interruptShadow,
    counters: structuredClone(cpu.counters),
  };
}

export function restoreCpu(cpu: Cpu, state: CpuState): void {
  if (state.version !== 1)
    throw new Error(`CPU state version ${String(state.version)} is not supported (expected 1)`);
  state.regs.forEach((v, k) => (cpu.regs[k] = v));
  cpu.eip = state.eip;
  cpu.setEflags(state.eflags);
  state.segs.forEach((s, k) => restoreSegment(cpu.segs[k], s));
  restoreSegment(cpu.ldtr, state.ldtr);
  restoreSegment(cpu.tr, state.tr);
  cpu.gdtr = { ...state.gdtr };
  cpu.idtr = { ...state.idtr };
  cpu.cr4 = state.cr4;
  cpu.cr0 = state.cr0;
  cpu.cr2 = state.cr2;
  cpu.cr3 = state.cr3;
  state.dr.forEach((v, k) => (cpu.dr[k] = v));
  cpu.sysenterCs = state.msr.sysenterCs;
  cpu.sysenterEsp = state.msr.sysenterEsp;
  cpu.sysenterEip = state.msr.sysenterEip;
  cpu.tscOffset = state.msr.tscOffset;
  cpu.setCpl(state.cpl);
  cpu.cycles = state.cycles;
  cpu.idleCycles = state.idleCycles;
  cpu.halted = state.halted;
  cpu.interruptShadow = state.interruptShadow;
  cpu.counters = structuredClone(state.counters);
}
