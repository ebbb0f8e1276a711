/**
 * A full-duplex Ethernet link on the simulated clock. Each direction serialises its frames one
 * after another: a frame occupies the wire for (preamble and SFD 8 + frame with FCS + inter-frame
 * gap 12) bytes × 8 bit times (IEEE 802.3 clause 4.4.2: 96-bit IFG, 64-bit preamble + SFD), and
 * arrives at the far end when its last bit does. A seeded fault injector can drop, duplicate,
 * reorder and corrupt frames (for tests); everything is deterministic for a given seed.
 *
 * Frames in flight are data: each direction keeps its pending deliveries (the frame and its place
 * on the clock) and the frame it holds back to reorder, so a snapshot carries them (LinkState).
 */
import { Mulberry32 } from '../random.ts';
import type { Clock, Stateful, Timer, TimerState } from '../device.ts';
import {
  arrayOf,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  nullable,
  num,
  shape,
  StateError,
  timer,
} from '../state.ts';

/** Something that takes frames (with FCS) off the wire. */
export interface EthernetReceiver {
  receive(frame: Uint8Array): void;
}

export interface FaultConfig {
  seed: number;
  drop?: number;
  duplicate?: number;
  reorder?: number;
  corrupt?: number;
}

export interface LinkCounters {
  frames: number;
  bytes: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  oversize: number;
}

/** A direction's state: its wire, the frames on it and the one held back, its counters. */
export interface LinkDirectionState {
  busyUntil: number;
  held: string | null;
  /** Frames (with FCS) that will reach the far end, with their places on the clock. */
  inFlight: { at: TimerState; frame: string }[];
  counters: LinkCounters;
}

export interface LinkState {
  version: 1;
  /** The fault injector's settings (every chance given, 0 when off) and its generator's state. */
  faults: Required<FaultConfig> | null;
  random: number;
  /** By sending end: [0] from end 0 (the machine's NIC) to end 1, [1] the other way. */
  directions: LinkDirectionState[];
}

const DIRECTION = shape<LinkDirectionState>({
  busyUntil: num,
  held: nullable(bytes),
  inFlight: arrayOf(shape<{ at: TimerState; frame: string }>({ at: timer, frame: bytes })),
  counters: shape<LinkCounters>({
    frames: num,
    bytes: num,
    dropped: num,
    duplicated: num,
    reordered: num,
    corrupted: num,
    oversize: num,
  }),
});
const STATE = checkState<LinkState>('Ethernet link', 1, {
  faults: nullable(
    shape<Required<FaultConfig>>({
      seed: num,
      drop: num,
      duplicate: num,
      reorder: num,
      corrupt: num,
    }),
  ),
  random: num,
  directions: arrayOf(DIRECTION, 2),
});

interface Delivery {
  timer: Timer;
  frame: Uint8Array;
}

/** Largest frame with FCS the link carries (MTU 1500 + 14 + 4; longer frames are refused). */
const MAX_WIRE_FRAME = 1518;

class Direction {
  /** The cycle at which the wire is free again. */
  busyUntil = 0;
  held: Uint8Array | undefined;
  readonly counters: LinkCounters = {
    frames: 0,
    bytes: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    oversize: 0,
  };
  receiver: EthernetReceiver | undefined;
  /** Pending deliveries in the order they were scheduled. */
  inFlight: Delivery[] = [];

  constructor(readonly owner: string) {}
}

export class EthernetLink implements Stateful<LinkState> {
  private readonly dirs = [new Direction('link.from0'), new Direction('link.from1')];
  private random: Mulberry32;

  constructor(
    private readonly clock: Clock,
    readonly bitsPerSecond = 1_000_000_000,
    private faults: FaultConfig | undefined = undefined,
  ) {
    this.random = new Mulberry32(faults?.seed ?? 1);
  }

  private rand(): number {
    return this.random.next();
  }

  /** The two ends: end 0 sends to end 1's receiver and the other way round. */
  attach(end: 0 | 1, receiver: EthernetReceiver): void {
    this.dirs[end === 0 ? 1 : 0].receiver = receiver;
  }

  setFaults(faults: FaultConfig | undefined): void {
    this.faults = faults;
    this.random = new Mulberry32(faults?.seed ?? 1);
  }

  counters(from: 0 | 1): LinkCounters {
    return { ...this.dirs[from].counters };
  }

  /** Cycles one frame of `length` bytes (with FCS) occupies the wire. */
  frameCycles(length: number): number {
    return Math.ceil(((8 + length + 12) * 8 * this.clock.hz) / this.bitsPerSecond);
  }

