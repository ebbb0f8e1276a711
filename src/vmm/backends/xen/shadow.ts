/**
 * Shadow paging on the xen backend: the guest's page tables stay as the guest wrote them, in
 * guest-physical frames, plain memory to the hypervisor; the VMM keeps its own tables in machine
 * frames from a pool of the domain's private frames (layout.ts) and hands those to the
 * hypervisor, which validates them as any direct page table (pinned directories, mmu_update,
 * update_va_mapping). For a kernel that reads its page-table entries without annotation and
 * takes frame numbers from them (Linux's pmd_page_vaddr, pte_pfn on `*pte`), where direct
 * paging (paging.ts) would show it machine frames.
 *
 * - A shadow directory per guest directory loaded into CR3, pinned; its slots link a shadow
 *   table per guest table (shared, as the guest shares its kernel tables), rights as the guest's
 *   directory entry gives them. On each CR3 load the guest directory is compared with what the
 *   shadow was made from (a new process's directory is copied with plain writes), changed slots
 *   are made again.
 * - A shadow table is made from the whole guest table when a directory first links it: present
 *   and writable as the guest's entries are, accessed and dirty already (the guest's A and D
 *   are not tracked: an annotated read of an entry a shadow maps says accessed, and dirty if
 *   writable, which errs toward what Linux's reclaim and writeback take as safe).
 * - The guest's annotated entry writes (pte_set, pgd_set, test-and-clear) write its table and
 *   make the shadow entry again at once; invlpg makes it again if the guest's differs; a page
 *   fault the guest's tables allow (an entry changed without an annotated write) makes it again
 *   and retries; any other fault is the guest's own.
 * - When the pool runs out, every shadow is dropped (unpinned) and made again as used.
 * - Live migration (migrate.ts): the guest's tables are guest-physical already, so its memory
 *   goes out as it is and comes back as it was; the destination makes its shadows again as
 *   used. A pre-copy's dirty log is the dirty bits of the shadow tables (harvestDirty), as
 *   direct paging's is of the guest's own.
 */
import {
  Hypercall,
  MmuExt,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  PTE_US,
  UVMF_INVLPG,
} from '../../../hypervisor/xen/abi.ts';
import { runLengthEncode, runLengthRestore } from '../../../machine/runLength.ts';
import { arrayOf, bool, num, shape, StateError, type Check } from '../../../machine/state.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import type { PageTableMap } from '../../migration.ts';
import { WINDOW_SLOT } from '../../window.ts';
import type { HypercallChannel } from './channel.ts';
import type { DomainMemory } from './layout.ts';
import { GUEST_D, harvestTable, type DeviceFrames } from './paging.ts';

/** PWT and PCD: cache bits a shadow entry takes from the guest's. */
const PTE_CACHE = 0x18;
/** The bits of a guest entry a shadow follows (A and D are the VMM's to set). */
const FOLLOWED = ~(PTE_A | PTE_D | GUEST_D) >>> 0;

export type ShadowPagingCounters = {
  /**
   * Shadow entries made on a fault the guest's tables allow (its entry changed without an
   * annotated write; a page fault the guest never sees).
   */
  shadowFills: number;
  /** Shadow entries made again after an annotated write or an invlpg of the guest's. */
  entriesRemade: number;
  /** Shadow directory slots made again (a guest directory entry changed). */
  slotsRemade: number;
  /** Shadow tables made (directories and tables, from the pool). */
  tablesMade: number;
  /** Times the pool ran out and every shadow was dropped. */
  poolFlushes: number;
  /** Entries sent through mmu_update / update_va_mapping. */
  pageTableUpdates: number;
};

interface ShadowDirectory {
  pfn: number;
  /** The guest directory's entries the slots were made from (modulo A and D); 0: empty. */
  made: Int32Array;
}

