/**
 * The emulated PC: machine memory, the CPU, the buses and the legacy devices, the simulated
 * clock, built from one validated config in one place (STYLE.md principle 5). No Node imports:
 * the same machine runs in a browser.
 */
import { Cpu, type CpuCounters } from '../x86/Cpu.ts';
import { MmioBus, PortBus } from './bus.ts';
import { SimClock } from './clock.ts';
import { costModels, P4_2_8GHZ, type CostModel } from './costModel.ts';
import type { BusAccess, DmaMemory, IrqLine } from './device.ts';
import { Cmos } from './devices/legacy/Cmos.ts';
import { DebugExit } from './devices/legacy/DebugExit.ts';
import { FW_CFG_PORT, FwCfg } from './devices/legacy/FwCfg.ts';
import { PC_TESTDEV, PcTestdev } from './devices/legacy/PcTestdev.ts';
import { KeyboardController } from './devices/legacy/KeyboardController.ts';
import { DmaPageRegisters } from './devices/legacy/DmaPageRegisters.ts';
import { PostPort } from './devices/legacy/PostPort.ts';
import { DualPic } from './devices/legacy/Pic.ts';
import { Pit } from './devices/legacy/Pit.ts';
import { Uart16550 } from './devices/legacy/Uart16550.ts';
import { PciHostBridge } from './devices/pci/PciHostBridge.ts';
import { LocalApic, MSR_APIC_BASE, MSR_TSC_DEADLINE } from './devices/apic/LocalApic.ts';
import { IO_APIC_BASE, IO_APIC_PINS, IoApic } from './devices/apic/IoApic.ts';
import { Dp83820 } from './devices/dp83820/Dp83820.ts';
import { EthernetLink, type FaultConfig } from './ethernet/link.ts';
import { PC_IRQ, placePcPorts } from './portMap.ts';
import {
  MACHINE_STATE,
  PAGE_SIZE,
  restoreRam,
  saveRam,
  type MachineConfigState,
  type MachineState,
} from './machineState.ts';
import { StateError } from './state.ts';

export interface MachineConfig {
  /** Machine memory in MB (default 256, the seed's test machine). */
  memoryMb?: number;
  /** Cost-model preset or its name (default p4-2.8ghz). */
  costModel?: CostModel | string;
  /** Receives every byte the guest writes to COM1. */
  serialOut?: (byte: number) => void;
  /** Seconds since the Unix epoch shown by the RTC at simulated time 0 (default 2026-01-01). */
  rtcStartSeconds?: number;
  /**
   * A DP83820 at PCI 00:03.0 (IRQ 11, level-triggered) on a 1 Gb/s link whose far end
   * (`machine.link`, end 1) a peer attaches to.
   */
  network?: { mac?: Uint8Array; faults?: FaultConfig };
  /**
   * QEMU's test devices for test kernels (kvm-unit-tests): pc-testdev (PcTestdev.ts). Off by
   * default: a PC has no such device.
   */
  testDevices?: boolean;
}

/** How a run ended. `exitCode` is the process status `previrt run` uses for it. */
export type EndReason =
  | { kind: 'exit'; value: number }
  | { kind: 'cycle-limit' }
  | { kind: 'halted' }
  | { kind: 'triple-fault'; detail: string }
  | { kind: 'reset' };

/** Process exit statuses of `previrt run` (README "Running a guest"). */
export const EXIT_STATUS = {
  usage: 2,
  cycleLimit: 3,
  halted: 4,
  tripleFault: 5,
  reset: 6,
} as const;

export function exitStatus(end: EndReason): number {
  switch (end.kind) {
    case 'exit':
      return ((end.value << 1) | 1) & 0xff;
    case 'cycle-limit':
      return EXIT_STATUS.cycleLimit;
    case 'halted':
      return EXIT_STATUS.halted;
    case 'triple-fault':
      return EXIT_STATUS.tripleFault;
    case 'reset':
      return EXIT_STATUS.reset;
  }
}

export function describeEnd(end: EndReason): string {
  switch (end.kind) {
    case 'exit':
      return `guest wrote ${end.value} to isa-debug-exit (port 0xf4)`;
    case 'cycle-limit':
      return 'cycle limit reached';
    case 'halted':
      return 'guest halted with interrupts off (or idle with nothing scheduled): it can never wake';
    case 'triple-fault':
      return end.detail;
    case 'reset':
      return 'guest reset the machine through the keyboard controller (0x64 ← 0xfe)';
  }
}

