/**
 * Live migration on the xen backend (../../migration.ts): out of a domain — the guest kernel's
 * registers at a safe point, its memory with the page tables canonicalised from machine to
 * guest frames (as the original toolstack's save does, reference/migration.md "XS") — and into
 * a domain the toolstack just built for it: the memory, the page tables back in machine frames
 * and pinned (validated by the hypervisor, paging.ts `adoptTables`), the base pointer, the
 * kernel stack, and the virtual CPU in ring 1 where the guest stopped. The domain's event
 * channels, shared info and callbacks are its own from its start of day.
 */
import { SharedInfo } from '../../../hypervisor/xen/abi.ts';
import type { DirtySource } from '../../dirty.ts';
import type {
  BackendMigration,
  GuestContext,
  MigrationRecord,
  PageTableMap,
} from '../../migration.ts';
import { EFLAGS_IF, VIRTUAL_FLAGS, WINDOW_BASE, WINDOW_SLOT } from '../../window.ts';
import type { DirectPaging } from './paging.ts';
import type { XenBackend } from './XenBackend.ts';

export class XenMigration implements BackendMigration {
  constructor(
    private readonly backend: XenBackend,
    /** Undefined under shadow paging, whose guests do not migrate yet. */
    private readonly direct: DirectPaging | undefined,
  ) {}

  private get paging(): DirectPaging {
    if (this.direct === undefined) throw new Error('xen backend: migration under shadow paging');
    return this.direct;
  }

  refusal(): string | undefined {
    return this.direct === undefined
      ? 'a guest under shadow paging (a Linux bzImage on xen) cannot migrate yet'
      : undefined;
  }

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
    const view = new DataView(copy.buffer);
    const frame = (f: number, level: 1 | 2): void => {
      for (let k = 0; k < 1024; k++) {
        const at = f * 4096 + k * 4;
        const e = view.getUint32(at, true);
        // The window's and the hypervisor's slots are no guest mapping (XS zeroes them too).
        const v = level === 2 && k >= WINDOW_SLOT ? 0 : this.paging.canonicalEntry(e, level);
        view.setUint32(at, v, true);
      }
    };
    for (const d of tables.directories) frame(d, 2);
    for (const t of tables.tables) frame(t, 1);
    for (const [at, level] of tables.entries)
      view.setUint32(at, this.paging.canonicalEntry(view.getUint32(at, true), level), true);
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
