/**
 * Machine frames and the page-table rules that keep domains apart (shared/reference/xen-pv.md,
 * "Page-table safety"; Xen's xen/arch/x86/mm.c get_page_type / mod_l1_entry / mod_l2_entry).
 *
 * Every machine frame has an owner (a domain, the hypervisor, or nobody) and a type with a type
 * count: none, level-1 page table, level-2 page table, or writable. The type changes only at
 * count zero, so a frame is never a page table and writable at the same time:
 * - a present L1 entry with RW takes a writable type reference on its frame;
 * - a present L2 entry takes an L1 type reference on the frame it points to;
 * - pinning takes a type reference, and so does being the base pointer (CR3).
 * Taking the first L1/L2 reference validates the whole table (every present entry must point to
 * a frame the domain owns, writable entries only to frames that are not page tables, no PSE);
 * dropping the last one releases the references its entries held. Changing an entry of a
 * validated table goes through `updateEntry`, which revalidates when the frame, P, RW or PSE bit
 * changes. Invariants are checked from scratch by `audit` (tests, fuzzer).
 */
import { runLengthEncode, runLengthRestore } from '../../machine/runLength.ts';
import { StateError } from '../../machine/state.ts';
import { Errno, HYPERVISOR_SLOT, PTE_P, PTE_PAT, PTE_PSE, PTE_REVALIDATE, PTE_RW } from './abi.ts';

export const FrameType = { none: 0, l1: 1, l2: 2, writable: 3 } as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Owner values that are not domain ids. */
export const OWNER_FREE = -1;
export const OWNER_XEN = -2;

/** What the frame table needs from the machine: page-table words and the TLB. */
export interface FrameMemory {
  read32(maddr: number): number;
  write32(maddr: number, value: number): void;
  /** The CPU's TLB-flush count: an epoch, so a stale writable translation can be detected. */
  tlbEpoch(): number;
  flushTlb(): void;
  /** Charge the simulated clock for scanned entries. */
  charge(cycles: number): void;
}

/** A domain as the frame table sees it: its id and the machine I/O memory it was granted. */
export interface FrameOwner {
  readonly id: number;
  /** True if the domain may map this frame beyond RAM (a device's MMIO, see devices.ts). */
  mayMapIoFrame(mfn: number): boolean;
  /** Frames on which something else than page tables holds type references (grants). */
  extraTypeReferences?(): number[];
}

/** 0 for success, or a negative errno (abi.ts Errno). */
export type Status = number;

/** The frame table in a snapshot: every per-frame array run-length encoded (runLength.ts). */
export interface FrameTableState {
  frames: number;
  owner: number[];
  type: number[];
  typeCount: number[];
  pinned: number[];
  noPageTable: number[];
  writableGone: number[];
  hypervisorPde: number;
}

export class FrameTable {
  readonly owner: Int32Array;
  readonly type: Uint8Array;
  readonly typeCount: Int32Array;
  readonly pinned: Uint8Array;
  /** Frames the hypervisor itself writes (shared info, console ring): never a page table. */
  readonly noPageTable: Uint8Array;
  /** TLB epoch at which the frame's last writable mapping went away. */
  private readonly writableGone: Float64Array;
  /** Page-directory entry the hypervisor puts in slot HYPERVISOR_SLOT of every validated L2. */
  hypervisorPde = 0;

  constructor(
    readonly frames: number,
    private readonly mem: FrameMemory,
    private readonly perEntryScanCost: number,
  ) {
    this.owner = new Int32Array(frames).fill(OWNER_FREE);
    this.type = new Uint8Array(frames);
    this.typeCount = new Int32Array(frames);
    this.pinned = new Uint8Array(frames);
    this.noPageTable = new Uint8Array(frames);
    this.writableGone = new Float64Array(frames).fill(-1);
  }

  save(): FrameTableState {
    return {
      frames: this.frames,
      owner: runLengthEncode(this.owner),
      type: runLengthEncode(this.type),
      typeCount: runLengthEncode(this.typeCount),
      pinned: runLengthEncode(this.pinned),
      noPageTable: runLengthEncode(this.noPageTable),
      writableGone: runLengthEncode(this.writableGone),
      hypervisorPde: this.hypervisorPde,
    };
  }