/** Shadow paging in a snapshot; the shadow tables themselves are domain memory. */
export interface ShadowPagingState {
  kind: 'shadow';
  counters: ShadowPagingCounters;
  pagingOn: boolean;
  currentL2: number;
  free: number[];
  tables: [number, number][];
  /** [guest directory, shadow frame, run-length encoded `made`]. */
  directories: [number, number, number[]][];
}

const SHADOW_PAGING: Check = shape<ShadowPagingState>({
  kind: (v, path) => {
    if (v !== 'shadow') throw new StateError(`${path}: expected 'shadow'`);
  },
  counters: shape<ShadowPagingCounters>({
    shadowFills: num,
    entriesRemade: num,
    slotsRemade: num,
    tablesMade: num,
    poolFlushes: num,
    pageTableUpdates: num,
  }),
  pagingOn: bool,
  currentL2: num,
  free: arrayOf(num),
  tables: arrayOf((v, path) => {
    if (!Array.isArray(v) || v.length !== 2)
      throw new StateError(`${path}: expected [frame, frame]`);
    num(v[0], `${path}[0]`);
    num(v[1], `${path}[1]`);
  }),
  directories: arrayOf((v, path) => {
    if (!Array.isArray(v) || v.length !== 3)
      throw new StateError(`${path}: expected [frame, frame, made]`);
    num(v[0], `${path}[0]`);
    num(v[1], `${path}[1]`);
    arrayOf(num)(v[2], `${path}[2]`);
  }),
});

export class ShadowPaging {
  readonly counters: ShadowPagingCounters = {
    shadowFills: 0,
    entriesRemade: 0,
    slotsRemade: 0,
    tablesMade: 0,
    poolFlushes: 0,
    pageTableUpdates: 0,
  };
  private readonly guestPages: number;
  private pagingOn = false;
  /** The guest directory in CR3 (guest frame), -1 before paging. */
  private currentL2 = -1;
  /** Pool frames (domain frames beyond guest memory) not in use, lowest last. */
  private free: number[] = [];
  /**
   * An allocation found the pool empty since it was last reset (`fitted` reads it right after a
   * dropAll and a retry, so it is no state to save: every reset clears it).
   */
  private ranOut = false;
  /**
   * Guest frames written since the last dirty harvest that the shadows' dirty bits no longer
   * show: the VMM's own writes (the guest's annotated entry writes go to its tables, plain
   * memory), and pages whose dirty shadow entry was made again or dropped (keepDirty). The
   * harvest adds them. Not state to save: a dirty log's first harvest clears it.
   */
  private readonly vmmWrote: Uint8Array;
  /** Shadow table of each guest table (guest frame → pool frame). */
  private readonly tables = new Map<number, number>();
  private readonly directories = new Map<number, ShadowDirectory>();
  private queue: { maddr: number; value: number }[] = [];

  constructor(
    private readonly mem: DomainMemory,
    private readonly channel: HypercallChannel,
    private readonly cpu: Cpu,
    private readonly devices: DeviceFrames,
    private readonly crash: (message: string) => void,
  ) {
    this.guestPages = mem.guestPages;
    this.vmmWrote = new Uint8Array(mem.guestPages);
    this.resetPool();
  }

  private resetPool(): void {
    this.ranOut = false;
    const { shadowPoolPfn, shadowPoolPages } = this.mem;
    this.free = [];
    for (let k = shadowPoolPages - 1; k >= 0; k--) this.free.push(shadowPoolPfn + k);
  }

  save(): ShadowPagingState {
    return {
      kind: 'shadow',
      counters: { ...this.counters },
      pagingOn: this.pagingOn,
      currentL2: this.currentL2,
      free: [...this.free],
      tables: [...this.tables],
      directories: [...this.directories].map(([g, d]) => [g, d.pfn, runLengthEncode(d.made)]),
    };
  }

