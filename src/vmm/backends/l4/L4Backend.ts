/**
 * The in-place VMM's backend for previrt's L4 X.2-style microkernel (src/hypervisor/l4), the
 * only VMM code that knows it; the structure is the original L4 wedge's (shared/reference/l4.md,
 * "How the L4 wedge runs a guest"):
 *
 * - the **kernel thread** (the VM's main thread, x86, ring 3) runs the guest kernel in the VM's
 *   main space, which holds the guest's RAM at its one-to-one map (the alias, layout.ts) and
 *   the VMM window at the top; the core's entries run in its context;
 * - one **process thread** per guest page directory, each in an L4 space of its own: the
 *   guest's processes; the kernel thread is their pager and exception handler, so a process's
 *   page fault, `int $0x80` or other exception is a message it receives in the IPC it waits in
 *   while the guest is in user mode (STUB_IPC), and the guest's `iret` to user mode is its
 *   reply (the exception reply sets the process's registers);
 * - the **monitor** (monitor.ts, a TypeScript thread in the main space): pager and exception
 *   handler of the kernel thread, the virtual timer (an IPC timeout), the passed-through
 *   device's interrupt thread's handler, and delivery of virtual interrupts at safe points;
 * - the **helper** (a TypeScript thread in the main space that never waits): the non-blocking
 *   system calls the kernel thread's VMM code makes (unmap for page-table writes and CR3 loads,
 *   ExchangeRegisters, sends, and the resource monitor's requests), charged as system calls.
 *
 * The backend's paging is paging.ts.
 */
import {
  ANYTHREAD,
  EXCEPTION_WORDS,
  Exregs,
  fpage,
  NEVER,
  NILTHREAD,
  RmOp,
  ROOT_ID,
  RWX,
  Selector,
  tagLabel,
  tagU,
  timeouts,
  ZERO_TIME,
} from '../../../hypervisor/l4/abi.ts';
import { message, type L4Api } from '../../../hypervisor/l4/api.ts';
import type { L4Kernel } from '../../../hypervisor/l4/L4.ts';
import type { Vm } from '../../../hypervisor/l4/resourceMonitor.ts';
import { MR, type IpcResult, type Message, type Thread } from '../../../hypervisor/l4/thread.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  oneOf,
  shape,
  StateError,
  type Check,
} from '../../../machine/state.ts';
import type { Cpu } from '../../../x86/Cpu.ts';
import type { CounterTree } from '../../../machine/counters.ts';
import type { EntryTable } from '../../../x86/entries.ts';
import { CS } from '../../../x86/segment.ts';
import { CPUID_FEATURE } from '../../../x86/system/instructions.ts';
import type { BackendState, VmmBackend, VmmCore } from '../../backend.ts';
import { EFLAGS_IF, STUB_IRET, VIRTUAL_FLAGS } from '../../window.ts';
import {
  ENTRY_ASYNC,
  ENTRY_BOOT,
  ENTRY_DISPATCH,
  ENTRY_KERNEL_TRAP,
  STACK_TOP,
  STUB_IPC,
  VmmLabel,
} from './layout.ts';
import { L4Migration } from './migrate.ts';
import { Monitor } from './monitor.ts';
import type { L4NetBack, L4NetBackState, L4NetFront, L4NetFrontState } from './netChannel.ts';
import { servedCounters, type ClientLink } from '../../devices/clientLink.ts';
import { Processes, type ProcessesState } from './processes.ts';
import { GuestPaging, type L4PagingCounters } from './paging.ts';
import type { KernelEntry } from '../../load.ts';

export type L4BackendCounters = {
  /** Page faults of the guest kernel's thread mapped, and reflected into the guest as #PF. */
  kernelFaultsMapped: number;
  kernelFaultsReflected: number;
  /** Its other exceptions, reflected. */
  kernelExceptions: number;
  /** Page faults of the guest's processes mapped, and reflected. */
  userFaultsMapped: number;
  userFaultsReflected: number;
  /** System calls and other exceptions of the processes, into the guest kernel. */
  userExceptions: number;
  /** Returns to user mode (the exception replies). */
  userResumes: number;
  /** Virtual interrupts brought to the guest: the kernel thread redirected, a process forced, the idle kernel woken. */
  kernelRedirects: number;
  processesForced: number;
  idleWakeups: number;
  /** L4 spaces made for guest page directories. */
  processSpaces: number;
  /** Timer re-arms that had to wake the monitor (an earlier deadline than it waits for). */
  timerKicks: number;
  paging: L4PagingCounters;
};

