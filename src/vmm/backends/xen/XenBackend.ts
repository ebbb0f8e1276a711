/**
 * The in-place VMM's backend for previrt's Xen-style hypervisor (src/hypervisor/xen), the only
 * VMM code that knows it (reference/xen-pv.md, reference/afterburner.md "On Xen"). It ties the
 * parts together:
 *
 * - the domain's memory (layout.ts), built as a toolstack would;
 * - hypercalls whose arguments it writes into its own window pages (channel.ts);
 * - direct paging (paging.ts): the guest's page tables stay real;
 * - a passed-through device (passthrough.ts);
 * - and, here, the start of day (CPU state, trap table, callbacks, event channels), every trap
 *   (set_trap_table points all vectors at bound VMM entries) and every event upcall, which it
 *   hands to the core; time, console and life cycle as hypercalls.
 */
import {
  ConsoleRing,
  EvtchnOp,
  GDT_VIRT,
  Hypercall,
  SchedOp,
  Selector,
  SharedInfo,
  Shutdown,
  Virq,
} from '../../../hypervisor/xen/abi.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import type { EntryTable } from '../../../x86/entries.ts';
import { Vector } from '../../../x86/fault.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../x86/segment.ts';
import { CPUID_FEATURE } from '../../../x86/system/instructions.ts';
import {
  arrayOf,
  checkState,
  num,
  oneOf,
  shape,
  StateError,
  type Check,
} from '../../../machine/state.ts';
import type { CounterTree } from '../../../machine/counters.ts';
import type { BackendState, VmmBackend, VmmCore } from '../../backend.ts';
import { STUB_IRET, VCPU_PAGE, VIRTUAL_FLAGS, EFLAGS_IF } from '../../window.ts';
import { HypercallChannel } from './channel.ts';
import {
  ARGS_PAGE,
  ARGS_PAGES,
  DomainMemory,
  ENTRY_FAILSAFE,
  ENTRY_UPCALL,
  PAGE_STACK,
  trapEntry,
} from './layout.ts';
import { DirectPaging, type DirectPagingState } from './paging.ts';
import { ShadowPaging, type ShadowPagingState } from './shadow.ts';
import { XenMigration } from './migrate.ts';
import { XenPassthrough } from './passthrough.ts';
import type { NetBack, NetBackState, NetFront, NetFrontState } from './netChannel.ts';
import { servedCounters, type ClientLink } from '../../devices/clientLink.ts';
import type { KernelEntry } from '../../load.ts';

/** The xen backend in a snapshot (its domain's memory is the machine's, saved with it). */
export interface XenBackendState {
  kind: 'xen';
  version: 3;
  timerPort: number;
  kernelStack: number;
  paging: DirectPagingState | ShadowPagingState;
  passthrough: { irq: number; port: number };
  emulatedDma: { dmaTranslated: number; dmaRefused: number };
  /** A client's side of its connection to the driver VM (netChannel.ts), if it has one. */
  netFront: NetFrontState | null;
  /** A driver VM's sides of its clients' connections, in the link's order. */
  netBacks: NetBackState[];
}

const XEN_BACKEND_STATE: Check = checkState<XenBackendState>('xen backend', 3, {
  kind: oneOf('xen'),
  timerPort: num,
  kernelStack: num,
  paging: (v, path) => shape<object>({})(v, path),
  passthrough: shape<{ irq: number; port: number }>({ irq: num, port: num }),
  emulatedDma: shape<{ dmaTranslated: number; dmaRefused: number }>({
    dmaTranslated: num,
    dmaRefused: num,
  }),
  // Each side checks its own state (netChannel.ts) when it restores it.
  netFront: (v, path) => {
    if (v !== null) shape<object>({})(v, path);
  },
  netBacks: arrayOf(shape<object>({})),
});

/** Vectors whose exceptions push an error code (SDM 3A Table 6-1). */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

/** How the VMM gives the guest's page tables to the hypervisor (XenBackend.create). */
export type XenPagingMode = 'direct' | 'shadow';

