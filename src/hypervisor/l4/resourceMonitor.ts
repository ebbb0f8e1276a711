/**
 * The resource monitor (AB l4ka-resourcemon): the root task, in a privileged space of its own.
 * It builds VMs — a space with a main thread, a contiguous region of machine memory (asked of
 * sigma0 and mapped 1:1 into its own space), devices — and then serves them by IPC:
 *
 * - as the pager of the threads it starts: a page fault at `mapAt + a` in any space of a VM is
 *   answered with guest-physical page `a` of the VM's region (or of a device window), so a VM's
 *   memory is mapped into its spaces as they touch it; nothing outside the VM's memory is;
 * - requests (abi.ts RmOp): console output, exit (ends the run with a status), ThreadControl and
 *   SpaceControl for the VM's own threads and spaces (4096 thread numbers per VM), associating a
 *   device's interrupt line it was given with one of its threads, and mapping pages of its
 *   memory on request (a VMM that maps its guest's memory itself);
 * - as the default exception handler: an exception it gets is printed, the thread left waiting.
 *
 * Its host side (`createVm`, `Vm`) is the start of day — what the original loaded from GRUB
 * modules — made by a second root thread (the builder) through the same system calls, charged
 * as such. Device I/O ports go into the VM's main space's I/O bitmap (an internal kernel call of
 * the root task: X.2 maps I/O fpages, previrt's root writes the bitmap), its register pages are
 * mapped like memory, its interrupt lines may be associated, and its DMA is confined to the VM's
 * region (../devices.ts, as xen confines a domain's).
 */
import type { DmaMemory } from '../../machine/device.ts';
import { StateError } from '../../machine/state.ts';
import type { EntryTable } from '../../x86/entries.ts';
import type { VmInfo } from '../Hypervisor.ts';
import { confineDma, regionDma, type DmaConfinement, type PortRange } from '../devices.ts';
import {
  COMPLETE_ADDRESS_SPACE,
  decodeFpage,
  fpage,
  globalId,
  irqThreadId,
  KIP_VIRT,
  L4Error,
  Label,
  mapItem,
  NILPAGE,
  NILTHREAD,
  RmOp,
  ROOT_ID,
  ROOT_NUMBER,
  RWX,
  SIGMA0_ID,
  tagLabel,
  USER_LIMIT,
  Utcb,
  UTCB_AREA,
  UTCB_SIZE,
} from './abi.ts';
import { message, type L4Api } from './api.ts';
import { CONSOLE_INPUT_ID, ConsoleInput } from './consoleInput.ts';
import type { L4Kernel } from './L4.ts';
import type { IpcResult, TsProgram } from './thread.ts';

/** Client windows of a driver VM's DMA start on this boundary (RmOp.clientDma). */
const CLIENT_WINDOW_ALIGN = 0x10000000;

/**
 * A VM's devices' DMA: its own region, and the client VMs' regions it was given
 * (RmOp.clientDma) at their windows' bus addresses.
 */
function vmDma(vm: Vm): DmaConfinement {
  const own = regionDma(vm.base, vm.size);
  return {
    translate(address, length) {
      const m = own.translate(address, length);
      if (m !== undefined) return m;
      // GUEST-CONTROLLED: the driver VM's descriptors.
      for (const c of vm.clientWindows)
        if (address >= c.at && address + length <= c.at + c.vm.size)
          return c.vm.base + address - c.at;
      return undefined;
    },
    beforeWrite(address, length) {
      vm.dmaWriteWatch?.(address, length);
    },
    allows(machine, length) {
      if (own.allows(machine, length)) return true;
      return vm.clientWindows.some(
        (c) => length > 0 && machine >= c.vm.base && machine + length <= c.vm.base + c.vm.size,
      );
    },
  };
}

/** The first thread number of VM 0; each VM has VM_THREADS of them. */
export const VM_THREAD_BASE = 4096;
export const VM_THREADS = 4096;
/** The builder: the root task's second thread, which makes the start-of-day calls. */
export const BUILDER_ID = globalId(ROOT_NUMBER + 1, 1);