  /** Restores a saved table of the same size (a StateError naming the field if it does not fit). */
  restore(state: FrameTableState, path: string): void {
    if (state?.frames !== this.frames)
      throw new StateError(
        `${path}.frames: the snapshot's table has ${String(state?.frames)} frames, this one ${this.frames}`,
      );
    for (const [name, into] of [
      ['owner', this.owner],
      ['type', this.type],
      ['typeCount', this.typeCount],
      ['pinned', this.pinned],
      ['noPageTable', this.noPageTable],
      ['writableGone', this.writableGone],
    ] as const)
      runLengthRestore(state[name], into, `${path}.${name}`);
    this.hypervisorPde = state.hypervisorPde >>> 0;
  }

  /**
   * Takes `count` free frames for `owner`, lowest first; with `contiguous`, the lowest run of
   * `count` free frames in a row (a domain whose memory tools see as one array). Undefined if
   * there are not enough. On a table nothing was ever freed in, both give the same frames.
   */
  allocate(owner: number, count: number, contiguous = false): number[] | undefined {
    const out: number[] = [];
    for (let mfn = 0; mfn < this.frames && out.length < count; mfn++) {
      if (this.owner[mfn] === OWNER_FREE) out.push(mfn);
      else if (contiguous) out.length = 0;
    }
    if (out.length < count) return undefined;
    for (const mfn of out) this.owner[mfn] = owner;
    return out;
  }

  /**
   * Gives a frame back to the allocator (a destroyed domain's, destroy.ts): no owner, no type,
   * not pinned. The caller has dropped every reference to it first (its tables released, the
   * grants of it gone), so its type count is 0 here while the invariants hold.
   */
  free(mfn: number): void {
    this.owner[mfn] = OWNER_FREE;
    this.type[mfn] = FrameType.none;
    this.typeCount[mfn] = 0;
    this.pinned[mfn] = 0;
    this.noPageTable[mfn] = 0;
  }

  ownedBy(dom: FrameOwner, mfn: number): boolean {
    return mfn >= 0 && mfn < this.frames && this.owner[mfn] === dom.id;
  }

  // ---- type references -----------------------------------------------------------------

  /** get_page_type: one more reference of type `t`; validates an L1/L2 on its first one. */
  getType(dom: FrameOwner, mfn: number, t: FrameTypeValue): Status {
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    const isTable = t === FrameType.l1 || t === FrameType.l2;
    if (this.typeCount[mfn] === 0) {
      if (isTable && this.noPageTable[mfn] !== 0) return -Errno.EINVAL;
      // The type is set before validation, so a table cannot reference itself as an L1 or map
      // itself writable while it is being validated.
      this.type[mfn] = t;
      this.typeCount[mfn] = 1;
      if (isTable) {
        const r = t === FrameType.l1 ? this.validateL1(dom, mfn) : this.validateL2(dom, mfn);
        if (r !== 0) {
          this.type[mfn] = FrameType.none;
          this.typeCount[mfn] = 0;
          return r;
        }
        // A writable translation of this frame may still sit in the TLB if no flush happened
        // since its last writable mapping went away (the lesson of XSA-286): flush now.
        if (this.writableGone[mfn] === this.mem.tlbEpoch()) this.mem.flushTlb();
      }
      return 0;
    }
    if (this.type[mfn] !== t) return -Errno.EINVAL;
    if (this.typeCount[mfn] >= 0x3fffffff) return -Errno.EBUSY;
    this.typeCount[mfn]++;
    return 0;
  }

  /** put_page_type: drops a reference; the last one of a table releases what its entries held. */
  putType(mfn: number): void {
    if (this.typeCount[mfn] <= 0) return; // cannot happen while the invariants hold
    if (--this.typeCount[mfn] !== 0) return;
    const t = this.type[mfn];
    if (t === FrameType.l1) this.releaseTable(mfn, 1024, (e) => this.putL1Entry(e));
    else if (t === FrameType.l2) this.releaseTable(mfn, HYPERVISOR_SLOT, (e) => this.putL2Entry(e));
    else if (t === FrameType.writable) this.writableGone[mfn] = this.mem.tlbEpoch();
    this.type[mfn] = FrameType.none;
  }

  private releaseTable(mfn: number, entries: number, put: (e: number) => void): void {
    this.mem.charge(entries * this.perEntryScanCost);
    const base = mfn * 4096;
    for (let i = 0; i < entries; i++) put(this.mem.read32(base + i * 4));
  }