  restore(s: ShadowPagingState, path: string): void {
    SHADOW_PAGING(s, path);
    Object.assign(this.counters, s.counters);
    this.pagingOn = s.pagingOn;
    this.currentL2 = s.currentL2;
    this.free = [...s.free];
    this.tables.clear();
    for (const [g, p] of s.tables) this.tables.set(g, p);
    this.directories.clear();
    s.directories.forEach(([g, p, made], k) => {
      const d: ShadowDirectory = { pfn: p, made: new Int32Array(WINDOW_SLOT) };
      runLengthRestore(made, d.made, `${path}.directories[${k}][2]`);
      this.directories.set(g, d);
    });
    this.queue = [];
  }

  // ---- the guest's memory --------------------------------------------------------------------

  private guestRead(gpa: number): number {
    return this.mem.read32(this.mem.mfn(gpa >>> 12) * 4096 + (gpa & 0xffc));
  }

  private guestWrite(gpa: number, value: number): void {
    // No page table sees this write (it is the VMM's, for an annotated one of the guest's).
    this.vmmWrote[gpa >>> 12] = 1;
    this.mem.view.setUint32(this.mem.mfn(gpa >>> 12) * 4096 + (gpa & 0xffc), value >>> 0, true);
  }

  /** The guest directory's and table's entries for `va` (guest-physical addresses). */
  private walk(va: number): { pdeAt: number; pde: number; pteAt: number; pte: number } | undefined {
    if (this.currentL2 < 0) return undefined;
    const pdeAt = this.currentL2 * 4096 + (va >>> 22) * 4;
    const pde = this.guestRead(pdeAt);
    if ((pde & PTE_P) === 0 || pde >>> 12 >= this.guestPages) return undefined;
    const pteAt = (pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4;
    return { pdeAt, pde, pteAt: pteAt >>> 0, pte: this.guestRead(pteAt >>> 0) };
  }

  /** Guest-physical address of the entry the guest's pointer names; undefined: crashed. */
  private entryAddress(ptr: number): number | undefined {
    ptr >>>= 0;
    let gpa: number | undefined = ptr;
    if (this.pagingOn) {
      const w = this.walk(ptr);
      gpa = w === undefined || (w.pte & PTE_P) === 0 ? undefined : (w.pte & ~0xfff) + (ptr & 0xfff);
    }
    if (gpa === undefined || gpa >>> 12 >= this.guestPages) {
      this.crash(`page-table pointer 0x${ptr.toString(16)} is not in guest memory`);
      return undefined;
    }
    return (gpa & ~3) >>> 0;
  }

  // ---- shadow entries ------------------------------------------------------------------------

  /** Machine frame of a guest frame a guest entry maps: RAM, a device's BAR, or none. */
  private machineFrame(pfn: number): number | undefined {
    return pfn < this.guestPages ? this.mem.mfn(pfn) : this.devices.machineFrame(pfn);
  }

  /**
   * The shadow of guest table entry `pte`: present and writable as the guest's says, accessed
   * and dirty already (the guest's A and D are not tracked: a read of an entry the shadow maps
   * says accessed, and dirty if writable — pageTableRead).
   */
  private shadowEntry(pte: number): number {
    if ((pte & PTE_P) === 0) return 0;
    const m = this.machineFrame(pte >>> 12);
    if (m === undefined) return 0;
    const dirty = (pte & PTE_RW) !== 0 ? PTE_D : 0;
    return ((m << 12) | (pte & (PTE_P | PTE_RW | PTE_US | PTE_CACHE)) | PTE_A | dirty) >>> 0;
  }

  /**
   * The shadow table of guest table `pfn`, made from the pool if it has none, every entry
   * made from the guest's (the hypervisor validates them when a directory first links it).
   */
  private tableFor(pfn: number): number | undefined {
    let s = this.tables.get(pfn);
    if (s !== undefined) return s;
    s = this.allocate();
    if (s === undefined) return undefined;
    this.tables.set(pfn, s);
    const base = this.mem.mfn(s) * 4096;
    const from = pfn * 4096;
    for (let k = 0; k < 1024; k++) {
      const e = this.shadowEntry(this.guestRead(from + k * 4));
      if (e !== 0) this.mem.view.setUint32(base + k * 4, e, true);
    }
    return s;
  }

  /** A pool frame, zeroed; undefined when the pool is empty. */
  private allocate(): number | undefined {
    const pfn = this.free.pop();
    if (pfn === undefined) {
      this.ranOut = true;
      return undefined;
    }
    const at = this.mem.mfn(pfn) * 4096;
    this.mem.xen.machine.ram.fill(0, at, at + 4096);
    this.counters.tablesMade++;
    return pfn;
  }

  /** The shadow directory slot for guest directory entry `pde`; undefined: the pool is empty. */
  private slotEntry(pde: number): number | undefined {
    if ((pde & PTE_P) === 0 || pde >>> 12 >= this.guestPages) return 0;
    const s = this.tableFor(pde >>> 12);
    if (s === undefined) return undefined;
    return ((this.mem.mfn(s) << 12) | (pde & (PTE_P | PTE_RW | PTE_US | PTE_CACHE)) | PTE_A) >>> 0;
  }

  /**
   * The shadow directory of guest directory `g`, made (slots linked, pinned) if it has none;
   * else its slots compared with the guest's and the changed ones made again.
   */
  private directoryFor(g: number): ShadowDirectory | undefined {
    const d = this.directories.get(g);
    const gbase = g * 4096;
    if (d !== undefined) {
      for (let k = 0; k < WINDOW_SLOT; k++)
        if (!this.makeSlot(d, k, this.guestRead(gbase + k * 4), false)) return undefined;
      return this.flush() ? d : undefined;
    }
    const pfn = this.allocate();
    if (pfn === undefined) return undefined;
    const made = new Int32Array(WINDOW_SLOT);
    const base = this.mem.mfn(pfn) * 4096;
    const view = this.mem.view;
    // A frame of the VMM's that is no table yet: written, then validated as a whole by the pin.
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const pde = this.guestRead(gbase + k * 4);
      const e = this.slotEntry(pde);
      if (e === undefined) {
        this.free.push(pfn);
        return undefined;
      }
      if (e !== 0) made[k] = pde;
      view.setUint32(base + k * 4, e, true);
    }
    view.setUint32(
      base + WINDOW_SLOT * 4,
      ((this.mem.mfn(this.mem.windowL1Pfn) << 12) | PTE_P | PTE_RW | PTE_A) >>> 0,
      true,
    );
    const r = this.mmuext(MmuExt.PIN_L2_TABLE, this.mem.mfn(pfn));
    if (r !== 0) {
      this.crash(`shadow of page directory 0x${gbase.toString(16)} failed validation (${r})`);
      return undefined;
    }
    const made2 = { pfn, made };
    this.directories.set(g, made2);
    return made2;
  }