export interface VmDevice {
  /** For messages ("dp83820"). */
  name: string;
  /** I/O ports opened in the VM's main space's I/O bitmap. */
  ioPorts?: PortRange[];
  /**
   * Device registers: machine ranges (page granular) the VM sees at guest-physical address
   * `guestPhysical` (default: the machine address), mapped like its memory.
   */
  ioMemory?: { machine: number; length: number; guestPhysical?: number }[];
  /** Interrupt lines the VM may associate with its threads. */
  irqs?: number[];
  /** The device's bus-master port: its DMA is translated from and confined to the VM's region. */
  dma?: DmaMemory;
  /**
   * Resets the device when it comes back from a destroyed VM (`destroyVm`), so that nothing the
   * old driver left in its rings reaches memory another VM gets next.
   */
  reset?: () => void;
}

export interface VmConfig {
  name?: string;
  /** Bytes of memory (a whole number of pages): one contiguous machine region. */
  memoryBytes: number;
  /** Where guest-physical 0 appears in the VM's spaces (default 0). */
  mapAt?: number;
  devices?: VmDevice[];
  /** The VM's main space may make privileged calls itself (tests of those calls). */
  privileged?: boolean;
  /**
   * The machine address of a region a destroyed VM gave back (`destroyVm`) for this VM's memory
   * (the same size or less): the resource monitor holds it already, so sigma0 is not asked;
   * it is cleared first. Default: the next free region.
   */
  region?: number;
  /** Priority of the threads the resource monitor creates for it (default 100). */
  priority?: number;
}

/** A VM as the resource monitor keeps it; its methods are the host's start-of-day calls. */
export class Vm {
  state: 'running' | 'shutdown' = 'running';
  ending: string | undefined;
  /** Destroyed (`destroyVm`): its threads and spaces are gone, its region given back. */
  destroyed = false;
  /** Its devices' DMA confinements, ended when it is destroyed. */
  readonly dmaReleases: (() => void)[] = [];
  /**
   * Where its console output goes (RmOp.console); undefined: the kernel's console.
   * Configuration, set again when a snapshot is restored.
   */
  console: ((byte: number) => void) | undefined;
  /**
   * Client VMs' memory its devices' DMA may reach (RmOp.clientDma): at bus address `at`, the
   * client's region. Empty for any VM but a driver VM the toolstack named (`serves`).
   */
  readonly clientWindows: { at: number; vm: Vm }[] = [];
  /** The client VMs this VM may ask for (the toolstack's choice, made before it runs). */
  readonly serves = new Set<number>();
  /**
   * Its VMM's watch on its devices' DMA writes (bus address, length), told before each lands:
   * the driver VM's VMM sends on frames still waiting in buffers the NIC is about to fill.
   */
  dmaWriteWatch: ((address: number, length: number) => void) | undefined;
  /** Next free UTCB slot of the main space for threads `createThread` makes. */
  private nextUtcb = 0;
  private nextThread = 1;

  constructor(
    private readonly rm: ResourceMonitor,
    readonly id: number,
    readonly name: string,
    /** Machine address of guest-physical 0, and the size. */
    readonly base: number,
    readonly size: number,
    readonly mapAt: number,
    readonly devices: VmDevice[],
    readonly priority: number,
  ) {}

  /** The main thread's ID: the first of the VM's thread numbers. */
  get mainThread(): number {
    return this.threadId(0);
  }

  /** The global ID of the VM's n-th thread number. */
  threadId(n: number): number {
    return globalId(VM_THREAD_BASE + this.id * VM_THREADS + n, 1);
  }

  owns(tid: number): boolean {
    const n = (tid >>> 14) - VM_THREAD_BASE - this.id * VM_THREADS;
    return n >= 0 && n < VM_THREADS;
  }

  /** Machine address of a guest-physical address in the VM's memory. */
  machineAddress(gpa: number): number {
    if (gpa < 0 || gpa >= this.size)
      throw new RangeError(`vm ${this.id}: 0x${gpa.toString(16)} is outside its memory`);
    return this.base + gpa;
  }

