/**
 * The virtual 8254 (Intel 8254 datasheet): channel 0 only does anything; its rate becomes the
 * hypervisor timer. The guest programs a rate (mode 2 or 3, low then high byte); the VMM turns
 * each period into a one-shot deadline of the backend's timer and raises IRQ 0 when it fires.
 * Counter reads are computed from the backend's time.
 */
import type { AccessSize, PortDevice } from '../../machine/device.ts';
import { bool, checkState, nullable, num, type Check } from '../../machine/state.ts';

export const PIT_HZ = 1193182;

export interface PitHost {
  /** Nanoseconds of the backend's system time. */
  nowNs(): number;
  /** Channel 0 now runs with this period (ns), counting from now; 0 stops it. */
  programmed(periodNs: number): void;
}

/** Channel 0's programming in a snapshot (its deadlines are the VMM's timer schedule). */
export interface VirtualPitState {
  version: 1;
  reload: number;
  access: number;
  lowNext: boolean;
  latch: number | null;
  readLow: boolean;
  startNs: number;
  pendingLow: number;
  running: boolean;
}

const VIRTUAL_PIT: Check = checkState<VirtualPitState>('virtual PIT', 1, {
  reload: num,
  access: num,
  lowNext: bool,
  latch: nullable(num),
  readLow: bool,
  startNs: num,
  pendingLow: num,
  running: bool,
});

export class VirtualPit implements PortDevice {
  readonly name = 'vpit';
  private reload = 0x10000;
  private access = 3;
  private lowNext = true;
  private latch: number | undefined;
  private readLow = true;
  private startNs = 0;
  private pendingLow = 0;
  running = false;

  constructor(private readonly host: PitHost) {}

  save(): VirtualPitState {
    return {
      version: 1,
      reload: this.reload,
      access: this.access,
      lowNext: this.lowNext,
      latch: this.latch ?? null,
      readLow: this.readLow,
      startNs: this.startNs,
      pendingLow: this.pendingLow,
      running: this.running,
    };
  }

  restore(s: VirtualPitState, path: string): void {
    VIRTUAL_PIT(s, path);
    this.reload = s.reload;
    this.access = s.access;
    this.lowNext = s.lowNext;
    this.latch = s.latch ?? undefined;
    this.readLow = s.readLow;
    this.startNs = s.startNs;
    this.pendingLow = s.pendingLow;
    this.running = s.running;
  }

  get periodNs(): number {
    return (this.reload * 1e9) / PIT_HZ;
  }

  ioRead(offset: number, _size: AccessSize): number {
    if (offset !== 0) return 0;
    const count = this.latch ?? this.count();
    const low = this.access === 1 || (this.access === 3 && this.readLow);
    if (this.access === 3) this.readLow = !this.readLow;
    if (this.access !== 3 || this.readLow) this.latch = undefined;
    return low ? count & 0xff : (count >>> 8) & 0xff;
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    if (offset === 3) {
      if (value >>> 6 !== 0) return; // channels 1 and 2 are not wired to anything here
      const access = (value >>> 4) & 3;
      if (access === 0) {
        this.latch = this.count(); // counter latch command
        this.readLow = true;
        return;
      }
      this.access = access;
      this.lowNext = true;
      this.readLow = true;
      return;
    }
    if (offset !== 0) return;
    if (this.access === 3 && this.lowNext) {
      this.pendingLow = value;
      this.lowNext = false;
      return;
    }
    const reload =
      this.access === 3 ? this.pendingLow | (value << 8) : this.access === 1 ? value : value << 8;
    this.lowNext = true;
    this.reload = reload === 0 ? 0x10000 : reload;
    this.startNs = this.host.nowNs();
    this.running = true;
    this.host.programmed(this.periodNs);
  }

  private count(): number {
    if (!this.running) return 0;
    const elapsed = this.host.nowNs() - this.startNs;
    const ticks = Math.floor((elapsed * PIT_HZ) / 1e9);
    return this.reload - (ticks % this.reload);
  }
}
