/**
 * previrt's Xen-style para-virtualizing hypervisor (shared/reference/xen-pv.md, DESIGN.md
 * decision 5). It owns ring 0 through the CPU's monitor interface: every exception, interrupt and
 * INT n of the guest exits here. `int $0x82` from ring 1 is a hypercall (hypercalls.ts); other
 * events are bounced into the guest kernel's own handlers from its virtual trap table, or crash
 * the domain when it has none. Event channels are delivered as upcalls to the guest's callback.
 *
 * Its state is TypeScript, outside guest memory. What the CPU itself must read through the
 * guest's address space (the GDT; and the machine-to-phys table, for the guest) sits in
 * hypervisor frames mapped read-only in the top page-directory slot of every validated L2.
 */
import type { Machine } from '../../machine/Machine.ts';
import type { CounterTree, Hypervisor, HypervisorState, VmInfo } from '../Hypervisor.ts';
import type { SoftwareCosts } from '../../machine/costModel.ts';
import type { Cpu } from '../../x86/Cpu.ts';
import { CpuFault, Vector } from '../../x86/fault.ts';
import type { CpuEvent } from '../../x86/monitor.ts';
import { SS } from '../../x86/segment.ts';
import {
  ConsoleRing,
  GDT_VIRT,
  HYPERCALL_VECTOR,
  HYPERVISOR_VIRT_START,
  INVALID_P2M_ENTRY,
  MACH2PHYS_VIRT,
  PTE_A,
  PTE_P,
  PTE_RW,
  Selector,
  SharedInfo,
  Virq,
} from './abi.ts';
import { confineDma, domainDma, type DeviceGrant } from './devices.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  oneOf,
  shape,
  StateError,
  str,
  type Check,
} from '../../machine/state.ts';
import { destroyDomain } from './destroy.ts';
import { Domain, type DomainSaved } from './domain.ts';
import { FrameTable, OWNER_XEN, type FrameTableState } from './frames.ts';
import { dispatchHypercall, HYPERCALL_NAMES } from './hypercalls.ts';
import type { GrantCounters } from './grants.ts';
import { SCHEDULER_STATE, XenScheduler, type SchedulerState } from './scheduler.ts';

/** Counters every run reports (DESIGN.md decision 4: raw counts beside the cycles). */
export interface XenCounters {
  /** Hypercalls by name (unknown numbers under "unknown"). */
  hypercalls: Record<string, number>;
  /** Hypercalls that returned an error. */
  hypercallErrors: number;
  /** Traps bounced into the guest, by vector. */
  bounces: number[];
  upcalls: number;
  eventsSent: number;
  /** Page-table entries validated and written (mmu_update elements, update_va_mapping). */
  pteUpdates: number;
  pins: number;
  unpins: number;
  baseSwitches: number;
  timerInterrupts: number;
  /** I/O-port accesses emulated for a granted device. */
  ioEmulated: number;
  /** Hardware interrupts of granted devices raised on their pirq event channels. */
  pirqEvents: number;
  /** DMA transfers of granted devices translated, and refused (outside the domain). */
  dmaTranslated: number;
  dmaRefused: number;
}

export interface XenOptions {
  /**
   * Receives console output: console_io writes, the console ring, hypervisor messages (a domain
   * with a console of its own, `Domain.console`, writes there instead).
   */
  console?: (byte: number) => void;
}

/**
 * The hypervisor in a snapshot (DESIGN.md decision 11): the frame table, every domain, the
 * counters and the console's waiting input. Its own frames (GDT, M2P) are machine memory, saved
 * with it; the domains' frames and grants come from building the same configuration again.
 */
export interface XenState {
  kind: 'xen';
  version: 3;
  frames: FrameTableState;
  domains: DomainSaved[];
  current: number | null;
  counters: XenCounters;
  end: DomainEnd | null;
  picReady: boolean;
  consoleInput: number[];
  scheduler: SchedulerState;
  primary: number | null;
  grantCounters: GrantCounters;
  interdomainEvents: number;
}

/** The shape a saved hypervisor must have (its domains are checked as they are restored). */
const XEN_STATE: Check = checkState<XenState>('xen', 3, {
  kind: oneOf('xen'),
  frames: shape<FrameTableState>({
    frames: num,
    owner: arrayOf(num),
    type: arrayOf(num),
    typeCount: arrayOf(num),
    pinned: arrayOf(num),
    noPageTable: arrayOf(num),
    writableGone: arrayOf(num),
    hypervisorPde: num,
  }),
  domains: arrayOf((v, path) => shape<{ id: number }>({ id: num })(v, path)),
  current: nullable(num),
  counters: shape<Pick<XenCounters, 'hypercalls' | 'bounces'>>({
    hypercalls: (v, path) => shape<object>({})(v, path),
    bounces: arrayOf(num, 256),
  }),
  end: nullable(
    shape<DomainEnd>({
      domain: num,
      kind: oneOf('poweroff', 'reboot', 'crash'),
      status: num,
      message: str,
    }),
  ),
  picReady: bool,
  consoleInput: arrayOf(num),
  scheduler: SCHEDULER_STATE,
  primary: nullable(num),
  grantCounters: shape<GrantCounters>({
    maps: num,
    unmaps: num,
    copies: num,
    copiedBytes: num,
    errors: num,
  }),
  interdomainEvents: num,
});