  /**
   * Sends a frame (with FCS) from end `from`. Returns the cycle at which the sender's wire is
   * free again (when its last bit and the inter-frame gap have gone), or undefined if refused.
   */
  send(from: 0 | 1, frame: Uint8Array): number | undefined {
    const d = this.dirs[from];
    if (frame.length > MAX_WIRE_FRAME) {
      d.counters.oversize++;
      return undefined;
    }
    const start = Math.max(this.clock.now(), d.busyUntil);
    const end = start + this.frameCycles(frame.length);
    d.busyUntil = end;
    d.counters.frames++;
    d.counters.bytes += frame.length;
    const copy = frame.slice(); // PERF: slice, not Uint8Array.from (which iterates)
    // The frame is there when its last bit is: preamble, SFD and frame, not the gap after it.
    const arrival =
      start + Math.ceil(((8 + frame.length) * 8 * this.clock.hz) / this.bitsPerSecond);
    this.deliverAt(d, arrival, copy);
    return end;
  }

  private deliverAt(d: Direction, cycle: number, frame: Uint8Array): void {
    const f = this.faults;
    if (f !== undefined) {
      if ((f.drop ?? 0) > 0 && this.rand() < (f.drop ?? 0)) {
        d.counters.dropped++;
        return;
      }
      if ((f.corrupt ?? 0) > 0 && this.rand() < (f.corrupt ?? 0)) {
        frame[Math.floor(this.rand() * frame.length)] ^= 1 << Math.floor(this.rand() * 8);
        d.counters.corrupted++;
      }
      if ((f.reorder ?? 0) > 0 && d.held === undefined && this.rand() < (f.reorder ?? 0)) {
        // Hold this frame back and deliver it after the next one.
        d.held = frame;
        d.counters.reordered++;
        return;
      }
      if ((f.duplicate ?? 0) > 0 && this.rand() < (f.duplicate ?? 0)) {
        d.counters.duplicated++;
        this.schedule(d, cycle, frame.slice());
      }
    }
    this.schedule(d, cycle, frame);
    if (d.held !== undefined) {
      const held = d.held;
      d.held = undefined;
      this.schedule(d, cycle, held);
    }
  }

  private schedule(d: Direction, cycle: number, frame: Uint8Array): void {
    const delivery: Delivery = {
      timer: this.clock.at(cycle, () => this.deliver(d, delivery), d.owner),
      frame,
    };
    d.inFlight.push(delivery);
  }

  private deliver(d: Direction, delivery: Delivery): void {
    const k = d.inFlight.indexOf(delivery);
    if (k >= 0) d.inFlight.splice(k, 1);
    d.receiver?.receive(delivery.frame);
  }

  save(): LinkState {
    const f = this.faults;
    return {
      version: 1,
      faults:
        f === undefined
          ? null
          : {
              seed: f.seed,
              drop: f.drop ?? 0,
              duplicate: f.duplicate ?? 0,
              reorder: f.reorder ?? 0,
              corrupt: f.corrupt ?? 0,
            },
      random: this.random.state,
      directions: this.dirs.map((d) => ({
        busyUntil: d.busyUntil,
        held: d.held === undefined ? null : encodeBytes(d.held),
        inFlight: d.inFlight.map((x) => ({
          at: { cycle: x.timer.cycle, seq: x.timer.seq },
          frame: encodeBytes(x.frame),
        })),
        counters: { ...d.counters },
      })),
    };
  }

  /**
   * The wire again: settings, generator, frames held and in flight (each delivery at its saved
   * place on the restored clock). The receivers are not state: they stay attached (or are
   * attached again by the caller).
   */
  restore(state: LinkState, path = 'link'): void {
    STATE(state, path);
    const decoded = state.directions.map((d, k) => ({
      held: d.held === null ? undefined : decodeBytes(d.held, `${path}.directions[${k}].held`),
      inFlight: d.inFlight.map((x, j) => ({
        at: x.at,
        frame: decodeBytes(x.frame, `${path}.directions[${k}].inFlight[${j}].frame`),
      })),
    }));
    if (state.random < 0 || state.random > 0xffffffff)
      throw new StateError(`${path}.random: not a u32 (${state.random})`);
    this.faults = state.faults === null ? undefined : { ...state.faults };
    this.random.state = state.random >>> 0;
    this.dirs.forEach((d, k) => {
      const s = state.directions[k];
      for (const x of d.inFlight) x.timer.cancel();
      d.busyUntil = s.busyUntil;
      d.held = decoded[k].held;
      Object.assign(d.counters, s.counters);
      d.inFlight = [];
      for (const x of decoded[k].inFlight) {
        const delivery: Delivery = {
          timer: this.clock.restoreAt(x.at, () => this.deliver(d, delivery), d.owner),
          frame: x.frame,
        };
        d.inFlight.push(delivery);
      }
    });
  }
}