  /** Host access to the VM's memory (loading its image): bytes at a guest-physical address. */
  write(gpa: number, bytes: Uint8Array): void {
    this.machineAddress(gpa + bytes.length - 1);
    this.rm.k.machine.ram.set(bytes, this.machineAddress(gpa));
    this.rm.k.cpu.invalidateCode(this.base + gpa, bytes.length);
  }

  /**
   * A thread in the VM's main space (or `inSpace`'s): x86 (inactive until `start`) or, with a
   * program, TypeScript (a VMM's monitor). Returns its ID.
   */
  createThread(options: { program?: TsProgram; priority?: number; inSpace?: number } = {}): number {
    const tid = this.threadId(this.nextThread++);
    const priority = options.priority ?? this.priority;
    const k = this.rm.k;
    const inSpace = options.inSpace ?? this.mainThread;
    if (options.program !== undefined) {
      const space = k.lookup(inSpace, undefined)?.space;
      if (space === undefined) throw new Error(`vm ${this.id}: no space for the new thread`);
      k.createTsThread(tid, space, options.program, priority);
      return tid;
    }
    const utcb = UTCB_AREA + ++this.nextUtcb * UTCB_SIZE;
    const e = this.rm.builder().threadControl(tid, inSpace, ROOT_ID, NILTHREAD, utcb);
    if (e !== 0) throw new Error(`vm ${this.id}: ThreadControl failed (${e})`);
    this.rm.builder().schedule(tid, 0xffffffff, priority);
    return tid;
  }

  /**
   * Starts an x86 thread at `ip` with `sp`: the builder becomes its pager for the start message
   * (X.2: an activated thread waits for its pager's), then `pager` (default: the resource
   * monitor) and `exceptionHandler` (default: the pager) take over.
   */
  start(
    tid: number,
    s: { ip: number; sp: number; pager?: number; exceptionHandler?: number },
  ): void {
    const b = this.rm.builder();
    const t = this.rm.k.lookup(tid, undefined);
    if (t === undefined || t.space === undefined)
      throw new Error(`vm ${this.id}: no thread 0x${tid.toString(16)}`);
    const anyInSpace = tid;
    let e = b.threadControl(tid, anyInSpace, NILTHREAD, BUILDER_ID, 0xffffffff);
    if (e !== 0) throw new Error(`vm ${this.id}: ThreadControl failed (${e})`);
    const r = b.send(tid, message(0, [s.ip >>> 0, s.sp >>> 0]));
    if (r === undefined || r.error !== 0)
      throw new Error(`vm ${this.id}: the start message failed`);
    const pager = s.pager ?? ROOT_ID;
    e = b.threadControl(tid, anyInSpace, NILTHREAD, pager, 0xffffffff);
    if (e !== 0) throw new Error(`vm ${this.id}: ThreadControl failed (${e})`);
    this.rm.k.setUtcbField(t, Utcb.exceptionHandler, s.exceptionHandler ?? pager);
  }

  /** Associates one of the VM's device interrupt lines with one of its threads (0 or an error). */
  associateIrq(irq: number, handler: number): number {
    return this.associateIrqVia(this.rm.builder(), irq, handler);
  }

  /** The same, as a root thread's system call (the builder's, or the monitor's for a request). */
  associateIrqVia(api: L4Api, irq: number, handler: number): number {
    if (!this.devices.some((d) => d.irqs?.includes(irq)) || !this.owns(handler))
      return L4Error.noPrivilege;
    const it = irqThreadId(irq);
    return api.threadControl(it, it, NILTHREAD, handler, 0xffffffff);
  }

  /** The CPU's bound entries while the VM's threads run (its in-place VMM's). */
  setEntryTable(table: EntryTable): void {
    this.rm.k.vmEntries.set(this.id, table);
  }