/** What ended a domain, for callers and tests. */
export interface DomainEnd {
  domain: number;
  kind: 'poweroff' | 'reboot' | 'crash';
  status: number;
  message: string;
}

export class XenHypervisor implements Hypervisor {
  readonly name = 'xen';
  readonly cpu: Cpu;
  readonly frames: FrameTable;
  readonly domains: Domain[] = [];
  /** The domain the CPU is running (the others wait with their virtual CPUs: scheduler.ts). */
  current: Domain | undefined;
  readonly scheduler: XenScheduler;
  /**
   * The domain whose end ends the run, and which takes console input; undefined: any domain's
   * end ends it and input goes to the running one (a machine with one domain). With several
   * domains, the others' ends are reported on their consoles and they stop being scheduled.
   */
  primary: Domain | undefined;
  readonly costs: Readonly<SoftwareCosts>;
  readonly counters: XenCounters = {
    hypercalls: {},
    hypercallErrors: 0,
    bounces: new Array<number>(256).fill(0),
    upcalls: 0,
    eventsSent: 0,
    pteUpdates: 0,
    pins: 0,
    unpins: 0,
    baseSwitches: 0,
    timerInterrupts: 0,
    ioEmulated: 0,
    pirqEvents: 0,
    dmaTranslated: 0,
    dmaRefused: 0,
  };
  readonly grantCounters: GrantCounters = {
    maps: 0,
    unmaps: 0,
    copies: 0,
    copiedBytes: 0,
    errors: 0,
  };
  /** Events sent on interdomain channels. */
  interdomainEvents = 0;
  end: DomainEnd | undefined;
  /** The PIC has been set up for granted devices' interrupts. */
  private picReady = false;
  /** What takes each granted device's DMA confinement away again (releaseDevices). */
  private readonly dmaReleases = new Map<DeviceGrant, () => void>();
  /**
   * The toolstack's watch on domains that end while the run goes on (in Xen, dom0 hears of them
   * by VIRQ_DOM_EXC): called after a crash or shutdown that does not end the run. It is called
   * from inside the hypervisor (a hypercall, a trap, an injected fault), so it should only
   * schedule its work for a clock event, where the CPU is between instructions.
   */
  onDomainEnd: ((dom: Domain, end: DomainEnd) => void) | undefined;
  /** Host input waiting for the guest console (console ring or CONSOLEIO_read). */
  readonly consoleInput: number[] = [];
  readonly consoleOut: (byte: number) => void;
  private readonly view: DataView;
  /** Hypervisor frames: the GDT, the page table of the hypervisor slot, the M2P table. */
  readonly gdtMfn: number;
  readonly m2pMfns: number[];

  constructor(
    readonly machine: Machine,
    options: XenOptions = {},
  ) {
    this.cpu = machine.cpu;
    this.costs = machine.costModel.software;
    this.consoleOut = options.console ?? (() => {});
    this.scheduler = new XenScheduler(this, Math.round(machine.costModel.hz / 100));
    const ram = machine.ram;
    this.view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    const cpu = this.cpu;
    this.frames = new FrameTable(
      ram.length >>> 12,
      {
        read32: (maddr) => this.view.getUint32(maddr, true),
        write32: (maddr, value) => cpu.writePhysical(maddr, 4, value >>> 0),
        tlbEpoch: () => cpu.counters.tlbFlushes,
        flushTlb: () => cpu.flushTlb(true),
        charge: (cycles) => cpu.charge(cycles),
      },
      this.costs.xenPinPerEntry,
    );

    // The first megabyte stays the hypervisor's (the PC's legacy area), then its own frames.
    const frames = ram.length >>> 12;
    const m2pPages = Math.ceil((frames * 4) / 4096);
    const own = this.frames.allocate(OWNER_XEN, 256 + 2 + m2pPages);
    if (own === undefined) throw new Error('xen: machine memory too small for the hypervisor');
    this.gdtMfn = own[256];
    const slotL1 = own[257];
    this.m2pMfns = own.slice(258);
    for (let mfn = 0; mfn < frames; mfn++) this.setM2p(mfn, INVALID_P2M_ENTRY);

    // The GDT (SDM 3A 3.4.5): flat 4 GB segments for rings 0, 1 and 3, accessed bits preset so
    // the CPU never writes to the read-only page when it loads them.
    const gdt = this.gdtMfn * 4096;
    const descriptor = (index: number, access: number): void => {
      this.view.setUint32(gdt + index * 8, 0x0000ffff, true);
      this.view.setUint32(gdt + index * 8 + 4, 0x00cf0000 | (access << 8), true);
    };
    descriptor(Selector.HYPERVISOR_CS >> 3, 0x9b);
    descriptor(Selector.HYPERVISOR_DS >> 3, 0x93);
    descriptor(Selector.RING1_CS >> 3, 0xbb);
    descriptor(Selector.RING1_DS >> 3, 0xb3);
    descriptor(Selector.RING3_CS >> 3, 0xfb);
    descriptor(Selector.RING3_DS >> 3, 0xf3);

    // SAFETY: the hypervisor slot maps only these frames, read-only and supervisor-only; CR0.WP
    // makes read-only binding for ring 1 too. A and D are preset so the page walk never writes.
    const slot = slotL1 * 4096;
    const map = (virt: number, mfn: number): void => {
      const index = (virt - HYPERVISOR_VIRT_START) >>> 12;
      this.view.setUint32(slot + index * 4, ((mfn << 12) | PTE_P | PTE_A) >>> 0, true);
    };
    map(GDT_VIRT, this.gdtMfn);
    this.m2pMfns.forEach((mfn, k) => map(MACH2PHYS_VIRT + k * 4096, mfn));
    this.frames.hypervisorPde = ((slotL1 << 12) | PTE_P | PTE_A) >>> 0;
    void PTE_RW;
  }