  /** Drops every shadow (the pool ran out): unpinned, their frames back in the pool. */
  private dropAll(): void {
    this.counters.poolFlushes++;
    this.queue = [];
    for (const t of this.tables.values()) {
      const base = this.mem.mfn(t) * 4096;
      for (let k = 0; k < 1024; k++) this.keepDirty(base + k * 4);
    }
    // Off the shadows first: the initial space (kept pinned for this) is the base meanwhile.
    this.mmuext(MmuExt.NEW_BASEPTR, this.mem.mfn(this.mem.initL2Pfn));
    for (const d of this.directories.values()) this.mmuext(MmuExt.UNPIN_TABLE, this.mem.mfn(d.pfn));
    this.directories.clear();
    this.tables.clear();
    this.resetPool();
  }

  /** `make`, once more after dropping every shadow if the pool ran out; undefined: it did not fit. */
  private withPool<T>(make: () => T | undefined): T | undefined {
    const first = make();
    if (first !== undefined) return first;
    this.dropAll();
    return this.fitted(make());
  }

  /**
   * `made` after every shadow was dropped: undefined because the pool ran out means it cannot
   * hold one address space, which stops the domain with a line that says so.
   */
  private fitted<T>(made: T | undefined): T | undefined {
    if (made === undefined && this.ranOut)
      this.crash(
        `the shadow page-table pool is too small: its ${this.mem.shadowPoolPages} frames do not ` +
          `hold the shadows of one address space (its directory and the tables in use)`,
      );
    return made;
  }

