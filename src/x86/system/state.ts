/**
 * The CPU's saved state for snapshots and migration (DESIGN.md decision 11: typed, versioned).
 * A CPU restored from it, on the same RAM contents and platform, runs on exactly as the saved one
 * would have: the same registers, memory, cycles and counters at every later instruction.
 *
 * The state is plain JSON data: numbers (registers unsigned), booleans, strings, and number
 * arrays where the CPU holds typed arrays (the TLB rings, the debug registers). `null` stands for
 * "none" (`shutdownReason`), since JSON has no undefined. RAM is not part of it: the machine
 * saves machine memory (and the page tables in it).
 *
 * What is saved, and why:
 * - registers, EIP, EFLAGS (the lazy status flags evaluated, without changing the CPU: the lazy
 *   form is only a faster way to hold the same bits), CPL, segment registers with their hidden
 *   descriptor caches, GDTR/IDTR/LDTR/TR, CR0/CR2/CR3/CR4, DR0–DR7, the SYSENTER MSRs, the
 *   TSC offset, IA32_MISC_ENABLE and IA32_TSC_AUX;
 * - the clock (`cycles`, `idleCycles`) and every counter;
 * - between-instruction state: HLT (`halted`), the one-instruction interrupt shadow after STI
 *   and MOV/POP SS, a latched NMI and NMI blocking, a triple fault's `shutdownReason`, and the INTR line level. The interrupt
 *   controller drives the line again when it is restored (the PIC's restore does); saving the
 *   level too makes the CPU exact on its own, and both give the same level;
 * - both TLBs (tlb.ts TlbState): TLB misses cost cycles (`costs.tlbMiss`) and are counted, and
 *   the FIFO rings decide what is evicted next, so their contents are part of what the CPU will
 *   do. T_RAM_WRITE is derived on restore (see `Tlbs.restore`);
 * - the physical pages marked MMIO (`markMmio`, which a guest can cause by moving a PCI BAR),
 *   since they decide which accesses reach devices;
 * - the bound-entry tables' names and bindings, and the table in use (entries.ts). Handlers are
 *   closures: their owners bind them again, and `Cpu.unrestoredEntries` audits that.
 *
 * What is not saved, and why that is exact:
 * - decoded instructions, their links and heat, compiled blocks, code-page generations, the
 *   block epoch and the fetch page: caches. The interpreter and blocks give the same results
 *   with or without them (block.ts), a fetch with the code cache empty looks up the same code
 *   TLB entry the cached path relied on (the fetch page is dropped whenever its entry is), and
 *   `restore` drops them without counting a TLB flush;
 * - `instrEip`: set at the start of every instruction and event delivery before anything reads
 *   it; `stopRequested`, `runLimit`, `sliceEnd`, `lastBlockGeneric`: set by every `run()`;
 * - the lazy-flag fields: folded into `eflags`; `readMask`/`writeMask`: derived from the CPL;
 *   `paging`: derived from CR0; the segment registers' `big`/`flat*`: derived from their caches;
 * - the bound call's saved registers (`boundRegs`/`boundFlags`): only used during a bound call,
 *   and a snapshot is taken between instructions;
 * - `platform`, `costs`, `monitor`, `blocksEnabled`, `blockThreshold`: configuration and wiring
 *   that the machine and hypervisor set up again (a monitor is attached by its owner); the
 *   diagnostics `blocksCompiled` and `blockEntries` are not counters and depend on the caches.
 */
import type { Cpu } from '../Cpu.ts';
import { newCounters, type CpuCounters } from '../counters.ts';
import type { EntriesState } from '../entries.ts';
import type { PhysicalMemory } from '../memory.ts';
import type { TlbState, Tlbs } from '../tlb.ts';

/** The version this code saves and the only one it restores. */
export const CPU_STATE_VERSION = 3;

export interface SegmentState {
  selector: number;
  base: number;
  limit: number;
  attributes: number;
  usable: boolean;
}

export interface CpuState {
  version: typeof CPU_STATE_VERSION;
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
  msr: {
    sysenterCs: number;
    sysenterEsp: number;
    sysenterEip: number;
    tscOffset: number;
    miscEnable: number;
    tscAux: number;
  };
  cycles: number;
  idleCycles: number;
  halted: boolean;
  interruptShadow: boolean;
  /** A latched NMI request, and NMI blocking until the next IRET. */
  nmiPending: boolean;
  nmiBlocked: boolean;
  /** The INTR line as the interrupt controller last drove it. */
  interruptLine: boolean;
  /** Why the CPU shut down (triple fault), or null while it runs. */
  shutdownReason: string | null;
  counters: CpuCounters;
  tlb: TlbState;
  /** Physical pages of RAM whose accesses go to the platform's MMIO callbacks, ascending. */
  mmioPages: number[];
  entries: EntriesState;
}

/** The parts of a Cpu that are not public API; the Cpu hands them to `saveCpu`/`restoreCpu`. */
export interface CpuInternals {
  tlbs: Tlbs;
  memory: PhysicalMemory;
  interruptLine: boolean;
}