  // ---- the hypervisor contract (../Hypervisor.ts) ------------------------------------------

  vms(): VmInfo[] {
    return this.domains.map((d) => ({ id: d.id, state: d.state, ending: d.ending }));
  }

  /** Every counter; bounces by vector as an object of the vectors that had any. */
  stats(): CounterTree {
    const { hypercalls, bounces, ...rest } = this.counters;
    const byVector: CounterTree = {};
    bounces.forEach((n, v) => {
      if (n > 0) byVector[v] = n;
    });
    const scheduler = this.scheduler.stats();
    // Shown with several domains, or once used (a single-domain run's figures stay as they were).
    const g = this.grantCounters;
    const shared: CounterTree =
      scheduler !== undefined || g.maps + g.copies + g.errors + this.interdomainEvents > 0
        ? { grants: { ...g }, interdomainEvents: this.interdomainEvents }
        : {};
    return {
      hypercalls: { ...hypercalls },
      bounces: byVector,
      ...rest,
      ...(scheduler === undefined ? {} : { scheduler }),
      ...shared,
    };
  }

  save(): XenState {
    return {
      kind: 'xen',
      version: 3,
      frames: this.frames.save(),
      domains: this.domains.map((d) => d.save()),
      current: this.current?.id ?? null,
      counters: structuredClone(this.counters),
      end: this.end === undefined ? null : { ...this.end },
      picReady: this.picReady,
      consoleInput: [...this.consoleInput],
      scheduler: this.scheduler.save(),
      primary: this.primary?.id ?? null,
      grantCounters: { ...this.grantCounters },
      interdomainEvents: this.interdomainEvents,
    };
  }

  /**
   * Restores a snapshot into a hypervisor built from the same configuration (its domains built
   * again, the clock already restored: the domains' timers are scheduled at their saved places).
   * A message if the snapshot does not fit.
   */
  restore(saved: HypervisorState, path: string): void {
    XEN_STATE(saved, path);
    const state = saved as XenState;
    if (state.domains.length !== this.domains.length)
      throw new StateError(
        `${path}.domains: ${state.domains.length} in the snapshot, the configuration builds ${this.domains.length}`,
      );
    if (state.current !== null && this.domains[state.current] === undefined)
      throw new StateError(`${path}.current: no domain ${state.current}`);
    this.frames.restore(state.frames, `${path}.frames`);
    for (const [k, dom] of this.domains.entries()) {
      dom.restore(
        state.domains[k],
        (timer) => this.machine.clock.restoreAt(timer, () => this.timerFired(dom), 'xen.timer'),
        `${path}.domains[${k}]`,
      );
    }
    this.current = state.current === null ? undefined : this.domains[state.current];
    Object.assign(this.counters, structuredClone(state.counters));
    this.end = state.end ?? undefined;
    this.picReady = state.picReady;
    this.consoleInput.length = 0;
    this.consoleInput.push(...state.consoleInput);
    if ((state.primary ?? undefined) !== this.primary?.id)
      throw new StateError(
        `${path}.primary: domain ${state.primary} in the snapshot, the configuration's is ${this.primary?.id ?? null}`,
      );
    this.scheduler.restore(state.scheduler, `${path}.scheduler`);
    Object.assign(this.grantCounters, state.grantCounters);
    this.interdomainEvents = state.interdomainEvents;
    // The running domain's bound entries are the CPU's (the machine's audit checks the name).
    const table = this.current?.entries ?? this.cpu.defaultEntries;
    if (this.cpu.activeEntryTable !== table) this.cpu.useEntryTable(table);
  }

  /**
   * The CPU runs `dom` from now on (start of day: its builder then sets up the CPU): the running
   * domain's virtual CPU is kept for it, and `dom`'s bound entries are the ones consulted.
   */
  switchTo(dom: Domain): void {
    this.scheduler.contextSwitch(dom);
  }

  // ---- machine-to-phys table -----------------------------------------------------------

  setM2p(mfn: number, pfn: number): void {
    const at = this.m2pMfns[mfn >>> 10] * 4096 + (mfn & 0x3ff) * 4;
    this.view.setUint32(at, pfn >>> 0, true);
  }

