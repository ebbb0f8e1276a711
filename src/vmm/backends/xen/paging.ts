/**
 * Direct paging, as the original's Xen back end: the guest's page tables are real, their entries
 * hold machine addresses. Every write of a live table is a checked mmu_update; frames become page
 * tables only after every writable mapping of them is made read-only (the guest's intended RW is
 * kept in an available PTE bit); directories are pinned when first loaded into CR3 and unpinned
 * when the guest writes to them again (it freed them); the first CR3 load converts the boot
 * tables, which are initialised data holding guest-physical addresses.
 */
import {
  Hypercall,
  MmuExt,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  UVMF_INVLPG,
} from '../../../hypervisor/xen/abi.ts';
import { runLengthEncode, runLengthRestore } from '../../../machine/runLength.ts';
import { arrayOf, bool, num, shape, StateError, type Check } from '../../../machine/state.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import type { PageTableMap } from '../../migration.ts';
import { WINDOW_SLOT } from '../../window.ts';
import type { HypercallChannel } from './channel.ts';
import type { DomainMemory } from './layout.ts';

/** An available PTE bit (SDM 3A Table 4-6, bits 9–11): the guest wants this mapping writable. */
const GUEST_RW = 0x200;
/**
 * Another available bit: the guest's own dirty bit while a migration's dirty log clears the real
 * one (harvestDirty); the guest sees it as its dirty bit (toGuest).
 */
export const GUEST_D = 0x400;
/** Entries `written` holds before the ones no longer as written are dropped. */
const WRITTEN_LIMIT = 1 << 18;

interface PendingUpdate {
  maddr: number;
  value: number;
}

/** Counters of the backend's own work (hypercall counts are the hypervisor's). */
export type XenBackendCounters = {
  /** Page-table entries written through mmu_update / update_va_mapping. */
  pageTableUpdates: number;
  /** Writes to page-table frames that were not live (plain memory writes). */
  plainEntryWrites: number;
  /** Writable mappings made read-only because their frame became a page table. */
  writeProtections: number;
  /** Write faults on such mappings the VMM resolved (the frame was no longer a table). */
  writeFaultsFixed: number;
  pins: number;
  unpins: number;
};

/**
 * Direct paging in a snapshot: which guest frames are live tables and the writable mappings the
 * VMM wrote (the queue and the frames being prepared are empty between two VMM calls).
 */
export interface DirectPagingState {
  counters: XenBackendCounters;
  initialActive: boolean;
  pinnedL2: number[];
  /** Run-length encoded (runLength.ts), one count per domain frame. */
  l1Links: number[];
  rmap: [number, PendingUpdate[]][];
  currentL2: number;
}

const DIRECT_PAGING: Check = shape<DirectPagingState>({
  counters: shape<XenBackendCounters>({
    pageTableUpdates: num,
    plainEntryWrites: num,
    writeProtections: num,
    writeFaultsFixed: num,
    pins: num,
    unpins: num,
  }),
  initialActive: bool,
  pinnedL2: arrayOf(num),
  l1Links: arrayOf(num),
  rmap: arrayOf((v, path) => {
    if (!Array.isArray(v) || v.length !== 2)
      throw new StateError(`${path}: expected [frame, mappings]`);
    num(v[0], `${path}[0]`);
    arrayOf(shape<PendingUpdate>({ maddr: num, value: num }))(v[1], `${path}[1]`);
  }),
  currentL2: num,
});

/** Frames of passed-through device memory: the guest's (virtual BAR) and the machine's. */
export interface DeviceFrames {
  machineFrame(guestFrame: number): number | undefined;
  guestFrame(machineFrame: number): number | undefined;
}

