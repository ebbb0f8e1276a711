/**
 * The PC platform the guest expects, as virtual devices inside the VMM (DESIGN.md decision 7):
 * the cascaded 8259s (the machine's own model, driven by virtual lines), the 8254 channel 0 on
 * the backend's timer, COM1 (the machine's 16550) on the backend's console, the CMOS clock on
 * the backend's time, PCI configuration mechanism #1 with the host bridge, isa-debug-exit, the
 * POST port and the keyboard controller's reset. A port nobody claims reads all ones and ignores
 * writes, as an empty ISA bus does. The devices that schedule work (the UART's received bytes)
 * do it on `clock`, the backend's system time, whose events the core fires from the backend's
 * timer.
 */
import { MmioBus, PortBus } from '../machine/bus.ts';
import {
  arrayOf,
  checkState,
  num,
  oneOf,
  shape,
  StateError,
  type Check,
} from '../machine/state.ts';
import { SimClock, type ClockState } from '../machine/clock.ts';
import type { AccessSize, BusAccess, PciFunction, Stateful } from '../machine/device.ts';
import { Cmos, type CmosState } from '../machine/devices/legacy/Cmos.ts';
import { DebugExit } from '../machine/devices/legacy/DebugExit.ts';
import {
  KeyboardController,
  type KeyboardControllerState,
} from '../machine/devices/legacy/KeyboardController.ts';
import { DualPic, type PicState } from '../machine/devices/legacy/Pic.ts';
import { Uart16550, type UartState } from '../machine/devices/legacy/Uart16550.ts';
import { PciHostBridge, type PciHostBridgeState } from '../machine/devices/pci/PciHostBridge.ts';
import {
  DmaPageRegisters,
  type DmaPageRegistersState,
} from '../machine/devices/legacy/DmaPageRegisters.ts';
import { PostPort } from '../machine/devices/legacy/PostPort.ts';
import { PC_IRQ, placePcPorts } from '../machine/portMap.ts';
import type { PassthroughPci } from './devices/passthrough.ts';
import { VirtualPit, type PitHost, type VirtualPitState } from './devices/pit.ts';

export interface PlatformHost extends PitHost {
  /** The virtual PIC's output to the virtual CPU. */
  interruptLine(level: boolean): void;
  consoleByte(byte: number): void;
  /** isa-debug-exit (0xF4) and the keyboard controller's reset (0x64 ← 0xFE). */
  exit(status: number): void;
  reset(): void;
  /**
   * A virtual device scheduled an event at this system time (ns): the backend's timer must fire
   * by then, and the core then fires what is due (`clock.fireDue`).
   */
  deviceEventAt(ns: number): void;
  /** Seconds since the Unix epoch the RTC shows at system time 0. */
  rtcStartSeconds: number;
  /** The guest ended the interrupt of a passed-through device's line (EOI): unmask it. */
  deviceEoi(irq: number): void;
}

/**
 * A passed-through device's interrupt line: idle, asserted, in service in the guest, or ended by
 * the guest's EOI while it had the line masked (the real line is re-enabled at the unmask).
 */
type LineState = 'idle' | 'asserted' | 'in-service' | 'ended-masked';

/** Any object: the device it belongs to checks the rest when it is restored. */
const object: Check = (v, path) => shape<object>({})(v, path);

const VIRTUAL_PLATFORM: Check = checkState<VirtualPlatformState>('virtual platform', 2, {
  clock: object,
  pic: object,
  pit: object,
  uart: object,
  cmos: object,
  keyboard: object,
  dmaPages: object,
  pci: object,
  passthrough: arrayOf(arrayOf(num)),
  emulated: arrayOf(object),
  deviceLines: arrayOf((v, path) => {
    if (!Array.isArray(v) || v.length !== 2) throw new StateError(`${path}: expected [irq, state]`);
    num(v[0], `${path}[0]`);
    oneOf('idle', 'asserted', 'in-service', 'ended-masked')(v[1], `${path}[1]`);
  }),
});

/**
 * The virtual PC in a snapshot: each device's own state, the passed-through functions' BARs as
 * the guest placed them, their lines, and the virtual devices' clock (its pending events: the
 * UART's arriving bytes, restored by the UART at their saved places).
 */