  getM2p(mfn: number): number {
    return this.view.getUint32(this.m2pMfns[mfn >>> 10] * 4096 + (mfn & 0x3ff) * 4, true);
  }

  // ---- the monitor -----------------------------------------------------------------------

  /** Every exception, interrupt and INT n of the guest (x86/monitor.ts). */
  onEvent(event: CpuEvent): void {
    const dom = this.current;
    const cpu = this.cpu;
    if (dom === undefined || !dom.alive) {
      // An ended domain's CPU idles while the others are blocked; a device still interrupts.
      if (event.kind === 'interrupt') this.hardwareInterrupt(event.vector);
      cpu.halted = true;
      return;
    }
    this.updateTime(dom);
    if (event.kind === 'interrupt') {
      // Hardware interrupts belong to the hypervisor. With no device granted there are none
      // (the PIT is not programmed); a granted device's line becomes its pirq event (devices.ts).
      this.hardwareInterrupt(event.vector);
    } else if (event.kind === 'software') {
      if (event.vector === HYPERCALL_VECTOR && cpu.cpl === 1) this.hypercall(dom);
      else this.softwareInterrupt(dom, event.vector);
    } else {
      this.exception(dom, event.vector, event.errorCode);
    }
    this.deliverUpcall(dom);
  }

  private hypercall(dom: Domain): void {
    const cpu = this.cpu;
    const nr = cpu.eax;
    const name = HYPERCALL_NAMES.get(nr) ?? 'unknown';
    this.counters.hypercalls[name] = (this.counters.hypercalls[name] ?? 0) + 1;
    dom.hypercalls++;
    const result = dispatchHypercall(this, dom, nr, [cpu.ebx, cpu.ecx, cpu.edx, cpu.esi, cpu.edi]);
    if (result < 0) this.counters.hypercallErrors++;
    // The hypercall may have ended the domain; the registers no longer matter then.
    cpu.eax = result >>> 0;
    // The return to the guest: an IRET to an outer privilege (cost-model.md, hypercall row).
    cpu.charge(cpu.costs.iretOuter);
  }

  /** INT n: through the virtual IDT with the gate's DPL check, as the hardware would. */
  private softwareInterrupt(dom: Domain, vector: number): void {
    const entry = dom.traps[vector];
    if (entry === undefined || entry.dpl < this.cpu.cpl) {
      // SDM 3A 6.12.1.1: #GP with the IDT entry's selector-style error code (IDT bit set).
      this.exception(dom, Vector.GP, vector * 8 + 2);
      return;
    }
    this.bounceTrap(dom, vector, undefined);
  }

  private exception(dom: Domain, vector: number, errorCode: number | undefined): void {
    const cpu = this.cpu;
    if (vector === Vector.GP && cpu.cpl === 1 && emulatePortIo(this, dom)) return;
    if (vector === Vector.PF) this.writeShared32(dom, SharedInfo.cr2, cpu.cr2);
    if (dom.traps[vector] === undefined) {
      const names = ['#DE', '#DB', 'NMI', '#BP', '#OF', '#BR', '#UD', '#NM', '#DF', '', '#TS'];
      const more = ['#NP', '#SS', '#GP', '#PF', '', '#MF', '#AC', '#MC', '#XM'];
      const label = [...names, ...more][vector] || `vector ${vector}`;
      const code = errorCode === undefined ? '' : ` (error code 0x${errorCode.toString(16)})`;
      const at = `${hex(cpu.segs[1].selector, 4)}:${hex(cpu.eip, 8)}`;
      const cr2 = vector === Vector.PF ? `, cr2 ${hex(cpu.cr2, 8)}` : '';
      this.crash(dom, `unhandled ${label}${code} at ${at}${cr2}, no handler in the trap table`);
      return;
    }
    this.bounceTrap(dom, vector, errorCode);
  }

  /**
   * Delivers a trap into the guest's handler (Xen's create_bounce_frame): the ring-1 handler
   * from the trap table, on the kernel stack from stack_switch when the guest was in ring 3.
   * The saved EFLAGS.IF shows the virtual IF (events unmasked), as Xen's frame does.
   */
  bounceTrap(dom: Domain, vector: number, errorCode: number | undefined): void {
    const entry = dom.traps[vector];
    if (entry === undefined) return;
    const masked = this.readShared8(dom, SharedInfo.upcall_mask) !== 0;
    if (!this.bounce(dom, vector, errorCode, entry, masked, this.costs.bounce)) return;
    this.counters.bounces[vector]++;
    if (entry.maskEvents) this.writeShared8(dom, SharedInfo.upcall_mask, 1);
  }

