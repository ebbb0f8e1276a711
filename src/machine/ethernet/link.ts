/**
 * A full-duplex Ethernet link on the simulated clock. Each direction serialises its frames one
 * after another: a frame occupies the wire for (preamble and SFD 8 + frame with FCS + inter-frame
 * gap 12) bytes × 8 bit times (IEEE 802.3 clause 4.4.2: 96-bit IFG, 64-bit preamble + SFD), and
 * arrives at the far end when its last bit does. A seeded fault injector can drop, duplicate,
 * reorder and corrupt frames (for tests); everything is deterministic for a given seed.
 */
import { mulberry32 } from '../random.ts';
import type { Clock } from '../device.ts';

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
}

export class EthernetLink {
  private readonly dirs = [new Direction(), new Direction()];
  private rand: () => number;

  constructor(
    private readonly clock: Clock,
    readonly bitsPerSecond = 1_000_000_000,
    private faults: FaultConfig | undefined = undefined,
  ) {
    this.rand = mulberry32(faults?.seed ?? 1);
  }

  /** The two ends: end 0 sends to end 1's receiver and the other way round. */
  attach(end: 0 | 1, receiver: EthernetReceiver): void {
    this.dirs[end === 0 ? 1 : 0].receiver = receiver;
  }

  setFaults(faults: FaultConfig | undefined): void {
    this.faults = faults;
    this.rand = mulberry32(faults?.seed ?? 1);
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
    const copy = Uint8Array.from(frame);
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
        this.clock.at(cycle, () => d.receiver?.receive(Uint8Array.from(frame)));
      }
    }
    this.clock.at(cycle, () => d.receiver?.receive(frame));
    if (d.held !== undefined) {
      const held = d.held;
      d.held = undefined;
      this.clock.at(cycle, () => d.receiver?.receive(held));
    }
  }
}