export class XenBackend implements VmmBackend {
  readonly name = 'xen';
  /**
   * 4 MB pages (the hypervisor refuses PSE entries), global pages, SYSENTER and the MSRs (not
   * virtualised), the debugging extensions.
   */
  /** The emulated NIC's register page (emulatedNic.ts), if the domain has the model. */
  emulatedRegisterPage: number | undefined;
  /** The emulated NIC's DMA into the domain, translated and refused. */
  readonly emulatedDma = { dmaTranslated: 0, dmaRefused: 0 };
  /** A client's side of its connection to the driver VM (netChannel.ts), if it has one. */
  netFront: NetFront | undefined;
  /** A driver VM's client link and its clients' connections, if it is one. */
  clientLink: { link: ClientLink; backs: NetBack[] } | undefined;
  readonly hiddenCpuFeatures =
    CPUID_FEATURE.PSE |
    CPUID_FEATURE.PGE |
    CPUID_FEATURE.SEP |
    CPUID_FEATURE.MSR |
    CPUID_FEATURE.DE;
  /** The paging's counters: page-table updates, write protections, pins; or the shadows'. */
  readonly counters: Readonly<Record<string, number>>;

  /** The paging's counters (direct: updates, write protections, pins; shadow: fills, remakes). */
  stats(): CounterTree {
    // The emulated NIC's DMA, with the model only (a run without it shows what it always did).
    const served = this.clientLink;
    return {
      paging: { ...this.counters },
      ...(this.emulatedRegisterPage === undefined || served !== undefined
        ? {}
        : { emulatedNic: { ...this.emulatedDma } }),
      ...(this.netFront === undefined ? {} : { netFront: { ...this.netFront.counters } }),
      ...(served === undefined ? {} : servedCounters(served.link, this.emulatedDma, served.backs)),
    };
  }
  readonly dom: Domain;
  readonly cpu: Cpu;
  /** Pseudo-physical frames the guest sees as its RAM: [0, guestPages). */
  readonly guestPages: number;
  readonly passthrough: XenPassthrough;
  private vmm!: VmmCore;
  /** Hypercalls and shared info, for the backend's devices (netChannel.ts). */
  readonly channel: HypercallChannel;
  /** Event-channel ports the backend's devices bound, and what each does. */
  private readonly portHandlers = new Map<number, () => void>();
  /** Work of the backend's devices at the end of the start of day, in the domain's context. */
  private readonly startHooks: (() => string | undefined)[] = [];
  private readonly paging: DirectPaging | ShadowPaging;
  /** Live migration out of and into the domain (migrate.ts). */
  readonly migration: XenMigration;
  private timerPort = 0;
  private kernelStack = -1;

  /**
   * Builds the domain (`domainMb` of memory) and its backend; or a message. `paging`: direct
   * (the guest's tables are the real ones, paging.ts) or shadow (the VMM's, shadow.ts: 1/32 of
   * the domain's frames kept for them).
   */
  static create(
    xen: XenHypervisor,
    domainMb: number,
    paging: XenPagingMode = 'direct',
    shadowPoolPages = Math.max(256, (domainMb * 256) >>> 5),
  ): XenBackend | string {
    const pool = paging === 'shadow' ? shadowPoolPages : 0;
    const mem = DomainMemory.build(xen, domainMb, pool);
    return typeof mem === 'string' ? mem : new XenBackend(xen, mem, domainMb, paging);
  }

  private constructor(
    readonly xen: XenHypervisor,
    private readonly mem: DomainMemory,
    domainMb: number,
    paging: XenPagingMode,
  ) {
    this.cpu = xen.machine.cpu;
    this.dom = mem.dom;
    this.guestPages = mem.guestPages;
    this.channel = new HypercallChannel(mem, this.cpu);
    this.passthrough = new XenPassthrough(this.channel);
    const crash = (message: string): void => this.crash(message);
    this.paging =
      paging === 'shadow'
        ? new ShadowPaging(mem, this.channel, this.cpu, this.passthrough, crash)
        : new DirectPaging(mem, this.channel, this.cpu, this.passthrough, crash, domainMb);
    this.counters = this.paging.counters;
    this.migration = new XenMigration(this, this.paging);
  }

  save(): XenBackendState {
    return {
      kind: 'xen',
      version: 3,
      timerPort: this.timerPort,
      kernelStack: this.kernelStack,
      paging: this.paging.save(),
      passthrough: this.passthrough.save(),
      emulatedDma: { ...this.emulatedDma },
      netFront: this.netFront?.save() ?? null,
      netBacks: this.clientLink?.backs.map((b) => b.save()) ?? [],
    };
  }