  /** Builds the frame; false (and the domain crashed) if the guest's stack cannot take it. */
  private bounce(
    dom: Domain,
    vector: number,
    errorCode: number | undefined,
    handler: { cs: number; eip: number },
    eventsMasked: boolean,
    cost: number,
  ): boolean {
    const cpu = this.cpu;
    const fromUser = cpu.cpl !== 1;
    if (fromUser && dom.kernelStack === undefined) {
      this.crash(dom, `event ${vector} in ring ${cpu.cpl} and no kernel stack (stack_switch)`);
      return false;
    }
    const before = cpu.cycles;
    try {
      cpu.bounce(vector, errorCode, handler, fromUser ? { stack: dom.kernelStack } : {});
      if (eventsMasked) {
        // The frame: [error code] EIP CS EFLAGS ...; clear IF in the saved EFLAGS.
        const at = cpu.segs[SS].base + cpu.esp + (errorCode === undefined ? 8 : 12);
        cpu.writeLinear(at, 4, cpu.readLinear(at, 4) & ~0x200);
      }
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      this.crash(
        dom,
        `fault ${e.vector} while building the frame for event ${vector} (bad stack?)`,
      );
      return false;
    }
    // The bounce costs its figure in all; what the CPU charged for writing the frame counts.
    cpu.charge(Math.max(0, cost - (cpu.cycles - before)));
    return true;
  }

  // ---- events --------------------------------------------------------------------------

  /** evtchn_set_pending: mark the port; an unmasked 0→1 raises upcall_pending. */
  setPending(dom: Domain, port: number): void {
    if (!dom.alive) return;
    const word = port >>> 5;
    const bit = 1 << (port & 31);
    const pendingAt = SharedInfo.evtchn_pending + word * 4;
    const pending = this.readShared32(dom, pendingAt);
    if ((pending & bit) !== 0) return;
    this.writeShared32(dom, pendingAt, pending | bit);
    const mask = this.readShared32(dom, SharedInfo.evtchn_mask + word * 4);
    if ((mask & bit) !== 0) return;
    this.writeShared32(
      dom,
      SharedInfo.pending_sel,
      this.readShared32(dom, SharedInfo.pending_sel) | (1 << word),
    );
    this.writeShared8(dom, SharedInfo.upcall_pending, 1);
    if (dom.state === 'blocked') this.wake(dom);
  }

  sendVirq(dom: Domain, virq: number): void {
    const port = dom.virqPort[virq];
    if (port !== 0) this.setPending(dom, port);
  }

  private wake(dom: Domain): void {
    dom.state = 'running';
    if (dom === this.current) this.cpu.halted = false;
    else this.scheduler.woke(dom);
  }

  /**
   * Upcalls the guest's event callback if an event is pending and the guest has events
   * unmasked (virtual IF = !upcall_mask). Called on every way back into the guest.
   */
  deliverUpcall(dom: Domain): void {
    if (dom !== this.current || dom.state !== 'running' || dom.eventCallback === undefined) return;
    if (this.readShared8(dom, SharedInfo.upcall_pending) === 0) return;
    if (this.readShared8(dom, SharedInfo.upcall_mask) !== 0) return;
    this.writeShared8(dom, SharedInfo.upcall_mask, 1);
    if (this.bounce(dom, -1, undefined, dom.eventCallback, false, this.costs.xenUpcall)) {
      this.counters.upcalls++;
    }
  }

  // ---- the timer -----------------------------------------------------------------------

  /** Nanoseconds of the domain's system time at the current cycle. */
  systemTime(dom: Domain): number {
    const cycles = this.machine.clock.now() - dom.startCycle;
    return Math.floor((cycles * 1e9) / this.machine.costModel.hz);
  }

  /** set_timer_op: VIRQ_TIMER at an absolute system time in ns (0 cancels). */
  setTimer(dom: Domain, deadlineNs: number): void {
    dom.timer?.cancel();
    dom.timer = undefined;
    if (deadlineNs === 0) return;
    const hz = this.machine.costModel.hz;
    const cycle = dom.startCycle + Math.ceil((Math.min(deadlineNs, 2 ** 62) * hz) / 1e9);
    if (cycle <= this.machine.clock.now()) {
      this.sendVirq(dom, Virq.TIMER);
      return;
    }
    dom.timer = this.machine.clock.at(cycle, () => this.timerFired(dom), 'xen.timer');
    // The guest arms its timer while the CPU runs: the clock tells the CPU to end its run slice
    // at the new deadline (SimClock → Cpu.shortenRun), so the tick is not a slice late.
  }

  private timerFired(dom: Domain): void {
    dom.timer = undefined;
    if (!dom.alive) return;
    // Xen would take the hardware timer interrupt here: charge its trap into ring 0.
    this.counters.timerInterrupts++;
    this.cpu.charge(this.cpu.costs.gatePrivilege);
    this.updateTime(dom);
    this.sendVirq(dom, Virq.TIMER);
    this.deliverUpcall(dom);
  }

  /** Refreshes vcpu_time_info in shared info (system time now, the TSC it was read at). */
  updateTime(dom: Domain): void {
    const now = this.machine.clock.now();
    const ns = this.systemTime(dom);
    const version = this.readShared32(dom, SharedInfo.time_version);
    this.writeShared32(dom, SharedInfo.time_version, version + 1);
    this.writeShared32(dom, SharedInfo.tsc_timestamp, now % 2 ** 32);
    this.writeShared32(dom, SharedInfo.tsc_timestamp + 4, Math.floor(now / 2 ** 32));
    this.writeShared32(dom, SharedInfo.system_time, ns % 2 ** 32);
    this.writeShared32(dom, SharedInfo.system_time + 4, Math.floor(ns / 2 ** 32));
    this.writeShared32(dom, SharedInfo.time_version, version + 2);
  }