export class DirectPaging {
  readonly counters: XenBackendCounters = {
    pageTableUpdates: 0,
    plainEntryWrites: 0,
    writeProtections: 0,
    writeFaultsFixed: 0,
    pins: 0,
    unpins: 0,
  };
  private readonly m2p: Int32Array;
  private readonly guestPages: number;
  private initialActive = true;
  private readonly pinnedL2 = new Set<number>();
  private readonly l1Links: Int32Array;
  private readonly preparing = new Set<number>();
  /** Writable mappings the VMM wrote, by target frame: entry machine address and value. */
  private readonly rmap = new Map<number, PendingUpdate[]>();
  private queue: PendingUpdate[] = [];
  private currentL2 = -1;
  /**
   * Every entry the guest wrote through the VMM, by machine address: its machine-format value
   * then; the directory entries among them (a migration finds tables being built by these).
   */
  private readonly written = new Map<number, number>();
  private readonly writtenL2 = new Set<number>();
  private writtenLimit = WRITTEN_LIMIT;

  constructor(
    private readonly mem: DomainMemory,
    private readonly channel: HypercallChannel,
    private readonly cpu: Cpu,
    private readonly devices: DeviceFrames,
    private readonly crash: (message: string) => void,
    domainMb: number,
  ) {
    this.m2p = mem.m2p;
    this.guestPages = mem.guestPages;
    this.l1Links = new Int32Array(domainMb * 256);
  }

  save(): DirectPagingState {
    return {
      counters: { ...this.counters },
      initialActive: this.initialActive,
      pinnedL2: [...this.pinnedL2],
      l1Links: runLengthEncode(this.l1Links),
      rmap: [...this.rmap].map(([pfn, list]) => [pfn, list.map((u) => ({ ...u }))]),
      currentL2: this.currentL2,
    };
  }

  restore(s: DirectPagingState, path: string): void {
    DIRECT_PAGING(s, path);
    runLengthRestore(s.l1Links, this.l1Links, `${path}.l1Links`);
    Object.assign(this.counters, s.counters);
    this.initialActive = s.initialActive;
    this.pinnedL2.clear();
    for (const f of s.pinnedL2) this.pinnedL2.add(f);
    this.rmap.clear();
    for (const [pfn, list] of s.rmap)
      this.rmap.set(
        pfn,
        list.map((u) => ({ ...u })),
      );
    this.queue = [];
    this.preparing.clear();
    this.currentL2 = s.currentL2;
  }

  private mfn(pfn: number): number {
    return this.mem.mfn(pfn);
  }

  private read32(maddr: number): number {
    return this.mem.read32(maddr);
  }

  /** Is this guest frame a live page table (or about to become one)? */
  private live(pfn: number): boolean {
    return this.pinnedL2.has(pfn) || this.l1Links[pfn] > 0 || this.preparing.has(pfn);
  }

  /** Machine address of the entry the guest's pointer names (through the current tables). */
  private entryAddress(ptr: number): number | undefined {
    const maddr = this.cpu.translate(ptr >>> 0, 0, false);
    const pfn = this.m2p[maddr >>> 12];
    if (pfn < 0 || pfn >= this.guestPages) {
      this.crash(`page-table pointer 0x${(ptr >>> 0).toString(16)} is not in guest memory`);
      return undefined;
    }
    return maddr & ~3;
  }

  pageTableWrite(level: 1 | 2, ptr: number, value: number): void {
    const maddr = this.entryAddress(ptr);
    if (maddr === undefined) return;
    if (level === 2) this.pgdSet(maddr, value >>> 0);
    else this.pteSet(maddr, value >>> 0);
    this.written.set(maddr, this.read32(maddr));
    if (level === 2) this.writtenL2.add(maddr);
    if (this.written.size > this.writtenLimit) this.pruneWritten();
  }

  /** Forgets the entries no longer as written (their frame is data again), so the map stays small. */
  private pruneWritten(): void {
    const ad = ~(PTE_A | PTE_D | GUEST_D);
    for (const [maddr, value] of this.written)
      if (((this.read32(maddr) ^ value) & ad) !== 0) {
        this.written.delete(maddr);
        this.writtenL2.delete(maddr);
      }
    this.writtenLimit = Math.max(WRITTEN_LIMIT, this.written.size * 2);
  }