  /** A guest-physical page: RAM or a device window (machine frame and rights), or undefined. */
  frameOf(gpa: number): { machine: number } | undefined {
    if (gpa >= 0 && gpa < this.size) return { machine: this.base + gpa };
    for (const d of this.devices)
      for (const m of d.ioMemory ?? []) {
        const at = m.guestPhysical ?? m.machine;
        if (gpa >= at && gpa < at + m.length) return { machine: m.machine + (gpa - at) };
      }
    return undefined;
  }
}

interface RmState {
  vms: {
    id: number;
    state: 'running' | 'shutdown';
    ending: string | null;
    /** A driver VM's client windows (RmOp.clientDma): bus address and the client's VM id. */
    clientWindows: { at: number; vm: number }[];
  }[];
  unresolved: number;
}

export class ResourceMonitor implements TsProgram {
  readonly vms: Vm[] = [];
  /** Page faults it could not resolve and exceptions it got (printed, the thread left waiting). */
  unresolved = 0;
  private builderApi: L4Api | undefined;
  /**
   * The VM whose exit ends the run; undefined: any VM's does (one VM). With several VMs, the
   * others' exits are reported on their consoles, and their threads stay blocked.
   */
  primary: Vm | undefined;
  /**
   * The toolstack's watch on the VMs that end other than by exiting (a crash: `crashVm`); with
   * none, or for the primary, a crash ends the run.
   */
  onVmEnd: ((vm: Vm, end: { kind: 'crash'; message: string }) => void) | undefined;
  /**
   * The toolstack's answer to a client VM that asks for its network back end (RmOp.netBackend,
   * a para-virtualized kernel's own driver after its driver VM was restarted): the back end's
   * monitor and helper threads once it is connected, 'waiting' while one is being built and
   * booted, undefined if the VM has none.
   */
  netBackendOf:
    ((client: Vm) => { monitor: number; helper: number } | 'waiting' | undefined) | undefined;
  /** The console's input and the thread that sends it, once a platform offers it. */
  private input: ConsoleInput | undefined;
  private nextRegion: number;
  /** Regions destroyed VMs gave back (machine base and size), held by the root space still. */
  private readonly freed: { base: number; size: number }[] = [];
  /** Device register pages sigma0 gave the root space already (machine page addresses). */
  private readonly devicePages = new Set<number>();

  constructor(readonly k: L4Kernel) {
    this.nextRegion = roundUp(k.memory.reservedEnd * 4096, 0x400000);
  }

  /** The builder thread's API (created with the resource monitor's first VM). */
  builder(): L4Api {
    if (this.builderApi === undefined) {
      const t = this.k.createTsThread(BUILDER_ID, this.k.rootSpace, { ipcDone: () => {} }, 255);
      this.builderApi = t.api!;
    }
    return this.builderApi;
  }

  start(api: L4Api): void {
    this.serve(api, api.wait());
  }

  /**
   * Offers the console's input to the VMs (RmOp.consoleInput): a start-of-day call, so that a
   * kernel built from the same configuration has the thread again for a snapshot's restore.
   */
  enableConsoleInput(): void {
    if (this.input !== undefined) return;
    this.input = new ConsoleInput();
    this.k.createTsThread(CONSOLE_INPUT_ID, this.k.rootSpace, this.input, 255);
  }

  /** Host input for the console: to the thread a VM named, when it waits; dropped if not offered. */
  consoleInput(bytes: Iterable<number>): void {
    this.input?.input(bytes, this.builder());
  }

  ipcDone(api: L4Api, result: IpcResult): void {
    this.serve(api, result);
  }

  // ---- the start of day -----------------------------------------------------------------------

  /** A new VM: its memory (from sigma0), its main space and thread (inactive), its devices. */
  /** Where the next VM's memory begins (machine address, 4 MB aligned). */
  get freeRegion(): number {
    return this.nextRegion;
  }

