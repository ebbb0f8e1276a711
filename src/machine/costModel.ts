import type { CpuCosts } from '../x86/cost.ts';

/**
 * Cycles charged by software that, in the original system, ran on the CPU beside the guest: the
 * hypervisors and the in-place VMM (reference/cost-model.md, second table). They are TypeScript
 * here and charge the simulated clock from this table per operation (DESIGN.md decision 4).
 */
export interface SoftwareCosts {
  /** Xen-style: validate and apply one page-table entry (mmu_update element, update_va_mapping). */
  xenPteUpdate: number;
  /** Xen-style: pin or unpin a page table, per entry scanned. */
  xenPinPerEntry: number;
  /** Xen-style: switch base pointer (on top of the MOV to CR3 it performs). */
  xenBaseSwitch: number;
  /** Xen-style: send an event. */
  xenEventSend: number;
  /** Xen-style: raise a virtual interrupt (upcall bounce). */
  xenUpcall: number;
  /** L4-style: one IPC, not counting the address-space switch. */
  l4Ipc: number;
  /** L4-style: map or unmap one page. */
  l4MapPage: number;
  /** Either hypervisor: deliver a trap into the guest (bounce frame). */
  bounce: number;
  /** In-place VMM: a call from a rewritten site into a TypeScript handler, call and return. */
  vmmCall: number;
  /** In-place VMM: emulate one instruction (register or virtual-CPU state only). */
  vmmEmulate: number;
  /** In-place VMM: one access to a virtual device register. */
  vmmDeviceAccess: number;
  /** In-place VMM: deliver one virtual interrupt into the guest kernel. */
  vmmInterrupt: number;
}

/** A named cost-model preset: the clock rate, what the CPU charges, what software charges. */
export interface CostModel {
  readonly name: string;
  /** Where the figures come from. Every report names the preset. */
  readonly source: string;
  readonly hz: number;
  readonly cpu: Readonly<CpuCosts>;
  readonly software: Readonly<SoftwareCosts>;
}

/**
 * The default preset for every configuration: the seed's 2.8 GHz Pentium 4
 * (../shared/reference/cost-model.md). Change a figure only with a cited source, noted on the
 * issue that changes it; add other presets beside it rather than editing this one.
 */
export const P4_2_8GHZ: CostModel = {
  name: 'p4-2.8ghz',
  source: 'shared/reference/cost-model.md (seed test machine: 2.8 GHz Pentium 4)',
  hz: 2_800_000_000,
  cpu: {
    base: 1,
    repElement: 1,
    mul: 4,
    div: 40,
    cli: 20,
    sti: 30,
    pushf: 5,
    popf: 50,
    segmentLoad: 10,
    gateSame: 200,
    gatePrivilege: 500,
    iretSame: 100,
    iretOuter: 300,
    movCr3: 200,
    invlpg: 50,
    tlbMiss: 30,
    systemRegister: 100,
    io: 1000,
    mmioRead: 600,
    mmioWrite: 300,
    cpuid: 150,
    rdtsc: 80,
    hlt: 0,
  },
  software: {
    xenPteUpdate: 150,
    xenPinPerEntry: 5,
    xenBaseSwitch: 300,
    xenEventSend: 100,
    xenUpcall: 500,
    l4Ipc: 250,
    l4MapPage: 100,
    bounce: 500,
    vmmCall: 20,
    vmmEmulate: 10,
    vmmDeviceAccess: 40,
    vmmInterrupt: 60,
  },
};

/** Every preset, by name (`--cost-model NAME`). */
export const costModels: ReadonlyMap<string, CostModel> = new Map([[P4_2_8GHZ.name, P4_2_8GHZ]]);

/** Looks a preset up by name; the error lists the known names. */
export function costModelByName(name: string): CostModel {
  const model = costModels.get(name);
  if (model === undefined) {
    throw new Error(`unknown cost model '${name}' (known: ${[...costModels.keys()].join(', ')})`);
  }
  return model;
}