export interface MachineStats {
  costModel: string;
  hz: number;
  simulatedSeconds: number;
  cycles: number;
  busyCycles: number;
  idleCycles: number;
  instructions: number;
  cpu: CpuCounters;
  irqs: number[];
  spuriousIrqs: number;
  pitTicks: number;
  serialBytesOut: number;
  serialBytesIn: number;
  unclaimedPortReads: number;
  unclaimedPortWrites: number;
}

export class Machine {
  readonly costModel: CostModel;
  readonly ram: Uint8Array;
  readonly cpu: Cpu;
  readonly clock: SimClock;
  readonly ports = new PortBus();
  readonly mmio = new MmioBus();
  readonly pic: DualPic;
  /** The processor's local APIC; LINT0 is the PIC pair's INTR (LocalApic.ts). */
  readonly apic: LocalApic;
  /** The I/O APIC at 0xFEC00000, beside the PIC pair on the ISA lines (IoApic.ts). */
  readonly ioApic: IoApic;
  readonly pit: Pit;
  readonly uart: Uart16550;
  readonly cmos: Cmos;
  readonly keyboard: KeyboardController;
  readonly dmaPages = new DmaPageRegisters();
  readonly pci = new PciHostBridge();
  /** QEMU's fw_cfg at 0x510 (the CPU count and RAM size, for test kernels written for QEMU). */
  readonly fwCfg: FwCfg;
  /** QEMU's pc-testdev, with `testDevices` in the config. */
  readonly pcTestdev: PcTestdev | undefined;
  /** The NIC and its link, when the config asks for a network. */
  readonly nic: Dp83820 | undefined;
  readonly link: EthernetLink | undefined;
  private ended: EndReason | undefined;
  private exitValue: number | undefined;
  private resetRequested = false;
  /** The configuration a snapshot records, so that it is restored into the same machine. */
  private readonly configState: MachineConfigState;