  pageTableRead(level: 1 | 2, ptr: number): number {
    const maddr = this.entryAddress(ptr);
    if (maddr === undefined) return 0;
    if (level === 2 && (maddr & 0xfff) >>> 2 >= WINDOW_SLOT) return 0;
    return this.toGuest(this.read32(maddr));
  }

  pageTableTestClear(ptr: number): number {
    const maddr = this.entryAddress(ptr);
    if (maddr === undefined) return 0;
    const old = this.read32(maddr);
    this.writeEntry(maddr, 0);
    this.flush();
    return this.toGuest(old);
  }

  /** A machine-format entry as the guest wrote it: pseudo-physical frame, its intended RW. */
  private toGuest(e: number): number {
    if ((e & PTE_P) === 0) return e >>> 0;
    // A frame outside the guest's RAM (a device's): the device frames know it, if anyone does.
    const own = this.m2p[e >>> 12];
    const pfn = own !== undefined && own >= 0 ? own : this.devices.guestFrame(e >>> 12);
    if (pfn !== undefined && pfn >= 0) e = (pfn << 12) | (e & 0xfff);
    if ((e & GUEST_RW) !== 0) e = (e | PTE_RW) & ~GUEST_RW;
    if ((e & GUEST_D) !== 0) e = (e | PTE_D) & ~GUEST_D;
    return e >>> 0;
  }

  /** A guest-format L1 entry in machine format; writable only if its frame is no table. */
  private toMachine(value: number, entryMaddr: number): number {
    if ((value & PTE_P) === 0) return value;
    const t = value >>> 12;
    // GUEST-CONTROLLED: a frame beyond guest memory is device memory: a passed-through BAR as
    // the guest placed it becomes the real one; anything else goes as it is and the hypervisor
    // refuses it unless it is granted device memory.
    if (t >= this.guestPages) {
      const real = this.devices.machineFrame(t);
      return real === undefined ? value : ((real << 12) | (value & 0xfff)) >>> 0;
    }
    let m = ((this.mfn(t) << 12) | (value & 0xfff)) >>> 0;
    if ((value & PTE_RW) !== 0) {
      if (this.live(t)) m = ((m & ~PTE_RW) | GUEST_RW) >>> 0;
      else this.rmapAdd(t, entryMaddr, m);
    }
    return m;
  }

  private pteSet(maddr: number, value: number): void {
    this.writeEntry(maddr, this.toMachine(value, maddr));
    this.flush();
  }

  private pgdSet(maddr: number, value: number): void {
    // The VMM's and the hypervisor's slots are not the guest's to change.
    if ((maddr & 0xfff) >>> 2 >= WINDOW_SLOT) return;
    const l2 = this.m2p[maddr >>> 12];
    let m = value;
    const t = (value & PTE_P) !== 0 ? value >>> 12 : -1;
    if (t >= 0) {
      if (t >= this.guestPages) {
        this.crash(`page-directory entry 0x${value.toString(16)} points outside guest memory`);
        return;
      }
      m = ((this.mfn(t) << 12) | (value & 0xfff)) >>> 0;
    }
    if (!this.pinnedL2.has(l2)) {
      this.writeEntry(maddr, m);
      return;
    }
    const old = this.read32(maddr);
    const oldT = (old & PTE_P) !== 0 ? this.m2p[old >>> 12] : -1;
    if (t >= 0) {
      const wasLive = this.live(t);
      this.l1Links[t]++;
      if (!wasLive) this.makeTables([t], []);
    }
    this.writeEntry(maddr, m);
    this.flush();
    if (oldT >= 0) this.l1Links[oldT]--;
  }

