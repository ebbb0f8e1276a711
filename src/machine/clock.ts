import type { Clock, Timer, TimerState } from './device.ts';
import { arrayOf, checkState, num, shape, str } from './state.ts';

interface Event {
  cycle: number;
  /** Insertion order: events at the same cycle fire first-in, first-out (determinism). */
  seq: number;
  callback: () => void;
  cancelled: boolean;
  owner: string;
  /** Its place in the heap, -1 once it left (fired or cancelled). */
  index: number;
}

/**
 * The clock in a snapshot: the next insertion number and every pending event's place and owner.
 * The callbacks are not data; each owner saves what its event does and schedules it again with
 * `restoreAt` (device.ts, TimerState). `unrestored` then names any event nobody brought back.
 */
export interface ClockState {
  version: 1;
  seq: number;
  pending: { cycle: number; seq: number; owner: string }[];
}

const STATE = checkState<ClockState>('clock', 1, {
  seq: num,
  pending: arrayOf(
    shape<{ cycle: number; seq: number; owner: string }>({ cycle: num, seq: num, owner: str }),
  ),
});

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

  at(cycle: number, callback: () => void, owner = 'unnamed'): Timer {
    return this.insert(Math.max(cycle, 0), this.seq++, callback, owner);
  }

  restoreAt(saved: TimerState, callback: () => void, owner = 'unnamed'): Timer {
    return this.insert(saved.cycle, saved.seq, callback, owner);
  }

  private insert(cycle: number, seq: number, callback: () => void, owner: string): Timer {
    const event: Event = { cycle, seq, callback, cancelled: false, owner, index: -1 };
    this.push(event);
    this.scheduled(event.cycle);
    return {
      cancel: () => {
        event.cancelled = true;
        // PERF: out of the heap at once, not when its cycle comes: a retransmission timer
        // restarted on every ACK would otherwise leave thousands of dead events in it. The
        // order the others fire in is their (cycle, seq) order either way.
        if (event.index >= 0) this.remove(event.index);
      },
      cycle,
      seq,
    };
  }

  save(): ClockState {
    const pending = this.heap
      .filter((e) => !e.cancelled)
      .sort((a, b) => a.cycle - b.cycle || a.seq - b.seq)
      .map((e) => ({ cycle: e.cycle, seq: e.seq, owner: e.owner }));
    return { version: 1, seq: this.seq, pending };
  }

  /** Empties the queue and takes the saved insertion number; the owners restore their events. */
  restore(state: ClockState, path = 'clock'): void {
    STATE(state, path);
    // The old events' timers may still be cancelled (owners drop them in their restore).
    for (const e of this.heap) e.index = -1;
    this.heap.length = 0;
    this.seq = state.seq;
  }

  /**
   * After every owner restored its events: the saved events nobody scheduled again, and events
   * scheduled that were not saved, as one message; undefined when the queue is as it was saved.
   */
  unrestored(state: ClockState): string | undefined {
    const now = this.save().pending;
    const key = (e: { cycle: number; seq: number; owner: string }): string =>
      `${e.owner}@${e.cycle}#${e.seq}`;
    const have = new Set(now.map(key));
    const want = new Set(state.pending.map(key));
    const missing = [...want].filter((k) => !have.has(k));
    const extra = [...have].filter((k) => !want.has(k));
    if (missing.length === 0 && extra.length === 0) return undefined;
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`not restored: ${missing.join(', ')}`);
    if (extra.length > 0) parts.push(`not in the snapshot: ${extra.join(', ')}`);
    return `clock events differ from the snapshot (${parts.join('; ')})`;
  }

  /** Cycles from now: a convenience for devices that think in delays. */
  after(delay: number, callback: () => void, owner?: string): Timer {
    return this.at(this.now() + delay, callback, owner);
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
    e.index = h.length;
    h.push(e);
    this.siftUp(e.index);
  }

  /** Takes the first event out of the heap. */
  private pop(): void {
    this.remove(0);
  }

  /** Takes the event at heap place `k` out, the heap order kept for the rest. */
  private remove(k: number): void {
    const h = this.heap;
    const gone = h[k];
    gone.index = -1;
    const last = h.pop()!;
    if (k === h.length) return;
    h[k] = last;
    last.index = k;
    if (k > 0 && this.less(last, h[(k - 1) >> 1])) this.siftUp(k);
    else this.siftDown(k);
  }

  private siftUp(k: number): void {
    const h = this.heap;
    const e = h[k];
    while (k > 0) {
      const parent = (k - 1) >> 1;
      const p = h[parent];
      if (!this.less(e, p)) break;
      h[k] = p;
      p.index = k;
      k = parent;
    }
    h[k] = e;
    e.index = k;
  }

  private siftDown(k: number): void {
    const h = this.heap;
    const e = h[k];
    const n = h.length;
    for (;;) {
      const l = 2 * k + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && this.less(h[r], h[l]) ? r : l;
      const c = h[m];
      if (!this.less(c, e)) break;
      h[k] = c;
      c.index = k;
      k = m;
    }
    h[k] = e;
    e.index = k;
  }
}
