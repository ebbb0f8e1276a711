/**
 * The in-place VMM's core (DESIGN.md decisions 6 and 7; reference/afterburner.md): the virtual
 * CPU, the emulation of the sensitive instructions the rewriter turned into calls, virtual
 * interrupt delivery, the forwarding of traps into the guest's own IDT handlers, and the virtual
 * PC platform. It knows no hypervisor: everything that needs one goes through `VmmBackend`,
 * and the backend reaches it only through `VmmCore` (backend.ts; each backend is a folder of
 * backends/). Whether the guest is in user or kernel mode is the virtual CPU's own state: the guest's
 * `iret` to user mode sets it, every event into the guest kernel clears it.
 *
 * It runs in TypeScript at the guest's privilege, reached through entry addresses the CPU binds
 * to handlers (in the VM's entry table, x86/entries.ts): a handler runs instead of the instruction fetch, then the CPU
 * pops EIP. A handler therefore ends by pushing where the guest continues: the instruction after
 * the site, a guest handler (an interrupt being delivered), or the `iret` stub (resuming a trap
 * frame). Virtual interrupts are delivered only at safe points — sti, popf, iret, hlt, an event
 * upcall — never while the guest runs VMM code.
 */
import type { SoftwareCosts } from '../machine/costModel.ts';
import type { CounterTree } from '../machine/counters.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  shape,
  str,
  type Check,
} from '../machine/state.ts';
import {
  CPUID_EXTENDED_FEATURE,
  CPUID_FEATURE,
  cpuidLeaf,
  MSR_BIOS_SIGN_ID,
} from '../x86/system/instructions.ts';
import type { Cpu } from '../x86/Cpu.ts';
import type { EntryTable } from '../x86/entries.ts';
import { Vector } from '../x86/fault.ts';
import type { Instr } from '../x86/instr.ts';
import { CS, descriptorBase, DS, ES, SS } from '../x86/segment.ts';
import type { BackendState, GuestEvent, VmmBackend, VmmCore } from './backend.ts';
import type { KernelEntry } from './load.ts';
import { VirtualPlatform, type VirtualPlatformState } from './platform.ts';
import type { CallSite, SiteKind } from './rewriter.ts';
import { segmentOperand } from './rewriter.ts';
import {
  EFLAGS_IF as IF,
  EFLAGS_IOPL as IOPL,
  ENTRY_DELIVER,
  ENTRY_EMULATE,
  ENTRY_POPF_DELIVER,
  Vcpu,
  VIRTUAL_FLAGS,
  WINDOW_BASE,
  WINDOW_SIZE,
} from './window.ts';

/** EFLAGS bits the guest never sees as the real CPU has them: IF and IOPL are virtual. */
const SYSTEM_FLAGS = VIRTUAL_FLAGS;
/** What POPF loads at any privilege (SDM 2B POPF): CF PF AF ZF SF TF DF OF NT AC ID. */
const POPF_LOADS = 0x244dd5;
const CONSOLE_FLUSH_AT = 256;

export interface VmmCounters {
  /** Calls from rewritten sites into TypeScript, by site kind. */
  calls: Record<string, number>;
  /** Virtual interrupts delivered into the guest kernel, by vector. */
  virtualInterrupts: Record<string, number>;
  /** Traps and system calls forwarded into the guest's IDT handlers, by vector. */
  trapsForwarded: Record<string, number>;
  /** Accesses to virtual device registers. */
  deviceAccesses: number;
  /** Timer ticks of the virtual PIT. */
  timerTicks: number;
  /** Interrupts of passed-through devices raised on the virtual PIC. */
  deviceInterrupts: number;
  /** User-mode IN/OUT the guest kernel allowed (its TSS I/O bitmap or IOPL), done here. */
  userPortAccesses?: number;
}

export interface VmmOptions {
  /** The VM's table of bound entries (the CPU consults it while this VM runs). */
  entries: EntryTable;
  /** Link address minus load address of the kernel (its code runs at the load address while
   *  virtual paging is off). */
  kernelOffset: number;
  rtcStartSeconds: number;
  /** The boot protocol's selectors and GDT at the kernel's entry (load.ts, KernelEntry). */
  boot: Pick<KernelEntry, 'codeSelector' | 'dataSelector' | 'gdtr'>;
}

/**
 * The VMM in a snapshot (DESIGN.md decision 11): the virtual CPU's state that is not in the
 * window block (the block is guest memory, saved with the machine), the virtual platform, the
 * console line being collected, the timer's schedule, the counters, and the backend's own state.
 * What building the same configuration recreates — the site table, the bound entries — is not
 * saved: a restore builds the VMM again and overwrites this.
 */
export interface VmmState {
  version: 1;
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  gdtr: { base: number; limit: number };
  idtr: { base: number; limit: number };
  ldtr: number;
  tr: { selector: number; base: number };
  userCs: number;
  userSs: number;
  userMode: boolean;
  paging: boolean;
  console: number[];
  timerPeriodNs: number;
  nextTickNs: number;
  armedNs: number | null;
  counters: VmmCounters;
  platform: VirtualPlatformState;
  backend: BackendState;
  /** A migrated guest's time offset (ns; absent: 0). */
  timeOffsetNs?: number;
  /** DR0–DR7 (absent: as at reset). */
  debug?: number[];
  /** Paging is on and the entries at the load alias are still bound (absent: not). */
  aliasKept?: boolean;
}

const table = shape<{ base: number; limit: number }>({ base: num, limit: num });
const counts: Check = (v, path) => shape<object>({})(v, path);
const VMM_STATE: Check = checkState<VmmState>('VMM', 1, {
  cr0: num,
  cr2: num,
  cr3: num,
  cr4: num,
  gdtr: table,
  idtr: table,
  ldtr: num,
  tr: shape<{ selector: number; base: number }>({ selector: num, base: num }),
  userCs: num,
  userSs: num,
  userMode: bool,
  paging: bool,
  console: arrayOf(num),
  timerPeriodNs: num,
  nextTickNs: num,
  armedNs: nullable(num),
  counters: shape<VmmCounters>({
    calls: counts,
    virtualInterrupts: counts,
    trapsForwarded: counts,
    deviceAccesses: num,
    timerTicks: num,
    deviceInterrupts: num,
    userPortAccesses: (v, path) => {
      if (v !== undefined) num(v, path);
    },
  }),
  platform: counts,
  backend: shape<BackendState>({ kind: str, version: num }),
  timeOffsetNs: (v, path) => {
    if (v !== undefined) num(v, path);
  },
  debug: (v, path) => {
    if (v !== undefined) arrayOf(num)(v, path);
  },
  aliasKept: (v, path) => {
    if (v !== undefined) bool(v, path);
  },
});

interface Gate {
  offset: number;
  selector: number;
  dpl: number;
  /** Interrupt gate: clears the virtual IF. */
  interrupt: boolean;
}

