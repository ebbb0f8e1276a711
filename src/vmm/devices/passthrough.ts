/**
 * A PCI function passed through to the guest (the seed's netperf setup gave the guest the real
 * DP83820): the guest sees the real function's configuration space, reached through the backend
 * (through its hypervisor), except the base address registers. Those are virtual: the guest sizes
 * and places them as on a PC without firmware (PCI 3.0, 6.2.5.1), while the real BARs stay
 * where the hypervisor put them; the VMM translates the guest's frames in a memory BAR to the
 * real ones when the guest maps them.
 */
import type { AccessSize, PciFunction } from '../../machine/device.ts';
import { arrayOf, num } from '../../machine/state.ts';

/** The real function's configuration space, as the backend reaches it. */
export interface PciConfigPort {
  read(offset: number, size: AccessSize): number;
  write(offset: number, size: AccessSize, value: number): void;
}

/** One real BAR: its index (0–5), kind, machine address, size in bytes, read-only low bits. */
export interface RealBar {
  index: number;
  io: boolean;
  machine: number;
  size: number;
  /** The BAR's flag bits (I/O: bit 0; memory: type and prefetchable, bits 0–3). */
  flags: number;
}

const BAR_FIRST = 0x10;
const BAR_END = 0x28;

export class PassthroughPci implements PciFunction {
  /** The six BAR dwords as the guest wrote them (flag bits from the real BARs). */
  private readonly guestBars = new Uint32Array(6);
  private readonly bars: (RealBar | undefined)[] = new Array<RealBar | undefined>(6);

  constructor(
    readonly name: string,
    private readonly real: PciConfigPort,
    bars: RealBar[],
  ) {
    for (const b of bars) {
      this.bars[b.index] = b;
      this.guestBars[b.index] = b.flags & (b.io ? 0x3 : 0xf);
    }
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset < BAR_FIRST || offset >= BAR_END) return this.real.read(offset, size);
    const dword = this.guestBars[(offset - BAR_FIRST) >> 2];
    const shift = (offset & 3) * 8;
    return size === 4 ? dword : (dword >>> shift) & (size === 2 ? 0xffff : 0xff);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    if (offset < BAR_FIRST || offset >= BAR_END) {
      this.real.write(offset, size, value);
      return;
    }
    const index = (offset - BAR_FIRST) >> 2;
    const bar = this.bars[index];
    if (bar === undefined) return; // an unimplemented BAR reads 0
    const shift = (offset & 3) * 8;
    const mask = size === 4 ? 0xffffffff : ((size === 2 ? 0xffff : 0xff) << shift) >>> 0;
    const merged = ((this.guestBars[index] & ~mask) | ((value << shift) & mask)) >>> 0;
    // The address bits below the size read back 0 (that is how the guest sizes the BAR).
    const flags = bar.io ? 0x3 : 0xf;
    this.guestBars[index] =
      ((merged & ~(bar.size - 1) & ~flags) | (this.guestBars[index] & flags)) >>> 0;
  }

  /** The BARs as the guest placed them (the rest of its configuration space is the device's). */
  save(): number[] {
    return [...this.guestBars];
  }

  restore(bars: number[], path: string): void {
    arrayOf(num, 6)(bars, path);
    this.guestBars.set(bars);
  }

  /** Where the guest placed a BAR (its address bits). */
  guestBase(index: number): number {
    const bar = this.bars[index];
    return bar === undefined ? 0 : (this.guestBars[index] & ~(bar.io ? 0x3 : 0xf)) >>> 0;
  }

  /** The machine frame behind a guest frame in a memory BAR, or undefined. */
  machineFrame(guestFrame: number): number | undefined {
    for (const bar of this.bars) {
      if (bar === undefined || bar.io) continue;
      const base = this.guestBase(bar.index);
      const at = guestFrame * 4096;
      if (base !== 0 && at >= base && at < base + bar.size)
        return (bar.machine + (at - base)) / 4096;
    }
    return undefined;
  }

  /** The guest frame a machine frame of a memory BAR shows as, or undefined. */
  guestFrame(machineFrame: number): number | undefined {
    for (const bar of this.bars) {
      if (bar === undefined || bar.io) continue;
      const at = machineFrame * 4096;
      const base = this.guestBase(bar.index);
      if (base !== 0 && at >= bar.machine && at < bar.machine + bar.size)
        return (base + (at - bar.machine)) / 4096;
    }
    return undefined;
  }
}