  /** The pool ran out: every shadow dropped, the current directory's made again as the base. */
  private outOfPool(): void {
    this.dropAll();
    this.switchBase();
  }

  /** The current guest directory's shadow as the base again (after dropAll). */
  private switchBase(): void {
    const d =
      this.directories.get(this.currentL2) ?? this.fitted(this.directoryFor(this.currentL2));
    if (d === undefined) return;
    const r = this.mmuext(MmuExt.NEW_BASEPTR, this.mem.mfn(d.pfn));
    if (r !== 0) this.crash(`new base pointer refused (${r})`);
  }

  /** Makes the shadow of the guest table entry at `gpa` again, where it has a shadow. */
  private remake(gpa: number): void {
    const s = this.tables.get(gpa >>> 12);
    if (s === undefined) return;
    const maddr = this.mem.mfn(s) * 4096 + (gpa & 0xffc);
    const e = this.shadowEntry(this.guestRead(gpa));
    if (this.mem.read32(maddr) === e) return;
    this.keepDirty(maddr);
    this.counters.entriesRemade++;
    this.queue.push({ maddr, value: e });
    this.flush();
  }

  /**
   * The shadow entry at `maddr` is about to be replaced or dropped: if the CPU marked its page
   * dirty, a dirty log's next harvest must still see that page (vmmWrote).
   */
  private keepDirty(maddr: number): void {
    const e = this.mem.read32(maddr);
    if ((e & (PTE_P | PTE_D)) !== (PTE_P | PTE_D)) return;
    const t = this.mem.m2p[e >>> 12];
    if (t >= 0 && t < this.guestPages) this.vmmWrote[t] = 1;
  }

  /** Sends the queued entry writes in mmu_update calls; false (crashed) if one was refused. */
  private flush(): boolean {
    if (this.queue.length === 0) return true;
    const batch = this.queue;
    this.queue = [];
    this.counters.pageTableUpdates += batch.length;
    const r = this.channel.mmuUpdate(batch);
    if (r !== 0) this.crash(`mmu_update of a shadow table refused (${r})`);
    return r === 0;
  }

  private mmuext(cmd: number, arg: number): number {
    return this.channel.mmuext(cmd, arg);
  }

  // ---- the backend's calls -------------------------------------------------------------------

  pageTableWrite(level: 1 | 2, ptr: number, value: number): void {
    const gpa = this.entryAddress(ptr);
    if (gpa === undefined) return;
    if (level === 1) {
      this.guestWrite(gpa, value);
      this.remake(gpa);
      return;
    }
    const k = (gpa & 0xfff) >>> 2;
    // The VMM's and the hypervisor's slots are not the guest's to change.
    if (k >= WINDOW_SLOT) return;
    this.guestWrite(gpa, value);
    const d = this.directories.get(gpa >>> 12);
    if (d === undefined) return;
    // Out of pool: every shadow dropped, this one is made again from the guest's when used.
    if (!this.makeSlot(d, k, value)) this.outOfPool();
  }

  /**
   * Slot `k` of shadow directory `d` made from guest directory entry `pde` if it was made from
   * another (A and D aside); sent at once unless `send` is false (then queued). False: the
   * pool is empty (nothing changed).
   */
  private makeSlot(d: ShadowDirectory, k: number, pde: number, send = true): boolean {
    const want = (pde & PTE_P) === 0 ? 0 : pde;
    if (((want ^ d.made[k]) & FOLLOWED) === 0) return true;
    const e = this.slotEntry(want);
    if (e === undefined) return false;
    this.counters.slotsRemade++;
    d.made[k] = want;
    this.queue.push({ maddr: this.mem.mfn(d.pfn) * 4096 + k * 4, value: e });
    return !send || this.flush();
  }

