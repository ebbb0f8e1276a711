/**
 * The virtual 8254 (Intel 8254 datasheet): channel 0's rate becomes the hypervisor timer. The
 * guest programs a rate (mode 2 or 3, low then high byte); the VMM turns each period into a
 * one-shot deadline of the backend's timer and raises IRQ 0 when it fires. Channels 1 and 2
 * drive nothing but count, as on the PC (their gates are always open here), so a kernel can time
 * its TSC against channel 2 (Linux's quick_pit_calibrate). Counter reads are computed from the
 * backend's time.
 */
import type { AccessSize, PortDevice } from '../../machine/device.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  shape,
  StateError,
  type Check,
} from '../../machine/state.ts';

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
  /** Channels 1 and 2 (absent: never programmed). */
  counters?: CounterState[];
}

/** A channel that only counts (1 or 2) in a snapshot. */
export interface CounterState {
  mode: number;
  access: number;
  reload: number;
  lowNext: boolean;
  pendingLow: number;
  latch: number | null;
  readLow: boolean;
  /** When counting started (ns of the backend's time); null: not programmed. */
  startNs: number | null;
}

const COUNTER: Check = shape<CounterState>({
  mode: num,
  access: num,
  reload: num,
  lowNext: bool,
  pendingLow: num,
  latch: nullable(num),
  readLow: bool,
  startNs: nullable(num),
});

const VIRTUAL_PIT: Check = checkState<VirtualPitState>('virtual PIT', 1, {
  reload: num,
  access: num,
  lowNext: bool,
  latch: nullable(num),
  readLow: bool,
  startNs: num,
  pendingLow: num,
  running: bool,
  counters: (v, path) => {
    if (v === undefined) return;
    arrayOf(COUNTER)(v, path);
    if ((v as unknown[]).length !== 2) throw new StateError(`${path}: 2 channels expected`);
  },
});

/** How a channel's count is written and read (the control word's access mode, datasheet). */
interface CountAccess {
  access: number;
  reload: number;
  lowNext: boolean;
  pendingLow: number;
  latch: number | undefined;
  readLow: boolean;
}

/** A count byte written (LSB, MSB, or LSB then MSB): true once `reload` holds a new count. */
function writeCount(c: CountAccess, value: number): boolean {
  if (c.access === 3 && c.lowNext) {
    c.pendingLow = value;
    c.lowNext = false;
    return false;
  }
  const reload = c.access === 3 ? c.pendingLow | (value << 8) : c.access === 1 ? value : value << 8;
  c.lowNext = true;
  c.reload = reload === 0 ? 0x10000 : reload;
  return true;
}

/** A byte of the latched count, or of `count` (the counter now). */
function readCount(c: CountAccess, count: number): number {
  const value = c.latch ?? count;
  const low = c.access === 1 || (c.access === 3 && c.readLow);
  if (c.access === 3) c.readLow = !c.readLow;
  if (c.access !== 3 || c.readLow) c.latch = undefined;
  return low ? value & 0xff : (value >>> 8) & 0xff;
}

/** Channel 1 or 2: programmed and read like channel 0, counting from the backend's time. */
class Counter {
  mode = 0;
  access = 3;
  reload = 0x10000;
  lowNext = true;
  pendingLow = 0;
  latch: number | undefined;
  readLow = true;
  startNs: number | undefined;

  control(value: number, nowNs: number): void {
    const access = (value >>> 4) & 3;
    if (access === 0) {
      this.latch = this.count(nowNs);
      this.readLow = true;
      return;
    }
    this.access = access;
    this.mode = (value >>> 1) & 7;
    this.lowNext = true;
    this.readLow = true;
    this.startNs = undefined;
  }

  write(value: number, nowNs: number): void {
    if (writeCount(this, value)) this.startNs = nowNs;
  }

  read(nowNs: number): number {
    return readCount(this, this.count(nowNs));
  }

  /**
   * Modes 2 and 3 reload at terminal count; the others count on through 0 to 0xFFFF (datasheet,
   * mode 0: "the counter continues counting").
   */
  private count(nowNs: number): number {
    if (this.startNs === undefined) return 0;
    const ticks = Math.floor(((nowNs - this.startNs) * PIT_HZ) / 1e9);
    const periodic = (this.mode & 3) === 2 || (this.mode & 3) === 3;
    if (periodic) return this.reload - (ticks % this.reload);
    return (((this.reload - ticks) % 0x10000) + 0x10000) % 0x10000;
  }

  save(): CounterState {
    return {
      mode: this.mode,
      access: this.access,
      reload: this.reload,
      lowNext: this.lowNext,
      pendingLow: this.pendingLow,
      latch: this.latch ?? null,
      readLow: this.readLow,
      startNs: this.startNs ?? null,
    };
  }

  restore(s: CounterState): void {
    this.mode = s.mode;
    this.access = s.access;
    this.reload = s.reload;
    this.lowNext = s.lowNext;
    this.pendingLow = s.pendingLow;
    this.latch = s.latch ?? undefined;
    this.readLow = s.readLow;
    this.startNs = s.startNs ?? undefined;
  }
}

export class VirtualPit implements PortDevice {
  readonly name = 'vpit';
  reload = 0x10000;
  access = 3;
  lowNext = true;
  latch: number | undefined;
  readLow = true;
  private startNs = 0;
  pendingLow = 0;
  running = false;
  /** Channels 1 and 2; `touched` once the guest programmed either (only then saved). */
  private readonly counters = [new Counter(), new Counter()];
  private touched = false;

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
      ...(this.touched ? { counters: this.counters.map((c) => c.save()) } : {}),
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
    this.touched = s.counters !== undefined;
    const fresh = new Counter().save();
    this.counters.forEach((c, k) => c.restore(s.counters?.[k] ?? fresh));
  }

  get periodNs(): number {
    return (this.reload * 1e9) / PIT_HZ;
  }

  ioRead(offset: number, _size: AccessSize): number {
    if (offset === 1 || offset === 2) return this.counters[offset - 1].read(this.host.nowNs());
    if (offset !== 0) return 0;
    return readCount(this, this.count());
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    if (offset === 3) {
      const channel = value >>> 6;
      if (channel === 3) return; // read-back: not offered
      if (channel !== 0) {
        this.touched = true;
        this.counters[channel - 1].control(value, this.host.nowNs());
        return;
      }
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
    if (offset === 1 || offset === 2) {
      this.touched = true;
      this.counters[offset - 1].write(value, this.host.nowNs());
      return;
    }
    if (offset !== 0 || !writeCount(this, value)) return;
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