  private writeEntry(maddr: number, value: number): void {
    const pfn = this.m2p[maddr >>> 12];
    if (this.live(pfn) || pfn >= this.guestPages) {
      this.queue.push({ maddr, value: value >>> 0 });
    } else {
      this.counters.plainEntryWrites++;
      this.cpu.writePhysical(maddr, 4, value >>> 0);
    }
  }

  /** Sends the queued entry writes in mmu_update calls. */
  private flush(): void {
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.counters.pageTableUpdates += batch.length;
    const r = this.channel.mmuUpdate(batch);
    if (r !== 0) this.crash(`mmu_update refused (${r})`);
  }

  private mmuext(cmd: number, arg: number): number {
    return this.channel.mmuext(cmd, arg);
  }

  private rmapAdd(target: number, maddr: number, value: number): void {
    let list = this.rmap.get(target);
    if (list === undefined) this.rmap.set(target, (list = []));
    list.push({ maddr, value });
  }

  /**
   * Frames become page tables: L1s (`l1s`, whose entries are checked too) and an L2 (in
   * `others`). Every writable mapping of them the VMM knows is made read-only first (queued).
   */
  private makeTables(l1s: number[], others: number[]): void {
    const all = [...l1s, ...others];
    for (const f of all) this.preparing.add(f);
    // Their own entries may map one another (or other tables) writable: not any more.
    for (const f of l1s) {
      const base = this.mfn(f) * 4096;
      for (let k = 0; k < 1024; k++) {
        const e = this.read32(base + k * 4);
        if ((e & (PTE_P | PTE_RW)) !== (PTE_P | PTE_RW)) continue;
        const t = this.m2p[e >>> 12];
        if (t >= 0 && t < this.guestPages && this.live(t)) {
          this.mem.view.setUint32(base + k * 4, ((e & ~PTE_RW) | GUEST_RW) >>> 0, true);
        }
      }
    }
    for (const f of all) this.writeProtect(f);
    this.flush();
    for (const f of all) this.preparing.delete(f);
  }

  /** Makes every writable mapping of `pfn` the VMM wrote read-only. */
  private writeProtect(pfn: number): void {
    const list = this.rmap.get(pfn);
    if (list !== undefined) {
      for (const u of list) {
        const now = this.read32(u.maddr);
        // Only an entry still as the VMM wrote it (modulo A/D): the frame holding a stale record
        // may be ordinary data by now.
        const ad = PTE_A | PTE_D | GUEST_D;
        if ((now & ~ad) !== (u.value & ~ad)) continue;
        this.counters.writeProtections++;
        this.writeEntry(u.maddr, ((now & ~PTE_RW) | GUEST_RW) >>> 0);
      }
      this.rmap.delete(pfn);
    }
    if (this.initialActive) {
      const at = this.mem.initEntry(pfn);
      const e = this.read32(at);
      if ((e & PTE_RW) !== 0) this.queue.push({ maddr: at, value: (e & ~PTE_RW) >>> 0 });
    }
  }

