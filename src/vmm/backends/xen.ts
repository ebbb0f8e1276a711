/**
 * The in-place VMM's backend for previrt's Xen-style hypervisor (src/hypervisor/xen), the only
 * VMM module that knows it (reference/xen-pv.md, reference/afterburner.md "On Xen"):
 *
 * - builds the domain as a toolstack would for an afterburned multiboot kernel: pseudo-physical
 *   memory from 0 (the guest's physical memory, minus a few frames at the top the VMM keeps),
 *   the multiboot information, the VMM window, and an initial address space that maps guest
 *   memory one-to-one for the kernel's paging-off start;
 * - reaches the hypervisor with hypercalls (charged as `int $0x82` in and out) whose arguments it
 *   writes into its own window pages;
 * - keeps the guest's page tables real (direct paging): entries hold machine addresses, every
 *   write of a live table is a checked mmu_update, frames become page tables only after every
 *   writable mapping of them is made read-only (the guest's intended RW is kept in an available
 *   PTE bit), tables are pinned when first loaded into CR3 and unpinned when the guest writes
 *   to them again (it freed them), and the first CR3 load converts the boot tables, which are
 *   initialised data holding guest-physical addresses;
 * - takes every trap (set_trap_table points all vectors at bound VMM entries) and every event
 *   upcall, and hands them to the core.
 */
import { placeMultiboot, type BootModule } from '../../loader/multiboot.ts';
import { LoadError, parseElf } from '../../loader/elf.ts';
import type { Machine, MachineConfig } from '../../machine/Machine.ts';
import {
  ConsoleRing,
  EvtchnOp,
  GDT_VIRT,
  Hypercall,
  INVALID_P2M_ENTRY,
  MMU_UPDATE_SIZE,
  MmuExt,
  MMUEXT_OP_SIZE,
  PhysdevOp,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  SchedOp,
  Selector,
  SharedInfo,
  Shutdown,
  UVMF_INVLPG,
  Virq,
} from '../../hypervisor/xen/abi.ts';
import { timeScale } from '../../hypervisor/xen/builder.ts';
import { Domain } from '../../hypervisor/xen/domain.ts';
import { FrameType } from '../../hypervisor/xen/frames.ts';
import { dispatchHypercall, HYPERCALL_NAMES } from '../../hypervisor/xen/hypercalls.ts';
import type { XenHypervisor } from '../../hypervisor/xen/Xen.ts';
import { createHypervisorMachine } from '../../hypervisor/xen/machine.ts';
import type { Cpu } from '../../x86/Cpu.ts';
import { Vector } from '../../x86/fault.ts';
import { CS, DS, ES, FS, GS, SS } from '../../x86/segment.ts';
import type { VmmBackend } from '../backend.ts';
import { rewriteSites } from '../rewriter.ts';
import { readSiteRecords } from '../sections.ts';
import { InPlaceVmm } from '../Vmm.ts';
import { PassthroughPci, type PciConfigPort } from '../devices/passthrough.ts';
import {
  ARGS_PAGE,
  ARGS_PAGES,
  ENTRY_FAILSAFE,
  ENTRY_UPCALL,
  STUB_IRET,
  STUB_PAGE,
  stubPage,
  trapEntry,
  VCPU_PAGE,
  WINDOW_BASE,
  WINDOW_SLOT,
} from '../window.ts';

/** An available PTE bit (SDM 3A Table 4-6, bits 9–11): the guest wants this mapping writable. */
const GUEST_RW = 0x200;
const DOMID_SELF = 0x7ff0;
/** Window pages: vCPU block, stubs, argument pages, a stack for the kernel's first steps. */
const PAGE_VCPU = 0;
const PAGE_STUB = 1;
const PAGE_ARGS = 2;
const PAGE_STACK = PAGE_ARGS + ARGS_PAGES;
const WINDOW_MAPPED = PAGE_STACK + 1;
/** Vectors whose exceptions push an error code (SDM 3A Table 6-1). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

export interface XenGuestConfig {
  kernel: Uint8Array;
  kernelName: string;
  cmdline: string;
  modules: BootModule[];
  /** Domain memory in MB (default: the machine's memory minus 4 MB). */
  domainMemoryMb?: number;
  machine?: Omit<MachineConfig, 'serialOut'>;
  console?: (byte: number) => void;
  /**
   * Give the domain the machine's DP83820 (PCI 00:03.0; the machine config must ask for a
   * network): direct device access, as in the seed's netperf setup.
   */
  passthroughNic?: boolean;
}