export interface VirtualPlatformState {
  version: 2;
  clock: ClockState;
  pic: PicState;
  pit: VirtualPitState;
  uart: UartState;
  cmos: CmosState;
  keyboard: KeyboardControllerState;
  dmaPages: DmaPageRegistersState;
  pci: PciHostBridgeState;
  passthrough: number[][];
  /** The emulated PCI functions' own states (the VMM's DP83820 model's), in their order. */
  emulated: { version: number }[];
  deviceLines: [number, LineState][];
}

/** A PCI function the VMM emulates (devices/emulatedNic.ts), with its state for snapshots. */
export type EmulatedFunction = PciFunction & Stateful<{ version: number }>;

export class VirtualPlatform {
  readonly ports = new PortBus();
  readonly pic: DualPic;
  readonly pit: VirtualPit;
  readonly uart: Uart16550;
  /** The virtual devices' clock: the backend's system time in nanoseconds. */
  readonly clock: SimClock;
  readonly pci = new PciHostBridge();
  /** Passed-through PCI functions by their slot, and their lines' states by IRQ. */
  readonly passthrough: PassthroughPci[] = [];
  /** Functions the VMM emulates, and the memory-mapped registers they place (their BARs). */
  readonly emulated: EmulatedFunction[] = [];
  readonly mmio = new MmioBus();
  /**
   * Work the emulated devices batch until the guest's next `iret` or idle (the notifications
   * of a driver VM's link: the original's flush points).
   */
  readonly flushers: (() => void)[] = [];
  /**
   * Timing the emulated devices fold into the points where the VMM runs anyway instead of
   * events of their own on `clock` (the DP83820 model's interrupt hold-off): looked at the
   * guest's `iret` and idle, after the backend took events, and at the timer (`poll`).
   */
  readonly pollers: (() => void)[] = [];
  /**
   * The guest idles: the devices that fold their timing into the VMM's points schedule what
   * must wake it on `clock` after all (the end of a hold-off an interrupt waits for).
   */
  readonly idlers: (() => void)[] = [];
  /**
   * While a migration logs dirty pages (dirty.ts): told of every write of the VMM's emulated
   * devices into guest memory by DMA (guest-physical address and length).
   */
  dmaWritten: ((gpa: number, length: number) => void) | undefined;
  private readonly deviceLines = new Map<number, LineState>();
  private readonly cmos: Cmos;
  private readonly keyboard: KeyboardController;
  private readonly dmaPages = new DmaPageRegisters();

  constructor(private readonly host: PlatformHost) {
    this.pic = new DualPic((level) => host.interruptLine(level));
    this.pit = new VirtualPit(host);
    this.clock = new SimClock(
      1e9,
      () => host.nowNs(),
      (ns) => host.deviceEventAt(ns),
    );
    this.uart = new Uart16550('com1', this.clock, this.pic.line(PC_IRQ.com1), (b) =>
      host.consoleByte(b),
    );
    this.keyboard = new KeyboardController(() => host.reset());
    this.cmos = new Cmos(this.clock, host.rtcStartSeconds);
    const placed = placePcPorts(this.ports, {
      picMaster: this.pic.master,
      pit: this.pit,
      keyboard: this.keyboard,
      cmos: this.cmos,
      post: new PostPort(),
      dmaPages: this.dmaPages,
      picSlave: this.pic.slave,
      debugExit: new DebugExit((v) => host.exit(v)),
      com1: this.uart,
      elcr: this.pic.elcr,
      pciConfig: this.pci,
    });
    if (placed !== undefined) throw new Error(`vmm platform: ${placed}`);
  }

  save(): VirtualPlatformState {
    return {
      version: 2,
      clock: this.clock.save(),
      pic: this.pic.save(),
      pit: this.pit.save(),
      uart: this.uart.save(),
      cmos: this.cmos.save(),
      keyboard: this.keyboard.save(),
      dmaPages: this.dmaPages.save(),
      pci: this.pci.save(),
      passthrough: this.passthrough.map((f) => f.save()),
      emulated: this.emulated.map((f) => f.save()),
      deviceLines: [...this.deviceLines],
    };
  }

