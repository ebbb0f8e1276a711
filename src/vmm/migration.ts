/**
 * Live migration's hypervisor-neutral side (issue 16; shared/reference/migration.md): what a
 * guest of the in-place VMM is, taken out of one hypervisor at a safe point and put into another
 * — a record that names nothing of either. Its parts:
 *
 * - the guest's memory in guest-physical form: every page-table entry holds a guest frame (xen
 *   keeps machine frames in the guest's tables and canonicalises them on the way out; l4 keeps
 *   guest-physical ones), with where the page tables are, so that the destination can convert
 *   them again and give them back to its hypervisor (xen: pins, frame types; l4: nothing, its
 *   spaces are re-faulted from the tables);
 * - the guest's own context at the safe point: the guest kernel's registers, or the registers
 *   of a guest idling in `hlt` (the destination runs the `hlt` again);
 * - the VMM core's state (VmmState: virtual CPU, virtual platform, counters, every time on the
 *   VMM's own clock, which continues on the destination) and the virtual-CPU block.
 *
 * The backends implement `BackendMigration` (backend.ts); src/platforms/migrate.ts moves a
 * guest with it.
 */
import type { DirtySource } from './dirty.ts';
import type { VmmState } from './Vmm.ts';

/** The version of MigrationRecord. */
export const MIGRATION_RECORD_VERSION = 1;

/** The guest's own context at a safe point. */
export interface GuestContext {
  /**
   * kernel: the guest kernel runs (its code, not the VMM's, with the virtual CPU in kernel
   * mode); idle: the guest sleeps in the `hlt` whose site ends at `eip`.
   */
  kind: 'kernel' | 'idle';
  /** EAX ECX EDX EBX ESP EBP ESI EDI (the CPU's order). */
  regs: number[];
  eip: number;
  /** The arithmetic flags (IF and IOPL are the virtual CPU's). */
  eflags: number;
}

/** Where the guest's page-table entries are (guest-physical). */
export interface PageTableMap {
  /** Page directories the hypervisor knows as such (xen: pinned; l4: CR3 and the processes'). */
  directories: number[];
  /** Page tables those directories reference (frames). */
  tables: number[];
  /**
   * Single entries the guest wrote elsewhere through the VMM (a table being built, not yet in
   * a known directory): byte address and level, still as written.
   */
  entries: [number, 1 | 2][];
}

/** What moves (stop-and-copy; pre-copy sends the memory in rounds before it). */
export interface MigrationRecord {
  version: typeof MIGRATION_RECORD_VERSION;
  /** The platform it comes from (for messages). */
  from: string;
  /** Guest RAM in pages; the destination's must be at least this. */
  guestPages: number;
  /** Guest RAM, page tables in guest-physical form. */
  memory: Uint8Array;
  pageTables: PageTableMap;
  context: GuestContext;
  /** The guest's TSS.esp0 (its kernel stack for events from user mode), if it loaded a TSS. */
  kernelStack: number | undefined;
  /** The VMM's time (ns) when the guest stopped. */
  nowNs: number;
  vmm: VmmState;
  /** The virtual-CPU block (window page 0). */
  vcpuBlock: Uint8Array;
}

/** A backend's side of migration (VmmBackend.migration). */
export interface BackendMigration {
  /** Why this guest cannot migrate at all on this backend, if it cannot (one line). */
  refusal?(): string | undefined;
  /** The guest's context if it is at a safe point now (between runs), else why not. */
  safePoint(): GuestContext | string;
  /** Where the page tables are, in guest-physical frames and addresses. */
  pageTables(): PageTableMap;
  /** A copy of guest RAM in guest-physical form (the entries of `tables` canonicalised). */
  exportMemory(tables: PageTableMap): Uint8Array;
  /** Guest RAM's size in pages. */
  readonly guestPages: number;
  /** The hypervisor's view of written pages, for pre-copy (dirty.ts). */
  dirtySource(): DirtySource;
  /**
   * Destination: the guest's memory and page tables into this VM, the hypervisor's objects for
   * them made (xen: converted to machine frames, pinned and validated), then the guest's
   * context as its CPU state with paging on at `cr3`. One line if the hypervisor refuses.
   */
  resume(record: MigrationRecord, cr3: number): string | undefined;
}