/** Where the toolstack places the passed-through NIC's BARs (as a PC's firmware would). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;
const NIC_SLOT = 3;

export interface XenGuest {
  machine: Machine;
  xen: XenHypervisor;
  domain: Domain;
  vmm: InPlaceVmm;
  backend: XenBackend;
  /** Host input for the guest's console (COM1). */
  input(bytes: Uint8Array): void;
}

/** Builds the machine, the hypervisor and the afterburned guest with its VMM; or a message. */
export function createXenGuest(config: XenGuestConfig): XenGuest | string {
  const file = config.kernelName;
  const records = readSiteRecords(config.kernel, file);
  if (typeof records === 'string') return records;
  const image = parseElf(config.kernel, file);
  if (image instanceof LoadError) return image.message;
  const host = createHypervisorMachine(config.machine, config.console);
  if (typeof host === 'string') return host;
  const { machine, xen } = host;
  const machineMb = machine.ram.length >> 20;
  const domainMb = config.domainMemoryMb ?? machineMb - 4;
  if (domainMb < 16) return `domain memory must be at least 16 MB (got ${domainMb} MB)`;
  const backend = new XenBackend(xen, domainMb);
  if (backend.error !== undefined) return backend.error;
  const nic = machine.nic;
  if (config.passthroughNic === true && nic === undefined)
    return 'NIC pass-through needs a machine with a network';

  // The kernel, its modules and the multiboot information in the guest's physical memory.
  const ram = backend.guestRam();
  const start = placeMultiboot(ram, {
    kernel: config.kernel,
    kernelName: file,
    cmdline: config.cmdline,
    modules: config.modules,
  });
  if (start instanceof LoadError) return start.message;

  // Rewrite every site in place (in the loaded image; the ELF file stays as it is).
  const segments = image.segments;
  const kernelOffset = (segments[0].vaddr - segments[0].paddr) >>> 0;
  const toPhys = (link: number): number | undefined => {
    const s = segments.find((g) => link >= g.vaddr && link < g.vaddr + g.memsz);
    return s === undefined ? undefined : link - s.vaddr + s.paddr;
  };
  const rewritten = rewriteSites(records, (link, length) => {
    const pa = toPhys(link);
    return pa === undefined || pa + length > ram.length ? undefined : ram.slice(pa, pa + length);
  });
  if (typeof rewritten === 'string') return `${file}: ${rewritten}`;
  for (const p of rewritten.patches) ram.set(p.bytes, toPhys(p.at)!);

  const vmm = new InPlaceVmm(
    machine.cpu,
    machine.costModel.software,
    backend,
    rewritten.calls,
    backend.vcpuBlock(),
    { kernelOffset, rtcStartSeconds: Date.UTC(2026, 0, 1) / 1000 },
  );
  if (config.passthroughNic === true && nic !== undefined) {
    // The toolstack's part (dom0's, in Xen): place the real BARs, grant the device with its
    // registers, its interrupt line and its DMA, confined to the domain.
    nic.configWrite(0x10, 4, NIC_IO);
    nic.configWrite(0x14, 4, NIC_MMIO);
    const irq = nic.configRead(0x3c, 1);
    xen.grantDevice(backend.dom, {
      name: 'dp83820',
      ioPorts: [],
      ioMemory: [{ base: NIC_MMIO, length: 4096 }],
      irqs: [irq],
      pci: { read: (o, n) => nic.configRead(o, n), write: (o, n, v) => nic.configWrite(o, n, v) },
      dma: machine.dma,
    });
    const f = new PassthroughPci('dp83820 (passed through)', backend.pciConfig, [
      { index: 0, io: true, machine: NIC_IO, size: 256, flags: nic.configRead(0x10, 1) & 3 },
      { index: 1, io: false, machine: NIC_MMIO, size: 4096, flags: nic.configRead(0x14, 1) & 15 },
    ]);
    const taken = vmm.platform.addPassthrough(NIC_SLOT, f, irq);
    if (taken !== undefined) return taken;
    backend.passIrq(irq);
  }
  const entered = backend.start(vmm, start.entry, start.magic, start.mbi, kernelOffset);
  if (entered !== undefined) return `${file}: ${entered}`;
  return {
    machine,
    xen,
    domain: backend.dom,
    vmm,
    backend,
    input: (bytes) => xen.input(bytes),
  };
}

