/**
 * The 8254 programmable interval timer (Intel 8254 datasheet): three 16-bit down-counters at
 * 1.193182 MHz, ports 0x40–0x42 and the control word at 0x43. Modes 0 (interrupt on terminal
 * count), 2 (rate generator) and 3 (square wave) are modelled exactly; 1, 4 and 5 (hardware
 * and software strobes, no gate inputs here) behave as mode 0. Counter latch and read-back
 * commands. Channel 0's OUT drives IRQ 0. Nothing ticks per instruction: the counter value is
 * computed from the simulated clock, and OUT edges are events on it.
 */
import type {
  AccessSize,
  Clock,
  IrqLine,
  PortDevice,
  Stateful,
  Timer,
  TimerState,
} from '../../device.ts';
import { arrayOf, bool, checkState, nullable, num, shape, timer } from '../../state.ts';

export const PIT_HZ = 1_193_182;

export interface PitChannelState {
  mode: number;
  access: number;
  reload: number;
  /** Simulated cycle at which counting started from `reload` (null: not counting). */
  start: number | null;
  latched: number | null;
  status: number | null;
  writeLow: boolean;
  readLow: boolean;
  partial: number;
  /** The next OUT rising edge on the clock (channel 0 only; null when none is due). */
  edge: TimerState | null;
}

export interface PitState {
  version: 1;
  channels: PitChannelState[];
  /** Counter: OUT0 rising edges. */
  ticks: number;
}

const STATE = checkState<PitState>('8254', 1, {
  channels: arrayOf(
    shape<PitChannelState>({
      mode: num,
      access: num,
      reload: num,
      start: nullable(num),
      latched: nullable(num),
      status: nullable(num),
      writeLow: bool,
      readLow: bool,
      partial: num,
      edge: nullable(timer),
    }),
    3,
  ),
  ticks: num,
});

class Channel {
  mode = 0;
  /** Access mode from the control word: 1 low byte, 2 high byte, 3 low then high. */
  access = 3;
  reload = 0x10000;
  start: number | undefined = undefined;
  latched: number | undefined = undefined;
  status: number | undefined = undefined;
  writeLow = true;
  readLow = true;
  partial = 0;
  timer: Timer | undefined;
}

export class Pit implements PortDevice, Stateful<PitState> {
  readonly name = 'pit';
  private readonly channels = [new Channel(), new Channel(), new Channel()];
  /** OUT0 rising edges (timer interrupts raised). */
  ticks = 0;

  constructor(
    private readonly clock: Clock,
    private readonly irq0: IrqLine,
  ) {}

  private get cyclesPerTick(): number {
    return this.clock.hz / PIT_HZ;
  }

  /** PIT input-clock ticks since the channel started counting. */
  private elapsed(ch: Channel): number {
    if (ch.start === undefined) return 0;
    return Math.floor((this.clock.now() - ch.start) / this.cyclesPerTick);
  }

  private count(ch: Channel): number {
    if (ch.start === undefined) return ch.reload & 0xffff;
    const e = this.elapsed(ch);
    if (ch.mode === 2 || ch.mode === 3) {
      const step = ch.mode === 3 ? 2 : 1; // mode 3 counts down by two per half period
      const period = ch.reload;
      const within = e % (ch.mode === 3 ? Math.ceil(period / 2) : period);
      return (period - within * step) & 0xffff;
    }
    return (ch.reload - e) & 0xffff;
  }

  private out(ch: Channel): boolean {
    if (ch.start === undefined) return ch.mode !== 0;
    const e = this.elapsed(ch);
    if (ch.mode === 2) return e % ch.reload !== ch.reload - 1;
    if (ch.mode === 3) return e % ch.reload < Math.ceil(ch.reload / 2);
    return e >= ch.reload;
  }

  /** Schedules channel 0's next OUT rising edge, where IRQ 0 fires. */
  private schedule(ch: Channel, index: number): void {
    ch.timer?.cancel();
    ch.timer = undefined;
    if (index !== 0 || ch.start === undefined) return;
    const e = this.elapsed(ch);
    let next: number;
    if (ch.mode === 2 || ch.mode === 3) next = (Math.floor(e / ch.reload) + 1) * ch.reload;
    else if (e < ch.reload) next = ch.reload;
    else return;
    ch.timer = this.clock.at(
      ch.start + Math.ceil(next * this.cyclesPerTick),
      () => this.edge(ch),
      'pit',
    );
  }