export class InPlaceVmm implements VmmCore {
  readonly platform: VirtualPlatform;
  readonly counters: VmmCounters = {
    calls: {},
    virtualInterrupts: {},
    trapsForwarded: {},
    deviceAccesses: 0,
    timerTicks: 0,
    deviceInterrupts: 0,
  };
  // The virtual CPU's state that no inline code touches (the rest is in the window block: IOPL,
  // IF, the pending interrupt, the segment selectors).
  cr0 = 0x11;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  gdtr = { base: 0, limit: 0xffff };
  idtr = { base: 0, limit: 0x3ff };
  ldtr = 0;
  tr = { selector: 0, base: 0 };
  /** DR0–DR7 as the guest wrote them: kept, never armed (the virtual CPU has no breakpoints). */
  debug = resetDebugRegisters();
  /** The virtual CS and SS a return to ring 3 loaded (what a trap from ring 3 reports). */
  userCs = 0;
  userSs = 0;
  /** The virtual CPU runs the guest's user mode (see the class comment). */
  private inUser = false;
  private pagingOn = false;
  private readonly aliasUnbind: (() => void)[] = [];
  /**
   * The entries at the kernel's load alias are gone: the kernel called the VMM from its link
   * address with paging on. Not at the CR0 write itself: code at the load address may still
   * reach a site before it jumps to its link address (Linux's `ljmp` right after it).
   */
  private aliasDropped = false;
  private console: number[] = [];
  private timerPeriodNs = 0;
  private nextTickNs = 0;
  /** The backend timer's deadline (ns) while one is set. */
  private armedNs: number | undefined;
  /** timerExpired is running: device events it fires are armed once, at its end. */
  private inTimer = false;
  /**
   * The virtual devices' time minus the backend's (ns): 0 but on a guest that migrated here
   * (migration.ts), whose times all stay as they were on the hypervisor it came from.
   */
  private timeOffsetNs = 0;

  constructor(
    readonly cpu: Cpu,
    private readonly costs: Readonly<SoftwareCosts>,
    readonly backend: VmmBackend,
    private readonly calls: Map<number, CallSite>,
    /** The virtual-CPU block (window page 0) as the VMM sees it. */
    private readonly block: DataView,
    private readonly options: VmmOptions,
  ) {
    this.platform = new VirtualPlatform({
      interruptLine: (level) => this.block.setUint32(Vcpu.pending, level ? 1 : 0, true),
      consoleByte: (b) => this.consoleByte(b),
      exit: (status) => {
        this.flushConsole();
        backend.shutdown('poweroff', status);
      },
      reset: () => {
        this.flushConsole();
        backend.shutdown('reboot', 0);
      },
      nowNs: () => this.nowNs(),
      programmed: (periodNs) => this.pitProgrammed(periodNs),
      deviceEventAt: (ns) => this.deviceEventAt(ns),
      rtcStartSeconds: options.rtcStartSeconds,
      deviceEoi: (irq) => backend.deviceEoi(irq),
    });
    this.block.setUint32(Vcpu.flags, 0x2, true);
    this.virtualIf = false;
    // The entry state's selectors (multiboot: the raw PC's boot loader GDT, code 0x08 and data
    // 0x10; Linux: __BOOT_CS and __BOOT_DS of the loader's GDT).
    const boot = options.boot;
    this.setSegment(CS, boot.codeSelector);
    for (const s of [0, 2, 3, 4, 5]) this.setSegment(s, boot.dataSelector);
    if (boot.gdtr !== undefined) this.gdtr = { ...boot.gdtr };
    this.bind(ENTRY_EMULATE, 'vmm.emulate', () => this.onEmulate());
    this.bind(ENTRY_DELIVER, 'vmm.deliver', () => this.onDeliver());
    this.bind(ENTRY_POPF_DELIVER, 'vmm.popf-deliver', () => this.onPopfDeliver());
  }

  /**
   * Binds an entry; while virtual paging is off it is also bound at its alias below the kernel
   * offset, where a rewritten `call` lands when the kernel runs at its load address.
   */
  bind(linear: number, name: string, handler: () => void): void {
    const table = this.options.entries;
    const bound = (at: number, as: string): (() => void) => {
      const r = table.bind(at, as, handler);
      // Entry addresses are the VMM's own constants, never the guest's: a clash is a bug here.
      if (typeof r === 'string') throw new Error(`vmm: ${r}`);
      return r;
    };
    bound(linear, name);
    if (!this.aliasDropped && this.options.kernelOffset !== 0) {
      this.aliasUnbind.push(bound((linear - this.options.kernelOffset) >>> 0, `${name}@alias`));
    }
  }

  /** Call sites' instruction ends inside their padding → the site's end (see iret). */
  private paddingResume: Map<number, number> | undefined;

  private afterInstruction(): Map<number, number> {
    if (this.paddingResume !== undefined) return this.paddingResume;
    const map = new Map<number, number>();
    for (const site of this.calls.values()) {
      const end = site.start + site.instr.length;
      if (end < site.end) map.set(end, site.end);
    }
    this.paddingResume = map;
    return map;
  }

  /** The entries at the load alias go (see aliasDropped). */
  private dropAlias(): void {
    this.aliasDropped = true;
    for (const unbind of this.aliasUnbind.splice(0)) unbind();
  }

  get paging(): boolean {
    return this.pagingOn;
  }

  get userMode(): boolean {
    return this.inUser;
  }

  /** The core's counters and the backend's groups (e.g. its paging's), copied. */
  stats(): CounterTree {
    return structuredClone({ ...this.counters, ...this.backend.stats() });
  }

  save(): VmmState {
    return {
      version: 1,
      cr0: this.cr0,
      cr2: this.cr2,
      cr3: this.cr3,
      cr4: this.cr4,
      gdtr: { ...this.gdtr },
      idtr: { ...this.idtr },
      ldtr: this.ldtr,
      tr: { ...this.tr },
      userCs: this.userCs,
      userSs: this.userSs,
      userMode: this.inUser,
      paging: this.pagingOn,
      ...(this.pagingOn && !this.aliasDropped && this.options.kernelOffset !== 0
        ? { aliasKept: true }
        : {}),
      console: [...this.console],
      timerPeriodNs: this.timerPeriodNs,
      nextTickNs: this.nextTickNs,
      armedNs: this.armedNs ?? null,
      counters: structuredClone(this.counters),
      platform: this.platform.save(),
      backend: this.backend.save(),
      ...(this.timeOffsetNs === 0 ? {} : { timeOffsetNs: this.timeOffsetNs }),
      ...(this.debug.every((v, n) => v === resetDebugRegisters()[n])
        ? {}
        : { debug: [...this.debug] }),
    };
  }

