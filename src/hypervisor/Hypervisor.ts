/**
 * What a hypervisor is to the machine (DESIGN.md decisions 5 and 10): it owns ring 0 through
 * the CPU's monitor (every exception, interrupt and INT n of a guest exits to it), runs one or
 * more VMs on the machine's one CPU, names its counters, ends a run through the machine
 * (`Machine.requestExit` / `requestReset`, never by writing to the machine's ports), and saves
 * and restores its own state for snapshots. `xen/Xen.ts` and `l4/L4.ts` implement it.
 *
 * How a VM is built on it (memory layout, loading, the in-place VMM) is not part of this
 * contract: that is the VMM backend's and the platform entry's business (src/vmm/backend.ts,
 * src/platforms).
 */
import type { Machine } from '../machine/Machine.ts';
import type { CounterTree } from '../machine/counters.ts';
import type { Monitor } from '../x86/monitor.ts';

export type { CounterTree } from '../machine/counters.ts';

/** A hypervisor's saved state: its kind and version first, the rest its own (JSON data). */
export interface HypervisorState {
  kind: string;
  version: number;
}

/** One VM the hypervisor runs, as tools see it. */
export interface VmInfo {
  id: number;
  /** 'running', 'blocked', 'shutdown', 'crashed', ... in the hypervisor's own words. */
  state: string;
  /** Why it ended, if it did. */
  ending?: string;
}

export interface Hypervisor extends Monitor {
  /** The name users and tools know it by ('xen'). */
  readonly name: string;
  readonly machine: Machine;
  /** The VMs it runs now, in creation order. */
  vms(): VmInfo[];
  /** Every counter, by name: a copy, so a caller may keep it and take differences. */
  stats(): CounterTree;
  save(): HypervisorState;
  /**
   * Restores a snapshot into a hypervisor built from the same configuration, after the machine
   * (and its clock) were restored. Throws a StateError (machine/state.ts) naming the field if
   * the snapshot does not fit it.
   */
  restore(state: HypervisorState, path: string): void;
}