  createVm(config: VmConfig): Vm | string {
    const size = config.memoryBytes;
    if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0)
      return `vm memory must be a positive whole number of pages (got ${size})`;
    const reused =
      config.region === undefined
        ? undefined
        : this.freed.findIndex((f) => f.base === config.region && f.size >= size);
    if (reused === -1) return `no region given back at 0x${(config.region ?? 0).toString(16)}`;
    const base = reused === undefined ? this.nextRegion : this.freed[reused].base;
    if (base + size > this.k.memory.ramEnd * 4096)
      return `not enough machine memory for a VM of ${size >> 10} KB`;
    const mapAt = (config.mapAt ?? 0) >>> 0;
    if (mapAt % 4096 !== 0 || mapAt + size > USER_LIMIT)
      return `vm memory cannot be mapped at 0x${mapAt.toString(16)}`;
    const b = this.builder();
    b.setAcceptor(COMPLETE_ADDRESS_SPACE);
    // The region from sigma0, in naturally aligned blocks, mapped 1:1 into the root space.
    const ask = (start: number, length: number): boolean => {
      for (let at = start; at < start + length;) {
        let s = 12;
        while (s < 31 && at % 2 ** (s + 1) === 0 && at + 2 ** (s + 1) <= start + length) s++;
        const r = b.callIpc(SIGMA0_ID, message(Label.sigma0Request, [fpage(at, s, RWX), 0]));
        if (r === undefined || r.error !== 0 || decodeFpage(r.words[1] ?? 0).size === 0)
          return false;
        at += 2 ** s;
      }
      return true;
    };
    if (reused === undefined) {
      if (!ask(base, size)) return 'sigma0 refused the VM memory';
    } else {
      // The root space holds it still; nothing of the VM before is left in it.
      this.freed.splice(reused, 1);
      this.k.machine.ram.fill(0, base, base + size);
      this.k.cpu.invalidateCode(base, size);
    }
    const devices = config.devices ?? [];
    for (const d of devices)
      for (const m of d.ioMemory ?? []) {
        // A page of the region itself (an in-place VMM's emulated device) is the VM's already.
        if (m.machine >= base && m.machine + m.length <= base + size) continue;
        const page = m.machine - (m.machine % 4096);
        // Registers a VM before had (a driver VM built again) are the root space's already.
        if (this.devicePages.has(page)) continue;
        if (!ask(page, roundUp((m.machine % 4096) + m.length, 4096)))
          return `sigma0 refused ${d.name}'s registers`;
        this.devicePages.add(page);
      }
    if (reused === undefined) this.nextRegion = roundUp(base + size, 0x400000);