  /**
   * Restores a snapshot into a platform built from the same configuration: its clock first, then
   * the devices (the UART brings its pending arrival back at its saved place), then the audit of
   * the clock's events. A StateError naming the field if it does not fit.
   */
  restore(s: VirtualPlatformState, path: string): void {
    VIRTUAL_PLATFORM(s, path);
    if (s.passthrough.length !== this.passthrough.length)
      throw new StateError(
        `${path}.passthrough: ${s.passthrough.length} functions, the configuration passes ${this.passthrough.length} through`,
      );
    this.clock.restore(s.clock, `${path}.clock`);
    this.pit.restore(s.pit, `${path}.pit`);
    this.uart.restore(s.uart, `${path}.uart`);
    this.cmos.restore(s.cmos, `${path}.cmos`);
    this.keyboard.restore(s.keyboard, `${path}.keyboard`);
    this.dmaPages.restore(s.dmaPages, `${path}.dmaPages`);
    this.pci.restore(s.pci, `${path}.pci`);
    this.passthrough.forEach((f, k) => f.restore(s.passthrough[k], `${path}.passthrough[${k}]`));
    if (s.emulated.length !== this.emulated.length)
      throw new StateError(
        `${path}.emulated: ${s.emulated.length} functions, the configuration emulates ${this.emulated.length}`,
      );
    this.emulated.forEach((f, k) => f.restore(s.emulated[k], `${path}.emulated[${k}]`));
    this.deviceLines.clear();
    for (const [irq, state] of s.deviceLines) this.deviceLines.set(irq, state);
    // After the devices that drive its lines (as the machine restores its own PIC).
    this.pic.restore(s.pic, `${path}.pic`);
    const missing = this.clock.unrestored(s.clock);
    if (missing !== undefined) throw new StateError(`${path}: ${missing}`);
  }