  restore(saved: BackendState, path: string): void {
    XEN_BACKEND_STATE(saved, path);
    const s = saved as XenBackendState;
    this.timerPort = s.timerPort;
    this.kernelStack = s.kernelStack;
    this.passthrough.restore(s.passthrough);
    if (this.paging instanceof ShadowPaging !== ('kind' in s.paging && s.paging.kind === 'shadow'))
      throw new StateError(`${path}.paging: saved with the other paging (direct or shadow)`);
    if (this.paging instanceof ShadowPaging)
      this.paging.restore(s.paging as ShadowPagingState, `${path}.paging`);
    else this.paging.restore(s.paging as DirectPagingState, `${path}.paging`);
    Object.assign(this.emulatedDma, s.emulatedDma);
    const backs = this.clientLink?.backs ?? [];
    if (
      (s.netFront === null) !== (this.netFront === undefined) ||
      s.netBacks.length !== backs.length
    )
      throw new StateError(`${path}: the saved network connections are not this VM's`);
    // The ports' handlers as the sides' start of day and connect set them (emulatedNic.ts).
    this.portHandlers.clear();
    const front = this.netFront;
    if (front !== undefined && s.netFront !== null) {
      front.restore(s.netFront, `${path}.netFront`);
      if (front.eventPort !== 0) this.onEvent(front.eventPort, () => front.event());
    }
    backs.forEach((b, k) => {
      b.restore(s.netBacks[k], `${path}.netBacks[${k}]`);
      if (b.isConnected) this.onEvent(b.eventPort, () => b.event());
    });
  }

  /** The guest's physical memory as one array (domain frames are allocated contiguously). */
  guestRam(): Uint8Array {
    return this.mem.guestRam();
  }

  vcpuBlock(): DataView {
    return this.mem.vcpuBlock();
  }

  // ---- start of day ------------------------------------------------------------------------

  /** Window, initial address space, trap table and callbacks, then the CPU at the entry. */
  start(
    vmm: VmmCore,
    entries: EntryTable,
    kernel: KernelEntry & { kernelOffset: number },
  ): string | undefined {
    const { entry, registers, kernelOffset: offset } = kernel;
    this.vmm = vmm;
    this.passthrough.attach(vmm.platform);
    const xen = this.xen;
    const dom = this.dom;
    const cpu = this.cpu;
    const c = this.channel;
    const baseMfn = this.mem.buildInitialSpace(offset);
    if (typeof baseMfn === 'string') return baseMfn;

    // CPU state: ring 1, the kernel's entry with its boot protocol's registers (after the switch, so
    // that a domain already running keeps its virtual CPU: the hypervisor's scheduler.ts).
    dom.entries = entries;
    xen.switchTo(dom);
    cpu.enterFlatProtectedMode();
    cpu.gdtr = { base: GDT_VIRT, limit: 7 * 8 - 1 };
    cpu.idtr = { base: 0, limit: 0 };
    cpu.ldtr.loadNull(0);
    cpu.tr.loadNull(0);
    cpu.cr4 = 0;
    cpu.cr3 = baseMfn * 4096;
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
    cpu.eax = registers.eax;
    cpu.ebx = registers.ebx;
    cpu.esi = registers.esi;
    cpu.esp = VCPU_PAGE + (PAGE_STACK + 1) * 4096;
    cpu.invalidateAllCode();
    dom.startCycle = cpu.cycles;
    xen.updateTime(dom);
    cpu.attachMonitor(xen);
    const bind = (at: number, name: string, handler: () => void): void => {
      const r = entries.bind(at, name, handler);
      // Entry addresses are the backend's own constants (layout.ts): a clash is a bug here.
      if (typeof r === 'string') throw new Error(`xen backend: ${r}`);
    };

    // Every vector reaches the VMM; INT n from ring 3 is allowed for all but the vectors whose
    // exceptions push an error code (so their entries always see one).
    for (let v = 0; v < 256; v++) {
      const at = v * 8;
      c.argWrite(at, 1, v);
      c.argWrite(at + 1, 1, ERROR_CODE_VECTORS.has(v) ? 0 : 3);
      c.argWrite(at + 2, 2, Selector.RING1_CS);
      c.argWrite(at + 4, 4, trapEntry(v));
      bind(trapEntry(v), `xen.trap[${v}]`, () => this.onTrap(v));
    }
    c.argWrite(256 * 8 + 4, 4, 0);
    const calls: [number, number[]][] = [
      [Hypercall.set_trap_table, [ARGS_PAGE]],
      [
        Hypercall.set_callbacks,
        [Selector.RING1_CS, ENTRY_UPCALL, Selector.RING1_CS, ENTRY_FAILSAFE],
      ],
    ];
    for (const [nr, args] of calls) {
      const r = c.hypercall(nr, args);
      if (r !== 0) return `hypercall ${nr} failed at start (${r})`;
    }
    bind(ENTRY_UPCALL, 'xen.upcall', () => this.onUpcall());
    bind(ENTRY_FAILSAFE, 'xen.failsafe', () => this.crash('failsafe callback'));
    c.argWrite(0, 4, Virq.TIMER);
    c.argWrite(4, 4, 0);
    if (c.hypercall(Hypercall.event_channel_op, [EvtchnOp.bind_virq, ARGS_PAGE]) !== 0)
      return 'cannot bind VIRQ_TIMER';
    this.timerPort = c.argRead(8);
    const bound = this.passthrough.bind();
    if (bound !== undefined) return bound;
    for (const hook of this.startHooks) {
      const failed = hook();
      if (failed !== undefined) return failed;
    }
    c.writeShared8(SharedInfo.upcall_mask, 0);
    return undefined;
  }

