/**
 * The client machine's retransmission timer (RFC 6298): the round-trip estimate from one timed
 * segment at a time (Karn's rule: never a retransmission), the timeout it gives between a
 * minimum (200 ms, as Linux) and a maximum, exponential backoff, and the one-shot timer on the
 * machine's simulated clock. When to run it is the sender's decision (TcpSender.ts).
 */
import type { Clock, Timer, TimerState } from '../machine/device.ts';

/** The name its clock event has in snapshots (the clock's `unrestored` audit). */
const OWNER = 'tcp-sender.rto';

/** Timeout bounds in cycles of the clock. */
export interface RtoBounds {
  min: number;
  max: number;
  initial: number;
}

/**
 * Its part of the client machine's snapshot (senderTypes.ts TcpSenderState): the estimate, the
 * segment being timed and the pending expiry, if any. `null` where the timer has "none". The
 * bounds come from the configuration, not the snapshot.
 */
export interface RetransmitTimerState {
  rto: number;
  timing: { end: number; sentAt: number } | null;
  srtt: number | null;
  rttvar: number;
  timer: TimerState | null;
}

export class RetransmitTimer {
  /** The current timeout, in cycles. */
  rto: number;
  /** The segment being timed: the stream offset that acknowledges it, the cycle it left. */
  timing: { end: number; sentAt: number } | undefined;
  private srtt: number | undefined;
  private rttvar = 0;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly bounds: RtoBounds,
    private readonly expired: () => void,
  ) {
    this.rto = bounds.initial;
  }

  /** An acknowledgement up to `offset` at `now`: a sample if it covers the timed segment. */
  acked(offset: number, now: number): void {
    if (this.timing !== undefined && offset >= this.timing.end) {
      this.sample(now - this.timing.sentAt);
      this.timing = undefined;
    }
  }

  private sample(rtt: number): void {
    if (this.srtt === undefined) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
  }

  /** The timeout from the estimate (RFC 6298 2.2–2.4), or the initial one without a sample. */
  update(): void {
    if (this.srtt === undefined) {
      this.rto = this.bounds.initial;
      return;
    }
    const rto = this.srtt + Math.max(1, 4 * this.rttvar);
    this.rto = Math.min(this.bounds.max, Math.max(this.bounds.min, Math.round(rto)));
  }

  /** A new connection attempt starts from the initial timeout. */
  reset(): void {
    this.rto = this.bounds.initial;
  }

  /** RFC 6298 5.5: double the timeout after an expiry. */
  backOff(): void {
    this.rto = Math.min(this.bounds.max, this.rto * 2);
  }

  /** Starts the timer unless it runs. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.at(this.clock.now() + this.rto, this.fire, OWNER);
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.expired();
  };

  save(): RetransmitTimerState {
    const t = this.timer;
    return {
      rto: this.rto,
      timing: this.timing === undefined ? null : { ...this.timing },
      srtt: this.srtt ?? null,
      rttvar: this.rttvar,
      timer: t === undefined ? null : { cycle: t.cycle, seq: t.seq },
    };
  }

  /** After the clock's restore: the estimate as saved, the expiry at its saved place. */
  restore(s: RetransmitTimerState): void {
    this.stop();
    this.rto = s.rto;
    this.timing = s.timing === null ? undefined : { ...s.timing };
    this.srtt = s.srtt ?? undefined;
    this.rttvar = s.rttvar;
    if (s.timer !== null) this.timer = this.clock.restoreAt(s.timer, this.fire, OWNER);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