interface KernelTrap {
  vector: number;
  errorCode: number | null;
  faultAddress: number | null;
  eip: number;
}

/** The l4 backend in a snapshot (the VM's memory is the machine's, the threads the kernel's). */
export interface L4BackendState {
  kind: 'l4';
  version: 3;
  mainState: 'kernel' | 'user' | 'idle';
  kernelStack: number;
  timerCycles: number | null;
  armedCycles: number | null;
  redirectIp: number | null;
  kernelTrap: KernelTrap | null;
  received: Received | null;
  idle: { regs: number[]; eflags: number; resume: number } | null;
  processes: ProcessesState;
  console: number[];
  paging: { cr3: number; paging: boolean; mirror: number; mappedOut: number[] };
  counters: L4BackendCounters;
  /** The emulated NIC's DMA (zero without the model). */
  emulatedDma: { dmaTranslated: number; dmaRefused: number };
  /** A client's side of its connection to the driver VM (netChannel.ts), if it has one. */
  netFront: L4NetFrontState | null;
  /** A driver VM's sides of its clients' connections, in the link's order. */
  netBacks: L4NetBackState[];
}

const counts: Check = (v, path) => shape<object>({})(v, path);
const L4_BACKEND_STATE: Check = checkState<L4BackendState>('l4 backend', 3, {
  kind: oneOf('l4'),
  mainState: oneOf('kernel', 'user', 'idle'),
  kernelStack: num,
  timerCycles: nullable(num),
  armedCycles: nullable(num),
  redirectIp: nullable(num),
  kernelTrap: nullable(
    shape<KernelTrap>({
      vector: num,
      errorCode: nullable(num),
      faultAddress: nullable(num),
      eip: num,
    }),
  ),
  received: nullable(shape<Received>({ from: num, tag: num, words: arrayOf(num), error: num })),
  idle: nullable(
    shape<{ regs: number[]; eflags: number; resume: number }>({
      regs: arrayOf(num, 8),
      eflags: num,
      resume: num,
    }),
  ),
  processes: shape<ProcessesState>({ current: num, users: arrayOf(counts), nextUser: num }),
  console: arrayOf(num),
  paging: shape<L4BackendState['paging']>({
    cr3: num,
    paging: bool,
    mirror: num,
    mappedOut: arrayOf(num),
  }),
  counters: counts,
  emulatedDma: shape<{ dmaTranslated: number; dmaRefused: number }>({
    dmaTranslated: num,
    dmaRefused: num,
  }),
  // Each side checks its own state (netChannel.ts) when it restores it.
  netFront: (v, path) => {
    if (v !== null) counts(v, path);
  },
  netBacks: arrayOf(counts),
});

/** A message the kernel thread received, taken from its UTCB. */
interface Received {
  from: number;
  tag: number;
  words: number[];
  error: number;
}

export interface L4BackendConfig {
  k: L4Kernel;
  vm: Vm;
  /** Guest RAM in bytes (the VMM's pages follow it in the VM's memory). */
  guestBytes: number;
  /** The kernel's link offset: where guest-physical 0 is in the main space (the alias). */
  mapAt: number;
  /**
   * The device register pages: the passed-through NIC's, or the VMM's model's (emulated), by
   * machine frame, and where the resource monitor shows each in the VM's guest-physical space
   * (the first at DEVICE_ALIAS in the window, the next a page after).
   */
  devices?: { machineFrame: number; gpa: number; emulated?: boolean }[];
}