  /** Work for the start of day (a device's hypercalls, made in the domain's context). */
  atStart(hook: () => string | undefined): void {
    this.startHooks.push(hook);
  }

  /** What an event on `port` does (a device's interdomain channel); undefined: nothing again. */
  onEvent(port: number, handler: (() => void) | undefined): void {
    if (handler === undefined) this.portHandlers.delete(port);
    else this.portHandlers.set(port, handler);
  }

  deviceEoi(irq: number): void {
    this.passthrough.eoi(irq);
  }

  /** A hypercall as the VMM's `int $0x82` would make it: counted and charged as one. */
  hypercall(nr: number, args: number[]): number {
    return this.channel.hypercall(nr, args);
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
      chunk.forEach((b, k) => this.channel.argWrite(k, 1, b));
      this.hypercall(Hypercall.console_io, [0, chunk.length, ARGS_PAGE]);
    }
  }

  shutdown(kind: 'poweroff' | 'reboot', status: number): void {
    this.channel.argWrite(0, 4, kind === 'poweroff' ? Shutdown.poweroff : Shutdown.reboot);
    this.channel.argWrite(4, 4, status);
    this.hypercall(Hypercall.sched_op, [SchedOp.shutdown, ARGS_PAGE]);
  }

  crash(message: string): void {
    this.xen.crash(this.dom, `vmm: ${message}`);
  }

  /** SCHEDOP_block: the domain sleeps until an event, unless one is pending (then: poll). */
  idle(): boolean {
    this.hypercall(Hypercall.sched_op, [SchedOp.block]);
    if (this.cpu.halted) return true;
    this.pollEvents();
    return false;
  }

  haltForever(resume: number): number {
    this.setTimer(0);
    this.xen.haltForever(this.dom);
    return resume;
  }

  setKernelStack(esp0: number): void {
    if (esp0 === this.kernelStack) return;
    this.kernelStack = esp0;
    this.hypercall(Hypercall.stack_switch, [Selector.RING1_DS, esp0]);
  }

  /**
   * The guest's frame at ESP gets the hypervisor's selectors (ring 1, or ring 3 for user mode)
   * and the real EFLAGS (IF on: events are masked through shared info, never by IF); the `iret`
   * stub takes it. The data segments need no reload: they are the ring-3 flat segment always.
   */
  returnFromInterrupt(toUser: boolean, eflags: number): number {
    const cpu = this.cpu;
    const at = (offset: number): number => (cpu.segs[SS].base + cpu.esp + offset) >>> 0;
    cpu.writeLinear(at(4), 4, toUser ? Selector.RING3_CS : Selector.RING1_CS);
    cpu.writeLinear(at(8), 4, ((eflags & ~VIRTUAL_FLAGS) | EFLAGS_IF) >>> 0);
    if (toUser) cpu.writeLinear(at(16), 4, Selector.RING3_DS);
    return STUB_IRET;
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Takes the pending, unmasked ports off shared info and hands them to the core. */
  private pollEvents(): void {
    const c = this.channel;
    while (c.readShared8(SharedInfo.upcall_pending) !== 0) {
      c.writeShared8(SharedInfo.upcall_pending, 0);
      const sel = c.readShared32(SharedInfo.pending_sel);
      c.writeShared32(SharedInfo.pending_sel, 0);
      for (let w = 0; w < 32; w++) {
        if ((sel & (1 << w)) === 0) continue;
        const pendingAt = SharedInfo.evtchn_pending + w * 4;
        const bits = c.readShared32(pendingAt) & ~c.readShared32(SharedInfo.evtchn_mask + w * 4);
        c.writeShared32(pendingAt, c.readShared32(pendingAt) & ~bits);
        for (let b = 0; b < 32; b++) if ((bits & (1 << b)) !== 0) this.event(w * 32 + b);
      }
    }
  }

  private event(port: number): void {
    if (port === this.timerPort) this.vmm.timerExpired();
    else if (port === this.mem.consolePort) this.consoleInput();
    else if (port === this.passthrough.pirqPort)
      this.vmm.deviceInterrupt(this.passthrough.deviceIrq);
    else this.portHandlers.get(port)?.();
  }

  /** Takes what arrived in the console ring's `in` buffer. */
  private consoleInput(): void {
    const page = this.dom.consoleMfn * 4096;
    let cons = this.mem.read32(page + ConsoleRing.in_cons);
    const prod = this.mem.read32(page + ConsoleRing.in_prod);
    const bytes: number[] = [];
    const wasFull = (prod - cons) >>> 0 >= ConsoleRing.inSize;
    while (cons !== prod) {
      bytes.push(this.xen.machine.ram[page + ConsoleRing.in + (cons % ConsoleRing.inSize)]);
      cons = (cons + 1) >>> 0;
    }
    this.mem.view.setUint32(page + ConsoleRing.in_cons, cons, true);
    if (bytes.length > 0) this.vmm.consoleInput(bytes);
    // A full ring may have more waiting behind it: the send makes the hypervisor refill it.
    if (wasFull) {
      this.channel.argWrite(0, 4, this.mem.consolePort);
      this.hypercall(Hypercall.event_channel_op, [EvtchnOp.send, ARGS_PAGE]);
    }
  }

  /** The event callback: events masked by the hypervisor; handle them, unmask, continue. */
  private onUpcall(): void {
    this.pollEvents();
    this.channel.writeShared8(SharedInfo.upcall_mask, 0);
    this.cpu.push(this.vmm.eventsHandled() ?? STUB_IRET, 4);
  }

  /** A bounced trap (frame on the ring-1 stack). */
  private onTrap(vector: number): void {
    const cpu = this.cpu;
    const errorCode = ERROR_CODE_VECTORS.has(vector)
      ? cpu.readLinear((cpu.segs[SS].base + cpu.esp) >>> 0, 4)
      : undefined;
    let faultAddress: number | undefined;
    if (vector === Vector.PF) {
      faultAddress = this.channel.readShared32(SharedInfo.cr2);
      if (this.paging.resolveFault(faultAddress, errorCode ?? 0)) {
        cpu.esp = (cpu.esp + 4) >>> 0;
        cpu.push(STUB_IRET, 4);
        return;
      }
    }
    const software = vector >= 32 || vector === Vector.BP || vector === Vector.OF;
    cpu.push(
      this.vmm.trap({ vector, errorCode, software, faultAddress, context: { kind: 'frame' } }),
      4,
    );
  }

  // ---- page tables (paging.ts) -----------------------------------------------------------------

  pageTableWrite(level: 1 | 2, ptr: number, value: number): void {
    this.paging.pageTableWrite(level, ptr, value);
  }

  pageTableRead(level: 1 | 2, ptr: number): number {
    return this.paging.pageTableRead(level, ptr);
  }

  pageTableTestClear(ptr: number): number {
    return this.paging.pageTableTestClear(ptr);
  }

  loadCr3(cr3: number): void {
    this.paging.loadCr3(cr3);
  }

  enablePaging(cr3: number): void {
    this.paging.enablePaging(cr3);
  }

  invlpg(linear: number): void {
    this.paging.invlpg(linear);
  }

  /** Under shadow paging, through the guest's own tables (the shadow may not map it yet). */
  readGuestByte(linear: number): number | undefined {
    return this.paging instanceof ShadowPaging ? this.paging.readGuestByte(linear) : undefined;
  }
}