  /**
   * Restores a snapshot into a VMM built from the same configuration (after the machine and the
   * hypervisor); a StateError naming the field if it does not fit. With virtual paging on, the
   * entries bound at the kernel's load alias go, as they went when the saved guest turned paging
   * on.
   */
  restore(state: VmmState, path: string): void {
    VMM_STATE(state, path);
    this.cr0 = state.cr0;
    this.cr2 = state.cr2;
    this.cr3 = state.cr3;
    this.cr4 = state.cr4;
    this.gdtr = { ...state.gdtr };
    this.idtr = { ...state.idtr };
    this.ldtr = state.ldtr;
    this.tr = { ...state.tr };
    this.userCs = state.userCs;
    this.userSs = state.userSs;
    this.inUser = state.userMode;
    if (state.paging && !this.pagingOn) {
      this.pagingOn = true;
      if (state.aliasKept !== true) this.dropAlias();
    }
    this.console = [...state.console];
    this.timerPeriodNs = state.timerPeriodNs;
    this.nextTickNs = state.nextTickNs;
    this.armedNs = state.armedNs ?? undefined;
    this.timeOffsetNs = state.timeOffsetNs ?? 0;
    this.debug = state.debug === undefined ? resetDebugRegisters() : [...state.debug];
    Object.assign(this.counters, structuredClone(state.counters));
    this.platform.restore(state.platform, `${path}.platform`);
    this.backend.restore(state.backend, `${path}.backend`);
  }

  /** The VMM's time (ns): the backend's system time, moved by a migration's offset. */
  nowNs(): number {
    return this.timeOffsetNs === 0
      ? this.backend.nowNs()
      : this.backend.nowNs() + this.timeOffsetNs;
  }

  /** One of the VMM's times as the backend's (a deadline not yet due stays in the future). */
  private backendNs(ns: number): number {
    return this.timeOffsetNs === 0 ? ns : Math.max(1, ns - this.timeOffsetNs);
  }

  /**
   * A guest that migrated here (migration.ts): the source's VMM state — virtual CPU, platform,
   * counters, every time as it was there — over this VMM's, the backend's own state kept (its
   * hypervisor's objects are built anew), the VMM's time continuing from `nowNs`, and the timer
   * armed again on this backend.
   */
  adoptMigrated(state: VmmState, nowNs: number, vcpuBlock: Uint8Array, path: string): void {
    new Uint8Array(this.block.buffer, this.block.byteOffset, this.block.byteLength).set(vcpuBlock);
    this.timeOffsetNs = nowNs - this.backend.nowNs();
    this.restore({ ...state, timeOffsetNs: this.timeOffsetNs, backend: this.backend.save() }, path);
    this.armTimer(false);
  }

  /** A copy of the virtual-CPU block (window page 0), for a migration. */
  vcpuBlockBytes(): Uint8Array {
    return new Uint8Array(this.block.buffer, this.block.byteOffset, this.block.byteLength).slice();
  }

  /** The rewritten site whose replacement ends at `end` (a `hlt`'s resume address), if any. */
  siteEndingAt(end: number, kind: SiteKind): CallSite | undefined {
    for (const site of this.calls.values()) if (site.end === end && site.kind === kind) return site;
    return undefined;
  }

  // ---- the virtual CPU block -------------------------------------------------------------

  get virtualIf(): boolean {
    return (this.block.getUint32(Vcpu.vif, true) & IF) !== 0;
  }

  set virtualIf(on: boolean) {
    this.block.setUint32(Vcpu.vif, on ? IF : 0, true);
  }

  /** The virtual PIC has an interrupt for the CPU. */
  get interruptPending(): boolean {
    return this.block.getUint32(Vcpu.pending, true) !== 0;
  }

  segment(sreg: number): number {
    return this.block.getUint32(Vcpu.segs + sreg * 4, true) & 0xffff;
  }

  setSegment(sreg: number, selector: number): void {
    this.block.setUint32(Vcpu.segs + sreg * 4, selector & 0xffff, true);
  }

  // ---- entries ---------------------------------------------------------------------------

  /** A rewritten site's `call`: emulate the instruction the site table names. */
  private onEmulate(): void {
    const cpu = this.cpu;
    const ret = cpu.pop(4);
    let site = this.calls.get(ret);
    let delta = 0;
    if (site === undefined && !this.aliasDropped) {
      site = this.calls.get((ret + this.options.kernelOffset) >>> 0);
      delta = -this.options.kernelOffset;
    } else if (site !== undefined && this.pagingOn && !this.aliasDropped) {
      this.dropAlias();
    }
    if (site === undefined) {
      this.backend.crash(`call into the VMM from 0x${hex(ret - 5)}, which is not a rewritten site`);
      cpu.push(ret, 4);
      return;
    }
    const kind = site.kind;
    this.counters.calls[kind] = (this.counters.calls[kind] ?? 0) + 1;
    const cycles = cpu.cycles;
    cpu.charge(this.costs.vmmCall);
    const next = (site.end + delta) >>> 0;
    // The call's return-address slot, for a restart: a fault in the emulation (a guest page the
    // hypervisor has not mapped yet, e.g. the guest's IDT read for a fault it raises) undoes
    // the call (Cpu.callBound: registers and flags as at the call, EIP at the entry) and the
    // guest retries it once the page is there. What the emulation pushed may have overwritten
    // the slot, and what it counted and charged is counted again: both are undone here.
    const slot = (cpu.segs[SS].base + cpu.esp - 4) >>> 0;
    this.retryable(
      slot,
      [ret],
      () => cpu.push(this.emulate(site, next), 4),
      () => {
        cpu.cycles = cycles;
        this.counters.calls[kind]--;
      },
    );
  }

  /**
   * Runs the rest of an entry that popped `words` from the stack at linear `slot`. A fault on
   * the way (Cpu.callBound puts the registers and flags back, and the entry runs again once the
   * page is there) puts the words back, since what the entry pushed may have gone over them, and
   * runs `undo` for what else the retry would make twice (charges, counts).
   */
  private retryable(slot: number, words: number[], rest: () => void, undo = (): void => {}): void {
    try {
      rest();
    } catch (e) {
      for (const [k, w] of words.entries()) this.cpu.writeLinear((slot + 4 * k) >>> 0, 4, w);
      undo();
      throw e;
    }
  }

  /** From the interrupt check after sti/popf: the virtual IF is on and something is pending. */
  private onDeliver(): void {
    const cpu = this.cpu;
    const slot = (cpu.segs[SS].base + cpu.esp) >>> 0;
    const ret = cpu.pop(4);
    // A fault in the frame's pushes (a stack page not mapped yet) or its gate's read: the
    // frame's EFLAGS went over the return address, which the retry pops.
    this.retryable(slot, [ret], () => cpu.push(this.interruptAt(ret), 4));
  }

  /**
   * From the popf stub: the popped word turned the virtual IF on (the stub stored it) and an
   * interrupt is pending. Stack: the return address, the word. Loads the arithmetic flags as
   * POPF would, then delivers the interrupt as if it arrived right after the popf.
   */
  private onPopfDeliver(): void {
    const cpu = this.cpu;
    const slot = (cpu.segs[SS].base + cpu.esp) >>> 0;
    const cycles = cpu.cycles;
    const ret = cpu.pop(4);
    const word = cpu.pop(4);
    cpu.charge(this.costs.vmmEmulate);
    cpu.setEflags(((cpu.getEflags() & ~POPF_LOADS) | (word & POPF_LOADS)) >>> 0);
    // As in onDeliver: the frame goes over the return address and the word; the charge is
    // made again by the retry.
    this.retryable(
      slot,
      [ret, word],
      () => cpu.push(this.interruptAt(ret), 4),
      () => {
        cpu.cycles = cycles;
      },
    );
  }