export class L4Backend implements VmmBackend {
  readonly name = 'l4';
  /** As on xen: no 4 MB pages (L4 maps 4 KB pages), no global pages, SYSENTER, MSRs, DE. */
  readonly hiddenCpuFeatures =
    CPUID_FEATURE.PSE |
    CPUID_FEATURE.PGE |
    CPUID_FEATURE.SEP |
    CPUID_FEATURE.MSR |
    CPUID_FEATURE.DE;
  readonly k: L4Kernel;
  readonly vm: Vm;
  readonly cpu: Cpu;
  readonly guestPages: number;
  readonly mapAt: number;
  readonly paging: GuestPaging;
  readonly counters: L4BackendCounters;
  vmm!: VmmCore;
  private readonly view: DataView;
  readonly mainTid: number;
  monitorTid = NILTHREAD;
  helperTid = NILTHREAD;
  helper!: L4Api;
  main!: Thread;
  /** What the guest kernel's thread does: runs the kernel, waits for a process, or idles. */
  mainState: 'kernel' | 'user' | 'idle' = 'kernel';
  kernelStack = 0;
  /** The virtual timer's deadline (cycles) and the one the monitor waits with. */
  timerCycles: number | undefined;
  armedCycles: number | undefined;
  /** The kernel thread was redirected to ENTRY_ASYNC from this EIP. */
  redirectIp: number | undefined;
  kernelTrap: KernelTrap | undefined;
  received: Received | undefined;
  idleState: { regs: number[]; eflags: number; resume: number } | undefined;
  readonly processes: Processes;
  consoleQueue: number[] = [];
  /** Helper calls made from the kernel thread's VMM code now (the monitor then leaves it be). */
  syncDepth = 0;
  /** The monitor's handler is running. */
  monitorRunning = false;
  private readonly devices: { machineFrame: number; gpa: number; emulated?: boolean }[];
  /** The connection to a driver VM or to clients (netChannel.ts): its messages to the monitor. */
  net: { message(r: IpcResult): boolean }[] = [];
  /** A client's side of its connection to the driver VM, if it has one. */
  netFront: L4NetFront | undefined;
  /** A driver VM's client link and its clients' connections, if it is one. */
  clientLink: { link: ClientLink; backs: L4NetBack[] } | undefined;
  /** The emulated NIC's register page (machine address), if the VM has the VMM's model. */
  emulatedRegisterPage: number | undefined;
  /** The emulated NIC's DMA into the VM, done and refused. */
  readonly emulatedDma = { dmaTranslated: 0, dmaRefused: 0 };
  /** Live migration out of and into the VM (migrate.ts). */
  readonly migration: L4Migration = new L4Migration(this);
  /** What the kernel thread's first entry does for a guest that migrated here (migrate.ts). */
  bootResume: (() => void) | undefined;

  constructor(config: L4BackendConfig) {
    this.k = config.k;
    this.vm = config.vm;
    this.cpu = config.k.cpu;
    this.guestPages = config.guestBytes >>> 12;
    this.mapAt = config.mapAt >>> 0;
    this.devices = config.devices ?? [];
    const ram = this.k.machine.ram;
    this.view = new DataView(ram.buffer, ram.byteOffset + this.vm.base, this.vm.size);
    this.mainTid = this.vm.mainThread;
    this.paging = new GuestPaging(this.view, this.guestPages, {
      unmap: (fpages, flush) => this.sync(() => this.helper.unmap(fpages, flush)),
      alias: (frame) => this.alias(frame),
      crash: (m) => this.crash(m),
    });
    this.processes = new Processes(this);
    this.counters = {
      kernelFaultsMapped: 0,
      kernelFaultsReflected: 0,
      kernelExceptions: 0,
      userFaultsMapped: 0,
      userFaultsReflected: 0,
      userExceptions: 0,
      userResumes: 0,
      kernelRedirects: 0,
      processesForced: 0,
      idleWakeups: 0,
      processSpaces: 0,
      timerKicks: 0,
      paging: this.paging.counters,
    };
  }

  /** The guest's RAM as one array (index = guest-physical address). */
  readGuestByte(linear: number): number | undefined {
    if (!this.paging.paging) return this.guestRam()[linear];
    const w = this.paging.walk(this.paging.cr3, linear, false, false, false);
    return w.ok ? this.guestRam()[w.frame * 4096 + (linear & 0xfff)] : undefined;
  }

  guestRam(): Uint8Array {
    return this.k.machine.ram.subarray(this.vm.base, this.vm.base + this.guestPages * 4096);
  }

  /** A window page's bytes (the core's virtual-CPU block, stubs, the backend's pages). */
  windowBytes(page: number): Uint8Array {
    const at = this.vm.base + (this.guestPages + page) * 4096;
    return this.k.machine.ram.subarray(at, at + 4096);
  }

  vcpuBlock(): DataView {
    const b = this.windowBytes(0);
    return new DataView(b.buffer, b.byteOffset, 4096);
  }