interface PendingUpdate {
  maddr: number;
  value: number;
}

/** Counters of the backend's own work (hypercall counts are the hypervisor's). */
export interface XenBackendCounters {
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
}

export class XenBackend implements VmmBackend {
  readonly name = 'xen';
  readonly selectors = {
    kernelCs: Selector.RING1_CS,
    userCs: Selector.RING3_CS,
    userSs: Selector.RING3_DS,
  };
  readonly counters: XenBackendCounters = {
    pageTableUpdates: 0,
    plainEntryWrites: 0,
    writeProtections: 0,
    writeFaultsFixed: 0,
    pins: 0,
    unpins: 0,
  };
  error: string | undefined;
  readonly dom!: Domain;
  readonly cpu: Cpu;
  private vmm!: InPlaceVmm;
  private readonly view: DataView;
  /** Pseudo-physical frames the guest sees as its RAM: [0, guestPages). */
  readonly guestPages: number = 0;
  private readonly m2p: Int32Array;
  private readonly windowPfn: number = 0;
  private readonly windowL1Pfn: number = 0;
  private readonly initL2Pfn: number = 0;
  private readonly initL1Pfn: number = 0;
  private initialActive = true;
  private readonly pinnedL2 = new Set<number>();
  private readonly l1Links: Int32Array;
  private readonly preparing = new Set<number>();
  /** Writable mappings the VMM wrote, by target frame: entry machine address and value. */
  private readonly rmap = new Map<number, PendingUpdate[]>();
  private queue: PendingUpdate[] = [];
  private currentL2 = -1;
  private timerPort = 0;
  private consolePort = 0;
  /** A passed-through device's line and its pirq event channel (0: none). */
  private deviceIrq = -1;
  private pirqPort = 0;
  private kernelStack = -1;

  constructor(
    readonly xen: XenHypervisor,
    domainMb: number,
  ) {
    const machine = xen.machine;
    this.cpu = machine.cpu;
    this.view = new DataView(machine.ram.buffer, machine.ram.byteOffset, machine.ram.byteLength);
    this.m2p = new Int32Array(machine.ram.length >>> 12).fill(-1);
    this.l1Links = new Int32Array(domainMb * 256);
    const total = domainMb * 256;
    const nrL1 = Math.ceil(total / 1024);
    // At the top: the window pages and their L1, the console ring, the initial tables.
    const privatePages = WINDOW_MAPPED + 1 + 1 + 1 + nrL1;
    const guestPages = total - privatePages;
    const id = xen.domains.length;
    const frames = xen.frames.allocate(id, total + 1);
    if (frames === undefined) {
      this.error = `not enough free machine memory for a ${domainMb} MB domain`;
      return;
    }
    const sharedInfoMfn = frames.pop()!;
    const dom = new Domain(id, frames);
    const ram = machine.ram;
    for (const mfn of [...frames, sharedInfoMfn]) ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
    frames.forEach((mfn, pfn) => {
      xen.setM2p(mfn, pfn);
      this.m2p[mfn] = pfn;
    });
    xen.setM2p(sharedInfoMfn, INVALID_P2M_ENTRY);
    this.consolePort = dom.allocatePort({ kind: 'console' })!;
    dom.sharedInfoMfn = sharedInfoMfn;
    this.windowPfn = guestPages;
    this.windowL1Pfn = guestPages + WINDOW_MAPPED;
    const consolePfn = this.windowL1Pfn + 1;
    this.initL2Pfn = consolePfn + 1;
    this.initL1Pfn = this.initL2Pfn + 1;
    dom.consoleMfn = frames[consolePfn];
    xen.frames.noPageTable[sharedInfoMfn] = 1;
    xen.frames.noPageTable[dom.consoleMfn] = 1;
    dom.virtBase = 0;
    xen.domains.push(dom);
    const { mul, shift } = timeScale(machine.costModel.hz);
    this.view.setUint32(sharedInfoMfn * 4096 + SharedInfo.tsc_to_system_mul, mul, true);
    this.view.setInt8(sharedInfoMfn * 4096 + SharedInfo.tsc_shift, shift);
    this.view.setUint8(sharedInfoMfn * 4096 + SharedInfo.upcall_mask, 1);
    (this as { dom: Domain }).dom = dom;
    (this as { guestPages: number }).guestPages = guestPages;
    if (guestPages * 4096 > WINDOW_BASE - 0xc0000000) {
      this.error = 'domain memory reaches the alias of the VMM window';
    }
  }

