/**
 * The guest's page tables on l4 (shared/reference/l4.md, "How the L4 wedge runs a guest"): they
 * stay the guest's own, with guest-physical frames, and the CPU never uses them. The L4 spaces
 * are built from them on demand — a fault in the guest kernel's space or a process's is resolved
 * by walking the guest's tables and mapping the frame from its alias (layout.ts) with the
 * guest's rights — and every change the guest makes through the annotation header becomes an
 * unmap of what it invalidated: the alias of the old frame, which the mapping database revokes
 * from every space it was mapped on to, with the referenced and written status bits it returns
 * folded into the guest's accessed and dirty bits.
 */
import { fpage, R, RWX, W } from '../../../hypervisor/l4/abi.ts';
import { WINDOW_SLOT } from '../../window.ts';

export const PTE_P = 0x1;
export const PTE_RW = 0x2;
export const PTE_US = 0x4;
export const PTE_A = 0x20;
export const PTE_D = 0x40;
export const PTE_PS = 0x80;
const CR0_WP = 0x10000;
/** Entries `written` holds before the ones no longer as written are dropped. */
const WRITTEN_LIMIT = 1 << 18;

/** A translation through the guest's tables. */
export type Walk =
  | { ok: true; frame: number; writable: boolean; user: boolean; pteAt: number }
  | { ok: false; present: boolean };

/** The backend's own paging counters. */
export type L4PagingCounters = {
  /** Page-table entries the guest changed whose old frame had been mapped out: unmapped. */
  entriesUnmapped: number;
  /** Unmap system calls made for them (and for directory entries, CR3 loads). */
  unmapCalls: number;
  /** CR3 loads that kept the kernel space's mappings of user addresses (see loadCr3). */
  cr3Kept: number;
  /** CR3 loads that flushed them. */
  cr3Flushed: number;
};

export interface PagingHost {
  /** Unmap (or flush) fpages of the guest kernel's space; the status bits come back. */
  unmap(fpages: number[], flush: boolean): number[];
  /** The alias of a guest frame (RAM or a passed-through device's), if it has one. */
  alias(frame: number): number | undefined;
  crash(message: string): void;
}

export class GuestPaging {
  readonly counters: L4PagingCounters = {
    entriesUnmapped: 0,
    unmapCalls: 0,
    cr3Kept: 0,
    cr3Flushed: 0,
  };
  /** CR3 as the guest loaded it (guest-physical), 0 before paging. */
  cr3 = 0;
  paging = false;
  /** The guest's CR0 (WP decides whether the kernel may write read-only pages). */
  cr0Of: () => number = () => 0;
  /**
   * The directory whose user half the guest kernel's space holds mappings of (faults of the
   * kernel on user addresses since), -1 for none.
   */
  mirror = -1;
  /** Alias frames whose page was mapped on to another address (by frame number). */
  readonly mappedOut: Uint8Array;
  /**
   * Every entry the guest wrote through the VMM, by guest-physical address: its value then; the
   * directory entries among them (a migration finds tables being built by these, migrate.ts).
   */
  readonly written = new Map<number, number>();
  readonly writtenL2 = new Set<number>();
  private writtenLimit = WRITTEN_LIMIT;
  /**
   * Status bits (R, W) a migration's dirty log took from a frame's mappings (migrate.ts): the
   * fold into the guest's accessed and dirty bits gets them still.
   */
  readonly taken: Uint8Array;
  /**
   * Guest frames written where a migration's dirty log (migrate.ts) would not see it, since it
   * last looked: by the VMM itself (entries the guest wrote through it, accessed and dirty bits
   * its walks set), and through mappings it revoked (their written bits came back to it, not to
   * the log's scan of the aliases). The log adds them. Not state to save: its first look
   * clears it.
   */
  readonly vmmWrote: Uint8Array;

  constructor(
    private readonly view: DataView,
    private readonly guestPages: number,
    private readonly host: PagingHost,
  ) {
    this.mappedOut = new Uint8Array(guestPages + 64);
    this.taken = new Uint8Array(guestPages + 64);
    this.vmmWrote = new Uint8Array(guestPages);
  }