/** A segment register with its hidden descriptor cache, as data. */
export function saveSegment(s: Cpu['tr']): SegmentState {
  return {
    selector: s.selector,
    base: s.base,
    limit: s.limit,
    attributes: s.attributes,
    usable: s.usable,
  };
}

/** Loads a segment register and its cache from `saveSegment`'s data (no descriptor read). */
export function restoreSegment(s: Cpu['tr'], st: SegmentState): void {
  if (st.usable) s.load(st.selector, st.base, st.limit, st.attributes);
  else s.loadNull(st.selector);
}

export function saveCpu(cpu: Cpu, internals: CpuInternals): CpuState {
  return {
    version: CPU_STATE_VERSION,
    regs: Array.from(cpu.regs, (v) => v >>> 0),
    eip: cpu.eip,
    eflags: cpu.peekEflags(),
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
      miscEnable: cpu.miscEnable,
      tscAux: cpu.tscAux,
    },
    cycles: cpu.cycles,
    idleCycles: cpu.idleCycles,
    halted: cpu.halted,
    interruptShadow: cpu.interruptShadow,
    nmiPending: cpu.nmiPending,
    nmiBlocked: cpu.nmiBlocked,
    interruptLine: internals.interruptLine,
    shutdownReason: cpu.shutdownReason ?? null,
    counters: structuredClone(cpu.counters),
    tlb: internals.tlbs.save(),
    mmioPages: internals.memory.saveMmio(),
    entries: cpu.saveEntries(),
  };
}

/**
 * Restores everything but the caches and the bound entries' handlers (the Cpu drops the caches;
 * the owners rebind). No side effect of the architectural operations is repeated: loading CR3
 * here is not a MOV to CR3, so nothing is flushed or counted.
 */
export function restoreCpu(cpu: Cpu, state: CpuState, internals: CpuInternals): void {
  const version: unknown = (state as { version?: unknown }).version;
  if (version !== CPU_STATE_VERSION) {
    throw new Error(
      `CPU state version ${String(version)} is not supported (this build restores version ` +
        `${CPU_STATE_VERSION} only; take the snapshot again with this build)`,
    );
  }
  if (state.regs.length !== 8 || state.segs.length !== 6 || state.dr.length !== 8) {
    throw new Error('CPU state: regs and dr must have 8 entries, segs 6');
  }
  // The memory map first: the TLB restore checks its entries against it.
  internals.memory.restoreMmio(state.mmioPages);
  internals.tlbs.restore(state.tlb, (ppage) => internals.memory.isRam(ppage));
  state.regs.forEach((v, k) => (cpu.regs[k] = v));
  cpu.eip = state.eip;
  cpu.setEflags(state.eflags);
  state.segs.forEach((s, k) => restoreSegment(cpu.segs[k], s));
  restoreSegment(cpu.ldtr, state.ldtr);
  restoreSegment(cpu.tr, state.tr);
  cpu.gdtr = { ...state.gdtr };
  cpu.idtr = { ...state.idtr };
  cpu.loadControlRegisters(state.cr0, state.cr3, state.cr4);
  cpu.cr2 = state.cr2;
  state.dr.forEach((v, k) => (cpu.dr[k] = v));
  cpu.sysenterCs = state.msr.sysenterCs;
  cpu.sysenterEsp = state.msr.sysenterEsp;
  cpu.sysenterEip = state.msr.sysenterEip;
  cpu.tscOffset = state.msr.tscOffset;
  cpu.miscEnable = state.msr.miscEnable;
  cpu.tscAux = state.msr.tscAux;
  cpu.setCpl(state.cpl);
  cpu.cycles = state.cycles;
  cpu.idleCycles = state.idleCycles;
  cpu.halted = state.halted;
  cpu.interruptShadow = state.interruptShadow;
  cpu.nmiPending = state.nmiPending;
  cpu.nmiBlocked = state.nmiBlocked;
  cpu.setInterruptLine(state.interruptLine);
  cpu.shutdownReason = state.shutdownReason ?? undefined;
  restoreCounters(cpu.counters, state.counters);
}

/**
 * In place, so that whoever holds `cpu.counters` (the machine's statistics, compiled blocks)
 * sees the restored values; every counter this build has must be in the state.
 */
function restoreCounters(into: CpuCounters, from: CpuCounters): void {
  const keys = Object.keys(newCounters()) as (keyof CpuCounters)[];
  for (const key of keys) {
    const v: unknown = from[key];
    if (key === 'exceptions') {
      if (!Array.isArray(v) || v.length !== into.exceptions.length) {
        throw new Error(
          `CPU state: counters.exceptions must have ${into.exceptions.length} entries`,
        );
      }
      (v as number[]).forEach((n, k) => (into.exceptions[k] = n));
    } else {
      if (typeof v !== 'number') throw new Error(`CPU state: counter '${key}' is missing`);
      into[key] = v;
    }
  }
}