  // ---- console ---------------------------------------------------------------------------

  /** Host input for the guest console: the console ring, then its event channel. */
  input(bytes: Iterable<number>): void {
    for (const b of bytes) this.consoleInput.push(b & 0xff);
    const dom = this.primary ?? this.current;
    if (dom === undefined || !dom.alive) return;
    this.fillConsoleRing(dom);
    this.sendVirq(dom, Virq.CONSOLE);
    this.deliverUpcall(dom);
  }

  /** Moves waiting input into the ring's `in` buffer and signals the console port. */
  fillConsoleRing(dom: Domain): void {
    const page = dom.consoleMfn * 4096;
    const cons = this.view.getUint32(page + ConsoleRing.in_cons, true);
    let prod = this.view.getUint32(page + ConsoleRing.in_prod, true);
    let moved = 0;
    // GUEST-CONTROLLED: in_cons; a bogus value only makes the ring look full or empty.
    while (this.consoleInput.length > 0 && (prod - cons) >>> 0 < ConsoleRing.inSize) {
      this.machine.ram[page + ConsoleRing.in + (prod % ConsoleRing.inSize)] =
        this.consoleInput.shift()!;
      prod = (prod + 1) >>> 0;
      moved++;
    }
    if (moved === 0) return;
    this.view.setUint32(page + ConsoleRing.in_prod, prod, true);
    const port = dom.channels.findIndex((c) => c.kind === 'console');
    if (port > 0) this.setPending(dom, port);
  }

  /** The guest signalled its console port: print what it put in the `out` ring. */
  drainConsoleRing(dom: Domain): void {
    const page = dom.consoleMfn * 4096;
    let cons = this.view.getUint32(page + ConsoleRing.out_cons, true);
    const prod = this.view.getUint32(page + ConsoleRing.out_prod, true);
    // GUEST-CONTROLLED: out_prod; at most one ring's worth is taken per signal.
    let n = Math.min((prod - cons) >>> 0, ConsoleRing.outSize);
    const out = this.consoleOf(dom);
    while (n-- > 0) {
      out(this.machine.ram[page + ConsoleRing.out + (cons % ConsoleRing.outSize)]);
      cons = (cons + 1) >>> 0;
    }
    this.view.setUint32(page + ConsoleRing.out_cons, cons, true);
    this.fillConsoleRing(dom);
  }

  /** Where a domain's console output goes. */
  consoleOf(dom: Domain): (byte: number) => void {
    return dom.console ?? this.consoleOut;
  }

  /** A hypervisor message, on the console of the domain it concerns (or the hypervisor's). */
  print(text: string, dom?: Domain): void {
    const out = dom === undefined ? this.consoleOut : this.consoleOf(dom);
    for (let k = 0; k < text.length; k++) out(text.charCodeAt(k) & 0xff);
  }

  /**
   * The in-place VMM's guest halted with interrupts off. Alone, the CPU stops (nothing can wake
   * it); one domain of several blocks, so the others run on.
   */
  haltForever(dom: Domain): void {
    this.cpu.halted = true;
    if (this.domains.length < 2) return;
    dom.state = 'blocked';
    this.scheduler.relinquish();
  }

  /** Whether the end of `dom` ends the run (see `primary`). */
  private endsRun(dom: Domain): boolean {
    return this.primary === undefined || this.primary === dom;
  }

  // ---- ending a domain -------------------------------------------------------------------

  /**
   * Destroys a domain that has ended and is not the primary (destroy.ts): everything it held
   * goes back. One line if it cannot be destroyed.
   */
  destroy(dom: Domain): string | undefined {
    return destroyDomain(this, dom);
  }

  /** A frame back to the allocator, with no pseudo-physical frame in M2P. */
  freeFrame(mfn: number): void {
    this.frames.free(mfn);
    this.setM2p(mfn, INVALID_P2M_ENTRY);
  }

  /** A domain the hypervisor cannot continue: a message, never a host exception. */
  crash(dom: Domain, message: string): void {
    if (!dom.alive) return;
    const endsRun = this.endsRun(dom);
    const end: DomainEnd = { domain: dom.id, kind: 'crash', status: 0, message };
    this.finish(dom, 'crashed', end);
    this.print(`(xen) domain ${dom.id} crashed: ${message}\n`, dom);
    if (!endsRun) {
      this.onDomainEnd?.(dom, end);
      return;
    }
    // The machine ends like a triple fault would: the run reports the message.
    this.cpu.shutdown(`xen: domain ${dom.id} crashed: ${message}`);
    this.cpu.requestStop();
  }