  read(port: number, size: AccessSize): number {
    return this.ports.read(port, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    this.ports.write(port, size, value);
    if ((port === 0x20 || port === 0xa0) && (value & 0x10) !== 0) this.edgesAfterIcw1(port);
    // A command (EOI) may end a line's service, a mask write (OCW1) release an ended line.
    const pic = port === 0x20 || port === 0x21 || port === 0xa0 || port === 0xa1;
    if (pic && this.deviceLines.size > 0) this.checkEoi();
  }

  /**
   * ICW1 resets the 8259's edge sense: an input that is already high must go low and high again
   * to request an interrupt (Intel 8259A datasheet, ICW1). The guest kernel enables COM1's
   * interrupt before it initialises its 8259s, so a byte typed before that would never be seen
   * (the UART holds it and waits to be read). The virtual platform presents an edge-triggered
   * line that is still high as a new edge; the IRQ stays in IRR until the guest unmasks it.
   */
  private edgesAfterIcw1(port: number): void {
    const chip = port === 0x20 ? this.pic.master : this.pic.slave;
    // Level-triggered inputs (ELCR) need no edge; master input 2 is the cascade.
    const high = chip.lines & ~chip.levelMask & (port === 0x20 ? ~0x04 : 0xff);
    for (let irq = 0; irq < 8; irq++) {
      if ((high & (1 << irq)) === 0) continue;
      const line = port === 0x20 ? irq : irq + 8;
      this.pic.setIrq(line, false);
      this.pic.setIrq(line, true);
    }
  }

  /**
   * Shows a real PCI function at 00:dev.0 whose interrupt arrives on line `irq`, level-triggered
   * as a PC's firmware routes PCI interrupts through the ELCR.
   */
  addPassthrough(dev: number, f: PassthroughPci, irq: number): string | undefined {
    const taken = this.pci.add(dev, 0, f);
    if (taken !== undefined) return taken;
    this.passthrough.push(f);
    this.deviceLines.set(irq, 'idle');
    const port = irq < 8 ? 0 : 1;
    this.pic.elcr.ioWrite(port, 1, this.pic.elcr.ioRead(port, 1) | (1 << (irq & 7)));
    return undefined;
  }

  /**
   * Shows a function the VMM emulates at 00:dev.0 whose interrupt is line `irq`, level-triggered
   * (the ELCR, as a PC's firmware routes PCI interrupts).
   */
  addEmulated(dev: number, f: EmulatedFunction, irq: number): string | undefined {
    const taken = this.pci.add(dev, 0, f);
    if (taken !== undefined) return taken;
    this.emulated.push(f);
    const port = irq < 8 ? 0 : 1;
    this.pic.elcr.ioWrite(port, 1, this.pic.elcr.ioRead(port, 1) | (1 << (irq & 7)));
    return undefined;
  }

  /** Bus access for an emulated function's BARs: the virtual port bus and the VMM's MMIO bus. */
  get buses(): BusAccess {
    return {
      registerPorts: (base, length, device) => this.ports.register(base, length, device),
      registerMmio: (base, length, device) => this.mmio.register(base, length, device),
    };
  }

  /** At the guest's `iret` or idle: what the emulated devices batched. */
  flush(): void {
    for (const f of this.flushers) f();
  }

  /** Wherever the VMM runs anyway: what the emulated devices time there (`pollers`). */
  poll(): void {
    for (const p of this.pollers) p();
  }

  /** The guest is about to sleep (`idlers`). */
  idle(): void {
    for (const i of this.idlers) i();
  }

  /**
   * The guest-physical frame of the emulated memory BAR the guest placed (one page of
   * registers: the VMM's DP83820 model's BAR1, the client link's BAR0), or undefined while it
   * has none.
   */
  emulatedMemoryFrame(): number | undefined {
    for (const f of this.emulated) {
      if ((f.configRead(0x04, 2) & 2) === 0) continue;
      for (const at of [0x10, 0x14]) {
        const bar = f.configRead(at, 4);
        if ((bar & 1) === 0 && (bar & ~0xfff) !== 0) return bar >>> 12;
      }
    }
    return undefined;
  }

  /**
   * The device's interrupt arrived (its pirq event): the line stays asserted until the guest's
   * EOI. The real line is masked meanwhile (the hypervisor masked it), so it cannot storm.
   */
  deviceInterrupt(irq: number): void {
    if (this.deviceLines.get(irq) !== 'idle') return;
    this.deviceLines.set(irq, 'asserted');
    this.pic.setIrq(irq, true);
  }

  /** The vector the next INTA would give, nothing acknowledged. */
  pendingVector(): number {
    return this.pic.pendingVector();
  }

  /** INTA of the virtual PIC (the VMM delivering an interrupt). */
  acknowledge(): number {
    const vector = this.pic.acknowledge();
    for (const [irq, state] of this.deviceLines) {
      if (state === 'asserted' && this.inService(irq)) this.deviceLines.set(irq, 'in-service');
    }
    return vector;
  }

  private inService(irq: number): boolean {
    const chip = irq < 8 ? this.pic.master : this.pic.slave;
    return (chip.isr & (1 << (irq & 7))) !== 0;
  }

  /** The guest has the line masked in its PIC's IMR (OCW1). */
  private masked(irq: number): boolean {
    const chip = irq < 8 ? this.pic.master : this.pic.slave;
    return (chip.imr & (1 << (irq & 7))) !== 0;
  }

  /**
   * After a write to a PIC port: a device line whose service ended is lowered and the real line
   * re-enabled (`deviceEoi`). A line the guest masked before its EOI (Linux's level-triggered
   * 8259 lines: mask and EOI, the handler, unmask) is re-enabled only at the unmask: on a PC the
   * PIC passes nothing before it, and by then the driver has quietened its device; re-enabled
   * at the EOI, the real line would take the device's level, still up while the handler runs,
   * as a second interrupt (Intel 8259A datasheet, OCW1: a masked input is not acknowledged).
   */
  private checkEoi(): void {
    for (const [irq, state] of this.deviceLines) {
      if (state === 'ended-masked') {
        if (this.masked(irq)) continue;
      } else {
        if (state !== 'in-service' || this.inService(irq)) continue;
        this.pic.setIrq(irq, false);
        if (this.masked(irq)) {
          this.deviceLines.set(irq, 'ended-masked');
          continue;
        }
      }
      this.deviceLines.set(irq, 'idle');
      this.host.deviceEoi(irq);
    }
  }
}
