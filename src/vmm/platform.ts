/**
 * The PC platform the guest expects, as virtual devices inside the VMM (DESIGN.md decision 7):
 * the cascaded 8259s (the machine's own model, driven by virtual lines), the 8254 channel 0 on
 * the backend's timer, COM1 on the backend's console, the CMOS clock on the backend's time,
 * PCI configuration mechanism #1 with the host bridge, isa-debug-exit, the POST port and the
 * keyboard controller's reset. A port nobody claims reads all ones and ignores writes, as an
 * empty ISA bus does.
 */
import { PortBus } from '../machine/bus.ts';
import type { AccessSize, Clock, PortDevice } from '../machine/device.ts';
import { Cmos } from '../machine/devices/legacy/cmos.ts';
import { DualPic } from '../machine/devices/legacy/pic.ts';
import { PciHostBridge } from '../machine/devices/pci/hostBridge.ts';
import { VirtualPit, type PitHost } from './devices/pit.ts';
import { VirtualUart } from './devices/uart.ts';

export interface PlatformHost extends PitHost {
  /** The virtual PIC's output to the virtual CPU. */
  interruptLine(level: boolean): void;
  consoleByte(byte: number): void;
  /** isa-debug-exit (0xF4) and the keyboard controller's reset (0x64 ← 0xFE). */
  exit(status: number): void;
  reset(): void;
  /** Seconds since the Unix epoch the RTC shows at system time 0. */
  rtcStartSeconds: number;
}

export class VirtualPlatform {
  readonly ports = new PortBus();
  readonly pic: DualPic;
  readonly pit: VirtualPit;
  readonly uart: VirtualUart;
  readonly pci = new PciHostBridge();

  constructor(host: PlatformHost) {
    this.pic = new DualPic((level) => host.interruptLine(level));
    this.pit = new VirtualPit(host);
    this.uart = new VirtualUart(
      (b) => host.consoleByte(b),
      (level) => this.pic.setIrq(4, level),
    );
    // The RTC reads the backend's time: a clock in nanoseconds.
    const clock: Clock = {
      hz: 1e9,
      now: () => host.nowNs(),
      at: () => ({ cancel: () => {} }),
    };
    const devices: [number, number, PortDevice][] = [
      [0x20, 2, this.pic.master],
      [0xa0, 2, this.pic.slave],
      [0x40, 4, this.pit],
      [0x60, 5, keyboard(() => host.reset())],
      [0x70, 2, new Cmos(clock, host.rtcStartSeconds)],
      [0x80, 1, { name: 'post', ioRead: () => 0xff, ioWrite: () => {} }],
      [
        0xf4,
        4,
        { name: 'debug-exit', ioRead: () => 0xff, ioWrite: (_o, _s, v) => host.exit(v & 0xff) },
      ],
      [0x3f8, 8, this.uart],
      [0xcf8, 8, this.pci],
      [0x4d0, 2, this.pic.elcr],
    ];
    for (const [base, length, device] of devices) {
      const r = this.ports.register(base, length, device);
      if (typeof r === 'string') throw new Error(`vmm platform: ${r}`);
    }
  }

  read(port: number, size: AccessSize): number {
    return this.ports.read(port, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    this.ports.write(port, size, value);
  }
}

function keyboard(reset: () => void): PortDevice {
  return {
    name: 'kbd',
    ioRead: (offset) => (offset === 4 ? 0x1c : 0),
    ioWrite: (offset, _size, value) => {
      if (offset === 4 && (value & 0xff) === 0xfe) reset();
    },
  };
}
