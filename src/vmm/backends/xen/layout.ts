/**
 * The domain as the backend builds it, as a toolstack would for an afterburned multiboot kernel
 * (reference/xen-pv.md): pseudo-physical memory from 0 (the guest's physical memory, minus a
 * few frames at the top the VMM keeps), shared info, the console ring, the VMM window's pages and
 * an initial address space that maps guest memory one-to-one for the kernel's paging-off start.
 */
import {
  INVALID_P2M_ENTRY,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  SharedInfo,
} from '../../../hypervisor/xen/abi.ts';
import { timeScale } from '../../../hypervisor/xen/builder.ts';
import { Domain } from '../../../hypervisor/xen/domain.ts';
import { FrameType } from '../../../hypervisor/xen/frames.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import {
  BACKEND_ENTRIES,
  BACKEND_PAGES,
  STUB_PAGE,
  stubPage,
  WINDOW_BASE,
  WINDOW_SLOT,
} from '../../window.ts';

// ---- the xen backend's part of the VMM window (window.ts) -----------------------------------

/** Hypercall argument pages (read-write): pointer arguments are these virtual addresses. */
export const ARGS_PAGE = BACKEND_PAGES;
export const ARGS_PAGES = 8;
/** Trap entries, one per vector (16 bytes apart): set_trap_table points every vector here. */
export function trapEntry(vector: number): number {
  return BACKEND_ENTRIES + vector * 16;
}
/** The event and failsafe callbacks (set_callbacks). */
export const ENTRY_UPCALL = BACKEND_ENTRIES + 256 * 16;
export const ENTRY_FAILSAFE = ENTRY_UPCALL + 0x10;

/** Window pages: vCPU block, stubs, argument pages, a stack for the kernel's first steps. */
export const PAGE_VCPU = 0;
export const PAGE_STUB = 1;
export const PAGE_ARGS = (BACKEND_PAGES - WINDOW_BASE) >>> 12;
export const PAGE_STACK = PAGE_ARGS + ARGS_PAGES;
const WINDOW_MAPPED = PAGE_STACK + 1;

/** The domain's frames and where the VMM's private pages are among them. */
export class DomainMemory {
  /** Machine memory, for the entries and pages the backend reads and writes directly. */
  readonly view: DataView;
  /** The VMM's copy of M2P: guest frame of each machine frame, -1 if none. */
  readonly m2p: Int32Array;
  /** Pseudo-physical frames the guest sees as its RAM: [0, guestPages). */
  readonly guestPages: number;
  readonly windowPfn: number;
  readonly windowL1Pfn: number;
  readonly initL2Pfn: number;
  readonly initL1Pfn: number;
  /** Frames for the VMM's shadow page tables (shadow.ts), after the initial tables; 0 without. */
  readonly shadowPoolPfn: number;
  readonly shadowPoolPages: number;
  /** The console ring's event channel. */
  readonly consolePort: number;

  private constructor(
    readonly xen: XenHypervisor,
    readonly dom: Domain,
    m2p: Int32Array,
    guestPages: number,
    shadowPoolPages: number,
  ) {
    const ram = xen.machine.ram;
    this.view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.m2p = m2p;
    this.guestPages = guestPages;
    this.consolePort = dom.allocatePort({ kind: 'console' })!;
    this.windowPfn = guestPages;
    this.windowL1Pfn = guestPages + WINDOW_MAPPED;
    this.initL2Pfn = this.windowL1Pfn + 2;
    this.initL1Pfn = this.initL2Pfn + 1;
    // The domain's last frames (after the initial tables' L1s, one per 4 MB of the domain).
    this.shadowPoolPfn = this.initL1Pfn + Math.ceil((guestPages + shadowPoolPages) / 1024);
    this.shadowPoolPages = shadowPoolPages;
  }

  /**
   * Allocates and registers a domain of `domainMb`, `shadowPoolPages` of them kept for shadow
   * page tables; or a message.
   */
  static build(xen: XenHypervisor, domainMb: number, shadowPoolPages = 0): DomainMemory | string {
    const machine = xen.machine;
    const m2p = new Int32Array(machine.ram.length >>> 12).fill(-1);
    const total = domainMb * 256;
    const nrL1 = Math.ceil(total / 1024);
    // At the top: the window pages and their L1, the console ring, the initial tables.
    const privatePages = WINDOW_MAPPED + 1 + 1 + 1 + nrL1 + shadowPoolPages;
    const guestPages = total - privatePages;
    const id = xen.domains.length;
    // In one run: tools see the domain's memory as one array (guestRam), also when it is built
    // in the place of a destroyed domain.
    const frames = xen.frames.allocate(id, total + 1, true);
    if (frames === undefined) return `not enough free machine memory for a ${domainMb} MB domain`;
    const sharedInfoMfn = frames.pop()!;
    const dom = new Domain(id, frames);
    const ram = machine.ram;
    for (const mfn of [...frames, sharedInfoMfn]) ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
    frames.forEach((mfn, pfn) => {
      xen.setM2p(mfn, pfn);
      m2p[mfn] = pfn;
    });
    xen.setM2p(sharedInfoMfn, INVALID_P2M_ENTRY);
    const mem = new DomainMemory(xen, dom, m2p, guestPages, shadowPoolPages);
    dom.sharedInfoMfn = sharedInfoMfn;
    dom.consoleMfn = frames[mem.windowL1Pfn + 1];
    xen.frames.noPageTable[sharedInfoMfn] = 1;
    xen.frames.noPageTable[dom.consoleMfn] = 1;
    dom.virtBase = 0;
    xen.domains.push(dom);
    const { mul, shift } = timeScale(machine.costModel.hz);
    mem.view.setUint32(sharedInfoMfn * 4096 + SharedInfo.tsc_to_system_mul, mul, true);
    mem.view.setInt8(sharedInfoMfn * 4096 + SharedInfo.tsc_shift, shift);
    mem.view.setUint8(sharedInfoMfn * 4096 + SharedInfo.upcall_mask, 1);
    if (guestPages * 4096 > WINDOW_BASE - 0xc0000000) {
      return 'domain memory reaches the alias of the VMM window';
    }
    return mem;
  }