    const vm = new Vm(
      this,
      this.vms.length,
      config.name ?? `vm${this.vms.length}`,
      base,
      size,
      mapAt,
      devices,
      config.priority ?? 100,
    );
    const main = vm.mainThread;
    let e = b.threadControl(main, main, ROOT_ID, NILTHREAD, 0xffffffff);
    if (e === 0) e = b.spaceControl(main, 0, fpage(KIP_VIRT, 12), fpage(UTCB_AREA, 21));
    if (e === 0) e = b.threadControl(main, main, ROOT_ID, NILTHREAD, UTCB_AREA);
    if (e === 0) b.schedule(main, 0xffffffff, vm.priority);
    if (e !== 0) return `the VM's main space could not be made (error ${e})`;
    const space = this.k.lookup(main, undefined)!.space!;
    space.vm = vm.id;
    space.privileged = config.privileged === true;
    for (const d of devices) {
      if ((d.ioPorts ?? []).length > 0 && !this.k.openPorts(space, d.ioPorts ?? []))
        return 'kernel memory ran out for the I/O bitmap';
      if (d.dma !== undefined) vm.dmaReleases.push(confineDma(d.dma, vmDma(vm), this.k.counters));
    }
    this.vms.push(vm);
    return vm;
  }

  vmInfo(): VmInfo[] {
    return this.vms.map((v) => ({ id: v.id, state: v.state, ending: v.ending }));
  }

  /** Every VM's machine region (the audit's "no frame of one VM in another's spaces"). */
  regions(): { vm: number; base: number; size: number }[] {
    // A destroyed VM's region is another's, or free (held by the root space).
    return this.vms
      .filter((v) => !v.destroyed)
      .map((v) => ({ vm: v.id, base: v.base, size: v.size }));
  }

  vmOf(tid: number): Vm | undefined {
    return this.vms.find((v) => v.owns(tid));
  }

  // ---- the end of a VM (a driver VM restarted: src/platforms/driverVm.ts) --------------------

  /**
   * The VM crashed (a test's injected fault, as a domain crashes on xen): said on its console,
   * and the toolstack told (`onVmEnd`), which destroys it and may build another in its place.
   * Without a toolstack, or for the primary, the run ends. False if it was not running.
   */
  crashVm(vm: Vm, why: string): boolean {
    if (vm.state !== 'running') return false;
    vm.state = 'shutdown';
    vm.ending = `crash: ${why}`;
    const out = vm.console ?? this.k.consoleOut;
    for (const c of `(l4) ${vm.name} crashed: ${why}\n`) out(c.charCodeAt(0));
    if (this.onVmEnd === undefined || this.primary === undefined || this.primary === vm) {
      this.k.cpu.shutdown(`l4: ${vm.name} crashed: ${why}`);
      this.k.cpu.requestStop();
      return true;
    }
    this.onVmEnd(vm, { kind: 'crash', message: why });
    return true;
  }

  /**
   * Destroys a VM that has ended (not the primary), as the builder's system calls: every thread
   * of it deleted by ThreadControl (whoever waits on one fails with "non-existing partner", its
   * interrupt lines are dissociated and masked; a space goes with its last thread, its mappings
   * revoked), its devices' DMA no longer confined to it and each device reset, the client VMs'
   * memory no longer reachable, and its region given back (`VmConfig.region`, for the VM built
   * in its place). Its number is not given to another VM. One line if it cannot be.
   */
  destroyVm(vm: Vm): string | undefined {
    if (vm.destroyed) return `${vm.name} is destroyed already`;
    if (vm.state === 'running') return `${vm.name} is still running: only an ended VM is destroyed`;
    if (vm === this.primary) return `${vm.name} is the run's primary VM`;
    const b = this.builder();
    this.k.hostEntry(() => {
      const threads = this.k
        .allThreads()
        .filter((t) => t.kind !== 'irq' && vm.owns(t.tid))
        // The x86 threads first, the last made first (a process's thread before the kernel's
        // thread that handles its exceptions), the VMM's TypeScript threads (its monitor and
        // helper) last: nobody's handler goes before it.
        .sort((x, y) => Number(x.kind === 'ts') - Number(y.kind === 'ts') || y.number - x.number);
      for (const t of threads) b.threadControl(t.tid, NILTHREAD, NILTHREAD, NILTHREAD, 0xffffffff);
    });
    vm.dmaWriteWatch = undefined;
    for (const release of vm.dmaReleases.splice(0)) release();
    for (const d of vm.devices) d.reset?.();
    vm.clientWindows.splice(0);
    vm.serves.clear();
    this.k.vmEntries.delete(vm.id);
    vm.destroyed = true;
    this.freed.push({ base: vm.base, size: vm.size });
    return undefined;
  }

  // ---- serving the VMs ------------------------------------------------------------------------

  private serve(api: L4Api, first: IpcResult | undefined): void {
    let r = first;
    while (r !== undefined) {
      const reply = r.error === 0 ? this.handle(api, r) : undefined;
      r = reply === undefined ? api.wait() : api.replyWait(r.from, reply);
    }
  }

  private handle(api: L4Api, r: IpcResult): ReturnType<typeof message> | undefined {
    const vm = this.vmOf(r.from);
    const label = tagLabel(r.tag);
    const w = (k: number): number => r.words[k] ?? 0;
    const result = (e: number): ReturnType<typeof message> => message(0, [e === 0 ? 1 : 0, e]);
    if (vm === undefined) return undefined;
    if (vm.state !== 'running') {
      // An ended VM's x86 threads stay waiting (it does not run on), but its VMM's TypeScript
      // threads are told no at once: a call of theirs left blocked would end the host's next one.
      const ts = this.k.lookup(r.from, undefined)?.kind === 'ts';
      return ts && (label & 0xfff0) !== Label.pageFault && label !== Label.exception
        ? result(L4Error.noPrivilege)
        : undefined;
    }
    // GUEST-CONTROLLED: every word of every request.
    if ((label & 0xfff0) === Label.pageFault) return this.pageFault(vm, r);
    if (label === Label.exception) {
      this.unresolved++;
      this.k.print(
        `(l4) ${vm.name}: thread 0x${r.from.toString(16)} exception ${w(2)} (error code 0x${w(3).toString(16)}) at eip 0x${w(0).toString(16)}; left waiting\n`,
      );
      return undefined;
    }
    const inVm = (tid: number): boolean => vm.owns(tid);
    const orRoot = (tid: number): boolean => tid === NILTHREAD || tid === ROOT_ID || inVm(tid);
    switch (label) {
      case RmOp.console: {
        const n = Math.min(w(0), (r.words.length - 1) * 4);
        const out = vm.console ?? this.k.consoleOut;
        for (let k = 0; k < n; k++) out((w(1 + (k >>> 2)) >>> ((k & 3) * 8)) & 0xff);
        return result(0);
      }
      case RmOp.exit: {
        const status = w(0) & 0xff;
        vm.state = 'shutdown';
        vm.ending = `exit, status ${status}`;
        if (this.primary === undefined || this.primary === vm) {
          this.k.machine.requestExit(status);
          return undefined;
        }
        // Another VM than the primary: reported, and its VMM stops it (the run goes on).
        const out = vm.console ?? this.k.consoleOut;
        for (const c of `(l4) ${vm.name}: ${vm.ending}\n`) out(c.charCodeAt(0));
        return result(0);
      }
      case RmOp.threadControl: {
        const [dest, space, scheduler, pager, utcb] = [w(0), w(1), w(2), w(3), w(4)];
        if (
          !inVm(dest) ||
          !(space === NILTHREAD || inVm(space)) ||
          !orRoot(scheduler) ||
          !orRoot(pager)
        )
          return result(L4Error.noPrivilege);
        const e = api.threadControl(dest, space, scheduler, pager, utcb);
        const made = e === 0 ? this.k.lookup(dest, undefined)?.space : undefined;
        if (made !== undefined && made.vm < 0) made.vm = vm.id;
        return result(e);
      }
      case RmOp.spaceControl: {
        if (!inVm(w(0))) return result(L4Error.noPrivilege);
        return result(api.spaceControl(w(0), w(1), w(2), w(3), w(4)));
      }
      case RmOp.associateIrq:
        return result(vm.associateIrqVia(api, w(0), w(1)));
      case RmOp.deassociateIrq: {
        const irq = w(0);
        if (!vm.devices.some((d) => d.irqs?.includes(irq))) return result(L4Error.noPrivilege);
        return result(
          api.threadControl(
            irqThreadId(irq),
            irqThreadId(irq),
            NILTHREAD,
            irqThreadId(irq),
            0xffffffff,
          ),
        );
      }
      case RmOp.requestPages:
        return this.requestPages(vm, w(0));
      case RmOp.clientDma: {
        const client = this.vms[w(0)];
        if (client === undefined || !vm.serves.has(client.id)) return result(L4Error.noPrivilege);
        let window = vm.clientWindows.find((c) => c.vm === client);
        if (window === undefined) {
          // Above the VM's memory and every window before, on a 256 MB boundary.
          const top = Math.max(vm.size, ...vm.clientWindows.map((c) => c.at + c.vm.size));
          window = { at: Math.ceil(top / CLIENT_WINDOW_ALIGN) * CLIENT_WINDOW_ALIGN, vm: client };
          vm.clientWindows.push(window);
        }
        return message(0, [1, window.at, client.size]);
      }
      case RmOp.netBackend: {
        const backend = this.netBackendOf?.(vm);
        if (backend === undefined) return result(L4Error.invalidParam);
        if (backend === 'waiting') return message(0, [1, 0, 0]);
        return message(0, [1, backend.monitor, backend.helper]);
      }
      case RmOp.consoleInput: {
        if (this.input === undefined) return result(L4Error.invalidParam);
        if (!inVm(w(0))) return result(L4Error.noPrivilege);
        // With several VMs, the input is the primary's.
        if (this.primary !== undefined && this.primary !== vm) return result(L4Error.noPrivilege);
        this.input.setReceiver(w(0), api);
        return result(0);
      }
      default:
        return result(L4Error.invalidParam);
    }
  }

  /** A VM thread's page fault: its guest-physical page at `mapAt + gpa`, from the root space. */
  private pageFault(vm: Vm, r: IpcResult): ReturnType<typeof message> | undefined {
    const address = (r.words[0] ?? 0) >>> 0;
    const gpa = (((address - vm.mapAt) >>> 0) & ~0xfff) >>> 0;
    const frame = vm.frameOf(gpa);
    if (frame === undefined) {
      this.unresolved++;
      this.k.print(
        `(l4) ${vm.name}: page fault at 0x${address.toString(16)} (eip 0x${(r.words[1] ?? 0).toString(16)}) outside its memory; thread 0x${r.from.toString(16)} left waiting\n`,
      );
      return undefined;
    }
    return message(0, [], mapItem(address, fpage(frame.machine, 12, RWX)));
  }

  /** Maps guest-physical pages on request: up to 31 map items of at most 4 MB each. */
  private requestPages(vm: Vm, raw: number): ReturnType<typeof message> {
    const want = decodeFpage(raw);
    const items: number[] = [];
    const chunk = 0x400000;
    for (let at = want.base; at < want.base + want.size && items.length < 62;) {
      const size = Math.min(chunk, want.size);
      const frame = vm.frameOf(at);
      const last = vm.frameOf(at + size - 1);
      if (frame === undefined || last === undefined || last.machine - frame.machine !== size - 1)
        break;
      items.push(
        ...mapItem(
          (vm.mapAt + at) >>> 0,
          fpage(frame.machine, Math.log2(size), want.rights || RWX),
        ),
      );
      at += size;
    }
    if (items.length === 0) items.push(...mapItem(0, NILPAGE));
    return message(0, [], items);
  }

  save(): RmState {
    return {
      vms: this.vms.map((v) => ({
        id: v.id,
        state: v.state,
        ending: v.ending ?? null,
        clientWindows: v.clientWindows.map((c) => ({ at: c.at, vm: c.vm.id })),
      })),
      unresolved: this.unresolved,
    };
  }

  restore(state: unknown, path: string): void {
    const s = state as RmState;
    if (
      typeof s !== 'object' ||
      s === null ||
      !Array.isArray(s.vms) ||
      typeof s.unresolved !== 'number'
    )
      throw new StateError(`${path}: expected the resource monitor's state`);
    if (s.vms.length !== this.vms.length)
      throw new StateError(
        `${path}.vms: ${s.vms.length} VMs in the snapshot, the configuration builds ${this.vms.length}`,
      );
    s.vms.forEach((v, k) => {
      if (v.state !== 'running' && v.state !== 'shutdown')
        throw new StateError(`${path}.vms[${k}].state: ${String(v.state)}`);
      this.vms[k].state = v.state;
      this.vms[k].ending = v.ending ?? undefined;
      if (!Array.isArray(v.clientWindows))
        throw new StateError(`${path}.vms[${k}].clientWindows: expected a list`);
      const windows = v.clientWindows.map((c, j) => {
        const client = this.vms.find((x) => x.id === c?.vm);
        if (client === undefined || typeof c.at !== 'number')
          throw new StateError(`${path}.vms[${k}].clientWindows[${j}]: not a client window`);
        return { at: c.at, vm: client };
      });
      this.vms[k].clientWindows.splice(0, Infinity, ...windows);
    });
    this.unresolved = s.unresolved;
  }
}

function roundUp(v: number, to: number): number {
  return Math.ceil(v / to) * to;
}