  constructor(
    config: Required<Omit<MachineConfig, 'costModel' | 'network' | 'testDevices'>> &
      Pick<MachineConfig, 'network' | 'testDevices'> & { costModel: CostModel },
  ) {
    this.costModel = config.costModel;
    this.configState = {
      memoryMb: config.memoryMb,
      costModel: config.costModel.name,
      hz: config.costModel.hz,
      rtcStartSeconds: config.rtcStartSeconds,
      network: config.network !== undefined,
      testDevices: config.testDevices === true,
    };
    this.ram = new Uint8Array(config.memoryMb << 20);
    this.pic = new DualPic((level) => this.apic.setExtIntLine(level));

    // The CPU sees memory directly and everything else through the buses and the interrupt
    // controllers: the local APIC, and through its LINT0 the PIC pair.
    this.cpu = new Cpu(
      {
        ram: this.ram,
        ioRead: (port, size) => this.ports.read(port, size),
        ioWrite: (port, size, value) => this.ports.write(port, size, value),
        mmioRead: (paddr, size) => this.mmio.read(paddr, size),
        mmioWrite: (paddr, size, value) => this.mmio.write(paddr, size, value),
        acknowledgeInterrupt: () => this.apic.acknowledge(),
        onChip: {
          cpuidEdx: () => this.apic.cpuidEdx(),
          cpuidEcx: () => this.apic.cpuidEcx(),
          readMsr: (index) =>
            index === MSR_APIC_BASE
              ? this.apic.readBaseMsr()
              : index === MSR_TSC_DEADLINE
                ? this.apic.readDeadlineMsr()
                : undefined,
          writeMsr: (index, value) =>
            index === MSR_APIC_BASE
              ? this.apic.writeBaseMsr(value)
              : index === MSR_TSC_DEADLINE && this.apic.writeDeadlineMsr(value),
        },
      },
      this.costModel.cpu,
    );
    this.clock = new SimClock(
      this.costModel.hz,
      () => this.cpu.cycles,
      (cycle) => this.cpu.shortenRun(cycle),
    );

    // The APICs' pages lie above RAM, where every access reaches the MMIO bus anyway: they are
    // marked (which flushes the TLBs) only if the guest moves the local APIC's into RAM, so a
    // kernel that never touches them runs exactly as on a machine without them.
    const apicBuses: BusAccess = {
      registerPorts: (base, length, device) => this.ports.register(base, length, device),
      registerMmio: (base, length, device) => {
        const r = this.mmio.register(base, length, device);
        if (typeof r !== 'string' && base < this.ram.length) this.cpu.markMmio(base, length);
        return r;
      },
    };
    this.apic = new LocalApic({
      clock: this.clock,
      buses: apicBuses,
      intr: (level) => this.cpu.setInterruptLine(level),
      acknowledgeExtInt: () => this.pic.acknowledge(),
      nmi: () => this.cpu.raiseNmi(),
      tscOffset: () => this.cpu.tscOffset,
      levelEoi: (vector) => this.ioApic.eoi(vector),
    });
    this.ioApic = new IoApic((message) => this.apic.receive(message));
    const ioApicPlaced = apicBuses.registerMmio(IO_APIC_BASE, 0x1000, this.ioApic);
    if (typeof ioApicPlaced === 'string') throw new Error(`machine set-up: ${ioApicPlaced}`);

    // Legacy devices at their PC/AT addresses (portMap.ts, shared with the VMM's platform).
    this.pit = new Pit(this.clock, this.isaIrq(PC_IRQ.pit));
    this.keyboard = new KeyboardController(() => this.requestReset());
    this.cmos = new Cmos(this.clock, config.rtcStartSeconds);
    this.uart = new Uart16550('com1', this.clock, this.isaIrq(PC_IRQ.com1), config.serialOut);
    const placed = placePcPorts(this.ports, {
      picMaster: this.pic.master,
      pit: this.pit,
      keyboard: this.keyboard,
      cmos: this.cmos,
      post: new PostPort(),
      dmaPages: this.dmaPages,
      picSlave: this.pic.slave,
      debugExit: new DebugExit((v) => this.requestExit(v)),
      com1: this.uart,
      elcr: this.pic.elcr,
      pciConfig: this.pci,
    });
    if (placed !== undefined) throw new Error(`machine set-up: ${placed}`);
    this.fwCfg = new FwCfg({ ramBytes: this.ram.length, cpus: 1 });
    const fwCfgPlaced = this.ports.register(FW_CFG_PORT, 2, this.fwCfg);
    if (typeof fwCfgPlaced === 'string') throw new Error(`machine set-up: ${fwCfgPlaced}`);
    if (config.testDevices === true) {
      const ioApic = this.ioApic;
      const testdev = new PcTestdev((line) =>
        line < 16
          ? this.isaIrq(line)
          : line < IO_APIC_PINS
            ? { set: (level) => ioApic.setPin(line, level) }
            : undefined,
      );
      for (const placed of [
        this.ports.register(PC_TESTDEV.ioport, 8, testdev.ports),
        this.ports.register(PC_TESTDEV.irqBase, PC_TESTDEV.irqLines, testdev.irqPorts),
        this.buses.registerMmio(PC_TESTDEV.iomemBase, PC_TESTDEV.iomemLength, testdev.iomem),
      ])
        if (typeof placed === 'string') throw new Error(`machine set-up: ${placed}`);
      this.pcTestdev = testdev;
    }

    // The network card, set up as a PC BIOS leaves a PCI device: interrupt line 11, routed
    // level-triggered through the ELCR; the guest places the BARs.
    if (config.network !== undefined) {
      this.link = new EthernetLink(this.clock, 1_000_000_000, config.network.faults);
      const link = this.link;
      this.nic = new Dp83820({
        clock: this.clock,
        dma: this.dma,
        irq: this.isaIrq(11),
        buses: this.buses,
        mac: config.network.mac ?? Uint8Array.from([0x00, 0x0d, 0x42, 0x00, 0x00, 0x01]),
        transmit: (frame) => link.send(0, frame),
      });
      link.attach(0, this.nic);
      const taken = this.pci.add(3, 0, this.nic);
      if (taken !== undefined) throw new Error(`machine set-up: ${taken}`);
      this.nic.configWrite(0x3c, 1, 11);
      this.pic.elcr.ioWrite(1, 1, this.pic.elcr.ioRead(1, 1) | (1 << (11 - 8)));
    }
  }

  /** ISA interrupt line `irq`: into the 8259 pair and into the I/O APIC (IoApic.ts's wiring). */
  private isaIrq(irq: number): IrqLine {
    const pin = IoApic.pinOfIsaIrq(irq);
    return {
      set: (level) => {
        this.pic.setIrq(irq, level);
        this.ioApic.setPin(pin, level);
      },
    };
  }