  /** Pins an L2 (and so validates its L1s) after making them all read-only. */
  private pinL2(f: number): boolean {
    const base = this.mfn(f) * 4096;
    const newL1s: number[] = [];
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const e = this.read32(base + k * 4);
      if ((e & PTE_P) === 0) continue;
      const t = this.m2p[e >>> 12];
      if (t < 0 || t >= this.guestPages) {
        this.crash(
          `page directory 0x${(f * 4096).toString(16)} slot ${k} points outside guest memory`,
        );
        return false;
      }
      if (!this.live(t) && !newL1s.includes(t)) newL1s.push(t);
    }
    this.mem.view.setUint32(
      base + WINDOW_SLOT * 4,
      ((this.mfn(this.mem.windowL1Pfn) << 12) | PTE_P | PTE_RW | PTE_A) >>> 0,
      true,
    );
    this.makeTables(newL1s, [f]);
    const r = this.mmuext(MmuExt.PIN_L2_TABLE, this.mfn(f));
    if (r !== 0) {
      this.crash(`page directory 0x${(f * 4096).toString(16)} failed validation (${r})`);
      return false;
    }
    this.counters.pins++;
    this.pinnedL2.add(f);
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const e = this.read32(base + k * 4);
      if ((e & PTE_P) !== 0) this.l1Links[this.m2p[e >>> 12]]++;
    }
    return true;
  }

  private unpinL2(f: number): void {
    if (this.mmuext(MmuExt.UNPIN_TABLE, this.mfn(f)) !== 0) return;
    this.counters.unpins++;
    this.pinnedL2.delete(f);
    const base = this.mfn(f) * 4096;
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const e = this.read32(base + k * 4);
      if ((e & PTE_P) !== 0) this.l1Links[this.m2p[e >>> 12]]--;
    }
  }

  loadCr3(cr3: number): void {
    const f = cr3 >>> 12;
    if (f >= this.guestPages) {
      this.crash(`CR3 0x${cr3.toString(16)} is outside guest memory`);
      return;
    }
    if (!this.pinnedL2.has(f) && !this.pinL2(f)) return;
    const r = this.mmuext(MmuExt.NEW_BASEPTR, this.mfn(f));
    if (r !== 0) this.crash(`new base pointer refused (${r})`);
    this.currentL2 = f;
  }

  /**
   * Paging on: the tables at CR3 are initialised data with guest-physical addresses; convert
   * them to machine addresses in place, then load them as any CR3, and drop the initial space.
   */
  enablePaging(cr3: number): void {
    const f = cr3 >>> 12;
    if (f >= this.guestPages) {
      this.crash(`CR3 0x${cr3.toString(16)} is outside guest memory`);
      return;
    }
    const view = this.mem.view;
    const l2 = this.mfn(f) * 4096;
    const converted = new Set<number>();
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const e = this.read32(l2 + k * 4);
      if ((e & PTE_P) === 0) continue;
      const t = e >>> 12;
      if (t >= this.guestPages) {
        view.setUint32(l2 + k * 4, 0, true);
        continue;
      }
      if (!converted.has(t)) {
        converted.add(t);
        const l1 = this.mfn(t) * 4096;
        for (let j = 0; j < 1024; j++) {
          const pe = this.read32(l1 + j * 4);
          if ((pe & PTE_P) === 0) continue;
          const v = pe >>> 12 < this.guestPages ? this.toMachine(pe, l1 + j * 4) : 0;
          view.setUint32(l1 + j * 4, v, true);
        }
      }
      view.setUint32(l2 + k * 4, ((this.mfn(t) << 12) | (e & 0xfff)) >>> 0, true);
    }
    this.cpu.invalidateAllCode();
    this.loadCr3(cr3);
    // The initial address space is no longer needed: unpinning releases its tables.
    const init = this.mfn(this.mem.initL2Pfn);
    if (this.mem.xen.frames.pinned[init] !== 0) this.mmuext(MmuExt.UNPIN_TABLE, init);
    this.initialActive = false;
  }

  invlpg(linear: number): void {
    this.mmuext(MmuExt.INVLPG_LOCAL, linear);
  }

  /** A page fault the VMM resolves (true: retry): a write to a mapping it made read-only. */
  resolveFault(va: number, errorCode: number): boolean {
    return (errorCode & 3) === 3 && this.fixWriteFault(va);
  }

  /**
   * A write fault in a mapping the VMM made read-only (the guest wants it writable): the frame
   * is no page table any more (its last table reference went, or it is a pinned directory the
   * guest is reusing), so make the mapping writable again and retry. False: a real fault.
   */
  fixWriteFault(va: number): boolean {
    if (this.currentL2 < 0) return false;
    const pde = this.read32(this.mfn(this.currentL2) * 4096 + (va >>> 22) * 4);
    if ((pde & PTE_P) === 0) return false;
    const loc = (pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4;
    const e = this.read32(loc);
    if ((e & PTE_P) === 0 || (e & PTE_RW) !== 0 || (e & GUEST_RW) === 0) return false;
    const t = this.m2p[e >>> 12];
    if (t < 0 || t >= this.guestPages) return false;
    if (this.pinnedL2.has(t) && t !== this.currentL2) this.unpinL2(t);
    if (this.live(t)) return false;
    const value = ((e | PTE_RW) & ~GUEST_RW) >>> 0;
    this.counters.pageTableUpdates++;
    const r = this.channel.hypercall(Hypercall.update_va_mapping, [
      va & ~0xfff,
      value,
      0,
      UVMF_INVLPG,
    ]);
    if (r !== 0) return false;
    this.counters.writeFaultsFixed++;
    this.rmapAdd(t, loc, value);
    return true;
  }

  // ---- migration (../../migration.ts, migrate.ts) ------------------------------------------

  /**
   * The guest's page tables: the pinned directories, the tables they link, and the entries the
   * guest wrote elsewhere that still hold what it wrote (a table being built, plain memory).
   */
  migrationTables(): PageTableMap {
    const directories = [...this.pinnedL2].sort((a, b) => a - b);
    const dirs = new Set(directories);
    const tables: number[] = [];
    for (let f = 0; f < this.guestPages; f++)
      if (this.l1Links[f] > 0 && !dirs.has(f)) tables.push(f);
    const live = new Set([...directories, ...tables]);
    const entries: [number, 1 | 2][] = [];
    for (const [maddr, value] of this.written) {
      const pfn = this.m2p[maddr >>> 12];
      if (pfn < 0 || pfn >= this.guestPages || live.has(pfn)) continue;
      if (((this.read32(maddr) ^ value) & ~(PTE_A | PTE_D | GUEST_D)) !== 0) continue;
      entries.push([pfn * 4096 + (maddr & 0xfff), this.writtenL2.has(maddr) ? 2 : 1]);
    }
    return { directories, tables, entries };
  }

  /**
   * The copy of guest memory in `view` in guest-physical form: every entry of the tables and
   * the single entries written elsewhere canonicalised (machine frames to guest frames).
   */
  canonicalize(view: DataView, tables: PageTableMap): void {
    const frame = (f: number, level: 1 | 2): void => {
      for (let k = 0; k < 1024; k++) {
        const at = f * 4096 + k * 4;
        const e = view.getUint32(at, true);
        // The window's and the hypervisor's slots are no guest mapping (XS zeroes them too).
        const v = level === 2 && k >= WINDOW_SLOT ? 0 : this.canonicalEntry(e, level);
        view.setUint32(at, v, true);
      }
    };
    for (const d of tables.directories) frame(d, 2);
    for (const t of tables.tables) frame(t, 1);
    for (const [at, level] of tables.entries)
      view.setUint32(at, this.canonicalEntry(view.getUint32(at, true), level), true);
  }

  /** An entry in guest-physical form: a directory's (its frame) or a table's (toGuest). */
  canonicalEntry(e: number, level: 1 | 2): number {
    if (level === 1) return this.toGuest(e);
    if ((e & PTE_P) === 0) return e >>> 0;
    const pfn = this.m2p[e >>> 12];
    return pfn >= 0 && pfn < this.guestPages ? ((pfn << 12) | (e & 0xfff)) >>> 0 : 0;
  }

  /**
   * A migrated guest's page tables, in guest-physical form in the domain's memory: converted to
   * machine frames (mappings of the tables read-only, as toMachine makes them), every directory
   * pinned — so validated by the hypervisor — and `cr3` the base. One line if refused.
   */
  adoptTables(map: PageTableMap, cr3: number): string | undefined {
    const frames = [...map.directories, ...map.tables];
    if (frames.some((f) => f < 0 || f >= this.guestPages) || cr3 >>> 12 >= this.guestPages)
      return 'a page table outside guest memory';
    const view = this.mem.view;
    for (const f of frames) this.preparing.add(f);
    const directoryEntry = (at: number): boolean => {
      const e = this.read32(at);
      if ((e & PTE_P) === 0) return true;
      const t = e >>> 12;
      if (t >= this.guestPages) return false;
      view.setUint32(at, ((this.mfn(t) << 12) | (e & 0xfff)) >>> 0, true);
      return true;
    };
    const tableEntry = (at: number): void => {
      const e = this.read32(at);
      if ((e & PTE_P) !== 0) view.setUint32(at, this.toMachine(e, at), true);
    };
    for (const d of map.directories) {
      const base = this.mfn(d) * 4096;
      for (let k = 0; k < 1024; k++) {
        if (k >= WINDOW_SLOT) view.setUint32(base + k * 4, 0, true);
        else if (!directoryEntry(base + k * 4))
          return `page directory 0x${(d * 4096).toString(16)} slot ${k} points outside guest memory`;
      }
    }
    for (const t of map.tables) {
      const base = this.mfn(t) * 4096;
      for (let k = 0; k < 1024; k++) tableEntry(base + k * 4);
    }
    for (const [at, level] of map.entries) {
      if (at >>> 12 >= this.guestPages) return 'a page-table entry outside guest memory';
      const maddr = this.mfn(at >>> 12) * 4096 + (at & 0xffc);
      if (level === 2 && !directoryEntry(maddr)) return 'a directory entry outside guest memory';
      if (level === 1) tableEntry(maddr);
      this.written.set(maddr, this.read32(maddr));
      if (level === 2) this.writtenL2.add(maddr);
    }
    this.preparing.clear();
    for (const d of map.directories)
      if (!this.pinnedL2.has(d) && !this.pinL2(d)) return 'a page directory failed validation';
    this.cpu.invalidateAllCode();
    this.loadCr3(cr3);
    if (this.currentL2 !== cr3 >>> 12) return 'the base page directory was refused';
    const init = this.mfn(this.mem.initL2Pfn);
    if (this.mem.xen.frames.pinned[init] !== 0) this.mmuext(MmuExt.UNPIN_TABLE, init);
    this.initialActive = false;
    return undefined;
  }

  /**
   * A migration's dirty log (../../dirty.ts): every guest frame a live table maps with its
   * dirty bit set was written since the last harvest; marked in `into`, and the bit cleared
   * through mmu_update (the hypervisor validates it as any update), the guest's own dirty bit
   * kept in GUEST_D; then the TLB is flushed, so that the next write sets the bit again.
   */
  harvestDirty(into: Uint8Array | undefined): void {
    for (let f = 0; f < this.guestPages; f++) {
      if (this.l1Links[f] <= 0 || this.pinnedL2.has(f)) continue;
      harvestTable(this.mem, this.mfn(f), this.guestPages, into, this.queue);
    }
    this.flush();
    this.mmuext(MmuExt.TLB_FLUSH_LOCAL, 0);
  }
}

/**
 * One page table's share of a dirty harvest (DirectPaging's and ShadowPaging's harvestDirty):
 * each entry of the table in machine frame `mfn` that is present and dirty and maps a guest
 * frame marks that frame in `into` and is queued for mmu_update with its dirty bit cleared and
 * GUEST_D set in its place.
 */
export function harvestTable(
  mem: DomainMemory,
  mfn: number,
  guestPages: number,
  into: Uint8Array | undefined,
  queue: PendingUpdate[],
): void {
  const base = mfn * 4096;
  for (let k = 0; k < 1024; k++) {
    const e = mem.read32(base + k * 4);
    if ((e & (PTE_P | PTE_D)) !== (PTE_P | PTE_D)) continue;
    const t = mem.m2p[e >>> 12];
    if (t < 0 || t >= guestPages) continue;
    if (into !== undefined) into[t] = 1;
    queue.push({ maddr: base + k * 4, value: ((e & ~PTE_D) | GUEST_D) >>> 0 });
  }
}
