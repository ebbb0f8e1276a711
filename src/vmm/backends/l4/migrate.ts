/**
 * Live migration on the l4 backend (../../migration.ts). The guest's page tables are already in
 * guest-physical form here (paging.ts), so its memory goes out as it is; what the microkernel
 * holds — the main space's mappings beyond the alias, the processes' spaces and threads, the
 * mapping database — is never copied: a destination VM the resource monitor just built (the
 * monitor, the helper, the kernel thread and the alias of its memory are its start of day) gets
 * the memory, and everything else comes back on demand (reference/migration.md, "AB": L4
 * objects are recreated, never copied): the kernel thread's faults on addresses beyond the
 * alias are resolved from the guest's tables again, a process's space and thread are made at
 * the guest's next `iret` to it. The kernel thread's first entry continues the guest where it
 * stopped instead of booting it.
 */
import { fpage, R, W } from '../../../hypervisor/l4/abi.ts';
import type { DirtySource } from '../../dirty.ts';
import type {
  BackendMigration,
  GuestContext,
  MigrationRecord,
  PageTableMap,
} from '../../migration.ts';
import { EFLAGS_IF, VIRTUAL_FLAGS, WINDOW_BASE, WINDOW_SLOT } from '../../window.ts';
import type { L4Backend } from './L4Backend.ts';
import { PTE_A, PTE_D, PTE_P, PTE_PS } from './paging.ts';

export class L4Migration implements BackendMigration {
  constructor(private readonly b: L4Backend) {}

  get guestPages(): number {
    return this.b.guestPages;
  }

  /**
   * The written bits of each guest page's alias in the main space and every mapping derived
   * from it: an unmap with no rights revokes nothing and returns them, reset (L4Ka's
   * resource monitor's working-set scan, 64 one-page fpages a call). The bits it takes are
   * kept for the fold into the guest's own accessed and dirty bits (paging.ts `taken`). The
   * frames the VMM wrote itself (paging.ts `vmmWrote`: no alias sees those writes) are added.
   */
  dirtySource(): DirtySource {
    const collect = (into: Uint8Array | undefined): void => {
      const b = this.b;
      const p = b.paging;
      for (let f = 0; f < b.guestPages; f += 64) {
        const n = Math.min(64, b.guestPages - f);
        const pages: number[] = [];
        for (let k = 0; k < n; k++) pages.push(fpage(b.alias(f + k)!, 12, 0));
        p.counters.unmapCalls++;
        const out = b.sync(() => b.helper.unmap(pages, false));
        for (let k = 0; k < n; k++) {
          const bits = (out[k] ?? 0) & (R | W);
          if (bits === 0) continue;
          p.taken[f + k] |= bits;
          if (into !== undefined && (bits & W) !== 0) into[f + k] = 1;
        }
      }
      // What the VMM wrote itself (page-table entries, accessed and dirty bits).
      if (into !== undefined) for (let f = 0; f < b.guestPages; f++) into[f] |= p.vmmWrote[f];
      p.vmmWrote.fill(0);
    };
    return {
      start: () => collect(undefined),
      collect: (into) => collect(into),
      stop: () => {},
      // The helper makes the unmaps: not while a call of the VMM's is under way in it.
      ready: () =>
        this.b.syncDepth === 0 && this.b.k.lookup(this.b.helperTid, undefined)?.ipc === undefined,
    };
  }

  safePoint(): GuestContext | string {
    const b = this.b;
    const cpu = b.cpu;
    if (b.mainState === 'idle' && b.idleState !== undefined) {
      const s = b.idleState;
      return {
        kind: 'idle',
        regs: [...s.regs],
        eip: s.resume >>> 0,
        eflags: (s.eflags & ~VIRTUAL_FLAGS) >>> 0,
      };
    }
    if (b.mainState !== 'kernel') return 'the guest runs in user mode';
    if (b.k.current !== b.main) return "the guest kernel's thread is not on the CPU";
    if (b.syncDepth !== 0 || b.monitorRunning) return 'the VMM is at work';
    if (b.redirectIp !== undefined || b.kernelTrap !== undefined || b.received !== undefined)
      return 'the guest is taking an event';
    if (cpu.eip >>> 0 >= WINDOW_BASE) return 'the guest runs VMM code';
    return {
      kind: 'kernel',
      regs: Array.from(cpu.regs, (r) => r >>> 0),
      eip: cpu.eip >>> 0,
      eflags: (cpu.getEflags() & ~VIRTUAL_FLAGS) >>> 0,
    };
  }

  /** CR3's directory and the processes', the tables they link, and entries written elsewhere. */
  pageTables(): PageTableMap {
    const b = this.b;
    const p = b.paging;
    const pages = b.guestPages;
    const dirs = new Set<number>();
    if (p.paging && p.cr3 >>> 12 < pages) dirs.add(p.cr3 >>> 12);
    for (const u of b.processes.save().users) if (u.pd < pages) dirs.add(u.pd);
    const directories = [...dirs].sort((x, y) => x - y);
    const tableSet = new Set<number>();
    for (const d of directories)
      for (let k = 0; k < WINDOW_SLOT; k++) {
        const e = p.read32(d * 4096 + k * 4);
        if ((e & (PTE_P | PTE_PS)) === PTE_P && e >>> 12 < pages && !dirs.has(e >>> 12))
          tableSet.add(e >>> 12);
      }
    const tables = [...tableSet].sort((x, y) => x - y);
    const entries: [number, 1 | 2][] = [];
    for (const [at, value] of p.written) {
      const f = at >>> 12;
      if (f >= pages || dirs.has(f) || tableSet.has(f)) continue;
      if (((p.read32(at) ^ value) & ~(PTE_A | PTE_D)) !== 0) continue;
      entries.push([at, p.writtenL2.has(at) ? 2 : 1]);
    }
    return { directories, tables, entries };
  }

  exportMemory(tables: PageTableMap): Uint8Array {
    const copy = this.b.guestRam().slice();
    const view = new DataView(copy.buffer);
    // The window's slots are no guest mapping (the guest cannot write them here either).
    for (const d of tables.directories)
      for (let k = WINDOW_SLOT; k < 1024; k++) view.setUint32(d * 4096 + k * 4, 0, true);
    return copy;
  }

  resume(record: MigrationRecord, cr3: number): string | undefined {
    const b = this.b;
    const cpu = b.cpu;
    b.guestRam().set(record.memory);
    cpu.invalidateAllCode();
    const p = b.paging;
    p.paging = true;
    p.cr3 = cr3 >>> 0;
    p.mirror = -1;
    for (const [at, level] of record.pageTables.entries) {
      p.written.set(at, p.read32(at));
      if (level === 2) p.writtenL2.add(at);
    }
    b.mainState = 'kernel';
    if (record.kernelStack !== undefined) b.setKernelStack(record.kernelStack);
    const c = record.context;
    // The kernel thread's first entry (ENTRY_BOOT): the guest's registers, then its EIP.
    b.bootResume = () => {
      c.regs.forEach((r, i) => (cpu.regs[i] = r | 0));
      cpu.setEflags(((c.eflags & ~VIRTUAL_FLAGS) | EFLAGS_IF | 2) >>> 0);
      cpu.push(c.eip >>> 0, 4);
    };
    return undefined;
  }
}