  pageTableRead(level: 1 | 2, ptr: number): number {
    const gpa = this.entryAddress(ptr);
    if (gpa === undefined) return 0;
    if (level === 2) return (gpa & 0xfff) >>> 2 >= WINDOW_SLOT ? 0 : this.guestRead(gpa);
    return this.withShadowBits(gpa);
  }

  /** The guest's entry at `gpa`, accessed (and dirty, if writable) where a shadow maps it. */
  private withShadowBits(gpa: number): number {
    const e = this.guestRead(gpa);
    const s = this.tables.get(gpa >>> 12);
    if (s === undefined || (e & PTE_P) === 0) return e;
    const shadow = this.mem.read32(this.mem.mfn(s) * 4096 + (gpa & 0xffc));
    const dirty = (shadow & GUEST_D) !== 0 ? PTE_D : 0;
    return (e | (shadow & (PTE_A | PTE_D)) | dirty) >>> 0;
  }

  pageTableTestClear(ptr: number): number {
    const gpa = this.entryAddress(ptr);
    if (gpa === undefined) return 0;
    const old = this.withShadowBits(gpa);
    this.guestWrite(gpa, 0);
    this.remake(gpa);
    return old;
  }

  loadCr3(cr3: number): void {
    const g = cr3 >>> 12;
    if (g >= this.guestPages) {
      this.crash(`CR3 0x${cr3.toString(16)} is outside guest memory`);
      return;
    }
    const previous = this.currentL2;
    this.currentL2 = g;
    const d = this.withPool(() => this.directoryFor(g));
    if (d === undefined) {
      this.currentL2 = previous;
      return;
    }
    const r = this.mmuext(MmuExt.NEW_BASEPTR, this.mem.mfn(d.pfn));
    if (r !== 0) this.crash(`new base pointer refused (${r})`);
  }

  /** Paging on: the guest's tables are used as they are; the initial space stays pinned. */
  enablePaging(cr3: number): void {
    this.pagingOn = true;
    this.cpu.invalidateAllCode();
    this.loadCr3(cr3);
  }

  invlpg(linear: number): void {
    const w = this.walk(linear);
    if (w !== undefined) this.remake(w.pteAt);
    this.mmuext(MmuExt.INVLPG_LOCAL, linear);
  }

  /**
   * A page fault at `va` (error code `errorCode`): if the guest's tables allow the access and
   * the shadow did not say so (an entry changed without an annotated write), the shadow entry
   * is made again and true returned: retry. False: the guest's own fault.
   */
  resolveFault(va: number, errorCode: number): boolean {
    if (!this.pagingOn) return false;
    const w = this.walk(va);
    if (w === undefined || (w.pte & PTE_P) === 0) return false;
    const user = (errorCode & 4) !== 0;
    const write = (errorCode & 2) !== 0;
    const rights = w.pde & w.pte;
    if ((user && (rights & PTE_US) === 0) || (write && (rights & PTE_RW) === 0)) return false;
    const d = this.directories.get(this.currentL2);
    if (d === undefined) return false;
    // The slot as the guest's directory entry says (made again if the entry changed unseen).
    if (!this.makeSlot(d, va >>> 22, w.pde)) {
      this.outOfPool();
      return true;
    }
    const s = this.tables.get(w.pde >>> 12);
    if (s === undefined) return false;
    const e = this.shadowEntry(w.pte);
    const old = this.mem.read32(this.mem.mfn(s) * 4096 + (w.pteAt & 0xffc));
    // Nothing to change: the fault is not the shadow's (retrying would loop).
    if (e === 0 || ((old ^ e) & FOLLOWED) === 0) return false;
    this.keepDirty(this.mem.mfn(s) * 4096 + (w.pteAt & 0xffc));
    this.counters.shadowFills++;
    this.counters.pageTableUpdates++;
    const r = this.channel.hypercall(Hypercall.update_va_mapping, [va & ~0xfff, e, 0, UVMF_INVLPG]);
    if (r !== 0) {
      this.crash(`update_va_mapping of a shadow entry refused (${r})`);
      return false;
    }
    return true;
  }

