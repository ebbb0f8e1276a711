/**
 * previrt's L4 X.2-style microkernel (shared/reference/l4.md, DESIGN.md decision 5). It owns
 * ring 0 through the CPU's monitor: every exception, interrupt and INT n of an x86 thread exits
 * here. INT 0x30–0x3B are the system calls (syscalls.ts); a page fault becomes an IPC to the
 * thread's pager, any other exception or INT n an IPC to its exception handler, an interrupt an
 * IPC from an interrupt thread (ipc.ts, interrupts.ts). Threads are x86 code in ring 3 of their
 * address space, or TypeScript (thread.ts): sigma0 and the resource monitor are TypeScript, and
 * so will be the in-place VMM's threads.
 *
 * Start-up, in order: the kernel's memory pool; the GDT, TSS, KIP and the all-ones I/O bitmap;
 * the 8259s; the interrupt threads; sigma0 in the physical space; the resource monitor (the root
 * task) in its own privileged space; the CPU in the state threads run in, halted until a thread
 * is ready; the monitor attached. VMs come from the resource monitor (resourceMonitor.ts).
 *
 * Kernel entries (an event of the CPU, a timer on the simulated clock, a TypeScript thread's
 * system call from the host) save the running thread's registers, do their work, run the
 * TypeScript threads whose IPC completed, and end in the dispatcher, which picks the thread to
 * run (fixed priorities, round robin per level, time slices) and loads it into the CPU.
 */
import type { Machine } from '../../machine/Machine.ts';
import type { SimClock } from '../../machine/clock.ts';
import type { CounterTree, Hypervisor, HypervisorState, VmInfo } from '../Hypervisor.ts';
import type { SoftwareCosts } from '../../machine/costModel.ts';
import type { Timer } from '../../machine/device.ts';
import type { Cpu } from '../../x86/Cpu.ts';
import type { CpuCosts } from '../../x86/cost.ts';
import type { EntryTable } from '../../x86/entries.ts';
import { CpuFault, Vector } from '../../x86/fault.ts';
import type { CpuEvent } from '../../x86/monitor.ts';
import type { PortRange } from '../devices.ts';
import {
  ANYLOCALTHREAD,
  ANYTHREAD,
  EXCEPTION_WORDS,
  IpcError,
  irqThreadId,
  isLocalId,
  Label,
  msgTag,
  NEVER,
  NILTHREAD,
  PTE_A,
  PTE_D,
  R,
  ROOT_ID,
  Selector,
  SIGMA0_ID,
  Syscall,
  type SyscallName,
  USER_LIMIT,
  Utcb,
  W,
  X,
} from './abi.ts';
import { L4Api } from './api.ts';
import { auditKernel } from './audit.ts';
import { FramePool } from './frames.ts';
import { Interrupts, IRQ_LINES } from './interrupts.ts';
import { IpcEngine } from './ipc.ts';
import {
  buildGdt,
  buildKip,
  buildTss,
  loadUserSegments,
  setupCpu,
  writeDescriptor,
  type KipMemory,
} from './kip.ts';
import { MappingDb, type MapCounters } from './mapdb.ts';
import { ResourceMonitor } from './resourceMonitor.ts';
import { Sigma0 } from './sigma0.ts';
import { Space, type PageTableMemory, type SharedKernelFrames } from './space.ts';
import { systemCall } from './syscalls.ts';
import { Thread, type IpcResult, type TsProgram, type UtcbView } from './thread.ts';
import { restoreKernel, saveKernel, type L4State } from './state.ts';

export interface L4Options {
  /** Console output: the resource monitor's console service and the kernel's messages. */
  console?: (byte: number) => void;
  /** Kernel memory in frames (default: a sixteenth of the machine's, at least 256). */
  kernelFrames?: number;
  /** The default time slice in µs (10 ms, as Pistachio's sched-rr). */
  timesliceUs?: number;
  /**
   * Threads in the address space of a thread's pager may ExchangeRegisters it too, not only
   * threads of its own space (Pistachio's CONFIG_X_PAGER_EXREGS, feature "pagerexregs"): the
   * in-place VMM's threads redirect the guest's process threads they page. Off by default.
   */
  pagerExregs?: boolean;
}