  private validateL1(dom: FrameOwner, mfn: number): Status {
    return this.validateTable(dom, mfn, 1024, this.getL1Entry, this.putL1Entry);
  }

  private validateL2(dom: FrameOwner, mfn: number): Status {
    const r = this.validateTable(dom, mfn, HYPERVISOR_SLOT, this.getL2Entry, this.putL2Entry);
    // SAFETY: the hypervisor's slot is always the hypervisor's, whatever the guest left there.
    if (r === 0) this.mem.write32(mfn * 4096 + HYPERVISOR_SLOT * 4, this.hypervisorPde);
    return r;
  }

  private validateTable(
    dom: FrameOwner,
    mfn: number,
    entries: number,
    get: (dom: FrameOwner, e: number) => Status,
    put: (e: number) => void,
  ): Status {
    this.mem.charge(entries * this.perEntryScanCost);
    const base = mfn * 4096;
    for (let i = 0; i < entries; i++) {
      const r = get.call(this, dom, this.mem.read32(base + i * 4));
      if (r !== 0) {
        for (let j = 0; j < i; j++) put.call(this, this.mem.read32(base + j * 4));
        return r;
      }
    }
    return 0;
  }

  // ---- entries -------------------------------------------------------------------------

  /** The references a present L1 entry holds: its frame owned (or granted I/O), RW → writable. */
  private getL1Entry(dom: FrameOwner, pte: number): Status {
    if ((pte & PTE_P) === 0) return 0;
    // PAT (bit 7) selects memory types the guest has no business choosing.
    if ((pte & PTE_PAT) !== 0) return -Errno.EINVAL;
    const mfn = pte >>> 12;
    if (mfn >= this.frames) return dom.mayMapIoFrame(mfn) ? 0 : -Errno.EPERM;
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    return (pte & PTE_RW) !== 0 ? this.getType(dom, mfn, FrameType.writable) : 0;
  }

  private putL1Entry(pte: number): void {
    if ((pte & (PTE_P | PTE_RW)) !== (PTE_P | PTE_RW)) return;
    const mfn = pte >>> 12;
    if (mfn < this.frames) this.putType(mfn);
  }

  /** A present L2 entry: no PSE (XSA-148), its frame owned and usable as an L1. */
  private getL2Entry(dom: FrameOwner, pde: number): Status {
    if ((pde & PTE_P) === 0) return 0;
    if ((pde & PTE_PSE) !== 0) return -Errno.EINVAL;
    const mfn = pde >>> 12;
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    return this.getType(dom, mfn, FrameType.l1);
  }

  private putL2Entry(pde: number): void {
    if ((pde & PTE_P) !== 0) this.putType(pde >>> 12);
  }

  /**
   * A checked write of one entry (mmu_update MMU_NORMAL_PT_UPDATE, update_va_mapping): `maddr`
   * is the machine address of the entry. In a validated table the new entry is validated before
   * the old one's references are dropped; in any other frame of the domain it is a plain write
   * (the frame is not a page table, so its contents do not matter).
   */
  updateEntry(dom: FrameOwner, maddr: number, value: number): Status {
    const mfn = maddr >>> 12;
    if ((maddr & 3) !== 0) return -Errno.EINVAL;
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    value = value >>> 0;
    const count = this.typeCount[mfn];
    const t = this.type[mfn];
    if (count > 0 && t === FrameType.l1) {
      return this.modEntry(dom, maddr, value, this.getL1Entry, this.putL1Entry);
    }
    if (count > 0 && t === FrameType.l2) {
      if ((maddr & 0xfff) >>> 2 >= HYPERVISOR_SLOT) return -Errno.EPERM;
      return this.modEntry(dom, maddr, value, this.getL2Entry, this.putL2Entry);
    }
    const r = this.getType(dom, mfn, FrameType.writable);
    if (r !== 0) return r;
    this.mem.write32(maddr, value);
    this.putType(mfn);
    return 0;
  }

  private modEntry(
    dom: FrameOwner,
    maddr: number,
    value: number,
    get: (dom: FrameOwner, e: number) => Status,
    put: (e: number) => void,
  ): Status {
    const old = this.mem.read32(maddr) >>> 0;
    // Fast path: only bits that carry no rights changed (A, D, G, cache bits, software bits).
    if (((old ^ value) & PTE_REVALIDATE) === 0) {
      this.mem.write32(maddr, value);
      return 0;
    }
    const r = get.call(this, dom, value);
    if (r !== 0) return r;
    this.mem.write32(maddr, value);
    put.call(this, old);
    return 0;
  }

