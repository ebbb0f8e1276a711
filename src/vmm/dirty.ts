/**
 * Dirty logging for pre-copy migration (issue 16; reference/migration.md): which guest pages
 * were written since the last look, one interface in the VMM over what each hypervisor offers.
 * The backend's `DirtySource` (BackendMigration.dirtySource) harvests the pages its hypervisor
 * saw written — on xen the dirty bits of the guest's direct page tables, cleared through
 * mmu_update (the guest's own dirty bit kept aside); on l4 the written bits that an unmap of
 * each page's alias with no rights returns (the resource monitor's working-set primitive in
 * L4Ka) — and the log adds what the VMM itself wrote into guest memory by DMA (the DP83820
 * model's buffers and descriptors), which no page table sees.
 */
import type { VirtualPlatform } from './platform.ts';

/** A hypervisor's view of written pages (a backend implements it). */
export interface DirtySource {
  /** From now on, pages written are seen (the first `collect` covers writes after this). */
  start(): void;
  /**
   * Marks in `into` (one byte per guest page) every page written since `start` or the last
   * collect, and forgets them (the next collect sees only later writes).
   */
  collect(into: Uint8Array): void;
  /** Logging ends; the guest runs as before it started. */
  stop(): void;
  /**
   * Whether the backend can look now (between runs): xen's VMM makes its hypercalls from the
   * guest kernel's ring, so not while the CPU runs a process. Absent: always.
   */
  ready?(): boolean;
}

export class DirtyLog {
  /** Pages written since the last `take` (1 = written). */
  private readonly pages: Uint8Array;
  private on = false;

  constructor(
    readonly guestPages: number,
    private readonly source: DirtySource,
    private readonly platform: VirtualPlatform,
  ) {
    this.pages = new Uint8Array(guestPages);
  }

  /** The source can be looked at now (DirtySource.ready); the guest runs on until it can. */
  ready(): boolean {
    return this.source.ready?.() ?? true;
  }

  start(): void {
    this.pages.fill(0);
    this.on = true;
    this.platform.dmaWritten = (gpa, length) => this.markRange(gpa, length);
    this.source.start();
  }

  /** Pages written so far that the next `take` returns (Xen's PEEK): marked, not cleared. */
  peek(): Uint8Array {
    if (this.on) this.source.collect(this.pages);
    return this.pages;
  }

  /** The pages written since the last take (or start), and the log cleared (Xen's CLEAN). */
  take(): Uint8Array {
    const out = this.peek().slice();
    this.pages.fill(0);
    return out;
  }

  stop(): void {
    if (!this.on) return;
    this.on = false;
    this.platform.dmaWritten = undefined;
    this.source.stop();
  }

  private markRange(gpa: number, length: number): void {
    if (length <= 0) return;
    const last = Math.min(this.guestPages - 1, Math.floor((gpa + length - 1) / 4096));
    for (let p = Math.max(0, Math.floor(gpa / 4096)); p <= last; p++) this.pages[p] = 1;
  }
}