  /**
   * SCHEDOP_shutdown: poweroff ends the run with the status, as isa-debug-exit would on the raw
   * PC (the same exit status for the same guest); reboot ends it as a reset.
   */
  shutdown(dom: Domain, kind: 'poweroff' | 'reboot', status: number): void {
    if (!dom.alive) return;
    const message = kind === 'poweroff' ? `poweroff, status ${status}` : 'reboot';
    const endsRun = this.endsRun(dom);
    const end: DomainEnd = { domain: dom.id, kind, status, message };
    this.finish(dom, 'shutdown', end);
    if (!endsRun) {
      this.print(`(xen) domain ${dom.id}: ${message}\n`, dom);
      this.onDomainEnd?.(dom, end);
    } else if (kind === 'poweroff') this.machine.requestExit(status & 0xff);
    else this.machine.requestReset();
  }

  private finish(dom: Domain, state: 'crashed' | 'shutdown', end: DomainEnd): void {
    const endsRun = this.endsRun(dom);
    dom.state = state;
    dom.ending = end.message;
    dom.timer?.cancel();
    dom.timer = undefined;
    if (endsRun) this.end ??= end;
    // Nothing of the domain runs any more (the machine notices the exit at its next check);
    // another domain may run meanwhile.
    if (dom === this.current) {
      this.cpu.halted = true;
      if (!endsRun) this.scheduler.relinquish();
    }
  }

  // ---- hardware interrupts and granted devices -------------------------------------------

  /**
   * Gives a domain direct access to a device (devices.ts). The first grant with IRQ lines sets
   * up the PIC for the hypervisor: vectors 0x20–0x2F, every line masked until its pirq is bound.
   */
  grantDevice(dom: Domain, grant: DeviceGrant): void {
    dom.grants.push(grant);
    if (grant.dma !== undefined) {
      // Its own frames, and frames of other domains it mapped by grant (grants.ts).
      const owns = (mfn: number): boolean =>
        this.frames.ownedBy(dom, mfn) || dom.grantTable.holds(mfn);
      const window = (slot: number): number | undefined => dom.grantTable.windowFrame(slot);
      this.dmaReleases.set(
        grant,
        confineDma(grant.dma, domainDma(dom.p2m, owns, window), this.counters),
      );
    }
    if (grant.irqs.length === 0 || this.picReady) return;
    this.picReady = true;
    const out = (port: number, value: number): void => this.machine.ports.write(port, 1, value);
    // ICW1 (edge, cascade, ICW4), ICW2 vector base, ICW3 wiring, ICW4 8086 mode; OCW1 masks.
    for (const [cmd, data, base, wiring] of [
      [0x20, 0x21, 0x20, 0x04],
      [0xa0, 0xa1, 0x28, 0x02],
    ]) {
      out(cmd, 0x11);
      out(data, base);
      out(data, wiring);
      out(data, 0x01);
    }
    out(0x21, 0xfb); // all masked but the cascade (IRQ 2)
    out(0xa1, 0xff);
  }

  /**
   * The devices granted to a destroyed domain come back (destroy.ts): each line masked, its DMA
   * no longer confined to the domain (the device is nobody's until granted again), the device
   * reset by the grant's own `reset`.
   */
  releaseDevices(dom: Domain): void {
    for (const grant of dom.grants.splice(0)) {
      for (const irq of grant.irqs) if (this.picReady) this.setIrqMasked(irq, true);
      this.dmaReleases.get(grant)?.();
      this.dmaReleases.delete(grant);
      grant.reset?.();
    }
  }

  /** Masks or unmasks one PIC line (OCW1). */
  setIrqMasked(irq: number, masked: boolean): void {
    const port = irq < 8 ? 0x21 : 0xa1;
    const bit = 1 << (irq & 7);
    const imr = this.machine.ports.read(port, 1);
    this.machine.ports.write(port, 1, masked ? imr | bit : imr & ~bit);
  }

  /**
   * A hardware interrupt: a granted device's line. As Xen does for a physical IRQ, the line is
   * masked and acknowledged (EOI) at once, and its event channel raised; unmasking the port
   * unmasks the line, so a level-triggered device cannot storm while the guest handles it.
   */
  private hardwareInterrupt(vector: number): void {
    if (!this.picReady || vector < 0x20 || vector >= 0x30) return;
    const irq = vector - 0x20;
    // A spurious IRQ 7/15 is not in service and gets no EOI (8259A datasheet, IRQ7 note).
    this.machine.ports.write(0x20, 1, 0x0b);
    const isr = this.machine.ports.read(0x20, 1);
    this.machine.ports.write(0xa0, 1, 0x0b);
    const slaveIsr = this.machine.ports.read(0xa0, 1);
    const inService = irq < 8 ? (isr & (1 << irq)) !== 0 : (slaveIsr & (1 << (irq - 8))) !== 0;
    if (!inService) return;
    this.setIrqMasked(irq, true);
    if (irq >= 8) this.machine.ports.write(0xa0, 1, 0x60 | (irq - 8));
    this.machine.ports.write(0x20, 1, 0x60 | (irq >= 8 ? 2 : irq));
    // The domain that bound the line, which need not be the one running.
    for (const owner of this.domains) {
      const port = owner.channels.findIndex((c) => c.kind === 'pirq' && c.irq === irq);
      if (port <= 0) continue;
      this.counters.pirqEvents++;
      this.setPending(owner, port);
      return;
    }
  }

  // ---- shared info ---------------------------------------------------------------------