  // ---- pinning -------------------------------------------------------------------------

  pin(dom: FrameOwner, mfn: number, t: FrameTypeValue): Status {
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    if (this.pinned[mfn] !== 0) return -Errno.EINVAL;
    const r = this.getType(dom, mfn, t);
    if (r === 0) this.pinned[mfn] = 1;
    return r;
  }

  unpin(dom: FrameOwner, mfn: number): Status {
    if (!this.ownedBy(dom, mfn)) return -Errno.EPERM;
    if (this.pinned[mfn] === 0) return -Errno.EINVAL;
    this.pinned[mfn] = 0;
    this.putType(mfn);
    return 0;
  }

  /** True if `mfn` is a validated L2 of the domain (a base pointer may be switched to it). */
  isValidatedL2(dom: FrameOwner, mfn: number): boolean {
    return this.ownedBy(dom, mfn) && this.type[mfn] === FrameType.l2 && this.typeCount[mfn] > 0;
  }

  // ---- audit ---------------------------------------------------------------------------

  /**
   * Recomputes every type count from the tables, pins and base pointers and compares; checks
   * that no page-table frame is mapped writable and every present entry of a validated table
   * points to a frame its owner may map. Returns the problems found (empty when all is well).
   */
  audit(domains: readonly (FrameOwner & { baseMfn: number | undefined })[]): string[] {
    const problems: string[] = [];
    const expected = new Int32Array(this.frames);
    const byId = new Map(domains.map((d) => [d.id, d]));
    for (const d of domains) if (d.baseMfn !== undefined) expected[d.baseMfn]++;
    for (const d of domains) for (const mfn of d.extraTypeReferences?.() ?? []) expected[mfn]++;
    for (let mfn = 0; mfn < this.frames; mfn++) {
      if (this.pinned[mfn] !== 0) expected[mfn]++;
      if (this.typeCount[mfn] === 0) {
        if (this.type[mfn] !== FrameType.none) problems.push(`frame ${mfn}: typed with count 0`);
        continue;
      }
      const dom = byId.get(this.owner[mfn]);
      const t = this.type[mfn];
      if (t !== FrameType.l1 && t !== FrameType.l2) continue;
      const entries = t === FrameType.l1 ? 1024 : HYPERVISOR_SLOT;
      for (let i = 0; i < entries; i++) {
        const e = this.mem.read32(mfn * 4096 + i * 4) >>> 0;
        if ((e & PTE_P) === 0) continue;
        const target = e >>> 12;
        if (target >= this.frames) {
          if (t === FrameType.l2 || dom === undefined || !dom.mayMapIoFrame(target)) {
            problems.push(`frame ${mfn}[${i}]: maps frame ${target} beyond RAM`);
          }
          continue;
        }
        if (this.owner[target] !== this.owner[mfn]) {
          problems.push(`frame ${mfn}[${i}]: maps frame ${target} of owner ${this.owner[target]}`);
        }
        if (t === FrameType.l2) {
          if ((e & PTE_PSE) !== 0) problems.push(`frame ${mfn}[${i}]: PSE entry`);
          if (this.type[target] !== FrameType.l1) problems.push(`frame ${mfn}[${i}]: not an L1`);
          expected[target]++;
        } else if ((e & PTE_RW) !== 0) {
          if (this.type[target] !== FrameType.writable) {
            problems.push(
              `frame ${mfn}[${i}]: writable mapping of a type-${this.type[target]} frame`,
            );
          }
          expected[target]++;
        }
      }
      if (t === FrameType.l2) {
        const slot = this.mem.read32(mfn * 4096 + HYPERVISOR_SLOT * 4) >>> 0;
        if (slot !== this.hypervisorPde >>> 0)
          problems.push(`frame ${mfn}: hypervisor slot changed`);
      }
    }
    for (let mfn = 0; mfn < this.frames; mfn++) {
      if (expected[mfn] !== this.typeCount[mfn]) {
        problems.push(
          `frame ${mfn}: type count ${this.typeCount[mfn]}, references ${expected[mfn]}`,
        );
      }
    }
    return problems;
  }
}