/** Counters every run reports (DESIGN.md decision 4). */
export interface L4Counters {
  /** System calls by name (x86 and TypeScript threads alike; Unmap with the flush bit is `flush`). */
  syscalls: Record<SyscallName | 'flush', number>;
  /** Of those, made by TypeScript threads. */
  typeScriptSyscalls: number;
  /** Messages transferred, by kind. */
  ipc: { pageFault: number; exception: number; interrupt: number; other: number };
  ipcErrors: {
    timeout: number;
    nonExisting: number;
    canceled: number;
    overflow: number;
    xferTimeout: number;
    aborted: number;
  };
  /** Page-table entries of mappings made, granted, removed and downgraded. */
  pages: MapCounters;
  spaceSwitches: number;
  threadSwitches: number;
  /** Time slices that ran out (the timer-driven round robin). */
  timeSlices: number;
  /** A higher-priority thread became ready and took the CPU. */
  preemptions: number;
  /** IPC timeouts that expired. */
  timeouts: number;
  /** Kernel entries from the simulated clock (time-slice ends, timeouts), charged as interrupts. */
  timerInterrupts: number;
  /** Hardware interrupts taken. */
  interrupts: number;
  threadsCreated: number;
  threadsDeleted: number;
  spacesCreated: number;
  spacesDeleted: number;
  /** Threads halted by the kernel: a fault with no pager or handler to send it to. */
  threadsHalted: number;
  stringBytes: number;
  /** DMA of passed-through devices translated, and refused (outside the VM's memory). */
  dmaTranslated: number;
  dmaRefused: number;
  /**
   * The machine's busy cycles by whom they went to (`vm0`, `vm1`, ...; `kernel`: the roots'
   * threads, and the kernel's work with no thread of a VM on the CPU): the x86 thread on the
   * CPU, or the TypeScript thread whose call returned, in whose VM the kernel's work for them
   * counts too (as Xen counts a hypercall to the domain that makes it). They add up to the
   * machine's busy cycles.
   */
  busyCycles: Record<string, number>;
}

function newCounters(): L4Counters {
  const syscalls = Object.fromEntries(
    [...Object.keys(Syscall), 'flush'].map((n) => [n, 0]),
  ) as Record<SyscallName | 'flush', number>;
  return {
    syscalls,
    typeScriptSyscalls: 0,
    ipc: { pageFault: 0, exception: 0, interrupt: 0, other: 0 },
    ipcErrors: { timeout: 0, nonExisting: 0, canceled: 0, overflow: 0, xferTimeout: 0, aborted: 0 },
    pages: { mapped: 0, granted: 0, unmapped: 0, downgraded: 0 },
    spaceSwitches: 0,
    threadSwitches: 0,
    timeSlices: 0,
    preemptions: 0,
    timeouts: 0,
    timerInterrupts: 0,
    interrupts: 0,
    threadsCreated: 0,
    threadsDeleted: 0,
    spacesCreated: 0,
    spacesDeleted: 0,
    threadsHalted: 0,
    stringBytes: 0,
    dmaTranslated: 0,
    dmaRefused: 0,
    busyCycles: {},
  };
}

/** EFLAGS bits a thread may set: the arithmetic flags, TF, DF, AC, ID (never IF, IOPL, VM). */
export const USER_EFLAGS = 0x240dd5;

export class L4Kernel implements Hypervisor {
  readonly name = 'l4';
  readonly cpu: Cpu;
  readonly clock: SimClock;
  readonly costs: Readonly<SoftwareCosts>;
  readonly cpuCosts: Readonly<CpuCosts>;
  readonly pool: FramePool;
  readonly mem: PageTableMemory;
  readonly shared: SharedKernelFrames;
  readonly mdb: MappingDb;
  readonly ipc: IpcEngine;
  readonly interrupts: Interrupts;
  readonly memory: KipMemory;
  readonly counters: L4Counters = newCounters();
  readonly spaces = new Map<number, Space>();
  nextSpaceId = 1;
  /** Every thread, by thread number. */
  readonly threads = new Map<number, Thread>();
  /** The x86 thread on the CPU (undefined: idle). */
  current: Thread | undefined;
  /** Ready x86 threads but the current one, per priority, in round-robin order. */
  readonly ready: Thread[][] = Array.from({ length: 256 }, () => []);
  sliceTimer: Timer | undefined;
  sliceOwner: Thread | undefined;
  sliceStart = 0;
  /** A thread the current one woke by IPC: it runs next if the current one blocks. */
  handoff: Thread | undefined;
  private sliceOver = false;
  /** ThreadSwitch(nil): the current thread goes to the end of its queue. */
  yielding = false;
  private depth = 0;
  private entry: 'cpu' | 'timer' | 'host' = 'host';
  /** TypeScript threads whose blocked IPC completed, to run in order. */
  readonly deliveries: { thread: Thread; result: IpcResult }[] = [];
  private readonly sigma0SpaceId: number;
  private readonly rootSpaceId: number;
  readonly sigma0: Thread;
  readonly root: Thread;
  readonly resourceMonitor: ResourceMonitor;
  /** The bound-entry table of each VM's spaces (a VMM's), set when the VM is built. */
  readonly vmEntries = new Map<number, EntryTable>();
  readonly defaultTimeslice: number;
  /** L4Options.pagerExregs. */
  readonly pagerExregs: boolean;
  readonly consoleOut: (byte: number) => void;
  private readonly view: DataView;