  /**
   * If the virtual IF is on and an interrupt is pending, builds its frame as if it arrived
   * before the instruction at `eip` and returns its handler; else returns `eip`.
   */
  private interruptAt(eip: number): number {
    if (!this.virtualIf || !this.interruptPending) return eip;
    // The gate before the frame (enterInterrupt says why): a fault reading it leaves the stack
    // as it was.
    const gate = this.pendingGate();
    const cpu = this.cpu;
    cpu.push(this.frameFlags(true), 4);
    cpu.push(this.segment(CS), 4);
    cpu.push(eip, 4);
    return this.enterInterrupt(gate);
  }

  /** EFLAGS as the guest sees them: the real arithmetic flags, the virtual IF and IOPL. */
  private frameFlags(interruptsOn: boolean): number {
    return this.guestFlags(this.cpu.getEflags(), interruptsOn);
  }

  private guestFlags(real: number, interruptsOn: boolean): number {
    const iopl = this.block.getUint32(Vcpu.flags, true) & IOPL;
    return ((real & ~SYSTEM_FLAGS) | iopl | (interruptsOn ? IF : 0)) >>> 0;
  }

  /**
   * Acknowledges the virtual PIC and enters the handler of its vector (frame already built).
   * The gate is read first: reading it may fault (l4 maps the guest kernel's pages beyond its
   * alias on demand, and Linux's IDT is in its fixmap, where a migrated guest's space has nothing
   * yet), and the entry is then made again after the fault, when the interrupt must still be
   * pending; acknowledged first, it was in service with no handler run, and the PIC held it and
   * every lower IRQ back for good (a Linux moved to l4 lost its console output so).
   */
  private enterInterrupt(gate = this.pendingGate()): number {
    const vector = this.platform.acknowledge() & 0xff;
    this.counters.virtualInterrupts[vector] = (this.counters.virtualInterrupts[vector] ?? 0) + 1;
    this.cpu.charge(this.costs.vmmInterrupt);
    return this.enterGate(vector, gate);
  }

  /** The gate of the interrupt the virtual PIC would give now (nothing acknowledged). */
  private pendingGate(): Gate | undefined {
    return this.gate(this.platform.pendingVector() & 0xff);
  }

  /** Virtual IDT lookup; the virtual IF and CS as the gate says. */
  private enterGate(vector: number, gate = this.gate(vector)): number {
    if (gate === undefined) {
      this.backend.crash(`vector ${vector} has no present gate in the guest's IDT`);
      return this.cpu.eip;
    }
    if (gate.interrupt) this.virtualIf = false;
    this.setSegment(CS, gate.selector);
    this.inUser = false;
    return gate.offset;
  }

  private gate(vector: number): Gate | undefined {
    if (vector * 8 + 7 > this.idtr.limit) return undefined;
    const at = (this.idtr.base + vector * 8) >>> 0;
    const lo = this.cpu.readLinear(at, 4, true);
    const hi = this.cpu.readLinear(at + 4, 4, true);
    const type = (hi >>> 8) & 0x1f;
    if ((hi & 0x8000) === 0 || (type !== 0x0e && type !== 0x0f)) return undefined;
    return {
      offset: ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0,
      selector: lo >>> 16,
      dpl: (hi >>> 13) & 3,
      interrupt: type === 0x0e,
    };
  }

  // ---- events from the backend -------------------------------------------------------------

  /**
   * A trap, fault or system call for the guest kernel (backend.ts, GuestEvent): the guest's frame
   * — the one the backend's hypervisor bounced, rewritten to the guest's view, or one pushed
   * here from the interrupted registers — and the guest's handler. An INT n from user mode must
   * be allowed by the guest gate's DPL. Returns where the guest continues.
   */
  trap(event: GuestEvent): number {
    const cpu = this.cpu;
    let vector = event.vector;
    const errorCode = event.errorCode;
    const fromUser = this.inUser;
    if (event.faultAddress !== undefined) this.cr2 = event.faultAddress >>> 0;
    // An x87 instruction while the guest's CR0.EM is set is #NM (SDM 3A 2.5, Table 2-2), its
    // math emulator's cue; the real CPU, whose CR0 is the hypervisor's, reports #UD for it.
    if (vector === Vector.UD && (this.cr0 & CR0_EM) !== 0 && fromUser) {
      const eip =
        event.context.kind === 'frame'
          ? this.frameRead(errorCode === undefined ? 0 : 4)
          : event.context.eip;
      if (this.isX87(eip)) vector = Vector.NM;
    }
    if (event.context.kind === 'frame') {
      this.virtualizeFrame(errorCode === undefined ? 0 : 4, fromUser);
    } else if (!this.pushFrame(event.context, errorCode, fromUser)) {
      return cpu.eip;
    }
    if (vector === Vector.GP && fromUser && errorCode === 0 && event.software !== true) {
      const resumed = this.userPortIo();
      if (resumed !== undefined) return resumed;
    }
    if (event.software && fromUser) {
      const gate = this.gate(vector);
      if (gate === undefined || gate.dpl < 3) {
        // SDM 3A 6.12.1.1: #GP with the IDT bit set in the error code.
        cpu.push(vector * 8 + 2, 4);
        vector = Vector.GP;
      }
    }
    this.counters.trapsForwarded[vector] = (this.counters.trapsForwarded[vector] ?? 0) + 1;
    cpu.charge(this.costs.vmmInterrupt);
    return this.enterGate(vector);
  }

  /**
   * The interrupted registers as the guest's CPU would have saved them: on the current stack, or
   * from user mode on the stack the guest's TSS names (SDM 3A 6.12.1). False if there is none.
   */
  private pushFrame(
    regs: { eip: number; eflags: number; esp: number },
    errorCode: number | undefined,
    fromUser: boolean,
  ): boolean {
    const cpu = this.cpu;
    if (fromUser) {
      if (this.tr.base === 0) {
        this.backend.crash('an event from user mode, and the guest loaded no TSS (ltr)');
        return false;
      }
      cpu.esp = cpu.readLinear(this.tr.base + 4, 4, true);
      cpu.push(this.userSs, 4);
      cpu.push(regs.esp, 4);
    } else {
      cpu.esp = regs.esp;
    }
    cpu.push(this.guestFlags(regs.eflags, fromUser || this.virtualIf), 4);
    cpu.push(fromUser ? this.userCs : this.segment(CS), 4);
    cpu.push(regs.eip, 4);
    if (errorCode !== undefined) cpu.push(errorCode, 4);
    return true;
  }

