/**
 * An address space: created empty, filled only by mapping (mapdb.ts). The kernel builds its
 * real x86 page tables from the mapping database, in frames of its own pool (frames.ts): a page
 * directory, page tables for the user slots on demand (freed when their last entry goes), and
 * the kernel slot (page-directory slot 1023, the top 4 MB) with the GDT, the TSS, the space's
 * I/O bitmap, the KIP and the space's UTCB pages. CR3 holds the directory of the space the
 * current thread runs in.
 *
 * Sigma0's space is the physical address space itself (`physical`): page n is frame n, its
 * mapping nodes are the roots of the database, and it has no page-table entries (sigma0 is a
 * TypeScript thread; the CPU never touches memory through its space).
 */
import type { PortRange } from '../devices.ts';
import {
  GDT_VIRT,
  IO_BITMAP_VIRT,
  KERNEL_SLOT,
  KIP_VIRT,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  PTE_US,
  TSS_VIRT,
  UTCB_AREA,
  W,
  type Fpage,
} from './abi.ts';
import type { FramePool } from './frames.ts';
import type { MapNode } from './mapdb.ts';

/** What a space needs from the machine to keep its page tables. */
export interface PageTableMemory {
  read32(maddr: number): number;
  /** Writes a page-table word (the CPU's decoded-code cache sees it). */
  write32(maddr: number, value: number): void;
  /** Drops the TLB entry of one page of the space the CPU runs in, if this is it. */
  invalidate(space: Space, va: number): void;
  readonly pool: FramePool;
}

/** The kernel's frames every space's kernel slot maps (kip.ts builds them). */
export interface SharedKernelFrames {
  gdt: number;
  tss: number;
  kip: number;
  /** Two all-ones frames: the I/O bitmap of a space that was given no ports. */
  noPorts: [number, number];
}

export const PDE_USER = PTE_P | PTE_RW | PTE_US | PTE_A;

export class Space {
  /** Page-directory frame. */
  pd = -1;
  /** The kernel slot's page table. */
  kernelL1 = -1;
  /** Page table of each user slot, -1 if none. */
  readonly l1 = new Int32Array(KERNEL_SLOT).fill(-1);
  /** Present entries in each user slot's table (a table whose count drops to 0 is freed). */
  readonly l1Count = new Uint16Array(KERNEL_SLOT);
  /** Frames of the UTCB area's pages that hold UTCBs, by page index in the area. */
  readonly utcbPages = new Map<number, number>();
  /** The space's own I/O bitmap frames, when it was given ports. */
  ioBitmap: [number, number] | undefined;
  readonly ports: PortRange[] = [];
  /** Mapping nodes by virtual page number (mapdb.ts). */
  readonly mappings = new Map<number, MapNode>();
  /** SpaceControl: the UTCB area (within UTCB_AREA) and the KIP area; unset until then. */
  utcbArea: Fpage | undefined;
  kipArea: Fpage | undefined;
  /** Threads in the space (it is deleted with its last one). */
  threads = 0;

  constructor(
    readonly id: number,
    /** The space is the physical address space (sigma0's): no page tables. */
    readonly physical: boolean,
    /** Its threads may make the privileged system calls (the root task's, sigma0's). */
    public privileged: boolean,
    /** The VM the resource monitor made it for, -1 for the roots. */
    public vm: number,
  ) {}

  get initialized(): boolean {
    return this.utcbArea !== undefined;
  }

  /** Allocates the directory and kernel slot; false if kernel memory ran out. */
  build(mem: PageTableMemory, shared: SharedKernelFrames): boolean {
    const pd = mem.pool.allocate();
    const kl1 = pd === undefined ? undefined : mem.pool.allocate();
    if (pd === undefined || kl1 === undefined) {
      if (pd !== undefined) mem.pool.free(pd);
      return false;
    }
    this.pd = pd;
    this.kernelL1 = kl1;
    // SAFETY: the kernel slot maps the GDT, TSS and I/O bitmap supervisor-only and read-only
    // (CR0.WP makes that bind the kernel too), the KIP read-only for the user; A and D preset so
    // the page walk never writes these entries.
    const put = (va: number, frame: number, flags: number): void =>
      mem.write32(kl1 * 4096 + ((va >>> 12) & 0x3ff) * 4, ((frame << 12) | flags) >>> 0);
    put(GDT_VIRT, shared.gdt, PTE_P | PTE_A);
    put(TSS_VIRT, shared.tss, PTE_P | PTE_A);
    put(IO_BITMAP_VIRT, shared.noPorts[0], PTE_P | PTE_A);
    put(IO_BITMAP_VIRT + 0x1000, shared.noPorts[1], PTE_P | PTE_A);
    put(KIP_VIRT, shared.kip, PTE_P | PTE_US | PTE_A);
    mem.write32(pd * 4096 + KERNEL_SLOT * 4, ((kl1 << 12) | PDE_USER) >>> 0);
    return true;
  }