  /** Forgets the entries no longer as written (their frame is data again), so the map stays small. */
  private pruneWritten(): void {
    for (const [at, value] of this.written)
      if (((this.read32(at) ^ value) & ~(PTE_A | PTE_D)) !== 0) {
        this.written.delete(at);
        this.writtenL2.delete(at);
      }
    this.writtenLimit = Math.max(WRITTEN_LIMIT, this.written.size * 2);
  }

  read32(gpa: number): number {
    return this.view.getUint32(gpa, true);
  }

  private write32(gpa: number, value: number): void {
    this.vmmWrote[gpa >>> 12] = 1;
    this.view.setUint32(gpa, value >>> 0, true);
  }

  /** Guest-physical address behind a guest-virtual one in the current tables (paging off: itself). */
  physical(va: number): number | undefined {
    if (!this.paging) return va >>> 0 < this.guestPages * 4096 ? va >>> 0 : undefined;
    const w = this.walk(this.cr3, va, false, false, false);
    return w.ok && w.frame < this.guestPages ? w.frame * 4096 + (va & 0xfff) : undefined;
  }

  /**
   * The guest's translation of `va` in directory `cr3` for an access (SDM 3A 4.3, 4.6): the
   * frame and rights, or a fault (present: a protection fault). Sets the accessed bits, and the
   * dirty bit for a write, as the CPU would.
   */
  walk(cr3: number, va: number, write: boolean, user: boolean, mark = true): Walk {
    const pdeAt = (cr3 & ~0xfff) + (va >>> 22) * 4;
    if (pdeAt + 4 > this.guestPages * 4096) return { ok: false, present: false };
    const pde = this.read32(pdeAt);
    if ((pde & PTE_P) === 0) return { ok: false, present: false };
    let pteAt = pdeAt;
    let pte = pde;
    let frame: number;
    if ((pde & PTE_PS) !== 0) {
      frame = ((pde & 0xffc00000) >>> 12) + ((va >>> 12) & 0x3ff);
    } else {
      pteAt = (pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4;
      if (pteAt + 4 > this.guestPages * 4096) return { ok: false, present: false };
      pte = this.read32(pteAt);
      if ((pte & PTE_P) === 0) return { ok: false, present: false };
      frame = pte >>> 12;
    }
    const both = pde & pte;
    const userOk = (both & PTE_US) !== 0;
    const rw = (both & PTE_RW) !== 0;
    if (user && !userOk) return { ok: false, present: true };
    const writable = user ? rw : rw || (this.cr0Of() & CR0_WP) === 0;
    if (write && !writable) return { ok: false, present: true };
    if (mark) {
      if ((pde & PTE_A) === 0) this.write32(pdeAt, pde | PTE_A);
      const set = pte | PTE_A | (write ? PTE_D : 0);
      if (set !== this.read32(pteAt)) this.write32(pteAt, set);
    }
    return { ok: true, frame, writable, user: userOk, pteAt };
  }

  // ---- the guest's page-table writes (the annotation header's sites) -----------------------

  private entryAt(ptr: number): number | undefined {
    const at = this.physical(ptr);
    if (at === undefined) {
      this.host.crash(`page-table pointer 0x${(ptr >>> 0).toString(16)} is not in guest memory`);
      return undefined;
    }
    return at & ~3;
  }

  write(level: 1 | 2, ptr: number, value: number): void {
    const at = this.entryAt(ptr);
    if (at === undefined) return;
    // The VMM's window is no guest mapping: its slots are not the guest's to change.
    if (level === 2 && (at & 0xfff) >>> 2 >= WINDOW_SLOT) return;
    const old = this.read32(at);
    this.write32(at, value);
    this.written.set(at, value >>> 0);
    if (level === 2) this.writtenL2.add(at);
    if (this.written.size > this.writtenLimit) this.pruneWritten();
    if ((old & PTE_P) === 0) return;
    if (level === 2 && (old & PTE_PS) === 0) {
      if ((value & ~0xfff) !== (old & ~0xfff) || (value & PTE_P) === 0 || lost(old, value))
        this.revokeTable(old & ~0xfff);
      return;
    }
    const frame = level === 2 ? -1 : old >>> 12;
    if (frame < 0) return;
    const sameFrame = (value & PTE_P) !== 0 && value >>> 12 === frame;
    if (sameFrame && !lost(old, value)) return;
    const status = this.revoke([frame], sameFrame && (value & PTE_US) === (old & PTE_US) ? W : RWX);
    if (sameFrame) this.write32(at, fold(this.read32(at), status[0] ?? 0));
  }

  read(level: 1 | 2, ptr: number): number {
    const at = this.entryAt(ptr);
    if (at === undefined) return 0;
    if (level === 2 && (at & 0xfff) >>> 2 >= WINDOW_SLOT) return 0;
    return this.read32(at);
  }

  testClear(ptr: number): number {
    const at = this.entryAt(ptr);
    if (at === undefined) return 0;
    const old = this.read32(at);
    this.write32(at, 0);
    if ((old & PTE_P) === 0) return old;
    return fold(old, this.revoke([old >>> 12], RWX)[0] ?? 0);
  }

  /** Every frame a page table maps loses its mappings (a directory entry changed). */
  private revokeTable(table: number): void {
    if (table + 4096 > this.guestPages * 4096) return;
    const frames: number[] = [];
    for (let k = 0; k < 1024; k++) {
      const e = this.read32(table + k * 4);
      if ((e & PTE_P) !== 0) frames.push(e >>> 12);
    }
    this.revoke(frames, RWX);
  }

  /**
   * Takes `rights` from every mapping derived from the frames' aliases (the aliases stay: they
   * are the VM's memory). Frames never mapped out cost nothing. Returns status bits per frame
   * given (0 for those skipped).
   */
  revoke(frames: number[], rights: number): number[] {
    const status = frames.map(() => 0);
    const todo: { at: number; page: number }[] = [];
    frames.forEach((f, k) => {
      if (f >= this.mappedOut.length || this.mappedOut[f] === 0) return;
      const alias = this.host.alias(f);
      if (alias === undefined) return;
      if (rights === RWX) this.mappedOut[f] = 0;
      todo.push({ at: k, page: fpage(alias, 12, rights) });
    });
    for (let k = 0; k < todo.length; k += 64) {
      const batch = todo.slice(k, k + 64);
      this.counters.unmapCalls++;
      this.counters.entriesUnmapped += batch.length;
      const out = this.host.unmap(
        batch.map((b) => b.page),
        false,
      );
      batch.forEach((b, j) => {
        const f = frames[b.at];
        status[b.at] = ((out[j] ?? 0) | this.taken[f]) & RWX;
        this.taken[f] = 0;
        // Written through a mapping now gone: the dirty log's scan would not see it.
        if (((out[j] ?? 0) & W) !== 0 && f < this.vmmWrote.length) this.vmmWrote[f] = 1;
      });
    }
    return status;
  }

  /** Does directory `cr3` map anything in the user half (below the kernel's slots)? */
  hasUserMappings(cr3: number, kernelSlot: number): boolean {
    const pd = cr3 & ~0xfff;
    if (pd + 4096 > this.guestPages * 4096) return false;
    for (let k = 0; k < kernelSlot; k++) if ((this.read32(pd + k * 4) & PTE_P) !== 0) return true;
    return false;
  }
}

/** The new entry takes a right the old one gave (write, user). */
function lost(old: number, value: number): boolean {
  return (old & ~value & (PTE_RW | PTE_US)) !== 0;
}

/** Referenced and written status bits (R 4, W 2) into a guest entry's accessed and dirty bits. */
function fold(entry: number, status: number): number {
  return (entry | ((status & R) !== 0 ? PTE_A : 0) | ((status & W) !== 0 ? PTE_D : 0)) >>> 0;
}