  constructor(
    readonly machine: Machine,
    options: L4Options = {},
  ) {
    this.cpu = machine.cpu;
    this.clock = machine.clock;
    this.costs = machine.costModel.software;
    this.cpuCosts = machine.costModel.cpu;
    this.consoleOut = options.console ?? (() => {});
    const ram = machine.ram;
    this.view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.defaultTimeslice = this.microsToCycles(options.timesliceUs ?? 10_000);
    this.pagerExregs = options.pagerExregs === true;
    const ramFrames = ram.length >>> 12;
    const poolFrames = options.kernelFrames ?? Math.max(256, ramFrames >>> 4);
    if (256 + poolFrames >= ramFrames)
      throw new Error('l4: machine memory too small for the kernel');
    const cpu = this.cpu;
    this.pool = new FramePool(256, poolFrames, {
      clear: (frame) => {
        ram.fill(0, frame * 4096, frame * 4096 + 4096);
        cpu.invalidateCode(frame * 4096, 4096);
      },
    });
    this.memory = { reservedEnd: 256 + poolFrames, ramEnd: ramFrames };
    this.mem = {
      read32: (maddr) => this.view.getUint32(maddr, true),
      write32: (maddr, value) => cpu.writePhysical(maddr, 4, value >>> 0),
      invalidate: (space, va) => {
        if (space.pd >= 0 && cpu.cr3 >>> 12 === space.pd) cpu.invalidatePage(va);
      },
      pool: this.pool,
    };
    const take = (): number => {
      const f = this.pool.allocate();
      if (f === undefined) throw new Error('l4: machine memory too small for the kernel');
      return f;
    };
    this.shared = { gdt: take(), tss: take(), kip: take(), noPorts: [take(), take()] };
    ram.fill(0xff, this.shared.noPorts[0] * 4096, this.shared.noPorts[0] * 4096 + 4096);
    ram.fill(0xff, this.shared.noPorts[1] * 4096, this.shared.noPorts[1] * 4096 + 4096);
    buildGdt(this.view, this.shared.gdt, 0xffc01000);
    buildTss(this.view, this.shared.tss);
    buildKip(this.view, this.shared.kip, this.memory, machine.costModel.hz);
    this.mdb = new MappingDb({
      mem: this.mem,
      chargePage: () => this.charge(this.costs.l4MapPage),
      physicalFrame: (frame) => this.physicalFrame(frame),
      counters: this.counters.pages,
    });
    this.ipc = new IpcEngine(this);
    this.interrupts = new Interrupts(this);
    this.interrupts.programPic();
    for (let irq = 0; irq < IRQ_LINES; irq++) {
      const it = new Thread(irqThreadId(irq), 'irq', undefined, this.defaultTimeslice, NILTHREAD);
      it.irq = irq;
      this.threads.set(irq, it);
    }

    // The roots: sigma0 owns physical memory, the resource monitor is the root task.
    this.sigma0SpaceId = this.newSpace(true, true, -1)!.id;
    this.rootSpaceId = this.newSpace(false, true, -1)!.id;
    setupCpu(cpu, this.sigma0Space.pd * 4096);
    cpu.halted = true;
    this.resourceMonitor = new ResourceMonitor(this);
    this.sigma0 = this.createTsThread(
      SIGMA0_ID,
      this.sigma0Space,
      new Sigma0(this.memory, (tid) => this.lookup(tid, undefined)?.space?.privileged === true),
      255,
    );
    this.root = this.createTsThread(ROOT_ID, this.rootSpace, this.resourceMonitor, 255);
    cpu.attachMonitor(this);
  }

  /** Sigma0's space: the physical address space (space.ts). */
  get sigma0Space(): Space {
    return this.spaces.get(this.sigma0SpaceId)!;
  }

