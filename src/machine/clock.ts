import type { Clock, Timer } from './device.ts';

interface Event {
  cycle: number;
  /** Insertion order: events at the same cycle fire first-in, first-out (determinism). */
  seq: number;
  callback: () => void;
  cancelled: boolean;
}

/**
 * The simulated clock and its event queue (DESIGN.md decision 3): time is the CPU's cycle count;
 * devices schedule callbacks at future cycles; the machine runs the CPU up to the next event and
 * fires what is due. A binary heap ordered by (cycle, seq).
 */
export class SimClock implements Clock {
  private readonly heap: Event[] = [];
  private seq = 0;
  /** The current cycle while an event fires (the event's own cycle). */
  private firing: number | undefined = undefined;

  /**
   * `scheduled` hears of every new event, so the machine can end a CPU run slice early when a
   * device schedules something before the slice's end (an OUT that starts a timer, say).
   */
  constructor(
    readonly hz: number,
    private readonly cycles: () => number,
    private readonly scheduled: (cycle: number) => void = () => {},
  ) {}

  now(): number {
    return this.firing ?? this.cycles();
  }

  at(cycle: number, callback: () => void): Timer {
    const event: Event = { cycle: Math.max(cycle, 0), seq: this.seq++, callback, cancelled: false };
    this.push(event);
    this.scheduled(event.cycle);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  /** Cycles from now: a convenience for devices that think in delays. */
  after(delay: number, callback: () => void): Timer {
    return this.at(this.now() + delay, callback);
  }

  /** The cycle of the next pending event, or undefined when none is scheduled. */
  next(): number | undefined {
    this.dropCancelled();
    return this.heap.length === 0 ? undefined : this.heap[0].cycle;
  }

  /** Fires every event due at or before `cycle`, in order (events may schedule more). */
  fireDue(cycle: number): number {
    let fired = 0;
    for (;;) {
      this.dropCancelled();
      const top = this.heap[0];
      if (top === undefined || top.cycle > cycle) return fired;
      this.pop();
      this.firing = Math.max(top.cycle, 0);
      try {
        top.callback();
      } finally {
        this.firing = undefined;
      }
      fired++;
    }
  }

  get pending(): number {
    return this.heap.filter((e) => !e.cancelled).length;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0].cancelled) this.pop();
  }

  private less(a: Event, b: Event): boolean {
    return a.cycle < b.cycle || (a.cycle === b.cycle && a.seq < b.seq);
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let k = h.length - 1;
    while (k > 0) {
      const parent = (k - 1) >> 1;
      if (!this.less(h[k], h[parent])) break;
      [h[k], h[parent]] = [h[parent], h[k]];
      k = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let k = 0;
    for (;;) {
      const l = 2 * k + 1;
      const r = l + 1;
      let m = k;
      if (l < h.length && this.less(h[l], h[m])) m = l;
      if (r < h.length && this.less(h[r], h[m])) m = r;
      if (m === k) return;
      [h[k], h[m]] = [h[m], h[k]];
      k = m;
    }
  }
}