  /** Where a guest frame (RAM, a window page, the passed-through registers) is in the main space. */
  alias(frame: number): number | undefined {
    if (frame < this.guestPages + 4) return (this.mapAt + frame * 4096) >>> 0;
    if (this.vmm === undefined) return undefined;
    for (const device of this.devices) {
      // GUEST-CONTROLLED: a frame beyond RAM is device memory only in a BAR the guest placed.
      if (device.emulated === true) {
        if (frame === this.vmm.platform.emulatedMemoryFrame())
          return (this.mapAt + device.gpa) >>> 0;
        continue;
      }
      for (const f of this.vmm.platform.passthrough)
        if (f.machineFrame(frame) === device.machineFrame) return (this.mapAt + device.gpa) >>> 0;
    }
    return undefined;
  }

  stats(): CounterTree {
    // The emulated NIC's DMA, with the model only (a run without it shows what it always did).
    const served = this.clientLink;
    return {
      l4: structuredClone(this.counters) as unknown as CounterTree,
      ...(this.emulatedRegisterPage === undefined ? {} : { emulatedNic: { ...this.emulatedDma } }),
      ...(this.netFront === undefined ? {} : { netFront: { ...this.netFront.counters } }),
      ...(served === undefined ? {} : servedCounters(served.link, this.emulatedDma, served.backs)),
    };
  }

  // ---- start of day ------------------------------------------------------------------------

  /**
   * The monitor and the helper, the VM's memory mapped at its alias, the entries bound, then
   * the kernel thread started at ENTRY_BOOT (it enters the kernel with its boot protocol's registers).
   */
  start(vmm: VmmCore, entries: EntryTable, kernel: KernelEntry): string | undefined {
    this.vmm = vmm;
    this.main = this.k.lookup(this.mainTid, undefined)!;
    const bind = (at: number, name: string, handler: () => void): void => {
      const r = entries.bind(at, name, handler);
      if (typeof r === 'string') throw new Error(`l4 backend: ${r}`);
    };
    bind(ENTRY_BOOT, 'l4.boot', () => {
      // A guest that migrated here continues where it stopped instead (migrate.ts).
      if (this.bootResume !== undefined) return this.bootResume();
      this.cpu.eax = kernel.registers.eax;
      this.cpu.ebx = kernel.registers.ebx;
      this.cpu.esi = kernel.registers.esi;
      this.cpu.push(kernel.entry, 4);
    });
    bind(ENTRY_DISPATCH, 'l4.dispatch', () => this.cpu.push(this.onDispatch(), 4));
    bind(ENTRY_KERNEL_TRAP, 'l4.kernel-trap', () => this.cpu.push(this.onKernelTrap(), 4));
    bind(ENTRY_ASYNC, 'l4.async', () => this.cpu.push(this.onAsync(), 4));
    this.vm.setEntryTable(entries);
    this.helperTid = this.vm.createThread({ program: { ipcDone: () => {} } });
    this.helper = this.k.lookup(this.helperTid, undefined)!.api!;
    this.monitorTid = this.vm.createThread({ program: new Monitor(this) });
    // The VM's memory at its alias in the main space (the resource monitor maps what we ask).
    this.helper.setAcceptor();
    const total = (this.guestPages + 4) * 4096;
    for (let at = 0; at < total;) {
      let s = 12;
      while (s < 26 && at % 2 ** (s + 1) === 0 && at + 2 ** (s + 1) <= total) s++;
      const r = this.helper.callIpc(ROOT_ID, message(RmOp.requestPages, [fpage(at, s, RWX)]));
      if (r === undefined || r.error !== 0) return 'the resource monitor did not map the VM memory';
      at += 2 ** s;
    }
    for (const device of this.devices) {
      const r = this.helper.callIpc(
        ROOT_ID,
        message(RmOp.requestPages, [fpage(device.gpa, 12, RWX)]),
      );
      if (r === undefined || r.error !== 0) return 'the resource monitor did not map the NIC';
    }
    this.vm.start(this.mainTid, {
      ip: ENTRY_BOOT,
      sp: STACK_TOP,
      pager: this.monitorTid,
      exceptionHandler: this.monitorTid,
    });
    return undefined;
  }

  // ---- the kernel thread's non-blocking system calls (made by the helper) ---------------------

  /** A helper call from the kernel thread's VMM code: the monitor must not redirect it meanwhile. */
  sync<T>(work: () => T): T {
    this.syncDepth++;
    try {
      return work();
    } finally {
      this.syncDepth--;
    }
  }