  /** The root task's (the resource monitor's) space. */
  get rootSpace(): Space {
    return this.spaces.get(this.rootSpaceId)!;
  }

  // ---- the hypervisor contract (../Hypervisor.ts) ------------------------------------------

  vms(): VmInfo[] {
    return this.resourceMonitor.vmInfo();
  }

  stats(): CounterTree {
    this.flushAccounting();
    const c = structuredClone(this.counters) as unknown as CounterTree;
    c.kernelFramesInUse = this.pool.inUse;
    return c;
  }

  /** Every invariant of the mapping database, page tables and queues (audit.ts); [] if all hold. */
  audit(): string[] {
    return auditKernel(this);
  }

  save(): L4State {
    return saveKernel(this);
  }

  restore(state: HypervisorState, path: string): void {
    restoreKernel(this, state, path);
  }

  // ---- time and costs ----------------------------------------------------------------------

  now(): number {
    return this.cpu.cycles;
  }

  microsToCycles(us: number): number {
    return Math.ceil((us * this.machine.costModel.hz) / 1e6);
  }

  charge(cycles: number): void {
    this.cpu.charge(cycles);
  }

  // ---- busy cycles by VM (L4Counters.busyCycles) ----------------------------------------------

  /** Whose the busy cycles are from `acctMark` on; the machine's busy cycles then. */
  private acctOwner = 'kernel';
  private acctMark = 0;

  private ownerOf(t: Thread | undefined): string {
    const vm = t?.space?.vm;
    return vm === undefined || vm < 0 ? 'kernel' : `vm${vm}`;
  }

  /** The busy cycles since the mark to their owner; from now on they are `owner`'s. */
  private accountTo(owner: string): void {
    const busy = this.cpu.cycles - this.cpu.idleCycles;
    const b = this.counters.busyCycles;
    b[this.acctOwner] = (b[this.acctOwner] ?? 0) + (busy - this.acctMark);
    this.acctMark = busy;
    this.acctOwner = owner;
  }

  /** Before a snapshot: every busy cycle so far in the counters (the owner stays). */
  flushAccounting(): void {
    this.accountTo(this.acctOwner);
  }

  /** After a restore: the cycles from now on are the current thread's VM's. */
  resetAccounting(): void {
    this.acctMark = this.cpu.cycles - this.cpu.idleCycles;
    this.acctOwner = this.ownerOf(this.current);
  }

  countIpcError(code: number): void {
    const e = this.counters.ipcErrors;
    if (code === IpcError.timeout) e.timeout++;
    else if (code === IpcError.nonExisting) e.nonExisting++;
    else if (code === IpcError.canceled) e.canceled++;
    else if (code === IpcError.overflow) e.overflow++;
    else if (code === IpcError.aborted) e.aborted++;
    else e.xferTimeout++;
  }

  print(text: string): void {
    for (let k = 0; k < text.length; k++) this.consoleOut(text.charCodeAt(k) & 0xff);
  }

  // ---- threads and spaces --------------------------------------------------------------------

  /** The thread a thread ID names from `caller`'s point of view (local IDs: its own space). */
  lookup(tid: number, caller: Thread | undefined): Thread | undefined {
    tid >>>= 0;
    if (tid === NILTHREAD || tid === ANYTHREAD || tid === ANYLOCALTHREAD) return undefined;
    if (isLocalId(tid)) {
      const space = caller?.space;
      if (space === undefined) return undefined;
      for (const t of this.threads.values())
        if (t.space === space && t.kind === 'x86' && t.utcbAddress === tid) return t;
      return undefined;
    }
    const t = this.threads.get(tid >>> 14);
    return t !== undefined && t.tid === tid ? t : undefined;
  }

  /** Every thread, by thread number (a fixed order, whatever the history). */
  allThreads(): Thread[] {
    return [...this.threads.values()].sort((a, b) => a.number - b.number);
  }

  irqThread(irq: number): Thread | undefined {
    return this.threads.get(irq);
  }

  /** A new space with its directory and kernel slot; undefined if kernel memory ran out. */
  newSpace(physical: boolean, privileged: boolean, vm: number): Space | undefined {
    const space = new Space(this.nextSpaceId, physical, privileged, vm);
    if (!space.build(this.mem, this.shared)) return undefined;
    this.nextSpaceId++;
    this.spaces.set(space.id, space);
    this.counters.spacesCreated++;
    return space;
  }