  /**
   * Bus-master access to machine memory (DMA). Writes drop decoded instructions they overlap;
   * any byte outside RAM makes the whole transfer fail, for the device to report.
   */
  readonly dma: DmaMemory = {
    read: (paddr, into) => {
      if (paddr < 0 || paddr + into.length > this.ram.length) return false;
      into.set(this.ram.subarray(paddr, paddr + into.length));
      return true;
    },
    write: (paddr, from) => {
      if (paddr < 0 || paddr + from.length > this.ram.length) return false;
      this.ram.set(from, paddr);
      this.cpu.invalidateCode(paddr, from.length);
      return true;
    },
  };

  /** Bus access for devices that place ranges at run time (PCI BARs). */
  get buses(): BusAccess {
    return {
      registerPorts: (base, length, device) => this.ports.register(base, length, device),
      registerMmio: (base, length, device) => {
        const r = this.mmio.register(base, length, device);
        if (typeof r !== 'string') this.cpu.markMmio(base, length);
        return r;
      },
    };
  }

  /**
   * Ends the run as isa-debug-exit does (the guest wrote `value` to port 0xF4): the CPU stops at
   * once and `run` returns `{ kind: 'exit', value }`. A hypervisor ends a run this way too.
   */
  requestExit(value: number): void {
    this.exitValue = value;
    this.cpu.requestStop();
  }

  /** Ends the run as a reset through the keyboard controller does (`{ kind: 'reset' }`). */
  requestReset(): void {
    this.resetRequested = true;
    this.cpu.requestStop();
  }

  /**
   * After a run ended at its cycle limit: lets `run` go on from where it stopped (a run that
   * ended any other way stays ended). Returns false if there is nothing to resume.
   */
  resume(): boolean {
    if (this.ended?.kind !== 'cycle-limit') return this.ended === undefined;
    this.ended = undefined;
    return true;
  }

  /** What ended the run, once it has ended (`resume` continues after a cycle limit). */
  get end(): EndReason | undefined {
    return this.ended;
  }

  /**
   * Runs until the guest ends the run or `maxCycles` simulated cycles have passed. The CPU runs
   * up to the next device event; HLT skips to it, counting the skipped cycles as idle.
   */
  run(maxCycles = Number.MAX_SAFE_INTEGER, onProgress?: () => void): EndReason {
    const cpu = this.cpu;
    while (this.ended === undefined) {
      const next = this.clock.next() ?? Number.MAX_SAFE_INTEGER;
      // Slices of at most 10 ms simulated, so progress reports and host events get a look in.
      const limit = Math.min(next, maxCycles, cpu.cycles + this.costModel.hz / 100);
      const why = cpu.run(limit);
      this.clock.fireDue(cpu.cycles);
      if (this.exitValue !== undefined) this.ended = { kind: 'exit', value: this.exitValue };
      else if (this.resetRequested) this.ended = { kind: 'reset' };
      else if (why === 'shutdown')
        this.ended = { kind: 'triple-fault', detail: cpu.shutdownReason ?? 'unknown' };
      else if (why === 'halt') this.idle(maxCycles);
      else if (cpu.cycles >= maxCycles) this.ended = { kind: 'cycle-limit' };
      onProgress?.();
    }
    return this.ended;
  }

  /** HLT: jump to the next event; with interrupts off or nothing scheduled, the guest is stuck. */
  private idle(maxCycles: number): void {
    const cpu = this.cpu;
    // The events fired after the slice may have woken the CPU already: a hypervisor unblocks its
    // domain for a timer that fell due while the slice's last instruction (a block hypercall
    // charged in one piece) ran past it. The CPU then runs on, with nothing skipped.
    if (!cpu.halted) return;
    // Or a device event that fell due inside the slice's last instruction (HLT itself, when the
    // cost model gives it a cost) raised an interrupt: the CPU takes it now, not after idling to
    // the next event. (The p4-2.8ghz preset's HLT costs nothing, so its figures are unchanged.)
    if (cpu.interruptPending) return;
    const next = this.clock.next();
    if (!cpu.interruptsEnabled || next === undefined) {
      this.ended = { kind: 'halted' };
      return;
    }
    const target = Math.min(Math.max(next, cpu.cycles), maxCycles);
    cpu.idleCycles += target - cpu.cycles;
    cpu.cycles = target;
    this.clock.fireDue(cpu.cycles);
    if (cpu.cycles >= maxCycles && this.clock.next() !== undefined && next > maxCycles) {
      this.ended = { kind: 'cycle-limit' };
    }
  }