  exregs(dest: number, control: number, ip = 0): number {
    return this.sync(() =>
      this.helper.exchangeRegisters({
        dest,
        control,
        sp: 0,
        ip,
        flags: 0,
        userHandle: 0,
        pager: 0,
      }),
    ).ip;
  }

  /** A resource monitor request's reply words after the status, or undefined if refused. */
  rmCall(op: number, words: number[]): number[] | undefined {
    const r = this.sync(() => this.helper.callIpc(ROOT_ID, message(op, words)));
    if (r === undefined || r.error !== 0 || r.words[0] !== 1) return undefined;
    return r.words.slice(1).map((w) => w >>> 0);
  }

  /**
   * A message from the helper to another VM's monitor, with a zero send timeout: the result,
   * or undefined if the partner was not waiting for it.
   */
  sendResult(to: number, msg: Message): IpcResult | undefined {
    return this.sync(() => this.helper.send(to, msg));
  }

  /** sendResult, true if it went. */
  sendTo(to: number, msg: Message): boolean {
    const r = this.sendResult(to, msg);
    return r !== undefined && r.error === 0;
  }

  /** The monitor's UTCB (its string buffers are the emulated NIC's next receive buffer). */
  monitorUtcb(): { get(offset: number): number; set(offset: number, value: number): void } {
    return this.k.lookup(this.monitorTid, undefined)!.api!.utcb;
  }

  rm(op: number, words: number[]): number {
    const r = this.sync(() => this.helper.callIpc(ROOT_ID, message(op, words)));
    if (r === undefined || r.error !== 0) return -1;
    return r.words[0] === 1 ? 0 : (r.words[1] ?? -1);
  }

  // ---- time, console, life cycle -----------------------------------------------------------

  nowNs(): number {
    return Math.floor((this.cpu.cycles * 1e9) / this.k.machine.costModel.hz);
  }

  setTimer(deadlineNs: number): void {
    const cycles =
      deadlineNs <= 0 ? undefined : Math.ceil((deadlineNs * this.k.machine.costModel.hz) / 1e9);
    this.timerCycles = cycles;
    if (this.monitorRunning || cycles === undefined) return;
    if (this.armedCycles !== undefined && this.armedCycles <= cycles) return;
    // The monitor waits for a later deadline (or none): abort its wait so it waits again.
    this.counters.timerKicks++;
    this.exregs(this.monitorTid, Exregs.abortReceive);
  }