  /** The space lost its last thread: its mappings are revoked, its frames freed. */
  deleteSpace(space: Space): void {
    this.mdb.flushSpace(space);
    if (this.cpu.cr3 >>> 12 === space.pd) {
      // Nothing may run on a freed directory: the sigma0 space's is always there.
      this.cpu.cr3 = this.sigma0Space.pd * 4096;
    }
    space.release(this.mem);
    this.spaces.delete(space.id);
    this.counters.spacesDeleted++;
  }

  addThread(t: Thread): void {
    this.threads.set(t.number, t);
    if (t.space !== undefined) t.space.threads++;
    this.counters.threadsCreated++;
  }

  /**
   * A TypeScript thread in `space` (the roots' and a VMM's: their code is TypeScript, so only
   * host code creates them, through the resource monitor). It starts by running `start`.
   */
  createTsThread(tid: number, space: Space, program: TsProgram, priority: number): Thread {
    const t = new Thread(tid, 'ts', space, this.defaultTimeslice, ROOT_ID);
    t.priority = priority;
    t.program = program;
    t.state = 'ready';
    t.api = new L4Api(this, t);
    t.hostUtcb!.set(Utcb.myGlobalId, tid);
    this.addThread(t);
    if (program.start !== undefined) {
      this.hostEntry(() => program.start!(t.api!));
    }
    return t;
  }

  /** Deletes a thread: its IPC partners fail, its space goes with its last thread. */
  deleteThread(t: Thread): void {
    if (t.kind === 'irq') return;
    this.ipc.partnerGone(t);
    if (t.state === 'sending') this.ipc.removeSender(t);
    this.ipc.disarm(t);
    t.ipc = undefined;
    t.state = 'inactive';
    this.unqueue(t);
    if (this.current === t) this.current = undefined;
    if (this.sliceOwner === t) this.stopSlice(t);
    if (this.handoff === t) this.handoff = undefined;
    for (const it of this.threads.values())
      if (it.kind === 'irq' && it.handler === t.tid) this.interrupts.dissociate(it);
    const at = this.deliveries.findIndex((d) => d.thread === t);
    if (at >= 0) this.deliveries.splice(at, 1);
    this.threads.delete(t.number);
    this.counters.threadsDeleted++;
    const space = t.space;
    if (space !== undefined && --space.threads === 0 && space !== this.sigma0Space)
      this.deleteSpace(space);
    t.space = undefined;
  }

  /** An x86 thread's UTCB in its space, a TypeScript thread's in host memory. */
  utcbOf(t: Thread): UtcbView | undefined {
    if (t.kind === 'ts') return t.hostUtcb;
    if (t.kind !== 'x86' || t.utcbAddress < 0 || t.space === undefined) return undefined;
    const at = t.space.utcbMachineAddress(t.utcbAddress);
    if (at === undefined) return undefined;
    const view = this.view;
    const cpu = this.cpu;
    return {
      get: (offset) => view.getUint32(at + offset, true),
      set: (offset, value) => cpu.writePhysical(at + offset, 4, value >>> 0),
    };
  }

  /** The kernel writes a field of a thread's UTCB (ThreadControl's pager, the root task's setup). */
  setUtcbField(t: Thread, offset: number, value: number): void {
    this.utcbOf(t)?.set(offset, value >>> 0);
  }

  /** Gives a space I/O ports (its own I/O bitmap): the resource monitor's, for a VM's device. */
  openPorts(space: Space, ports: readonly PortRange[]): boolean {
    return space.openPorts(this.mem, this.machine.ram, ports);
  }

  /** Frames sigma0 may map: its RAM, and device memory beyond RAM (never the kernel's). */
  physicalFrame(frame: number): boolean {
    return frame >= this.memory.reservedEnd && frame < USER_LIMIT >>> 12;
  }

  /**
   * The machine address behind `va` in a space, for the kernel's own copies (string items),
   * when the mapping allows the access; sets the accessed and dirty bits as the CPU would.
   */
  memoryAt(space: Space | undefined, va: number, write: boolean): number | undefined {
    if (space === undefined || va >= USER_LIMIT) return undefined;
    const node = space.mappings.get(va >>> 12);
    if (node === undefined) return undefined;
    if (write ? (node.rights & W) === 0 : (node.rights & (R | X | W)) === 0) return undefined;
    if ((node.frame + 1) * 4096 > this.machine.ram.length) return undefined;
    const pte = space.pteAddress(node.vpn);
    if (pte !== undefined && !space.physical) {
      const v = this.view.getUint32(pte, true);
      const set = v | PTE_A | (write ? PTE_D : 0);
      if (set !== v) this.cpu.writePhysical(pte, 4, set >>> 0);
    }
    return node.frame * 4096 + (va & 0xfff);
  }