  private mfn(pfn: number): number {
    return this.dom.p2m[pfn];
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

  private read32(maddr: number): number {
    return this.view.getUint32(maddr, true);
  }

  // ---- start of day ------------------------------------------------------------------------

  /** Window, initial address space, trap table and callbacks, then the CPU at the entry. */
  start(
    vmm: InPlaceVmm,
    entry: number,
    magic: number,
    mbi: number,
    offset: number,
  ): string | undefined {
    this.vmm = vmm;
    const xen = this.xen;
    const dom = this.dom;
    const cpu = this.cpu;
    const pte = (pfn: number, rw: boolean): number =>
      ((this.mfn(pfn) << 12) | PTE_P | PTE_A | (rw ? PTE_RW | PTE_D : 0)) >>> 0;
    // The window: its pages and their L1.
    const stubs = stubPage(STUB_PAGE);
    xen.machine.ram.set(stubs, this.mfn(this.windowPfn + PAGE_STUB) * 4096);
    const wl1 = this.mfn(this.windowL1Pfn) * 4096;
    for (let k = 0; k < WINDOW_MAPPED; k++) {
      this.view.setUint32(wl1 + k * 4, pte(this.windowPfn + k, k !== PAGE_STUB), true);
    }
    // The initial address space: guest memory at 0 (virtual paging off), the window, and the
    // window again at its alias below the kernel's link offset (rewritten calls from code that
    // runs at its load address land there).
    const l2 = this.mfn(this.initL2Pfn) * 4096;
    for (let p = 0; p < this.guestPages; p++) {
      this.view.setUint32(this.initEntry(p), pte(p, true), true);
    }
    const nrL1 = Math.ceil(this.guestPages / 1024);
    for (let k = 0; k < nrL1; k++) {
      this.view.setUint32(l2 + k * 4, pte(this.initL1Pfn + k, true), true);
    }
    this.view.setUint32(l2 + WINDOW_SLOT * 4, pte(this.windowL1Pfn, true), true);
    const aliasSlot = ((WINDOW_BASE - offset) >>> 0) >>> 22;
    if (aliasSlot !== WINDOW_SLOT) {
      if (aliasSlot < nrL1) return 'domain memory reaches the alias of the VMM window';
      this.view.setUint32(l2 + aliasSlot * 4, pte(this.windowL1Pfn, true), true);
    }
    // The domain builder's privilege: pin and install directly (as builder.ts does).
    const windowPin = xen.frames.pin(dom, this.mfn(this.windowL1Pfn), FrameType.l1);
    const l2Pin = xen.frames.pin(dom, this.mfn(this.initL2Pfn), FrameType.l2);
    const based =
      l2Pin === 0 ? xen.frames.getType(dom, this.mfn(this.initL2Pfn), FrameType.l2) : l2Pin;
    if (windowPin !== 0 || based !== 0)
      return `initial page tables failed validation (${windowPin}, ${based})`;
    dom.baseMfn = this.mfn(this.initL2Pfn);

    // CPU state: ring 1, the kernel's entry with the multiboot registers.
    cpu.enterFlatProtectedMode();
    cpu.gdtr = { base: GDT_VIRT, limit: 7 * 8 - 1 };
    cpu.idtr = { base: 0, limit: 0 };
    cpu.ldtr.loadNull(0);
    cpu.tr.loadNull(0);
    cpu.cr4 = 0;
    cpu.cr3 = dom.baseMfn * 4096;
    cpu.cr0 = 0x80010011;
    cpu.segs[CS].load(Selector.RING1_CS, 0, 0xffffffff, 0xc0bb);
    cpu.segs[SS].load(Selector.RING1_DS, 0, 0xffffffff, 0xc0b3);
    // Data segments: the ring-3 flat segment, usable from ring 1 and ring 3 alike, so a return
    // to user mode never needs to reload them (their virtual selectors are in the VMM block).
    for (const s of [DS, ES, FS, GS]) cpu.segs[s].load(Selector.RING3_DS, 0, 0xffffffff, 0xc0f3);
    cpu.setCpl(1);
    cpu.regs.fill(0);
    cpu.setEflags(0x202);
    cpu.eip = entry;
    cpu.eax = magic;
    cpu.ebx = mbi;
    cpu.esp = VCPU_PAGE + (PAGE_STACK + 1) * 4096;
    cpu.invalidateAllCode();
    vmm.setSegment(CS, 0x08);
    for (const s of [SS, DS, ES, FS, GS]) vmm.setSegment(s, 0x10);
    dom.startCycle = cpu.cycles;
    xen.current = dom;
    xen.updateTime(dom);
    cpu.attachMonitor(xen);

    // Every vector reaches the VMM; INT n from ring 3 is allowed for all but the vectors whose
    // exceptions push an error code (so their entries always see one).
    for (let v = 0; v < 256; v++) {
      const at = v * 8;
      this.argWrite(at, 1, v);
      this.argWrite(at + 1, 1, ERROR_CODE_VECTORS.has(v) ? 0 : 3);
      this.argWrite(at + 2, 2, Selector.RING1_CS);
      this.argWrite(at + 4, 4, trapEntry(v));
      cpu.bindEntry(trapEntry(v), () => this.onTrap(v));
    }
    this.argWrite(256 * 8 + 4, 4, 0);
    const calls: [number, number[]][] = [
      [Hypercall.set_trap_table, [ARGS_PAGE]],
      [
        Hypercall.set_callbacks,
        [Selector.RING1_CS, ENTRY_UPCALL, Selector.RING1_CS, ENTRY_FAILSAFE],
      ],
    ];
    for (const [nr, args] of calls) {
      const r = this.hypercall(nr, args);
      if (r !== 0) return `hypercall ${nr} failed at start (${r})`;
    }
    cpu.bindEntry(ENTRY_UPCALL, () => this.onUpcall());
    cpu.bindEntry(ENTRY_FAILSAFE, () => this.crash('failsafe callback'));
    this.argWrite(0, 4, Virq.TIMER);
    this.argWrite(4, 4, 0);
    if (this.hypercall(Hypercall.event_channel_op, [EvtchnOp.bind_virq, ARGS_PAGE]) !== 0)
      return 'cannot bind VIRQ_TIMER';
    this.timerPort = this.argRead(8);
    if (this.deviceIrq >= 0) {
      this.argWrite(0, 4, this.deviceIrq);
      this.argWrite(4, 4, 0);
      if (this.hypercall(Hypercall.event_channel_op, [EvtchnOp.bind_pirq, ARGS_PAGE]) !== 0)
        return `cannot bind the passed-through device's IRQ ${this.deviceIrq}`;
      this.pirqPort = this.argRead(8);
    }
    this.writeShared8(SharedInfo.upcall_mask, 0);
    return undefined;
  }

  /** The passed-through device interrupts on this line (bound at start). */
  passIrq(irq: number): void {
    this.deviceIrq = irq;
  }

  /** The passed-through function's configuration space, through physdev_op. */
  readonly pciConfig: PciConfigPort = {
    read: (offset, size) => {
      this.argWrite(0, 4, offset);
      this.argWrite(4, 4, size);
      this.argWrite(8, 4, 0);
      const r = this.hypercall(Hypercall.physdev_op, [PhysdevOp.pci_config_read, ARGS_PAGE]);
      return r === 0 ? this.argRead(8) : 0xffffffff >>> (32 - size * 8);
    },
    write: (offset, size, value) => {
      this.argWrite(0, 4, offset);
      this.argWrite(4, 4, size);
      this.argWrite(8, 4, value);
      this.hypercall(Hypercall.physdev_op, [PhysdevOp.pci_config_write, ARGS_PAGE]);
    },
  };

  deviceEoi(irq: number): void {
    if (irq !== this.deviceIrq || this.pirqPort === 0) return;
    this.argWrite(0, 4, this.pirqPort);
    this.hypercall(Hypercall.event_channel_op, [EvtchnOp.unmask, ARGS_PAGE]);
  }

  /** Machine address of the initial identity map's entry for guest frame `pfn`. */
  private initEntry(pfn: number): number {
    return this.mfn(this.initL1Pfn + (pfn >>> 10)) * 4096 + (pfn & 0x3ff) * 4;
  }

  // ---- hypercalls ----------------------------------------------------------------------------

  /** A hypercall as the VMM's `int $0x82` would make it: counted and charged as one. */
  hypercall(nr: number, args: number[]): number {
    const xen = this.xen;
    const name = HYPERCALL_NAMES.get(nr) ?? 'unknown';
    xen.counters.hypercalls[name] = (xen.counters.hypercalls[name] ?? 0) + 1;
    this.cpu.charge(this.cpu.costs.gatePrivilege);
    xen.updateTime(this.dom);
    const a = [0, 0, 0, 0, 0].map((_, k) => (args[k] ?? 0) >>> 0);
    const r = dispatchHypercall(xen, this.dom, nr, [a[0], a[1], a[2], a[3], a[4]]);
    if (r < 0) xen.counters.hypercallErrors++;
    this.cpu.charge(this.cpu.costs.iretOuter);
    return r;
  }

  private argWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const page = offset >>> 12;
    const at = this.mfn(this.windowPfn + PAGE_ARGS + page) * 4096 + (offset & 0xfff);
    if (size === 1) this.view.setUint8(at, value);
    else if (size === 2) this.view.setUint16(at, value, true);
    else this.view.setUint32(at, value >>> 0, true);
  }

