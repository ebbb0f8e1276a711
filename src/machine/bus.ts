import type { AccessSize, MmioDevice, PortDevice, Registration } from './device.ts';

interface Range<D> {
  base: number;
  length: number;
  device: D;
}

/**
 * An address-decoding bus (port I/O or MMIO) that refuses overlapping registrations with a
 * message naming both devices (STYLE.md principle 2). Unclaimed reads float high (all ones), as
 * on a PC; unclaimed writes are dropped. Both are counted.
 */
class Bus<D extends { readonly name: string }> {
  private ranges: Range<D>[] = [];
  unclaimedReads = 0;
  unclaimedWrites = 0;

  constructor(private readonly kind: string) {}

  register(base: number, length: number, device: D): Registration | string {
    if (length <= 0) return `${device.name}: empty ${this.kind} range`;
    const end = base + length;
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < end) {
        return `${device.name} at ${hex(base)}–${hex(end - 1)} overlaps ${r.device.name} at ${hex(r.base)}–${hex(r.base + r.length - 1)} on the ${this.kind} bus`;
      }
    }
    const range = { base, length, device };
    this.ranges.push(range);
    this.ranges.sort((a, b) => a.base - b.base);
    return {
      remove: () => {
        this.ranges = this.ranges.filter((r) => r !== range);
      },
    };
  }

  find(address: number): Range<D> | undefined {
    for (const r of this.ranges) {
      if (address >= r.base && address < r.base + r.length) return r;
    }
    return undefined;
  }
}

const hex = (v: number): string => `0x${v.toString(16)}`;
const ones = (size: AccessSize): number => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);

export class PortBus extends Bus<PortDevice> {
  constructor() {
    super('port');
  }

  read(port: number, size: AccessSize): number {
    const r = this.find(port);
    if (r === undefined) {
      this.unclaimedReads++;
      return ones(size);
    }
    return r.device.ioRead(port - r.base, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    const r = this.find(port);
    if (r === undefined) this.unclaimedWrites++;
    else r.device.ioWrite(port - r.base, size, value);
  }
}

export class MmioBus extends Bus<MmioDevice> {
  constructor() {
    super('MMIO');
  }

  read(address: number, size: AccessSize): number {
    const r = this.find(address);
    if (r === undefined) {
      this.unclaimedReads++;
      return ones(size);
    }
    return r.device.mmioRead(address - r.base, size);
  }

  write(address: number, size: AccessSize, value: number): void {
    const r = this.find(address);
    if (r === undefined) this.unclaimedWrites++;
    else r.device.mmioWrite(address - r.base, size, value);
  }
}