  readShared8(dom: Domain, offset: number): number {
    return this.machine.ram[dom.sharedInfoMfn * 4096 + offset];
  }

  writeShared8(dom: Domain, offset: number, value: number): void {
    this.machine.ram[dom.sharedInfoMfn * 4096 + offset] = value;
  }

  readShared32(dom: Domain, offset: number): number {
    return this.view.getUint32(dom.sharedInfoMfn * 4096 + offset, true);
  }

  writeShared32(dom: Domain, offset: number, value: number): void {
    this.view.setUint32(dom.sharedInfoMfn * 4096 + offset, value >>> 0, true);
  }

  // ---- guest memory (copy_from_guest / copy_to_guest) --------------------------------------

  /**
   * The machine address behind a guest virtual address, through the current page tables with
   * the guest kernel's rights, confined to the domain's own frames and to addresses below the
   * hypervisor window. Undefined when the guest could not make that access itself.
   */
  private guestAddress(dom: Domain, va: number, write: boolean): number | undefined {
    // GUEST-CONTROLLED: every pointer a hypercall takes comes through here.
    va = va >>> 0;
    if (va >= HYPERVISOR_VIRT_START) return undefined;
    let maddr: number;
    try {
      maddr = this.cpu.translate(va, write ? 1 : 0, this.cpu.cpl === 3);
    } catch (e) {
      if (e instanceof CpuFault) return undefined;
      throw e;
    }
    return this.frames.ownedBy(dom, maddr >>> 12) ? maddr : undefined;
  }

  /** Reads `length` bytes at a guest virtual address, or undefined (-EFAULT). */
  copyFromGuest(dom: Domain, va: number, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = (va + done) >>> 0;
      const maddr = this.guestAddress(dom, at, false);
      if (maddr === undefined) return undefined;
      const chunk = Math.min(length - done, 4096 - (at & 0xfff));
      out.set(this.machine.ram.subarray(maddr, maddr + chunk), done);
      done += chunk;
    }
    return out;
  }

  readGuest32(dom: Domain, va: number): number | undefined {
    const b = this.copyFromGuest(dom, va, 4);
    return b === undefined ? undefined : (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }

  /** Writes bytes at a guest virtual address; false (-EFAULT) if any byte is not writable. */
  copyToGuest(dom: Domain, va: number, bytes: Uint8Array): boolean {
    // Check every page first, so a fault leaves guest memory untouched.
    const targets: { maddr: number; from: number; length: number }[] = [];
    let done = 0;
    while (done < bytes.length) {
      const at = (va + done) >>> 0;
      const maddr = this.guestAddress(dom, at, true);
      if (maddr === undefined) return false;
      const chunk = Math.min(bytes.length - done, 4096 - (at & 0xfff));
      targets.push({ maddr, from: done, length: chunk });
      done += chunk;
    }
    for (const t of targets) {
      for (let k = 0; k < t.length; k++) this.cpu.writePhysical(t.maddr + k, 1, bytes[t.from + k]);
    }
    return true;
  }

  writeGuest32(dom: Domain, va: number, value: number): boolean {
    const v = value >>> 0;
    return this.copyToGuest(
      dom,
      va,
      Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24),
    );
  }
}

function hex(v: number, digits: number): string {
  return (v >>> 0).toString(16).padStart(digits, '0');
}

/**
 * IN/OUT from the guest kernel to a port of a granted device (devices.ts): ring 1 has IOPL 0
 * and no I/O bitmap, so the instruction raised #GP; emulate it when the port is granted.
 * Returns true if it did.
 */
function emulatePortIo(xen: XenHypervisor, dom: Domain): boolean {
  if (dom.grants.length === 0) return false;
  const cpu = xen.cpu;
  const code = xen.copyFromGuest(dom, cpu.linearEip, 2);
  if (code === undefined) return false;
  let k = 0;
  let size: 1 | 2 | 4 = 4;
  if (code[0] === 0x66) {
    size = 2;
    k = 1;
  }
  const op = code[k];
  let port: number;
  let length = k + 1;
  if (op === 0xe4 || op === 0xe5 || op === 0xe6 || op === 0xe7) {
    const imm = xen.copyFromGuest(dom, (cpu.linearEip + k + 1) >>> 0, 1);
    if (imm === undefined) return false;
    port = imm[0];
    length++;
  } else if (op === 0xec || op === 0xed || op === 0xee || op === 0xef) {
    port = cpu.edx & 0xffff;
  } else {
    return false;
  }
  if ((op & 1) === 0) size = 1;
  if (!dom.mayUsePort(port, size)) return false;
  xen.counters.ioEmulated++;
  cpu.charge(cpu.costs.io);
  const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
  if ((op & 2) === 0) {
    const value = xen.machine.ports.read(port, size) & mask;
    if (size === 4) cpu.eax = value >>> 0;
    else cpu.eax = ((cpu.eax & ~mask) | value) >>> 0;
  } else {
    xen.machine.ports.write(port, size, cpu.eax & mask);
  }
  cpu.eip = (cpu.eip + length) >>> 0;
  cpu.charge(cpu.costs.iretOuter);
  return true;
}