  private argRead(offset: number): number {
    const page = offset >>> 12;
    return this.read32(this.mfn(this.windowPfn + PAGE_ARGS + page) * 4096 + (offset & 0xfff));
  }

  private readShared32(offset: number): number {
    return this.read32(this.dom.sharedInfoMfn * 4096 + offset);
  }

  private writeShared32(offset: number, value: number): void {
    this.view.setUint32(this.dom.sharedInfoMfn * 4096 + offset, value >>> 0, true);
  }

  private writeShared8(offset: number, value: number): void {
    this.view.setUint8(this.dom.sharedInfoMfn * 4096 + offset, value);
  }

  // ---- time, console, life cycle ---------------------------------------------------------------

  nowNs(): number {
    return this.xen.systemTime(this.dom);
  }

  setTimer(deadlineNs: number): void {
    const ns = Math.max(0, Math.floor(deadlineNs));
    this.hypercall(Hypercall.set_timer_op, [ns % 2 ** 32, Math.floor(ns / 2 ** 32)]);
  }

  consoleWrite(bytes: Uint8Array): void {
    const room = ARGS_PAGES * 4096;
    for (let done = 0; done < bytes.length; done += room) {
      const chunk = bytes.subarray(done, Math.min(bytes.length, done + room));
      chunk.forEach((b, k) => this.argWrite(k, 1, b));
      this.hypercall(Hypercall.console_io, [0, chunk.length, ARGS_PAGE]);
    }
  }