  /**
   * After the backend handled events that interrupted the guest (frame on the stack: EIP CS
   * EFLAGS [ESP SS]): a pending virtual interrupt is delivered if the interrupted code may take
   * one — not VMM code, and the virtual IF on or user mode; else the guest resumes as it was.
   */
  eventsHandled(): number | undefined {
    this.platform.poll();
    const fromUser = this.inUser;
    const inVmm = this.inWindow(this.frameRead(0));
    if (!inVmm && (fromUser || this.virtualIf) && this.interruptPending) {
      this.virtualizeFrame(0, fromUser);
      return this.enterInterrupt();
    }
    return undefined;
  }

  /** Is this EIP VMM code (the window, or its alias while the kernel runs at its load address)? */
  private inWindow(eip: number): boolean {
    if (eip >= WINDOW_BASE) return true;
    const alias = (WINDOW_BASE - this.options.kernelOffset) >>> 0;
    return !this.aliasDropped && eip >= alias && eip < alias + WINDOW_SIZE;
  }

  /** The hypervisor's selectors in a frame become the guest's virtual ones. */
  private virtualizeFrame(skip: number, fromUser: boolean): void {
    const eflags = this.frameRead(skip + 8);
    const interruptsOn = fromUser || this.virtualIf;
    this.frameWrite(skip + 4, fromUser ? this.userCs : this.segment(CS));
    this.frameWrite(skip + 8, this.guestFlags(eflags, interruptsOn));
    if (fromUser) this.frameWrite(skip + 16, this.userSs);
  }

  private frameRead(offset: number): number {
    const cpu = this.cpu;
    return cpu.readLinear((cpu.segs[SS].base + cpu.esp + offset) >>> 0, 4);
  }

  private frameWrite(offset: number, value: number): void {
    const cpu = this.cpu;
    cpu.writeLinear((cpu.segs[SS].base + cpu.esp + offset) >>> 0, 4, value >>> 0);
  }

  /**
   * The backend's timer fired: the virtual devices' events that are due run (the UART's
   * received bytes), PIT ticks that are due raise IRQ 0, and the timer is armed for whichever
   * comes next.
   */
  timerExpired(): void {
    this.armedNs = undefined;
    const now = this.nowNs();
    this.inTimer = true;
    try {
      this.platform.clock.fireDue(now);
    } finally {
      this.inTimer = false;
    }
    this.platform.poll();
    if (this.timerPeriodNs !== 0 && now >= this.nextTickNs) {
      this.counters.timerTicks++;
      this.platform.pic.setIrq(0, true);
      this.platform.pic.setIrq(0, false);
      while (this.nextTickNs <= now) this.nextTickNs += this.timerPeriodNs;
    }
    this.armTimer(false);
  }

  private pitProgrammed(periodNs: number): void {
    this.timerPeriodNs = periodNs;
    this.nextTickNs = this.nowNs() + periodNs;
    this.armTimer(true);
  }

  /** A virtual device scheduled an event: the timer fires by then (timerExpired re-arms it). */
  private deviceEventAt(ns: number): void {
    if (this.inTimer || (this.armedNs !== undefined && this.armedNs <= ns)) return;
    this.armTimer(false);
  }

  /**
   * The backend's one-shot timer for the earlier of the next PIT tick and the next device event;
   * with neither, it is cancelled if `cancel` (the guest stopped the PIT) or left to lapse.
   */
  private armTimer(cancel: boolean): void {
    const device = this.platform.clock.next();
    const tick = this.timerPeriodNs === 0 ? undefined : this.nextTickNs;
    const deadline =
      tick === undefined ? device : device === undefined ? tick : Math.min(tick, device);
    this.armedNs = deadline;
    if (deadline !== undefined || cancel)
      this.backend.setTimer(deadline === undefined ? 0 : this.backendNs(deadline));
  }

  /** A passed-through device's interrupt (the backend's event for its line). */
  deviceInterrupt(irq: number): void {
    this.counters.deviceInterrupts++;
    this.platform.deviceInterrupt(irq);
  }

  /** Console input from the backend. */
  consoleInput(bytes: Iterable<number>): void {
    this.platform.uart.receive(bytes);
  }

  private consoleByte(b: number): void {
    this.console.push(b);
    if (b === 0x0a || this.console.length >= CONSOLE_FLUSH_AT) this.flushConsole();
  }

  flushConsole(): void {
    if (this.console.length === 0) return;
    const bytes = Uint8Array.from(this.console);
    this.console = [];
    this.backend.consoleWrite(bytes);
  }

  // ---- emulation ---------------------------------------------------------------------------