  mfn(pfn: number): number {
    return this.dom.p2m[pfn];
  }

  read32(maddr: number): number {
    return this.view.getUint32(maddr, true);
  }

  /** The guest's physical memory as one array (domain frames are allocated contiguously). */
  guestRam(): Uint8Array {
    const p2m = this.dom.p2m;
    for (let p = 1; p < this.guestPages; p++) {
      if (p2m[p] !== p2m[0] + p) throw new Error('xen backend: domain memory is not contiguous');
    }
    return this.xen.machine.ram.subarray(p2m[0] * 4096, (p2m[0] + this.guestPages) * 4096);
  }

  vcpuBlock(): DataView {
    const at = this.mfn(this.windowPfn + PAGE_VCPU) * 4096;
    return new DataView(this.view.buffer, this.view.byteOffset + at, 4096);
  }

  /** Machine address of window page `page`'s byte `offset` (the argument pages, the stack). */
  windowAddress(page: number, offset: number): number {
    return this.mfn(this.windowPfn + page) * 4096 + offset;
  }

  /** Machine address of the initial identity map's entry for guest frame `pfn`. */
  initEntry(pfn: number): number {
    return this.mfn(this.initL1Pfn + (pfn >>> 10)) * 4096 + (pfn & 0x3ff) * 4;
  }

  /**
   * The window (its pages and their L1) and the initial address space, pinned and installed as
   * the domain's base: guest memory at 0 (virtual paging off), the window, and the window again
   * at its alias below the kernel's link offset `offset` (rewritten calls from code that runs at
   * its load address land there). Returns the base table's machine frame, or a message.
   */
  buildInitialSpace(offset: number): number | string {
    const { xen, dom, view } = this;
    const pte = (pfn: number, rw: boolean): number =>
      ((this.mfn(pfn) << 12) | PTE_P | PTE_A | (rw ? PTE_RW | PTE_D : 0)) >>> 0;
    const stubs = stubPage(STUB_PAGE);
    xen.machine.ram.set(stubs, this.mfn(this.windowPfn + PAGE_STUB) * 4096);
    const wl1 = this.mfn(this.windowL1Pfn) * 4096;
    for (let k = 0; k < WINDOW_MAPPED; k++) {
      view.setUint32(wl1 + k * 4, pte(this.windowPfn + k, k !== PAGE_STUB), true);
    }
    const l2 = this.mfn(this.initL2Pfn) * 4096;
    for (let p = 0; p < this.guestPages; p++) {
      view.setUint32(this.initEntry(p), pte(p, true), true);
    }
    const nrL1 = Math.ceil(this.guestPages / 1024);
    for (let k = 0; k < nrL1; k++) {
      view.setUint32(l2 + k * 4, pte(this.initL1Pfn + k, true), true);
    }
    view.setUint32(l2 + WINDOW_SLOT * 4, pte(this.windowL1Pfn, true), true);
    const aliasSlot = ((WINDOW_BASE - offset) >>> 0) >>> 22;
    if (aliasSlot !== WINDOW_SLOT) {
      if (aliasSlot < nrL1) return 'domain memory reaches the alias of the VMM window';
      view.setUint32(l2 + aliasSlot * 4, pte(this.windowL1Pfn, true), true);
    }
    // The domain builder's privilege: pin and install directly (as builder.ts does).
    const windowPin = xen.frames.pin(dom, this.mfn(this.windowL1Pfn), FrameType.l1);
    const l2Pin = xen.frames.pin(dom, this.mfn(this.initL2Pfn), FrameType.l2);
    const based =
      l2Pin === 0 ? xen.frames.getType(dom, this.mfn(this.initL2Pfn), FrameType.l2) : l2Pin;
    if (windowPin !== 0 || based !== 0)
      return `initial page tables failed validation (${windowPin}, ${based})`;
    dom.baseMfn = this.mfn(this.initL2Pfn);
    return dom.baseMfn;
  }
}