  // ---- live migration (migrate.ts) -----------------------------------------------------------

  /**
   * Where the guest's page tables are: CR3's directory and the tables it links, in guest frames.
   * Not every directory that has a shadow: one of a process that is gone may be a data page
   * again. Nothing else is needed where the guest goes (the destination's shadows, or l4's
   * spaces, are made again from the guest's tables as they are loaded), and no single entries:
   * the guest's writes went to its own tables, plain guest memory here.
   */
  migrationTables(): PageTableMap {
    if (!this.pagingOn || this.currentL2 < 0) return { directories: [], tables: [], entries: [] };
    const d = this.currentL2;
    const tables = new Set<number>();
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const pde = this.guestRead(d * 4096 + k * 4);
      const t = pde >>> 12;
      if ((pde & PTE_P) !== 0 && t < this.guestPages && t !== d) tables.add(t);
    }
    return { directories: [d], tables: [...tables].sort((a, b) => a - b), entries: [] };
  }

  /**
   * The copy of guest memory as it goes out: already guest-physical, so as it is. (The guest's
   * directories never map the window's slots: the VMM keeps them out of its writes.)
   */
  canonicalize(): void {}

  /**
   * A migration's dirty log (../../dirty.ts): every guest frame a shadow entry maps with its
   * dirty bit set was written since the last harvest (or since the entry was made: a new one is
   * made dirty if writable, so it counts once more than it must, never less), and every frame
   * the VMM wrote itself (an annotated entry write goes to the guest's table, plain memory, past
   * every page table); marked in `into`,
   * the bit cleared through mmu_update with GUEST_D kept in its place (so an annotated read
   * still says dirty, withShadowBits), then the TLB flushed, so that the next write sets it.
   */
  harvestDirty(into: Uint8Array | undefined): void {
    for (const s of this.tables.values()) {
      harvestTable(this.mem, this.mem.mfn(s), this.guestPages, into, this.queue);
    }
    if (into !== undefined) for (let f = 0; f < this.guestPages; f++) into[f] |= this.vmmWrote[f];
    this.vmmWrote.fill(0);
    this.flush();
    this.mmuext(MmuExt.TLB_FLUSH_LOCAL, 0);
  }

  /**
   * A migrated guest's memory is in place, its tables as it wrote them: paging on at `cr3`,
   * whose shadow is made now (the others' when they are loaded). One line if refused.
   */
  adoptTables(map: PageTableMap, cr3: number): string | undefined {
    const frames = [...map.directories, ...map.tables];
    if (frames.some((f) => f < 0 || f >= this.guestPages) || cr3 >>> 12 >= this.guestPages)
      return 'a page table outside guest memory';
    this.pagingOn = true;
    this.cpu.invalidateAllCode();
    this.loadCr3(cr3);
    if (this.currentL2 !== cr3 >>> 12 || !this.directories.has(cr3 >>> 12))
      return 'the base page directory was refused';
    return undefined;
  }

  /** A byte of guest memory at `linear` through the guest's own tables (undefined: unmapped). */
  readGuestByte(linear: number): number | undefined {
    linear >>>= 0;
    let gpa = linear;
    if (this.pagingOn) {
      const w = this.walk(linear);
      if (w === undefined || (w.pte & PTE_P) === 0) return undefined;
      gpa = ((w.pte & ~0xfff) + (linear & 0xfff)) >>> 0;
    }
    if (gpa >>> 12 >= this.guestPages) return undefined;
    return this.mem.xen.machine.ram[this.mem.mfn(gpa >>> 12) * 4096 + (gpa & 0xfff)];
  }
}