  /** Emulates one call site; returns where the guest continues. */
  private emulate(site: CallSite, next: number): number {
    const cpu = this.cpu;
    const i = site.instr;
    const kind: SiteKind = site.kind;
    // Where the site starts as the guest runs it (its load address while paging is off).
    const start = (next - (site.end - site.start)) >>> 0;
    if (kind === 'in' || kind === 'out') {
      const port = (i.opcode & 8) !== 0 ? cpu.edx & 0xffff : i.imm & 0xff;
      this.portIo(kind === 'in', port, ((i.opcode & 1) === 0 ? 1 : i.size) as 1 | 2 | 4);
      return next;
    }
    if (kind === 'ins' || kind === 'outs') {
      this.stringIo(i, kind === 'ins');
      return next;
    }
    if (kind === 'mmio_read' || kind === 'mmio_write') {
      this.mmio(site);
      return next;
    }
    cpu.charge(this.costs.vmmEmulate);
    switch (kind) {
      case 'hlt':
        return this.hlt(next);
      case 'iret':
        return this.iret();
      case 'int': {
        const vector = i.opcode === 0xcc ? 3 : i.imm & 0xff;
        cpu.push(this.frameFlags(this.virtualIf), 4);
        cpu.push(this.segment(CS), 4);
        cpu.push(next, 4);
        this.counters.trapsForwarded[vector] = (this.counters.trapsForwarded[vector] ?? 0) + 1;
        return this.enterGate(vector);
      }
      case 'invlpg':
        this.backend.invlpg(cpu.ea(i) >>> 0);
        return next;
      case 'lgdt':
      case 'lidt': {
        const at = cpu.eaLinear(i, 6, false);
        const table = { limit: cpu.readLinear(at, 2), base: cpu.readLinear(at + 2, 4) };
        if (kind === 'lgdt') this.gdtr = table;
        else this.idtr = table;
        return next;
      }
      case 'sgdt':
      case 'sidt': {
        const at = cpu.eaLinear(i, 6, true);
        const table = kind === 'sgdt' ? this.gdtr : this.idtr;
        cpu.writeLinear(at, 2, table.limit);
        cpu.writeLinear(at + 2, 4, table.base);
        return next;
      }
      case 'lldt':
        this.ldtr = this.readSelector(site);
        return next;
      case 'sldt':
        cpu.writeRm(i, this.ldtr);
        return next;
      case 'ltr': {
        const selector = this.readSelector(site);
        const at = (this.gdtr.base + (selector & ~7)) >>> 0;
        const base = descriptorBase(cpu.readLinear(at, 4, true), cpu.readLinear(at + 4, 4, true));
        this.tr = { selector, base };
        return next;
      }
      case 'str':
        cpu.writeRm(i, this.tr.selector);
        return next;
      case 'ljmp':
        this.setSegment(CS, i.imm2);
        return i.imm >>> 0;
      case 'mov-to-cr':
        this.writeCr(i.reg, cpu.getReg(i.rm, 4) >>> 0);
        return next;
      case 'mov-from-cr':
        cpu.setReg(i.rm, 4, [this.cr0, 0, this.cr2, this.cr3, this.cr4][i.reg] ?? 0);
        return next;
      case 'mov-to-seg':
        this.setSegment(i.reg, cpu.readLinear(cpu.eaLinear(i, 2, false), 2));
        return next;
      case 'mov-from-seg':
        cpu.writeLinear(cpu.eaLinear(i, 2, true), 2, this.segment(i.reg));
        return next;
      case 'push-seg':
        cpu.push(this.segment(segmentOperand(i)), 4);
        return next;
      case 'pop-seg':
        this.setSegment(segmentOperand(i), cpu.pop(4));
        return next;
      case 'cpuid': {
        // The processor the guest would see on the raw PC, less what it cannot use on this
        // hypervisor (the backend says which features), and with basic leaves up to 1 only:
        // leaf 7's SMEP, SMAP and UMIP are CR4 features the virtual CPU does not honour.
        const leaf = cpu.eax;
        const [a, b, c, d] =
          leaf === 0
            ? [1, ...cpuidLeaf(0).slice(1)]
            : leaf > 1 && leaf < 0x80000000
              ? [0, 0, 0, 0]
              : cpuidLeaf(leaf);
        cpu.eax = a;
        cpu.ebx = b;
        cpu.ecx = c;
        // And no RDTSCP: a kernel that patches its own code by CPU feature (Linux's
        // alternatives: rdtsc_ordered becomes RDTSCP) would write over a rewritten RDTSC site.
        cpu.edx =
          leaf === 1
            ? d & ~this.backend.hiddenCpuFeatures
            : leaf === 0x80000001
              ? d & ~CPUID_EXTENDED_FEATURE.RDTSCP
              : d;
        return next;
      }
      case 'rdtsc':
      case 'rdtscp':
        cpu.eax = cpu.cycles % 2 ** 32;
        cpu.edx = Math.floor(cpu.cycles / 2 ** 32) >>> 0;
        // RDTSCP's ECX is IA32_TSC_AUX, which nobody can have written: MSRs are not offered.
        if (kind === 'rdtscp') cpu.ecx = 0;
        return next;
      // What the virtual CPU does not offer faults as on a processor without it (SDM Vol. 2):
      // RDMSR/WRMSR without the MSR feature and SYSEXIT without SEP are invalid opcodes (the
      // backends hide both, hiddenCpuFeatures), as are MONITOR/MWAIT and XSETBV (CPUID shows
      // neither MONITOR nor XSAVE); RDPMC at CPL 0 names a counter there is none of: #GP(0).
      case 'rdmsr':
      case 'wrmsr':
        // But MSR 0x8B, IA32_BIOS_SIGN_ID, as on the raw PC: it reads 0 (no microcode update),
        // writes are ignored; Linux reads it on every Intel family 6 CPU, CPUID or not.
        if (cpu.ecx === MSR_BIOS_SIGN_ID) {
          if (kind === 'rdmsr') cpu.eax = cpu.edx = 0;
          return next;
        }
        return this.hidden(CPUID_FEATURE.MSR)
          ? this.raise(Vector.UD, undefined, start)
          : this.raise(Vector.GP, 0, start);
      case 'sysexit':
        return this.hidden(CPUID_FEATURE.SEP)
          ? this.raise(Vector.UD, undefined, start)
          : this.raise(Vector.GP, 0, start);
      case 'monitor':
      case 'mwait':
      case 'xsetbv':
        return this.raise(Vector.UD, undefined, start);
      case 'rdpmc':
        return this.raise(Vector.GP, 0, start);
      // No caches are modelled: writing back and invalidating them has nothing to do.
      case 'invd':
      case 'wbinvd':
        return next;
      case 'clts':
        this.cr0 = (this.cr0 & ~CR0_TS) >>> 0;
        return next;
      case 'smsw':
        // The low 16 bits of CR0 to memory; a 32-bit register gets all of it (SDM 2B SMSW).
        if (i.mod === 3) cpu.setReg(i.rm, i.size, i.size === 4 ? this.cr0 : this.cr0 & 0xffff);
        else cpu.writeLinear(cpu.eaLinear(i, 2, true), 2, this.cr0 & 0xffff);
        return next;
      case 'lmsw': {
        // PE, MP, EM and TS from the operand; PE can be set, never cleared (SDM 2A LMSW).
        const word =
          i.mod === 3 ? cpu.getReg(i.rm, 2) : cpu.readLinear(cpu.eaLinear(i, 2, false), 2);
        this.writeCr(0, ((this.cr0 & ~0xf) | (word & 0xf) | (this.cr0 & 1)) >>> 0);
        return next;
      }
      case 'verr':
      case 'verw': {
        const ok = this.segmentVerifies(this.readSelector(site), kind === 'verw');
        cpu.setEflags(((cpu.getEflags() & ~EFLAGS_ZF) | (ok ? EFLAGS_ZF : 0)) >>> 0);
        return next;
      }
      case 'mov-to-dr':
        this.debug[debugRegister(i.reg)] = cpu.getReg(i.rm, 4) >>> 0;
        return next;
      case 'mov-from-dr':
        cpu.setReg(i.rm, 4, this.debug[debugRegister(i.reg)]);
        return next;
      case 'lseg': {
        // LES/LDS/LSS/LFS/LGS: the offset into the register, the selector after it.
        const at = cpu.eaLinear(i, i.size + 2, false);
        const offset = cpu.readLinear(at, i.size);
        const selector = cpu.readLinear((at + i.size) >>> 0, 2);
        this.setSegment(LSEG_TARGET[i.opcode], selector);
        cpu.setReg(i.reg, i.size, offset);
        return next;
      }
      case 'pte_set':
      case 'pgd_set':
        this.backend.pageTableWrite(kind === 'pte_set' ? 1 : 2, cpu.edx, cpu.eax);
        return next;
      case 'pte_read':
      case 'pgd_read':
        cpu.eax = this.backend.pageTableRead(kind === 'pte_read' ? 1 : 2, cpu.edx) >>> 0;
        return next;
      case 'pte_test_clear':
        cpu.eax = this.backend.pageTableTestClear(cpu.edx) >>> 0;
        return next;
      default:
        this.backend.crash(`site kind ${kind} has no emulation`);
        return next;
    }
  }

  /**
   * The fault the emulated instruction raises, as the processor would: a frame on the kernel's
   * stack (sites are kernel code) with the instruction's own address, then its IDT gate.
   */
  private raise(vector: number, errorCode: number | undefined, eip: number): number {
    const cpu = this.cpu;
    cpu.push(this.frameFlags(this.virtualIf), 4);
    cpu.push(this.segment(CS), 4);
    cpu.push(eip, 4);
    if (errorCode !== undefined) cpu.push(errorCode, 4);
    const handler = this.enterGate(vector);
    this.counters.trapsForwarded[vector] = (this.counters.trapsForwarded[vector] ?? 0) + 1;
    return handler;
  }