  /** Channel 0's OUT rises: IRQ 0 gets its edge, and the next one is scheduled. */
  private edge(ch: Channel): void {
    this.ticks++;
    this.irq0.set(true);
    this.irq0.set(false);
    this.schedule(ch, 0);
  }

  ioRead(offset: number, _size: AccessSize): number {
    if (offset === 3) return 0xff;
    const ch = this.channels[offset];
    if (ch.status !== undefined) {
      const s = ch.status;
      ch.status = undefined;
      return s;
    }
    const value = ch.latched ?? this.count(ch);
    let byte: number;
    if (ch.access === 1) byte = value & 0xff;
    else if (ch.access === 2) byte = value >> 8;
    else {
      byte = ch.readLow ? value & 0xff : value >> 8;
      ch.readLow = !ch.readLow;
      if (!ch.readLow) return byte;
    }
    ch.latched = undefined;
    return byte;
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    if (offset === 3) {
      this.control(value);
      return;
    }
    const ch = this.channels[offset];
    if (ch.access === 1) this.load(ch, offset, value);
    else if (ch.access === 2) this.load(ch, offset, value << 8);
    else if (ch.writeLow) {
      ch.partial = value;
      ch.writeLow = false;
      if (ch.mode === 0) ch.start = undefined; // mode 0: writing the low byte stops counting
    } else {
      ch.writeLow = true;
      this.load(ch, offset, ch.partial | (value << 8));
    }
  }

  private load(ch: Channel, index: number, count: number): void {
    ch.reload = count === 0 ? 0x10000 : count;
    ch.start = this.clock.now();
    this.schedule(ch, index);
  }

  private control(value: number): void {
    const select = value >> 6;
    if (select === 3) {
      // Read-back (8254 only): bits 1–3 select channels; bit 5 clear latches counts, bit 4
      // clear latches status.
      for (let k = 0; k < 3; k++) {
        if ((value & (2 << k)) === 0) continue;
        const ch = this.channels[k];
        if ((value & 0x20) === 0 && ch.latched === undefined) ch.latched = this.count(ch);
        if ((value & 0x10) === 0 && ch.status === undefined) {
          ch.status = (this.out(ch) ? 0x80 : 0) | (ch.access << 4) | (ch.mode << 1);
        }
      }
      return;
    }
    const ch = this.channels[select];
    const access = (value >> 4) & 3;
    if (access === 0) {
      if (ch.latched === undefined) ch.latched = this.count(ch); // counter latch command
      return;
    }
    ch.access = access;
    ch.mode = (value >> 1) & 7;
    if (ch.mode > 5) ch.mode -= 4; // 6 and 7 are aliases of 2 and 3
    ch.writeLow = true;
    ch.readLow = true;
    ch.latched = undefined;
    ch.start = undefined;
    this.schedule(ch, select);
  }

  save(): PitState {
    return {
      version: 1,
      channels: this.channels.map((c) => ({
        mode: c.mode,
        access: c.access,
        reload: c.reload,
        start: c.start ?? null,
        latched: c.latched ?? null,
        status: c.status ?? null,
        writeLow: c.writeLow,
        readLow: c.readLow,
        partial: c.partial,
        edge: c.timer === undefined ? null : { cycle: c.timer.cycle, seq: c.timer.seq },
      })),
      ticks: this.ticks,
    };
  }

  /** The channels again, channel 0's next edge at its saved place on the (restored) clock. */
  restore(state: PitState, path = 'pit'): void {
    STATE(state, path);
    state.channels.forEach((s, k) => {
      const ch = this.channels[k];
      ch.mode = s.mode;
      ch.access = s.access;
      ch.reload = s.reload;
      ch.start = s.start ?? undefined;
      ch.latched = s.latched ?? undefined;
      ch.status = s.status ?? undefined;
      ch.writeLow = s.writeLow;
      ch.readLow = s.readLow;
      ch.partial = s.partial;
      ch.timer?.cancel();
      ch.timer =
        s.edge === null ? undefined : this.clock.restoreAt(s.edge, () => this.edge(ch), 'pit');
    });
    this.ticks = state.ticks;
  }
}
