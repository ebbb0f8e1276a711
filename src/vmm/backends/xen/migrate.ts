/**
 * Live migration on the xen backend (../../migration.ts): out of a domain — the guest kernel's
 * registers at a safe point, its memory with the page tables canonicalised from machine to
 * guest frames (as the original toolstack's save does, reference/migration.md "XS") — and into
 * a domain the toolstack just built for it: the memory, the page tables back in machine frames
 * and pinned (validated by the hypervisor, paging.ts `adoptTables`), the base pointer, the
 * kernel stack, and the virtual CPU in ring 1 where the guest stopped. The domain's event
 * channels, shared info and callbacks are its own from its start of day. Under shadow paging
 * (shadow.ts, a Linux bzImage) the guest's tables are guest-physical already: the memory goes
 * as it is, and the destination makes its shadows again from the guest's tables.
 */
import { SharedInfo } from '../../../hypervisor/xen/abi.ts';
import type { DirtySource } from '../../dirty.ts';
import type {
  BackendMigration,
  GuestContext,
  MigrationRecord,
  PageTableMap,
} from '../../migration.ts';
import { EFLAGS_IF, VIRTUAL_FLAGS, WINDOW_BASE } from '../../window.ts';
import type { XenBackend } from './XenBackend.ts';

/** What a migration asks of the domain's paging, direct (paging.ts) or shadow (shadow.ts). */
export interface MigratingPaging {
  /** Where the guest's page tables are, in guest frames. */
  migrationTables(): PageTableMap;
  /** The copy of guest memory in `view` into guest-physical form (the tables' entries). */
  canonicalize(view: DataView, tables: PageTableMap): void;
  /** The pages written since the last harvest, marked in `into` (dirty.ts). */
  harvestDirty(into: Uint8Array | undefined): void;
  /** Destination: the tables in guest memory given to the hypervisor, paging on at `cr3`. */
  adoptTables(map: PageTableMap, cr3: number): string | undefined;
}

export class XenMigration implements BackendMigration {
  constructor(
    private readonly backend: XenBackend,
    private readonly paging: MigratingPaging,
  ) {}

  get guestPages(): number {
    return this.backend.guestPages;
  }

  safePoint(): GuestContext | string {
    const { xen, dom, cpu } = this.backend;
    if (xen.current !== dom) return 'another domain runs';
    const regs = Array.from(cpu.regs, (r) => r >>> 0);
    const eflags = (cpu.getEflags() & ~VIRTUAL_FLAGS) >>> 0;
    if (dom.state === 'blocked' && cpu.halted)
      return { kind: 'idle', regs, eip: cpu.eip >>> 0, eflags };
    if (dom.state !== 'running') return `the domain is ${dom.state}`;
    if (cpu.cpl !== 1) return 'the guest runs in user mode';
    if (cpu.eip >>> 0 >= WINDOW_BASE) return 'the guest runs VMM code';
    const c = this.backend.channel;
    if (
      c.readShared8(SharedInfo.upcall_mask) !== 0 ||
      c.readShared8(SharedInfo.upcall_pending) !== 0
    )
      return 'the guest is taking events';
    return { kind: 'kernel', regs, eip: cpu.eip >>> 0, eflags };
  }

  dirtySource(): DirtySource {
    const paging = this.paging;
    return {
      start: () => paging.harvestDirty(undefined),
      collect: (into) => paging.harvestDirty(into),
      stop: () => {},
      ready: () => this.backend.cpu.cpl === 1 && this.backend.xen.current === this.backend.dom,
    };
  }

  pageTables(): PageTableMap {
    return this.paging.migrationTables();
  }

  exportMemory(tables: PageTableMap): Uint8Array {
    const copy = this.backend.guestRam().slice();
    this.paging.canonicalize(new DataView(copy.buffer), tables);
    return copy;
  }

  resume(record: MigrationRecord, cr3: number): string | undefined {
    const b = this.backend;
    const cpu = b.cpu;
    b.guestRam().set(record.memory);
    const refused = this.paging.adoptTables(record.pageTables, cr3);
    if (refused !== undefined) return refused;
    const c = record.context;
    c.regs.forEach((r, i) => (cpu.regs[i] = r | 0));
    cpu.setEflags(((c.eflags & ~VIRTUAL_FLAGS) | EFLAGS_IF | 2) >>> 0);
    cpu.eip = c.eip >>> 0;
    cpu.halted = false;
    if (record.kernelStack !== undefined) b.setKernelStack(record.kernelStack);
    return undefined;
  }
}