  copyMachine(from: number, to: number, length: number): void {
    const ram = this.machine.ram;
    ram.copyWithin(to, from, from + length);
    this.cpu.invalidateCode(to, length);
  }

  /** A thread the kernel cannot go on with (a fault with nowhere to send it): it stops. */
  haltThread(t: Thread, why: string): void {
    t.halted = true;
    t.state = 'ready';
    this.unqueue(t);
    this.counters.threadsHalted++;
    this.print(`(l4) thread 0x${t.tid.toString(16)} halted: ${why}\n`);
  }

  // ---- the monitor and kernel entries ---------------------------------------------------------

  /** Every exception, interrupt and INT n of an x86 thread (x86/monitor.ts). */
  onEvent(event: CpuEvent): void {
    this.enter('cpu');
    const t = this.current;
    if (event.kind === 'interrupt') this.interrupts.hardware(event.vector);
    else if (t !== undefined) {
      if (event.kind === 'software') {
        const v = event.vector;
        if (v >= Syscall.ipc && v <= Syscall.kernelInterface) systemCall(this, t, v);
        else if (v === Vector.BP || v === Vector.OF) this.exception(t, v, undefined);
        else {
          // INT n through a gate of DPL 0, as an ia32 L4 has for every other vector: #GP with
          // the IDT error code, at the instruction (the handler reads and skips it).
          t.ctx.eip = (t.ctx.eip - 2) >>> 0;
          this.exception(t, Vector.GP, v * 8 + 2);
        }
      } else if (event.vector === Vector.PF) {
        this.pageFault(t, this.cpu.cr2, event.errorCode ?? 0);
      } else if (event.vector === Vector.UD && this.isLockNop(t)) {
        t.ctx.eip = (t.ctx.eip + 2) >>> 0;
        systemCall(this, t, Syscall.kernelInterface);
      } else {
        this.exception(t, event.vector, event.errorCode);
      }
    }
    this.exit();
  }

  /** `lock; nop` (F0 90): Pistachio's KernelInterface, which raises #UD. */
  private isLockNop(t: Thread): boolean {
    try {
      const p = this.cpu.translate(t.ctx.eip, 2, true);
      const q = this.cpu.translate((t.ctx.eip + 1) >>> 0, 2, true);
      return this.cpu.readPhysical(p, 1) === 0xf0 && this.cpu.readPhysical(q, 1) === 0x90;
    } catch (e) {
      if (e instanceof CpuFault) return false;
      throw e;
    }
  }

  /** An entry from the simulated clock: charged as the timer interrupt it would be (500). */
  timerEntry(work: () => void): void {
    this.enter('timer');
    this.charge(this.cpuCosts.gatePrivilege);
    this.counters.timerInterrupts++;
    work();
    this.exit();
  }

  /** An entry from host code (a TypeScript thread's call, the resource monitor building a VM). */
  hostEntry<T>(work: () => T): T {
    this.enter('host');
    try {
      return work();
    } finally {
      this.exit();
    }
  }

  get topLevel(): boolean {
    return this.depth === 1;
  }

  private enter(kind: 'cpu' | 'timer' | 'host'): void {
    if (this.depth++ > 0) return;
    this.entry = kind;
    if (this.current !== undefined) this.saveContext(this.current);
  }

  private exit(): void {
    if (this.depth === 1) {
      this.drain();
      this.dispatch();
    }
    this.depth--;
  }

  /** Runs the TypeScript threads whose blocked call completed, in order. */
  drain(): void {
    for (let guard = 0; this.deliveries.length > 0; guard++) {
      if (guard > 1_000_000) throw new Error('l4: TypeScript threads keep each other busy forever');
      const { thread, result } = this.deliveries.shift()!;
      if (thread.program === undefined || thread.api === undefined) continue;
      this.activate(thread.space!);
      const before = this.acctOwner;
      this.accountTo(this.ownerOf(thread));
      // The thread's blocked system call returns now.
      this.charge(this.cpuCosts.iretOuter);
      thread.program.ipcDone(thread.api, result);
      this.accountTo(before);
    }
  }

  // ---- faults as IPC ----------------------------------------------------------------------------

