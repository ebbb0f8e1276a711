/**
 * QEMU's pc-testdev (hw/misc/pc-testdev.c), the device kvm-unit-tests' emulator and event tests
 * drive when it is there: a 32-bit scratch register at port 0xE0 that reads back what was
 * written, port 0xE4 ("flush page": QEMU makes KVM drop a page's mappings; nothing to do for
 * an emulated CPU, whose TLB the guest manages itself), ports 0x2000–0x2017 that set ISA IRQ
 * line n to the value written (previrt's PC has lines 0–15; writes to the others are dropped),
 * and 64 KB of memory at 0xFF000000 that is MMIO, so every access to it goes through the
 * emulated bus (what the emulator test wants to exercise). Only with `previrt`'s test devices
 * on (MachineConfig.testDevices).
 */
import type { AccessSize, IrqLine, MmioDevice, PortDevice, Stateful } from '../../device.ts';
import { bytes, checkState, decodeBytes, encodeBytes, num } from '../../state.ts';

export const PC_TESTDEV = {
  ioport: 0xe0,
  flushPage: 0xe4,
  irqBase: 0x2000,
  irqLines: 24,
  iomemBase: 0xff000000,
  iomemLength: 0x10000,
} as const;

export interface PcTestdevState {
  version: 1;
  /** The scratch register at 0xE0. */
  ioport: number;
  /** The 64 KB window, base64. */
  iomem: string;
}

const STATE = checkState<PcTestdevState>('pc-testdev', 1, { ioport: num, iomem: bytes });

export class PcTestdev implements Stateful<PcTestdevState> {
  private ioportData = 0;
  private readonly memory = new Uint8Array(PC_TESTDEV.iomemLength);

  constructor(private readonly irq: (line: number) => IrqLine | undefined) {}

  /** Ports 0xE0–0xE7: the scratch register (byte lanes at offsets 0–3) and the flush port. */
  readonly ports: PortDevice = {
    name: 'pc-testdev',
    ioRead: (offset, size) => {
      if (offset >= 4) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
      return (this.ioportData >>> (offset * 8)) & mask(size);
    },
    ioWrite: (offset, size, value) => {
      if (offset >= 4) return; // 0xE4: flush page, nothing to flush here
      const m = mask(size) << (offset * 8);
      this.ioportData = ((this.ioportData & ~m) | ((value << (offset * 8)) & m)) >>> 0;
    },
  };

  /** Ports 0x2000–0x2017: a write sets ISA IRQ line (port − 0x2000) to the value (non-zero: high). */
  readonly irqPorts: PortDevice = {
    name: 'pc-testdev-irq',
    ioRead: (_offset, size) => mask(size),
    // GUEST-CONTROLLED: the line (0–23) and the value.
    ioWrite: (offset, _size, value) => this.irq(offset)?.set(value !== 0),
  };

  /** The memory window at 0xFF000000, little-endian, any width. */
  readonly iomem: MmioDevice = {
    name: 'pc-testdev-iomem',
    mmioRead: (offset, size) => {
      let v = 0;
      for (let k = 0; k < size && offset + k < this.memory.length; k++)
        v |= this.memory[offset + k] << (8 * k);
      return v >>> 0;
    },
    mmioWrite: (offset, size, value) => {
      for (let k = 0; k < size && offset + k < this.memory.length; k++)
        this.memory[offset + k] = (value >>> (8 * k)) & 0xff;
    },
  };

  save(): PcTestdevState {
    return { version: 1, ioport: this.ioportData, iomem: encodeBytes(this.memory) };
  }

  restore(state: PcTestdevState, path = 'pc-testdev'): void {
    STATE(state, path);
    const memory = decodeBytes(state.iomem, `${path}.iomem`, PC_TESTDEV.iomemLength);
    this.ioportData = state.ioport >>> 0;
    this.memory.set(memory);
  }
}

function mask(size: AccessSize): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}
