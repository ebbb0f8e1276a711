/**
 * The client machine's send sequence space (RFC 9293 3.3.1), as offsets into the stream: byte k
 * has sequence number iss + 1 + k, the FIN has offset `streamEnd`. Also the socket buffer the
 * application writes its messages into (netperf's 32 KB sends into a 256 KB buffer), the
 * guest's window as it updates it, and sender-side silly-window avoidance. No congestion window:
 * the wire is point to point, the only queue is the guest's.
 */
import type { TcpSegment } from './headers.ts';

/** Its part of the client machine's snapshot: the sequence space and window variables. */
export interface SendWindowState {
  una: number;
  nxt: number;
  max: number;
  wnd: number;
  maxWnd: number;
  wl1: number;
  wl2: number;
  scale: number;
  written: number;
}

export class SendWindow {
  /** Oldest unacknowledged offset (SND.UNA). */
  una = 0;
  /** Next offset to send (SND.NXT; it goes back on a timeout). */
  nxt = 0;
  /** Highest offset sent so far. */
  max = 0;
  /** The guest's window, scaled (SND.WND), and the largest it has been. */
  wnd = 0;
  maxWnd = 0;
  /** Segment sequence and acknowledgement of the last window update (SND.WL1, SND.WL2). */
  wl1 = 0;
  wl2 = 0;
  /** The guest's window-scale shift (0 without the option). */
  scale = 0;
  /** End of what the application has written into the socket buffer. */
  written = 0;

  constructor(
    readonly streamEnd: number,
    private readonly payloadEnd: number,
    private readonly messageBytes: number,
    private readonly socketBuffer: number,
  ) {}

  save(): SendWindowState {
    const { una, nxt, max, wnd, maxWnd, wl1, wl2, scale, written } = this;
    return { una, nxt, max, wnd, maxWnd, wl1, wl2, scale, written };
  }

  restore(s: SendWindowState): void {
    this.una = s.una;
    this.nxt = s.nxt;
    this.max = s.max;
    this.wnd = s.wnd;
    this.maxWnd = s.maxWnd;
    this.wl1 = s.wl1;
    this.wl2 = s.wl2;
    this.scale = s.scale;
    this.written = s.written;
  }

  /**
   * The application writes messages while the socket buffer has room for one; the trailer is
   * one last small write. Returns how many it wrote.
   */
  fillBuffer(): number {
    let messages = 0;
    while (this.written < this.streamEnd) {
      const size =
        this.written < this.payloadEnd
          ? Math.min(this.messageBytes, this.payloadEnd - this.written)
          : this.streamEnd - this.written;
      if (this.written + size - this.una > this.socketBuffer) break;
      this.written += size;
      messages++;
    }
    return messages;
  }

  /** Bytes the window and the buffer let go beyond what is in flight (may be negative). */
  usable(): number {
    return Math.min(this.wnd, this.socketBuffer) - (this.nxt - this.una);
  }

  /** The guest's SYN-ACK: its window, never scaled in a SYN (RFC 7323 2.2). */
  open(seg: TcpSegment, scale: number | undefined): void {
    if (scale !== undefined) this.scale = scale;
    this.wnd = seg.window;
    this.maxWnd = seg.window;
    this.wl1 = seg.seq;
    this.wl2 = 0;
  }

  /** RFC 9293 3.10.7.4: take the window only from segments no older than the last update. */
  update(seg: TcpSegment, acked: number): void {
    const seqDelta = (seg.seq - this.wl1) | 0;
    if (seqDelta > 0 || (seqDelta === 0 && acked >= this.wl2)) {
      this.wnd = seg.window << this.scale;
      this.maxWnd = Math.max(this.maxWnd, this.wnd);
      this.wl1 = seg.seq;
      this.wl2 = acked;
    }
  }

  /**
   * Sender-side silly-window avoidance (RFC 9293 3.8.6.2.1): a short segment of `len` bytes at
   * `nxt` only when it empties the buffer, nothing is in flight, or it fills half the largest
   * window seen.
   */
  shortSegmentOk(len: number): boolean {
    return this.nxt + len === this.written || this.nxt === this.una || len >= this.maxWnd / 2;
  }
}