  shutdown(kind: 'poweroff' | 'reboot', status: number): void {
    this.argWrite(0, 4, kind === 'poweroff' ? Shutdown.poweroff : Shutdown.reboot);
    this.argWrite(4, 4, status);
    this.hypercall(Hypercall.sched_op, [SchedOp.shutdown, ARGS_PAGE]);
  }

  crash(message: string): void {
    this.xen.crash(this.dom, `vmm: ${message}`);
  }

  block(): boolean {
    this.hypercall(Hypercall.sched_op, [SchedOp.block]);
    return this.cpu.halted;
  }

  haltForever(): void {
    this.setTimer(0);
    this.cpu.halted = true;
  }

  setKernelStack(esp0: number): void {
    if (esp0 === this.kernelStack) return;
    this.kernelStack = esp0;
    this.hypercall(Hypercall.stack_switch, [Selector.RING1_DS, esp0]);
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Takes the pending, unmasked ports off shared info and hands them to the core. */
  pollEvents(): void {
    const base = this.dom.sharedInfoMfn * 4096;
    while (this.view.getUint8(base + SharedInfo.upcall_pending) !== 0) {
      this.writeShared8(SharedInfo.upcall_pending, 0);
      const sel = this.readShared32(SharedInfo.pending_sel);
      this.writeShared32(SharedInfo.pending_sel, 0);
      for (let w = 0; w < 32; w++) {
        if ((sel & (1 << w)) === 0) continue;
        const pendingAt = SharedInfo.evtchn_pending + w * 4;
        const bits =
          this.readShared32(pendingAt) & ~this.readShared32(SharedInfo.evtchn_mask + w * 4);
        this.writeShared32(pendingAt, this.readShared32(pendingAt) & ~bits);
        for (let b = 0; b < 32; b++) if ((bits & (1 << b)) !== 0) this.event(w * 32 + b);
      }
    }
  }

  private event(port: number): void {
    if (port === this.timerPort) this.vmm.timerExpired();
    else if (port === this.consolePort) this.consoleInput();
    else if (port === this.pirqPort) this.vmm.deviceInterrupt(this.deviceIrq);
  }

  /** Takes what arrived in the console ring's `in` buffer. */
  private consoleInput(): void {
    const page = this.dom.consoleMfn * 4096;
    let cons = this.read32(page + ConsoleRing.in_cons);
    const prod = this.read32(page + ConsoleRing.in_prod);
    const bytes: number[] = [];
    const wasFull = (prod - cons) >>> 0 >= ConsoleRing.inSize;
    while (cons !== prod) {
      bytes.push(this.xen.machine.ram[page + ConsoleRing.in + (cons % ConsoleRing.inSize)]);
      cons = (cons + 1) >>> 0;
    }
    this.view.setUint32(page + ConsoleRing.in_cons, cons, true);
    if (bytes.length > 0) this.vmm.consoleInput(bytes);
    // A full ring may have more waiting behind it: the send makes the hypervisor refill it.
    if (wasFull) {
      this.argWrite(0, 4, this.consolePort);
      this.hypercall(Hypercall.event_channel_op, [EvtchnOp.send, ARGS_PAGE]);
    }
  }

  /** The event callback: events masked by the hypervisor; handle them, unmask, continue. */
  private onUpcall(): void {
    this.pollEvents();
    this.writeShared8(SharedInfo.upcall_mask, 0);
    this.cpu.push(this.vmm.afterUpcall(), 4);
  }

  /** A bounced trap (frame on the ring-1 stack). */
  private onTrap(vector: number): void {
    const cpu = this.cpu;
    const errorCode = ERROR_CODE_VECTORS.has(vector)
      ? cpu.readLinear((cpu.segs[SS].base + cpu.esp) >>> 0, 4)
      : undefined;
    if (vector === Vector.PF) {
      const cr2 = this.readShared32(SharedInfo.cr2);
      if (((errorCode ?? 0) & 3) === 3 && this.fixWriteFault(cr2)) {
        cpu.esp = (cpu.esp + 4) >>> 0;
        cpu.push(STUB_IRET, 4);
        return;
      }
      this.vmm.cr2 = cr2;
    }
    const software = vector >= 32 || vector === Vector.BP || vector === Vector.OF;
    cpu.push(this.vmm.forwardTrap(vector, errorCode, software), 4);
  }

  // ---- page tables -----------------------------------------------------------------------------

  private deviceMachineFrame(guestFrame: number): number | undefined {
    for (const f of this.vmm.platform.passthrough) {
      const m = f.machineFrame(guestFrame);
      if (m !== undefined) return m;
    }
    return undefined;
  }

  private deviceGuestFrame(machineFrame: number): number | undefined {
    for (const f of this.vmm.platform.passthrough) {
      const g = f.guestFrame(machineFrame);
      if (g !== undefined) return g;
    }
    return undefined;
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
    const pfn = this.m2p[e >>> 12] ?? this.deviceGuestFrame(e >>> 12);
    if (pfn !== undefined && pfn >= 0) e = (pfn << 12) | (e & 0xfff);
    if ((e & GUEST_RW) !== 0) e = (e | PTE_RW) & ~GUEST_RW;
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
      const real = this.deviceMachineFrame(t);
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

  /** Sends the queued entry writes in one mmu_update. */
  private flush(): void {
    const max = (ARGS_PAGES * 4096) / MMU_UPDATE_SIZE;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, max);
      batch.forEach((u, k) => {
        this.argWrite(k * 16, 4, u.maddr);
        this.argWrite(k * 16 + 4, 4, 0);
        this.argWrite(k * 16 + 8, 4, u.value);
        this.argWrite(k * 16 + 12, 4, 0);
      });
      this.counters.pageTableUpdates += batch.length;
      const r = this.hypercall(Hypercall.mmu_update, [ARGS_PAGE, batch.length, 0, DOMID_SELF]);
      if (r !== 0) {
        this.queue = [];
        this.crash(`mmu_update refused (${r})`);
        return;
      }
    }
  }