  stats(): MachineStats {
    const cpu = this.cpu;
    return {
      costModel: this.costModel.name,
      hz: this.costModel.hz,
      simulatedSeconds: cpu.cycles / this.costModel.hz,
      cycles: cpu.cycles,
      busyCycles: cpu.cycles - cpu.idleCycles,
      idleCycles: cpu.idleCycles,
      instructions: cpu.counters.instructions,
      cpu: structuredClone(cpu.counters),
      // Each ISA line's interrupts, through the 8259 pair or through its I/O APIC pin.
      irqs: Array.from(
        this.pic.delivered,
        (n, irq) => n + (irq === 2 ? 0 : this.ioApic.sentByPin[IoApic.pinOfIsaIrq(irq)]),
      ),
      spuriousIrqs: this.pic.spurious,
      pitTicks: this.pit.ticks,
      serialBytesOut: this.uart.bytesOut,
      serialBytesIn: this.uart.bytesIn,
      unclaimedPortReads: this.ports.unclaimedReads,
      unclaimedPortWrites: this.ports.unclaimedWrites,
    };
  }

  /**
   * The whole machine as plain JSON data (machineState.ts): CPU, RAM (zero pages left out), every
   * device with the events it has pending on the clock, the clock's queue, and the machine's
   * own fields. Take it between runs (after `run` returned), not from inside a device callback.
   * Not state, and set up again by whoever restores: the serial output callback, the peer on the
   * link's far end (`link.attach(1, peer)`), and components outside the machine that schedule
   * events on its clock (they save their own state beside this one).
   *
   * `ram: false` leaves the memory's pages out (a snapshot file that keeps `machine.ram` as its
   * own section instead; `restore` then takes the memory as bytes).
   */
  save(options: { ram?: boolean } = {}): MachineState {
    return {
      version: 1,
      config: { ...this.configState },
      clock: this.clock.save(),
      cpu: this.cpu.save(),
      ram:
        options.ram === false
          ? { version: 1, bytes: this.ram.length, pageSize: PAGE_SIZE, pages: [] }
          : saveRam(this.ram),
      devices: {
        pic: this.pic.save(),
        apic: this.apic.save(),
        ioApic: this.ioApic.save(),
        pit: this.pit.save(),
        keyboard: this.keyboard.save(),
        dmaPages: this.dmaPages.save(),
        cmos: this.cmos.save(),
        com1: this.uart.save(),
        pci: this.pci.save(),
        fwCfg: this.fwCfg.save(),
        pcTestdev: this.pcTestdev?.save() ?? null,
        nic: this.nic?.save() ?? null,
        link: this.link?.save() ?? null,
      },
      machine: {
        end: this.ended === undefined ? null : structuredClone(this.ended),
        exitValue: this.exitValue ?? null,
        resetRequested: this.resetRequested,
        unclaimedPortReads: this.ports.unclaimedReads,
        unclaimedPortWrites: this.ports.unclaimedWrites,
        unclaimedMmioReads: this.mmio.unclaimedReads,
        unclaimedMmioWrites: this.mmio.unclaimedWrites,
      },
    };
  }

