/**
 * PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, 3.2.2.3.2) on bus 0: the
 * CONFIG_ADDRESS register at 0xCF8 (32-bit, reads back what was written) and CONFIG_DATA at
 * 0xCFC–0xCFF. Device 0 is the host bridge itself (an i440FX, as QEMU's pc machine has); other
 * functions are added by the machine. Absent functions read all ones.
 */
import type { AccessSize, PciFunction, PortDevice, Stateful } from '../../device.ts';
import { checkState, num } from '../../state.ts';
import { configSpaceRead } from './configSpace.ts';

/**
 * The bridge's own state is CONFIG_ADDRESS; each function's configuration space is that
 * function's state (the host bridge function's header is fixed).
 */
export interface PciHostBridgeState {
  version: 1;
  address: number;
}

const STATE = checkState<PciHostBridgeState>('PCI host bridge', 1, { address: num });

/** A function with a fixed configuration header and nothing to program: the host bridge. */
class HostBridgeFunction implements PciFunction {
  readonly name = 'host-bridge';
  private readonly config = new Uint8Array(256);
  constructor() {
    const v = new DataView(this.config.buffer);
    v.setUint16(0x00, 0x8086, true); // Intel
    v.setUint16(0x02, 0x1237, true); // 440FX
    v.setUint16(0x04, 0x0006, true); // memory space, bus master
    v.setUint8(0x08, 0x02); // revision
    v.setUint8(0x0b, 0x06); // class: bridge
    v.setUint8(0x0a, 0x00); // subclass: host bridge
  }
  configRead(offset: number, size: AccessSize): number {
    return configSpaceRead(this.config, offset, size);
  }
  configWrite(): void {}
}

export class PciHostBridge implements PortDevice, Stateful<PciHostBridgeState> {
  readonly name = 'pci-host';
  private address = 0;
  private readonly functions = new Map<number, PciFunction>();

  constructor() {
    this.functions.set(0, new HostBridgeFunction());
  }

  /** Places a function at device `device` (1–31), function `fn` (0–7) of bus 0. */
  add(device: number, fn: number, f: PciFunction): string | undefined {
    if (
      !Number.isInteger(device) ||
      device < 0 ||
      device > 31 ||
      !Number.isInteger(fn) ||
      fn < 0 ||
      fn > 7
    )
      return `${f.name}: PCI device ${device} function ${fn} does not exist (device 0-31, function 0-7)`;
    const key = (device << 3) | fn;
    const holder = this.functions.get(key);
    if (holder !== undefined)
      return `PCI 00:${device.toString(16).padStart(2, '0')}.${fn} is taken by ${holder.name}`;
    this.functions.set(key, f);
    return undefined;
  }

  /**
   * The functions that raise an interrupt, in device order: INTx# from configuration byte 0x3D
   * (1 = INTA#) and the ISA line the BIOS routed it to from byte 0x3C (for the MP table).
   */
  interrupts(): { device: number; fn: number; pin: number; line: number }[] {
    return [...this.functions.entries()]
      .sort(([a], [b]) => a - b)
      .map(([key, f]) => ({
        device: key >> 3,
        fn: key & 7,
        pin: f.configRead(0x3d, 1),
        line: f.configRead(0x3c, 1),
      }))
      .filter((i) => i.pin >= 1 && i.pin <= 4 && i.line < 16);
  }

  ioRead(offset: number, size: AccessSize): number {
    if (offset < 4)
      return offset === 0 && size === 4 ? this.address : 0xffffffff >>> (32 - size * 8);
    const f = this.selected();
    if (f === undefined) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    return f.configRead((this.address & 0xfc) + (offset - 4), size);
  }

  ioWrite(offset: number, size: AccessSize, value: number): void {
    if (offset < 4) {
      if (offset === 0 && size === 4) this.address = (value & 0x80fffffc) >>> 0;
      return;
    }
    this.selected()?.configWrite((this.address & 0xfc) + (offset - 4), size, value);
  }

  private selected(): PciFunction | undefined {
    const a = this.address;
    if ((a & 0x80000000) === 0 || ((a >> 16) & 0xff) !== 0) return undefined;
    return this.functions.get((a >> 8) & 0xff);
  }

  save(): PciHostBridgeState {
    return { version: 1, address: this.address };
  }

  restore(state: PciHostBridgeState, path = 'pci'): void {
    STATE(state, path);
    this.address = (state.address & 0x80fffffc) >>> 0;
  }
}