  /**
   * INS and OUTS, one element or (REP) ECX of them, as the processor moves them (SDM 2A INS,
   * OUTS): OUTS from DS:ESI (or the override), INS to ES:EDI, the index stepped by the size,
   * backwards with DF. Ports go to the virtual platform, each element one device access.
   */
  private stringIo(i: Instr, input: boolean): void {
    const cpu = this.cpu;
    const size = ((i.opcode & 1) === 0 ? 1 : i.size) as 1 | 2 | 4;
    const port = cpu.edx & 0xffff;
    const step = (cpu.getEflags() & EFLAGS_DF) !== 0 ? -size : size;
    const mask = i.addr32 ? 0xffffffff : 0xffff;
    let count = i.rep !== 0 ? (i.addr32 ? cpu.ecx : cpu.ecx & 0xffff) : 1;
    while (count > 0) {
      cpu.charge(this.costs.vmmDeviceAccess);
      this.counters.deviceAccesses++;
      if (input) {
        const at = cpu.linear(ES, cpu.edi & mask, size, true);
        cpu.writeLinear(at, size, this.platform.read(port, size));
        cpu.edi = ((cpu.edi & ~mask) | ((cpu.edi + step) & mask)) >>> 0;
      } else {
        const at = cpu.linear(i.seg < 0 ? DS : i.seg, cpu.esi & mask, size, false);
        this.platform.write(port, size, cpu.readLinear(at, size));
        cpu.esi = ((cpu.esi & ~mask) | ((cpu.esi + step) & mask)) >>> 0;
      }
      count--;
      if (i.rep !== 0) cpu.ecx = i.addr32 ? count >>> 0 : ((cpu.ecx & ~0xffff) | count) >>> 0;
    }
  }

  /**
   * VERR/VERW on the guest's own descriptor tables (SDM 2B VERR/VERW), at the virtual CPL 0: a
   * data segment (writable, for VERW) or a readable code segment (VERR), whose DPL the
   * selector's RPL may reach (conforming code at any).
   */
  private segmentVerifies(selector: number, write: boolean): boolean {
    if ((selector & ~3) === 0) return false;
    const table = (selector & 4) !== 0 ? undefined : this.gdtr;
    if (table === undefined || (selector | 7) > table.limit) return false;
    const hi = this.cpu.readLinear((table.base + (selector & ~7) + 4) >>> 0, 4, true);
    const type = (hi >>> 8) & 0xf;
    if ((hi & 0x1000) === 0 || (hi & 0x8000) === 0) return false; // system, or not present
    const code = (type & 8) !== 0;
    const conforming = code && (type & 4) !== 0;
    if (!conforming && ((hi >>> 13) & 3) < (selector & 3)) return false;
    return write ? !code && (type & 2) !== 0 : !code || (type & 2) !== 0;
  }

  /** IN or OUT of `size` bytes at `port` on the virtual platform, with EAX (SDM 2A IN, OUT). */
  private portIo(input: boolean, port: number, size: 1 | 2 | 4): void {
    const cpu = this.cpu;
    cpu.charge(this.costs.vmmDeviceAccess);
    this.counters.deviceAccesses++;
    const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    if (input) {
      const v = this.platform.read(port, size) & mask;
      cpu.eax = size === 4 ? v >>> 0 : ((cpu.eax & ~mask) | v) >>> 0;
    } else {
      this.platform.write(port, size, cpu.eax & mask);
    }
  }

  /**
   * A #GP(0) from user mode at an IN or OUT the guest kernel allowed — its virtual IOPL 3, or
   * the I/O permission bitmap of its TSS (SDM 1 19.5: Linux's ioperm) — where the real CPU,
   * whose bitmap is the hypervisor's, refused it: the access is done on the virtual platform
   * and the process continues after the instruction, through the core's own iret. The frame
   * (error code, EIP, CS, EFLAGS, ESP, SS) is on the stack. Undefined if it is no such access.
   */
  private userPortIo(): number | undefined {
    const cpu = this.cpu;
    const eip = this.frameRead(4);
    let at = eip;
    let size: 1 | 2 | 4 = 4;
    let op = this.guestByte(at++);
    if (op === 0x66) {
      size = 2;
      op = this.guestByte(at++);
    }
    if (op === undefined || (op & 0xf4) !== 0xe4) return undefined; // E4–E7, EC–EF
    if ((op & 1) === 0) size = 1;
    let port = cpu.edx & 0xffff;
    if ((op & 8) === 0) {
      const imm = this.guestByte(at++);
      if (imm === undefined) return undefined;
      port = imm;
    }
    const iopl = (this.frameRead(12) & IOPL) >>> 12;
    if (iopl < 3 && !this.ioBitmapAllows(port, size)) return undefined;
    this.portIo((op & 2) === 0, port, size);
    cpu.esp = (cpu.esp + 4) >>> 0; // the error code
    this.frameWrite(0, at >>> 0);
    this.counters.userPortAccesses = (this.counters.userPortAccesses ?? 0) + 1;
    return this.iret();
  }

  /**
   * Whether the guest's TSS I/O bitmap clears every port of the access: the map's base at
   * offset 0x66, one bit per port, bytes past the TSS's limit counting as set (SDM 1 19.5.2).
   */
  private ioBitmapAllows(port: number, size: number): boolean {
    if (this.tr.base === 0) return false;
    const at = (this.gdtr.base + (this.tr.selector & ~7)) >>> 0;
    const lo = this.guestWord(at);
    const hi = this.guestWord(at + 4);
    if (lo === undefined || hi === undefined) return false;
    let limit = (lo & 0xffff) | (hi & 0xf0000);
    if ((hi & 0x800000) !== 0) limit = limit * 4096 + 0xfff;
    const mapLow = this.guestByte(this.tr.base + 0x66);
    const mapHigh = this.guestByte(this.tr.base + 0x67);
    if (mapLow === undefined || mapHigh === undefined) return false;
    const map = mapLow | (mapHigh << 8);
    for (let p = port; p < port + size; p++) {
      const offset = map + (p >>> 3);
      if (offset > limit) return false;
      const b = this.guestByte(this.tr.base + offset);
      if (b === undefined || (b & (1 << (p & 7))) !== 0) return false;
    }
    return true;
  }

  /** A byte of guest-virtual memory: through the CPU, else the backend's walk; or undefined. */
  private guestByte(linear: number): number | undefined {
    const at = linear >>> 0;
    try {
      return this.cpu.readLinear(at, 1, true);
    } catch {
      return this.backend.readGuestByte?.(at);
    }
  }

  private guestWord(linear: number): number | undefined {
    let v = 0;
    for (let k = 3; k >= 0; k--) {
      const b = this.guestByte(linear + k);
      if (b === undefined) return undefined;
      v = v * 256 + b;
    }
    return v;
  }