  consoleWrite(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length; done += 248) {
      const chunk = bytes.subarray(done, Math.min(bytes.length, done + 248));
      const words: number[] = [chunk.length];
      for (let k = 0; k < chunk.length; k += 4)
        words.push(
          (chunk[k] |
            ((chunk[k + 1] ?? 0) << 8) |
            ((chunk[k + 2] ?? 0) << 16) |
            ((chunk[k + 3] ?? 0) << 24)) >>>
            0,
        );
      this.rm(RmOp.console, words);
    }
  }

  shutdown(kind: 'poweroff' | 'reboot', status: number): void {
    if (kind === 'poweroff') {
      // A VM other than the primary gets a reply (resourceMonitor.ts); its kernel stops at its
      // next hlt with interrupts off (haltForever) or waits in its idle loop.
      this.rm(RmOp.exit, [status & 0xff]);
    } else this.k.machine.requestReset();
  }

  crash(message: string): void {
    const text = `(l4) ${this.vm.name} crashed: vmm: ${message}\n`;
    const out = this.vm.console;
    if (out === undefined) this.k.print(text);
    else for (const c of text) out(c.charCodeAt(0));
    this.vm.state = 'shutdown';
    this.vm.ending = `crash: vmm: ${message}`;
    // Any VM's VMM that cannot go on ends the run (its state is not one the others can trust).
    this.cpu.shutdown(`l4: ${this.vm.name} crashed: vmm: ${message}`);
    this.cpu.requestStop();
  }

  /** Whether this VM's end ends the run (the primary's, or the only VM's). */
  private get endsRun(): boolean {
    const primary = this.k.resourceMonitor.primary;
    return primary === undefined || primary === this.vm;
  }

  /** Not used: `sleep` is (the kernel thread waits in IPC). */
  idle(): boolean {
    return true;
  }

  /** hlt with the virtual IF on: the kernel thread waits for the monitor's wake-up. */
  sleep(resume: number): number {
    const cpu = this.cpu;
    this.idleState = {
      regs: Array.from(cpu.regs, (r) => r >>> 0),
      eflags: cpu.getEflags(),
      resume,
    };
    this.mainState = 'idle';
    return this.waitFor(NILTHREAD);
  }

  haltForever(resume: number): number {
    this.timerCycles = undefined;
    // One VM of several, whose end does not end the run: its kernel thread waits for good.
    if (!this.endsRun) return this.sleep(resume);
    this.exregs(this.mainTid, Exregs.haltValid | Exregs.halt);
    return resume;
  }

  setKernelStack(esp0: number): void {
    this.kernelStack = esp0 >>> 0;
  }

  deviceEoi(irq: number): void {
    this.sync(() => this.helper.send(this.monitorTid, message(VmmLabel.ackIrq, [irq])));
  }

  /** Console input from the host: queued, and the monitor told. */
  input(bytes: Uint8Array): void {
    // Nothing typed (an empty standard input) is no message for the monitor.
    if (bytes.length === 0) return;
    this.consoleQueue.push(...bytes);
    this.helper.send(this.monitorTid, message(VmmLabel.console));
  }

  /** The guest's `iret` (the frame at ESP is the guest's; see backend.ts). */
  returnFromInterrupt(toUser: boolean, eflags: number): number {
    const cpu = this.cpu;
    const at = (offset: number): number => (cpu.esp + offset) >>> 0;
    if (!toUser) {
      cpu.writeLinear(at(4), 4, Selector.USER_CS);
      cpu.writeLinear(at(8), 4, ((eflags & ~VIRTUAL_FLAGS) | EFLAGS_IF) >>> 0);
      return STUB_IRET;
    }
    const eip = cpu.readLinear(at(0), 4);
    const esp = cpu.readLinear(at(12), 4);
    return this.processes.resume(this.paging.cr3 >>> 12, this.exceptionWords(eip, eflags, esp));
  }

  /** The 12 words of an exception reply: the CPU's registers, with EIP, EFLAGS and ESP given. */
  private exceptionWords(eip: number, eflags: number, esp: number): number[] {
    const cpu = this.cpu;
    const regs: Record<string, number> = {
      eip,
      eflags: ((eflags & ~VIRTUAL_FLAGS) | EFLAGS_IF) >>> 0,
      exception: 0,
      errorCode: 0,
      edi: cpu.edi,
      esi: cpu.esi,
      ebp: cpu.ebp,
      esp,
      ebx: cpu.ebx,
      edx: cpu.edx,
      ecx: cpu.ecx,
      eax: cpu.eax,
    };
    return EXCEPTION_WORDS.map((n) => regs[n] >>> 0);
  }

  /** The general registers (ESP but) from an exception message's words. */
  loadRegisters(words: number[]): void {
    const cpu = this.cpu;
    const w = (n: string): number => words[EXCEPTION_WORDS.indexOf(n as never)] >>> 0;
    cpu.eax = w('eax');
    cpu.ecx = w('ecx');
    cpu.edx = w('edx');
    cpu.ebx = w('ebx');
    cpu.ebp = w('ebp');
    cpu.esi = w('esi');
    cpu.edi = w('edi');
  }

  /**
   * The kernel thread's IPC at STUB_IPC: send `msg` to `to` (nil: none) and wait for anyone.
   * Its registers and MRs are set for the `int $0x30`; the VMM stack is its stack meanwhile.
   */
  waitFor(to: number, msg?: Message): number {
    const cpu = this.cpu;
    const utcb = this.k.utcbOf(this.main)!;
    if (msg !== undefined) {
      utcb.set(MR(0), msg.tag);
      msg.words.forEach((w, i) => utcb.set(MR(i + 1), w));
    }
    utcb.set(0x40, 0);
    cpu.eax = to >>> 0;
    cpu.edx = ANYTHREAD;
    cpu.ecx = timeouts(to === NILTHREAD ? 0 : ZERO_TIME, NEVER);
    cpu.esp = STACK_TOP;
    return STUB_IPC;
  }

  /** The kernel thread's IPC returned (ENTRY_DISPATCH): a process's message, or the wake-up. */
  private onDispatch(): number {
    // A fault in the handler (a page the main space lacks) runs it again after the monitor's
    // reply, which lands in the same MRs: the message is taken once, kept until it is handled.
    const m = (this.received ??= this.receive());
    let target: number;
    if ((m.tag & 0x8000) !== 0) {
      this.crash(`the kernel thread's IPC failed (error 0x${m.error.toString(16)})`);
      target = STUB_IPC;
    } else if (m.from === this.monitorTid && tagLabel(m.tag) === VmmLabel.wake) {
      target = this.wake();
    } else {
      const t = this.processes.message(m.from, tagLabel(m.tag), m.words);
      if (t === undefined)
        this.crash(
          `message 0x${tagLabel(m.tag).toString(16)} for the kernel thread from 0x${m.from.toString(16)}`,
        );
      target = t ?? STUB_IPC;
    }
    this.received = undefined;
    return target;
  }

  /** The message the kernel thread's IPC received: sender (EAX), tag and words (its MRs). */
  private receive(): Received {
    const utcb = this.k.utcbOf(this.main)!;
    const tag = utcb.get(MR(0));
    const words: number[] = [];
    if ((tag & 0x8000) === 0) for (let i = 1; i <= tagU(tag); i++) words.push(utcb.get(MR(i)));
    return { from: this.cpu.eax >>> 0, tag, words, error: utcb.get(0x1c) };
  }

  /** The idle kernel woken by the monitor: the interrupt arrives right after its `hlt`. */
  private wake(): number {
    const cpu = this.cpu;
    const s = this.idleState!;
    s.regs.forEach((r, i) => (cpu.regs[i] = r | 0));
    cpu.setEflags(s.eflags);
    cpu.push(s.eflags, 4);
    cpu.push(cpu.segs[CS].selector, 4);
    cpu.push(s.resume, 4);
    const target = this.vmm.eventsHandled() ?? STUB_IRET;
    this.idleState = undefined;
    this.mainState = 'kernel';
    this.counters.idleWakeups++;
    return target;
  }

  /** The monitor redirected the kernel thread for a fault of its own (kernelTrap). */
  private onKernelTrap(): number {
    const t = this.kernelTrap!;
    const cpu = this.cpu;
    const target = this.vmm.trap({
      vector: t.vector,
      errorCode: t.errorCode ?? undefined,
      software: false,
      faultAddress: t.faultAddress ?? undefined,
      context: { kind: 'registers', eip: t.eip, eflags: cpu.getEflags(), esp: cpu.esp },
    });
    this.kernelTrap = undefined;
    return target;
  }

  /** The monitor redirected the kernel thread for a virtual interrupt: the upcall of xen's kind. */
  private onAsync(): number {
    const cpu = this.cpu;
    cpu.push(cpu.getEflags(), 4);
    cpu.push(cpu.segs[CS].selector, 4);
    cpu.push(this.redirectIp!, 4);
    const target = this.vmm.eventsHandled() ?? STUB_IRET;
    this.redirectIp = undefined;
    return target;
  }

  // ---- for the monitor (monitor.ts) ---------------------------------------------------------

  /** The monitor's wait: until the virtual timer's deadline. */
  waitOptions(): { receiveUntil?: number } {
    this.armedCycles = this.timerCycles;
    return this.timerCycles === undefined ? {} : { receiveUntil: this.timerCycles };
  }

  /** The monitor's events for the core. */
  timerFired(): void {
    this.timerCycles = undefined;
    this.vmm.timerExpired();
  }

  takeConsoleInput(): void {
    if (this.consoleQueue.length === 0) return;
    const bytes = this.consoleQueue;
    this.consoleQueue = [];
    this.vmm.consoleInput(bytes);
  }

  // ---- page tables (paging.ts) ---------------------------------------------------------------

  pageTableWrite(level: 1 | 2, ptr: number, value: number): void {
    this.paging.write(level, ptr, value >>> 0);
  }

  pageTableRead(level: 1 | 2, ptr: number): number {
    return this.paging.read(level, ptr);
  }

  pageTableTestClear(ptr: number): number {
    return this.paging.testClear(ptr);
  }

  /**
   * Paging on: what the kernel thread's space got while the kernel ran at physical addresses
   * (the low one-to-one pages, the window's alias) goes; the guest's tables decide from now on.
   */
  enablePaging(cr3: number): void {
    this.paging.paging = true;
    this.paging.cr3 = cr3 >>> 0;
    this.paging.counters.unmapCalls++;
    this.sync(() =>
      this.helper.unmap(
        [fpage(0, 30, RWX), fpage(0x40000000, 30, RWX), fpage(0x80000000, 30, RWX)],
        true,
      ),
    );
    this.paging.mirror = -1;
  }

  /**
   * CR3: the process spaces keep their own mappings. The kernel thread's space holds mappings
   * of user addresses the kernel touched under the old directory: they go unless the new
   * directory has no user half at all (the kernel's own; nothing of it can be touched there)
   * or is the one they came from.
   */
  loadCr3(cr3: number): void {
    const pd = cr3 >>> 12;
    this.paging.cr3 = cr3 >>> 0;
    const mirror = this.paging.mirror;
    if (mirror < 0 || mirror === pd) return;
    if (!this.paging.hasUserMappings(cr3, this.mapAt >>> 22)) {
      this.paging.counters.cr3Kept++;
      return;
    }
    this.paging.counters.cr3Flushed++;
    this.paging.counters.unmapCalls++;
    const pages: number[] = [];
    for (let at = 0; at < this.mapAt; at += 0x40000000) pages.push(fpage(at, 30, RWX));
    this.sync(() => this.helper.unmap(pages, true));
    this.paging.mirror = -1;
  }

  invlpg(_linear: number): void {
    // Every page-table change already unmapped what it invalidated.
  }

  /** Where the guest's CR0 is read (the core keeps it; WP decides kernel writes). */
  set cr0Source(read: () => number) {
    this.paging.cr0Of = read;
  }

  // ---- snapshots ------------------------------------------------------------------------------

  save(): L4BackendState {
    const mapped: number[] = [];
    this.paging.mappedOut.forEach((v, f) => {
      if (v !== 0) mapped.push(f);
    });
    return {
      kind: 'l4',
      version: 3,
      mainState: this.mainState,
      kernelStack: this.kernelStack,
      timerCycles: this.timerCycles ?? null,
      armedCycles: this.armedCycles ?? null,
      redirectIp: this.redirectIp ?? null,
      kernelTrap: this.kernelTrap === undefined ? null : { ...this.kernelTrap },
      received: this.received === undefined ? null : structuredClone(this.received),
      idle: this.idleState === undefined ? null : structuredClone(this.idleState),
      processes: this.processes.save(),
      console: [...this.consoleQueue],
      paging: {
        cr3: this.paging.cr3,
        paging: this.paging.paging,
        mirror: this.paging.mirror,
        mappedOut: mapped,
      },
      counters: structuredClone(this.counters),
      emulatedDma: { ...this.emulatedDma },
      netFront: this.netFront?.save() ?? null,
      netBacks: this.clientLink?.backs.map((b) => b.save()) ?? [],
    };
  }

  restore(saved: BackendState, path: string): void {
    L4_BACKEND_STATE(saved, path);
    const s = saved as L4BackendState;
    this.mainState = s.mainState;
    this.kernelStack = s.kernelStack;
    this.timerCycles = s.timerCycles ?? undefined;
    this.armedCycles = s.armedCycles ?? undefined;
    this.redirectIp = s.redirectIp ?? undefined;
    this.kernelTrap = s.kernelTrap === null ? undefined : { ...s.kernelTrap };
    this.received = s.received === null ? undefined : structuredClone(s.received);
    this.idleState = s.idle === null ? undefined : structuredClone(s.idle);
    this.processes.restore(s.processes);
    this.consoleQueue = [...s.console];
    this.paging.cr3 = s.paging.cr3;
    this.paging.paging = s.paging.paging;
    this.paging.mirror = s.paging.mirror;
    this.paging.mappedOut.fill(0);
    for (const f of s.paging.mappedOut) this.paging.mappedOut[f] = 1;
    const c = structuredClone(s.counters);
    Object.assign(this.paging.counters, c.paging);
    Object.assign(this.counters, { ...c, paging: this.paging.counters });
    Object.assign(this.emulatedDma, s.emulatedDma);
    const backs = this.clientLink?.backs ?? [];
    if (
      (s.netFront === null) !== (this.netFront === undefined) ||
      s.netBacks.length !== backs.length
    )
      throw new StateError(`${path}: the saved network connections are not this VM's`);
    if (s.netFront !== null) this.netFront?.restore(s.netFront, `${path}.netFront`);
    backs.forEach((b, k) => b.restore(s.netBacks[k], `${path}.netBacks[${k}]`));
  }
}