  private mmuext(cmd: number, arg: number): number {
    this.argWrite(0, 4, cmd);
    this.argWrite(4, 4, arg);
    this.argWrite(8, 4, 0);
    void MMUEXT_OP_SIZE;
    return this.hypercall(Hypercall.mmuext_op, [ARGS_PAGE, 1, 0, DOMID_SELF]);
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
          this.view.setUint32(base + k * 4, ((e & ~PTE_RW) | GUEST_RW) >>> 0, true);
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
        if ((now & ~(PTE_A | PTE_D)) !== (u.value & ~(PTE_A | PTE_D))) continue;
        this.counters.writeProtections++;
        this.writeEntry(u.maddr, ((now & ~PTE_RW) | GUEST_RW) >>> 0);
      }
      this.rmap.delete(pfn);
    }
    if (this.initialActive) {
      const at = this.initEntry(pfn);
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
    this.view.setUint32(
      base + WINDOW_SLOT * 4,
      ((this.mfn(this.windowL1Pfn) << 12) | PTE_P | PTE_RW | PTE_A) >>> 0,
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
    const l2 = this.mfn(f) * 4096;
    const converted = new Set<number>();
    for (let k = 0; k < WINDOW_SLOT; k++) {
      const e = this.read32(l2 + k * 4);
      if ((e & PTE_P) === 0) continue;
      const t = e >>> 12;
      if (t >= this.guestPages) {
        this.view.setUint32(l2 + k * 4, 0, true);
        continue;
      }
      if (!converted.has(t)) {
        converted.add(t);
        const l1 = this.mfn(t) * 4096;
        for (let j = 0; j < 1024; j++) {
          const pe = this.read32(l1 + j * 4);
          if ((pe & PTE_P) === 0) continue;
          const v = pe >>> 12 < this.guestPages ? this.toMachine(pe, l1 + j * 4) : 0;
          this.view.setUint32(l1 + j * 4, v, true);
        }
      }
      this.view.setUint32(l2 + k * 4, ((this.mfn(t) << 12) | (e & 0xfff)) >>> 0, true);
    }
    this.cpu.invalidateAllCode();
    this.loadCr3(cr3);
    // The initial address space is no longer needed: unpinning releases its tables.
    const init = this.mfn(this.initL2Pfn);
    if (this.xen.frames.pinned[init] !== 0) this.mmuext(MmuExt.UNPIN_TABLE, init);
    this.initialActive = false;
  }

  invlpg(linear: number): void {
    this.mmuext(MmuExt.INVLPG_LOCAL, linear);
  }

  /**
   * A write fault in a mapping the VMM made read-only (the guest wants it writable): the frame
   * is no page table any more (its last table reference went, or it is a pinned directory the
   * guest is reusing), so make the mapping writable again and retry. False: a real fault.
   */
  private fixWriteFault(va: number): boolean {
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
    const r = this.hypercall(Hypercall.update_va_mapping, [va & ~0xfff, value, 0, UVMF_INVLPG]);
    if (r !== 0) return false;
    this.counters.writeFaultsFixed++;
    this.rmapAdd(t, loc, value);
    return true;
  }
}