  /** A page fault: IPC to the pager, label 0xffe0 | rwx, MR1 address, MR2 IP (PI ia32 traps). */
  pageFault(t: Thread, address: number, errorCode: number): void {
    const eip = t.ctx.eip;
    const write = (errorCode & 2) !== 0;
    const fetch = !write && address >= eip && address - eip < 16;
    const rwx = write ? W : fetch ? X : R;
    this.kernelMessage(t, 'pageFault', Utcb.pager, {
      tag: msgTag(Label.pageFault | rwx, 2),
      words: [address >>> 0, eip >>> 0],
    });
  }

  /** An exception: IPC to the exception handler with the 12 words (AB l4ka/mrs.h). */
  exception(t: Thread, vector: number, errorCode: number | undefined): void {
    const ctx = t.ctx;
    const reg = (name: string): number =>
      ctx.regs[['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'].indexOf(name)] >>> 0;
    const words = EXCEPTION_WORDS.map((name) =>
      name === 'eip'
        ? ctx.eip
        : name === 'eflags'
          ? ctx.eflags
          : name === 'exception'
            ? vector
            : name === 'errorCode'
              ? (errorCode ?? 0)
              : reg(name),
    );
    this.kernelMessage(t, 'exception', Utcb.exceptionHandler, {
      tag: msgTag(Label.exception, words.length),
      words: words.map((w) => w >>> 0),
    });
  }

  /** The kernel sends `message` for `t` to the thread its UTCB names, and awaits the reply. */
  private kernelMessage(
    t: Thread,
    kind: 'pageFault' | 'exception',
    field: number,
    message: { tag: number; words: number[] },
  ): void {
    const partnerId = this.utcbOf(t)?.get(field) ?? NILTHREAD;
    const partner = this.lookup(partnerId, t);
    if (partner === undefined || partner.kind === 'irq') {
      const what = kind === 'pageFault' ? 'page fault' : 'exception';
      const detail =
        kind === 'pageFault'
          ? ` at 0x${message.words[0].toString(16)} (eip 0x${message.words[1].toString(16)})`
          : ` ${message.words[2]} at eip 0x${message.words[0].toString(16)}`;
      this.haltThread(
        t,
        `${what}${detail} and no ${kind === 'pageFault' ? 'pager' : 'exception handler'}`,
      );
      return;
    }
    this.ipc.begin(t, {
      kind,
      phase: 'send',
      to: partner.tid,
      from: partner.tid,
      timeouts: NEVER,
      receiveUntil: undefined,
      message,
    });
  }

  // ---- scheduling -----------------------------------------------------------------------------

  /** An x86 thread can run: into its priority's queue (the current one stays where it is). */
  makeReady(t: Thread, head = false): void {
    if (t.kind !== 'x86') return;
    t.state = 'ready';
    if (t === this.current || t.halted || t.queued) return;
    if (head) this.ready[t.priority].unshift(t);
    else this.ready[t.priority].push(t);
    t.queued = true;
  }

  unqueue(t: Thread): void {
    if (!t.queued) return;
    const q = this.ready[t.priority];
    const at = q.indexOf(t);
    if (at >= 0) q.splice(at, 1);
    t.queued = false;
  }

  private bestPriority(): number {
    for (let p = 255; p >= 0; p--) if (this.ready[p].length > 0) return p;
    return -1;
  }

  private popBest(): Thread | undefined {
    const p = this.bestPriority();
    if (p < 0) return undefined;
    const t = this.ready[p].shift()!;
    t.queued = false;
    return t;
  }

  private startSlice(t: Thread): void {
    this.sliceTimer?.cancel();
    this.sliceOwner = t;
    this.sliceStart = this.now();
    this.sliceTimer = this.clock.at(
      this.sliceStart + Math.max(1, t.remaining),
      () => this.timerEntry(() => this.sliceEnded()),
      'l4.timeslice',
    );
  }

  stopSlice(t: Thread): void {
    this.sliceTimer?.cancel();
    this.sliceTimer = undefined;
    this.sliceOwner = undefined;
    t.remaining -= this.now() - this.sliceStart;
    if (t.remaining <= 0) t.remaining = t.timeslice;
  }

  /** The current thread's time slice ran out: to the end of its queue (round robin). */
  sliceEnded(): void {
    this.sliceTimer = undefined;
    const t = this.sliceOwner;
    if (t === undefined || t !== this.current) return;
    this.counters.timeSlices++;
    this.sliceOver = true;
  }