  /** The instruction at `eip` (guest linear) is an x87 escape, D8–DF after its prefixes. */
  private isX87(eip: number): boolean {
    for (let k = 0; k < 15; k++) {
      const b = this.guestByte(eip + k);
      if (b === undefined) return false; // not mapped: left as the CPU reported it
      if (b >= 0xd8 && b <= 0xdf) return true;
      if (!X86_PREFIXES.has(b)) return false;
    }
    return false;
  }

  /** The backend takes this CPUID feature (leaf 1 EDX) out of what the guest sees. */
  private hidden(feature: number): boolean {
    return (this.backend.hiddenCpuFeatures & feature) !== 0;
  }

  private readSelector(site: CallSite): number {
    const i = site.instr;
    if (i.mod === 3) return this.cpu.getReg(i.rm, 2) & 0xffff;
    return this.cpu.readLinear(this.cpu.eaLinear(i, 2, false), 2);
  }

  /**
   * Device registers through the guest's own mapping: a passed-through device's registers, which
   * the VMM mapped to the real ones (the backend translates its BARs). The access is the real
   * device's, charged as the CPU charges MMIO; the VMM adds only its call (cost-model.md).
   */
  private mmio(site: CallSite): void {
    const cpu = this.cpu;
    const i = site.instr;
    const size = (i.opcode === 0x1b6 || i.opcode === 0x88 ? 1 : i.opcode === 0x1b7 ? 2 : i.size) as
      1 | 2 | 4;
    const page = this.backend.emulatedRegisterPage;
    if (page !== undefined && this.emulatedMmio(site.kind === 'mmio_write', size, page)) return;
    if (site.kind === 'mmio_read') cpu.eax = cpu.readLinear(cpu.edx, size) >>> 0;
    else
      cpu.writeLinear(cpu.edx, size, cpu.eax & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1));
  }

  /**
   * A register access of an emulated device (devices/emulatedNic.ts): the guest's mapping of
   * its BAR leads to the backend's register page. True if it was one (then it is done).
   */
  private emulatedMmio(write: boolean, size: 1 | 2 | 4, page: number): boolean {
    const cpu = this.cpu;
    // The guest's own access rights: a fault here is the guest's, as for a real access.
    const physical = cpu.translate(cpu.edx, write ? 1 : 0, this.userMode);
    if ((physical & ~0xfff) !== page) return false;
    const frame = this.platform.emulatedMemoryFrame();
    if (frame === undefined) return false;
    cpu.charge(this.costs.vmmDeviceAccess);
    this.counters.deviceAccesses++;
    const at = frame * 4096 + (physical & 0xfff);
    if (write)
      this.platform.mmio.write(
        at,
        size,
        cpu.eax & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1),
      );
    else cpu.eax = this.platform.mmio.read(at, size) >>> 0;
    return true;
  }

  private writeCr(n: number, value: number): void {
    switch (n) {
      case 0: {
        const enable = (value & 0x80000000) !== 0 && !this.pagingOn;
        this.cr0 = value;
        if (enable) {
          this.pagingOn = true;
          this.backend.enablePaging(this.cr3);
        }
        return;
      }
      case 2:
        this.cr2 = value;
        return;
      case 3:
        this.cr3 = value;
        if (this.pagingOn) this.backend.loadCr3(value);
        return;
      case 4:
        this.cr4 = value;
        return;
      default:
        return;
    }
  }

  /** hlt: a pending interrupt is taken at once; else sleep until an event. */
  private hlt(next: number): number {
    this.flushConsole();
    this.platform.flush();
    this.platform.poll();
    if (!this.virtualIf) {
      // With interrupts off nothing can wake the CPU (SDM 3A 6.8.1 aside NMI): the run ends
      // (or, for one VM of several, the VM stops).
      return this.backend.haltForever(next);
    }
    const target = this.interruptAt(next);
    if (target !== next) return target;
    this.platform.idle();
    if (this.backend.sleep !== undefined) return this.backend.sleep(next);
    if (this.backend.idle()) return next;
    this.platform.poll();
    return this.interruptAt(next);
  }

  /** iret: to ring 3 or within the kernel; a pending interrupt arrives right after it. */
  private iret(): number {
    const cpu = this.cpu;
    const vcs = this.frameRead(4) & 0xffff;
    // A return to right after an emulated instruction (an exception fixup's address: Linux's
    // extable entries for RDMSR/WRMSR name the next instruction) lands in the site's padding,
    // which the rewriter overwrote; in the original binary that padding is NOPs, so the guest
    // continues at the site's end.
    const resume = (vcs & 3) === 3 ? undefined : this.afterInstruction().get(this.frameRead(0));
    if (resume !== undefined) this.frameWrite(0, resume);
    const vflags = this.frameRead(8);
    const toUser = (vcs & 3) === 3;
    const interruptsOn = toUser || (vflags & IF) !== 0;
    if (toUser) {
      this.inUser = true;
      this.userCs = vcs;
      this.userSs = this.frameRead(16) & 0xffff;
      if (this.tr.base !== 0)
        this.backend.setKernelStack(cpu.readLinear(this.tr.base + 4, 4, true));
    } else {
      this.setSegment(CS, vcs);
      // IRET at CPL 0 loads IOPL (SDM 2A IRET); the guest kernel believes it runs there.
      const f = this.block.getUint32(Vcpu.flags, true);
      this.block.setUint32(Vcpu.flags, ((f & ~IOPL) | (vflags & IOPL)) >>> 0, true);
    }
    this.virtualIf = interruptsOn;
    this.platform.flush();
    this.platform.poll();
    if (interruptsOn && this.interruptPending) {
      // The frame stays: it is exactly the one the interrupt would push right after the iret.
      return this.enterInterrupt();
    }
    return this.backend.returnFromInterrupt(toUser, vflags);
  }
}

function hex(v: number): string {
  return (v >>> 0).toString(16);
}

/** CR0.TS (SDM 3A 2.5). */
const CR0_TS = 0x8;
const CR0_EM = 0x4;
/** Instruction prefixes (SDM 2A 2.1.1). */
const X86_PREFIXES: ReadonlySet<number> = new Set([
  0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
]);
const EFLAGS_ZF = 0x40;
const EFLAGS_DF = 0x400;

/** DR4 and DR5 are DR6 and DR7 while CR4.DE is clear (the virtual CPU offers no DE). */
function debugRegister(n: number): number {
  return n === 4 || n === 5 ? n + 2 : n;
}

/** The segment register LES, LDS, LSS, LFS and LGS load, by opcode. */
const LSEG_TARGET: Readonly<Record<number, number>> = {
  0xc4: 0,
  0xc5: 3,
  0x1b2: 2,
  0x1b4: 4,
  0x1b5: 5,
};

/** DR0–DR7 at reset (SDM 3A 18.2): DR6 0xFFFF0FF0, DR7 0x400. */
function resetDebugRegisters(): number[] {
  return [0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400];
}