  /**
   * Puts a saved machine back into this one, which must be built from the same config (a new
   * machine from `createMachine`, nothing booted). `others` restores the components outside the
   * machine that had events on its clock (a peer on the link, a hypervisor) before the audit
   * checks that every saved event and every bound CPU entry came back. A state that does not fit
   * throws a StateError naming the field (checked before anything is changed, as far as the
   * shape goes); after a failure part-way the machine is unusable and should be dropped. `ram`,
   * when given, is the memory as bytes (a state saved with `ram: false`).
   */
  restore(state: MachineState, others?: () => void, ram?: Uint8Array): void {
    MACHINE_STATE(state, '');
    const mine = this.configState;
    for (const key of Object.keys(mine) as (keyof MachineConfigState)[]) {
      if (state.config[key] !== mine[key])
        throw new StateError(
          `machine state: saved from a machine with ${key} ${JSON.stringify(state.config[key])}, ` +
            `this one has ${JSON.stringify(mine[key])} (build it from the same config)`,
        );
    }
    if ((state.devices.nic === null) !== (this.nic === undefined))
      throw new StateError('machine state: devices.nic does not match the network in the config');
    this.clock.restore(state.clock, 'clock');
    if (ram === undefined) restoreRam(this.ram, state.ram, 'ram');
    else if (ram.length !== this.ram.length)
      throw new StateError(
        `ram: the snapshot has ${ram.length / 2 ** 20} MB of memory, this machine ${this.ram.length / 2 ** 20} MB`,
      );
    else this.ram.set(ram);
    const d = state.devices;
    if (this.nic !== undefined && d.nic !== null) this.nic.restore(d.nic, 'devices.nic');
    if (this.link !== undefined) {
      if (d.link === null)
        throw new StateError('devices.link: missing (the machine has a network)');
      this.link.restore(d.link, 'devices.link');
    }
    this.pit.restore(d.pit, 'devices.pit');
    this.keyboard.restore(d.keyboard, 'devices.keyboard');
    this.dmaPages.restore(d.dmaPages, 'devices.dmaPages');
    this.cmos.restore(d.cmos, 'devices.cmos');
    this.uart.restore(d.com1, 'devices.com1');
    this.pci.restore(d.pci, 'devices.pci');
    this.fwCfg.restore(d.fwCfg, 'devices.fwCfg');
    if (this.pcTestdev !== undefined) {
      if (d.pcTestdev === null)
        throw new StateError('devices.pcTestdev: missing (the machine has the test devices)');
      this.pcTestdev.restore(d.pcTestdev, 'devices.pcTestdev');
    }
    // After every device that drives one of its lines: the saved levels and requests remain;
    // the PIC drives the APIC's LINT0, the APIC the CPU's INTR.
    this.apic.restore(d.apic, 'devices.apic');
    this.ioApic.restore(d.ioApic, 'devices.ioApic');
    this.pic.restore(d.pic, 'devices.pic');
    try {
      this.cpu.restore(state.cpu);
    } catch (e) {
      // CpuState is checked by the CPU (src/x86/system/state.ts); a field it lacks reads as a
      // TypeError there, which is a malformed state here, not a host crash.
      const why = e instanceof Error ? e.message : String(e);
      throw new StateError(
        e instanceof TypeError ? `cpu: malformed CPU state (${why})` : `cpu: ${why}`,
      );
    }
    const m = state.machine;
    this.ended = m.end === null ? undefined : structuredClone(m.end);
    this.exitValue = m.exitValue ?? undefined;
    this.resetRequested = m.resetRequested;
    this.ports.unclaimedReads = m.unclaimedPortReads;
    this.ports.unclaimedWrites = m.unclaimedPortWrites;
    this.mmio.unclaimedReads = m.unclaimedMmioReads;
    this.mmio.unclaimedWrites = m.unclaimedMmioWrites;
    others?.();
    const missing = [this.clock.unrestored(state.clock), this.cpu.unrestoredEntries(state.cpu)]
      .filter((x) => x !== undefined)
      .join('; ');
    if (missing !== '') throw new StateError(`machine state: ${missing}`);
  }
}

/**
 * A new machine from `config` with a saved state put back (Machine.restore); the same config the
 * state was saved from. Returns a message for a bad config or a state that does not fit.
 */
export function restoreMachine(config: MachineConfig, state: MachineState): Machine | string {
  const machine = createMachine(config);
  if (typeof machine === 'string') return machine;
  try {
    machine.restore(state);
  } catch (e) {
    if (e instanceof StateError) return e.message;
    throw e;
  }
  return machine;
}

/** Validates a config and builds the machine. Returns a message for a bad config. */
export function createMachine(config: MachineConfig = {}): Machine | string {
  const memoryMb = config.memoryMb ?? 256;
  if (!Number.isInteger(memoryMb) || memoryMb < 2 || memoryMb > 3072) {
    return `memory must be a whole number of MB between 2 and 3072 (got ${memoryMb})`;
  }
  let costModel: CostModel;
  if (config.costModel === undefined) costModel = P4_2_8GHZ;
  else if (typeof config.costModel === 'string') {
    const found = costModels.get(config.costModel);
    if (found === undefined) {
      return `unknown cost model '${config.costModel}' (known: ${[...costModels.keys()].join(', ')})`;
    }
    costModel = found;
  } else costModel = config.costModel;
  return new Machine({
    memoryMb,
    costModel,
    serialOut: config.serialOut ?? (() => {}),
    rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
    network: config.network,
    testDevices: config.testDevices,
  });
}