  /**
   * Picks the thread to run and loads it into the CPU: the current one while no higher priority
   * is ready and its slice lasts; else the thread it handed off to by IPC, or the head of the
   * highest non-empty queue. With none, the CPU idles (HLT with interrupts on) until an event.
   */
  private dispatch(): void {
    const cur = this.current;
    let next: Thread | undefined;
    const curRunnable = cur !== undefined && cur.runnable;
    if (curRunnable && !this.sliceOver && !this.yielding) {
      if (this.bestPriority() > cur.priority) {
        this.stopSlice(cur);
        this.makeReadyQueued(cur, true);
        this.counters.preemptions++;
        next = this.popBest();
      } else next = cur;
    } else {
      if (cur !== undefined && this.sliceOwner === cur) this.stopSlice(cur);
      if (curRunnable) {
        if (this.sliceOver || this.yielding) cur.remaining = cur.timeslice;
        this.makeReadyQueued(cur, false);
      }
      const h = this.handoff;
      if (h !== undefined && h.runnable && h.queued && h.priority >= this.bestPriority()) {
        this.unqueue(h);
        next = h;
      } else next = this.popBest();
    }
    this.handoff = undefined;
    this.sliceOver = false;
    this.yielding = false;
    this.accountTo(this.ownerOf(next));
    if (next === undefined) {
      this.current = undefined;
      if (this.sliceOwner !== undefined) this.stopSlice(this.sliceOwner);
      this.cpu.setEflags(0x202);
      this.cpu.halted = true;
      return;
    }
    if (next !== cur) this.counters.threadSwitches++;
    this.current = next;
    if (this.sliceOwner !== next) this.startSlice(next);
    this.loadContext(next);
    if (this.entry !== 'host') this.charge(this.cpuCosts.iretOuter);
  }

  private makeReadyQueued(t: Thread, head: boolean): void {
    const cur = this.current;
    this.current = undefined;
    this.makeReady(t, head);
    this.current = cur;
  }

  private saveContext(t: Thread): void {
    const cpu = this.cpu;
    for (let r = 0; r < 8; r++) t.ctx.regs[r] = cpu.regs[r] >>> 0;
    t.ctx.eip = cpu.eip >>> 0;
    t.ctx.eflags = cpu.getEflags() >>> 0;
  }

  private loadContext(t: Thread): void {
    const cpu = this.cpu;
    for (let r = 0; r < 8; r++) cpu.regs[r] = t.ctx.regs[r] | 0;
    cpu.eip = t.ctx.eip >>> 0;
    cpu.setEflags((t.ctx.eflags & USER_EFLAGS) | 0x202);
    // The UTCB segment's descriptor follows the thread, so reloading %gs finds its UTCB too.
    writeDescriptor(
      this.view,
      this.shared.gdt,
      Selector.UTCB >> 3,
      t.utcbAddress,
      0x1ff,
      0xf3,
      0x4,
    );
    loadUserSegments(this.cpu, t.utcbAddress);
    this.activate(t.space!);
    cpu.halted = false;
  }

  /** The space a thread runs in becomes the CPU's: CR3 (200 cycles) and the VM's bound entries. */
  activate(space: Space): void {
    const cpu = this.cpu;
    if (cpu.cr3 >>> 12 !== space.pd) {
      cpu.cr3 = space.pd * 4096;
      this.charge(this.cpuCosts.movCr3);
      this.counters.spaceSwitches++;
    }
    const table = this.vmEntries.get(space.vm) ?? cpu.defaultEntries;
    if (cpu.activeEntryTable !== table) cpu.useEntryTable(table);
  }

  /** Activates a thread (ThreadControl with a pager): it waits for its start message. */
  activateThread(t: Thread, pager: number): void {
    const utcb = this.utcbOf(t);
    utcb?.set(Utcb.pager, pager);
    if (utcb !== undefined && utcb.get(Utcb.exceptionHandler) === NILTHREAD)
      utcb.set(Utcb.exceptionHandler, pager);
    this.ipc.begin(t, {
      kind: 'start',
      phase: 'receive',
      to: NILTHREAD,
      from: pager,
      timeouts: NEVER,
      receiveUntil: undefined,
      message: undefined,
    });
  }

  /** The UTCB of a new x86 thread: its IDs written, in a page of its space's area. */
  placeUtcb(t: Thread, utcb: number): boolean {
    const space = t.space!;
    if (!space.ensureUtcbPage(this.mem, utcb)) return false;
    t.utcbAddress = utcb;
    const view = this.utcbOf(t)!;
    for (let off = 0; off < 512; off += 4) view.set(off, 0);
    view.set(Utcb.myLocalId, utcb);
    view.set(Utcb.myGlobalId, t.tid);
    return true;
  }
}