  /** Gives the space its own I/O bitmap with `ports` open (SDM 1 19.5.2: a clear bit allows). */
  openPorts(mem: PageTableMemory, ram: Uint8Array, ports: readonly PortRange[]): boolean {
    if (this.ioBitmap === undefined) {
      const a = mem.pool.allocate();
      const b = a === undefined ? undefined : mem.pool.allocate();
      if (a === undefined || b === undefined) {
        if (a !== undefined) mem.pool.free(a);
        return false;
      }
      this.ioBitmap = [a, b];
      ram.fill(0xff, a * 4096, a * 4096 + 4096);
      ram.fill(0xff, b * 4096, b * 4096 + 4096);
      const put = (va: number, frame: number): void =>
        mem.write32(
          this.kernelL1 * 4096 + ((va >>> 12) & 0x3ff) * 4,
          ((frame << 12) | PTE_P | PTE_A) >>> 0,
        );
      put(IO_BITMAP_VIRT, a);
      put(IO_BITMAP_VIRT + 0x1000, b);
      mem.invalidate(this, IO_BITMAP_VIRT);
      mem.invalidate(this, IO_BITMAP_VIRT + 0x1000);
    }
    for (const r of ports) {
      this.ports.push({ ...r });
      for (let port = r.base; port < r.base + r.length && port < 0x10000; port++) {
        const frame = this.ioBitmap[port >>> 15];
        ram[frame * 4096 + ((port >>> 3) & 0xfff)] &= ~(1 << (port & 7));
      }
    }
    return true;
  }

  /** Makes sure the UTCB page holding `utcb` exists; false if kernel memory ran out. */
  ensureUtcbPage(mem: PageTableMemory, utcb: number): boolean {
    const page = (utcb - UTCB_AREA) >>> 12;
    if (this.utcbPages.has(page)) return true;
    const frame = mem.pool.allocate();
    if (frame === undefined) return false;
    this.utcbPages.set(page, frame);
    const va = UTCB_AREA + page * 4096;
    mem.write32(
      this.kernelL1 * 4096 + ((va >>> 12) & 0x3ff) * 4,
      ((frame << 12) | PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D) >>> 0,
    );
    mem.invalidate(this, va);
    return true;
  }

  /** Machine address of a UTCB byte of this space, or undefined if its page is not there. */
  utcbMachineAddress(utcb: number): number | undefined {
    const frame = this.utcbPages.get((utcb - UTCB_AREA) >>> 12);
    return frame === undefined ? undefined : frame * 4096 + (utcb & 0xfff);
  }

  // ---- user page-table entries, written from the mapping database -------------------------

  /** Machine address of the entry for `vpn`, or undefined if its table does not exist. */
  pteAddress(vpn: number): number | undefined {
    const table = this.l1[vpn >>> 10];
    return table < 0 ? undefined : table * 4096 + (vpn & 0x3ff) * 4;
  }

  /**
   * Writes the entry for a mapping of `frame` with `rights` (present for any right, writable
   * for w). A rights change of the same frame keeps the accessed and dirty bits. False if no
   * page table could be allocated.
   */
  setPte(mem: PageTableMemory, vpn: number, frame: number, rights: number): boolean {
    if (this.physical) return true;
    const slot = vpn >>> 10;
    if (this.l1[slot] < 0) {
      const table = mem.pool.allocate();
      if (table === undefined) return false;
      this.l1[slot] = table;
      mem.write32(this.pd * 4096 + slot * 4, ((table << 12) | PDE_USER) >>> 0);
    }
    const at = this.l1[slot] * 4096 + (vpn & 0x3ff) * 4;
    const old = mem.read32(at);
    const keep = (old & PTE_P) !== 0 && old >>> 12 === frame ? old & (PTE_A | PTE_D) : 0;
    const value = (frame << 12) | PTE_P | PTE_US | ((rights & W) !== 0 ? PTE_RW : 0) | keep;
    if ((old & PTE_P) === 0) this.l1Count[slot]++;
    mem.write32(at, value >>> 0);
    mem.invalidate(this, vpn * 4096);
    return true;
  }

  clearPte(mem: PageTableMemory, vpn: number): void {
    if (this.physical) return;
    const slot = vpn >>> 10;
    const table = this.l1[slot];
    if (table < 0) return;
    const at = table * 4096 + (vpn & 0x3ff) * 4;
    if ((mem.read32(at) & PTE_P) === 0) return;
    mem.write32(at, 0);
    mem.invalidate(this, vpn * 4096);
    if (--this.l1Count[slot] === 0) {
      mem.write32(this.pd * 4096 + slot * 4, 0);
      this.l1[slot] = -1;
      mem.pool.free(table);
    }
  }

  /** The accessed and dirty bits of a mapping's entry (0 for none). */
  pteStatus(mem: PageTableMemory, vpn: number): number {
    const at = this.pteAddress(vpn);
    return at === undefined ? 0 : mem.read32(at) & (PTE_A | PTE_D);
  }

  /** Clears the accessed and dirty bits of an entry; true if any was set. */
  resetPteStatus(mem: PageTableMemory, vpn: number): boolean {
    const at = this.pteAddress(vpn);
    if (at === undefined) return false;
    const v = mem.read32(at);
    if ((v & (PTE_A | PTE_D)) === 0) return false;
    mem.write32(at, (v & ~(PTE_A | PTE_D)) >>> 0);
    mem.invalidate(this, vpn * 4096);
    return true;
  }

  /** Frees every frame of the space (its mappings are gone already). */
  release(mem: PageTableMemory): void {
    for (let slot = 0; slot < KERNEL_SLOT; slot++) {
      if (this.l1[slot] >= 0) mem.pool.free(this.l1[slot]);
      this.l1[slot] = -1;
      this.l1Count[slot] = 0;
    }
    for (const frame of this.utcbPages.values()) mem.pool.free(frame);
    this.utcbPages.clear();
    if (this.ioBitmap !== undefined) for (const f of this.ioBitmap) mem.pool.free(f);
    this.ioBitmap = undefined;
    if (this.kernelL1 >= 0) mem.pool.free(this.kernelL1);
    if (this.pd >= 0) mem.pool.free(this.pd);
    this.kernelL1 = -1;
    this.pd = -1;
  }
}
