/**
 * The client machine at the far end of the wire: a netperf-style TCP stream sender (netperf's
 * TCP_STREAM test, 32 KB messages into a 256 KB socket buffer) with just enough of ARP, IPv4 and
 * TCP to push a checksummed byte stream into the guest's netserver program.
 *
 * Cost model: the client is another computer (in the seed, a 1.4 GHz Pentium 4), so its own
 * processing costs the guest's CPU nothing and takes no simulated time: it answers a frame in the
 * same cycle it arrives and sends as fast as the wire lets it (one frame at a time, each as soon
 * as the previous one has left, link.ts). It is limited only by the 1 Gb/s link and by what the
 * guest's TCP lets it send. Every timer runs on the machine's simulated clock, never the wall
 * clock, so a run is deterministic.
 *
 * TCP behaviour (RFC 9293 unless noted): active open with MSS and window-scale options; the send
 * window is min(socket buffer, the guest's advertised window scaled by the shift it offered);
 * no congestion control (the wire is point to point, the only queue is the guest's); sender-side
 * silly-window avoidance; retransmission on timeout with RFC 6298 RTT estimation, a 200 ms
 * minimum (as Linux) and exponential backoff, going back to the oldest unacknowledged byte; fast
 * retransmit on the third duplicate ACK (RFC 5681 3.2) if it covers more than all that was sent
 * when the last recovery began (RFC 6582 3.2 step 1), and when the following ACK is only
 * partial (RFC 6582) the sender goes back to it and resends everything after it, which is what a
 * receiver that drops out-of-order segments needs, and moves `recover` up to all it had sent (a
 * receiver that kept them answers the copies with duplicate ACKs: not a new loss); zero-window
 * probing; FIN with the last data.
 * Anything the guest does wrong (RST, malformed frames, bad checksums) is counted and reported,
 * never thrown.
 *
 * Here: the connection (set-up, ACK processing, loss recovery, the segments it sends). Below it,
 * PeerLink.ts (Ethernet, ARP, IPv4, the wire); beside it, SendWindow.ts (sequence space, socket
 * buffer, the guest's window), RetransmitTimer.ts (RFC 6298) and stream.ts (the bytes);
 * senderTypes.ts has the configuration, counters and report.
 *
 * Snapshots (DESIGN.md decision 11): `save()` gives everything that decides what the sender does
 * next (senderTypes.ts TcpSenderState, plain JSON data); `restore()` continues it in a new
 * TcpSender of the same configuration on a clock restored from the same snapshot, its events at
 * their saved places (owners tcp-sender.retry, tcp-sender.rto, tcp-sender.wire).
 */
import type { Clock, Timer, TimerState } from '../machine/device.ts';
import { mulberry32 } from '../machine/random.ts';
import type { EthernetReceiver } from '../machine/ethernet/link.ts';
import {
  formatIpv4,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
} from './headers.ts';
import { PeerLink } from './PeerLink.ts';
import { RetransmitTimer } from './RetransmitTimer.ts';
import { SendWindow } from './SendWindow.ts';
import {
  GUEST_IP,
  NETSERVER_PORT,
  newCounters,
  PEER_IP,
  PEER_MAC,
  type SenderConfig,
  type SenderCounters,
  type SenderEventKind,
  type SenderReport,
  type SenderState,
  type SenderTimes,
  type TcpSenderState,
} from './senderTypes.ts';
import { MAX_PAYLOAD, PayloadStream } from './stream.ts';

export {
  GUEST_IP,
  NETSERVER_PORT,
  PEER_IP,
  PEER_MAC,
  type SenderConfig,
  type SenderCounters,
  type SenderEvent,
  type SenderEventKind,
  type SenderReport,
  type SenderState,
  type SenderTimes,
  type TcpSenderState,
} from './senderTypes.ts';

/** Window this side advertises: it receives nothing but the guest's ACKs and FIN. */
const OUR_WINDOW = 65535;

/** The name of its retry event in snapshots (the clock's `unrestored` audit). */
const RETRY_OWNER = 'tcp-sender.retry';

export class TcpSender implements EthernetReceiver {
  readonly counters: SenderCounters = newCounters();
  readonly times: SenderTimes = {};
  state: SenderState = 'idle';
  error: string | undefined;

  private readonly clock: Clock;
  private readonly stream: PayloadStream;
  private readonly link: PeerLink;
  private readonly win: SendWindow;
  private readonly rtx: RetransmitTimer;
  private readonly guestIp: number;
  private readonly guestPort: number;
  private readonly localPort: number;
  private readonly ourMss: number;
  private readonly seed: number;
  private random: () => number;
  /** Numbers drawn from `random` so far: its position, for snapshots. */
  private randomDraws = 0;

  // Sequence numbers: stream offsets (win) are relative to iss + 1 on the wire.
  private iss = 0;
  private rcvNxt = 0;
  private windowScale: number | undefined;
  private mss = 536;
  private readonly streamEnd: number;

  // Loss recovery.
  private consecutiveTimeouts = 0;
  private dupAcks = 0;
  private lastFastRetransmit = -1;
  /** RFC 6582's recover, as a stream offset (-1: the ISS, before any byte). */
  private recover = -1;
  /**
   * PERF: the bytes of the segment being built (the frame copies them), reused from one
   * segment to the next instead of a new array each; grown when a larger MSS needs it.
   */
  private scratch = new Uint8Array(1460);
  private goBackOnPartialAck = false;
  private pendingRetransmit: number | undefined;
  private forceProbe = false;

  /** The ARP retry, and while refused the wait before the next connection attempt. */
  private arpTimer: Timer | undefined;
  private arpTimerKind: 'arp' | 'connect' = 'arp';

  constructor(private readonly config: SenderConfig) {
    this.clock = config.clock;
    if (!Number.isInteger(config.payloadBytes) || config.payloadBytes < 0)
      throw new RangeError(`payload must be a whole number of bytes (got ${config.payloadBytes})`);
    if (config.payloadBytes > MAX_PAYLOAD)
      throw new RangeError(`payload must be at most ${MAX_PAYLOAD} bytes`);
    const seed = config.seed ?? 1;
    this.seed = seed;
    this.stream = new PayloadStream(config.payloadBytes, seed);
    this.streamEnd = this.stream.length;
    this.guestIp = config.guestIp ?? GUEST_IP;
    this.guestPort = config.guestPort ?? NETSERVER_PORT;
    this.localPort = config.localPort ?? 49152 + ((seed >>> 0) % 16384);
    this.win = new SendWindow(
      this.streamEnd,
      this.stream.payloadLength,
      config.messageBytes ?? 32768,
      config.socketBufferBytes ?? 262144,
    );
    this.ourMss = config.mss ?? 1460;
    const hz = this.clock.hz;
    this.rtx = new RetransmitTimer(
      this.clock,
      {
        min: Math.round((config.rtoMinSeconds ?? 0.2) * hz),
        max: Math.round((config.rtoMaxSeconds ?? 60) * hz),
        initial: Math.round((config.rtoInitialSeconds ?? 1) * hz),
      },
      () => this.timeout(),
    );
    this.random = mulberry32(seed ^ 0x7e57);
    this.link = new PeerLink(
      this.clock,
      config.transmit,
      {
        mac: config.mac ?? PEER_MAC,
        ip: config.ip ?? PEER_IP,
        guestIp: this.guestIp,
        guestPort: this.guestPort,
        localPort: this.localPort,
      },
      this.counters,
      {
        segment: (seg) => this.receiveTcp(seg),
        guestResolved: () => this.guestResolved(),
        nextDataFrame: () => this.nextDataFrame(),
        sending: () => this.state === 'established',
      },
    );
  }

  /** Starts the transfer: resolve the guest's address, then connect and send. */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'resolving';
    this.requestArp();
  }

  /** Stream bytes acknowledged so far (for progress reports). */
  get bytesAcked(): number {
    return this.counters.bytesAcked;
  }

  get streamBytes(): number {
    return this.streamEnd;
  }

  /** The last malformed frame's problem, for the report. */
  get lastMalformed(): string | undefined {
    return this.link.lastMalformed;
  }

  report(): SenderReport {
    return {
      state: this.state,
      error: this.error,
      lastMalformed: this.lastMalformed,
      payloadBytes: this.stream.payloadLength,
      streamBytes: this.streamEnd,
      payloadCrc: this.stream.payloadCrc(),
      mss: this.mss,
      windowScale: this.windowScale,
      maxWindow: this.win.maxWnd,
      times: { ...this.times },
      counters: { ...this.counters },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots (senderTypes.ts TcpSenderState)

  /** Everything that decides what the sender does from here on (plain JSON data). */
  save(): TcpSenderState {
    const t = this.arpTimer;
    return {
      version: 1,
      config: this.configKey(),
      state: this.state,
      error: this.error ?? null,
      counters: { ...this.counters },
      times: { ...this.times },
      iss: this.iss,
      rcvNxt: this.rcvNxt,
      windowScale: this.windowScale ?? null,
      mss: this.mss,
      consecutiveTimeouts: this.consecutiveTimeouts,
      dupAcks: this.dupAcks,
      lastFastRetransmit: this.lastFastRetransmit,
      recover: this.recover,
      goBackOnPartialAck: this.goBackOnPartialAck,
      pendingRetransmit: this.pendingRetransmit ?? null,
      forceProbe: this.forceProbe,
      randomDraws: this.randomDraws,
      retryTimer: t === undefined ? null : { kind: this.arpTimerKind, cycle: t.cycle, seq: t.seq },
      window: this.win.save(),
      rtx: this.rtx.save(),
      stream: this.stream.save(),
      link: this.link.save(),
    };
  }

  /**
   * Continues from a saved sender. Call it on a new TcpSender built with the same configuration
   * (a different one is refused: the saved numbers would mean something else), after the clock
   * was restored from the same snapshot (`SimClock.restore`), so that the pending events come
   * back at their saved places. Nothing is sent or reported by the restore itself.
   */
  restore(s: TcpSenderState): void {
    if (s.version !== 1) {
      throw new Error(`sender state version ${String(s.version)} is not supported (expected 1)`);
    }
    const now = this.configKey();
    for (const key of new Set([...Object.keys(now), ...Object.keys(s.config)])) {
      if (now[key] !== s.config[key]) {
        throw new Error(
          `sender state: saved with ${key} ${String(s.config[key])}, this sender has ${String(now[key])}`,
        );
      }
    }
    this.rtx.stop();
    this.arpTimer?.cancel();
    this.arpTimer = undefined;
    this.state = s.state;
    this.error = s.error ?? undefined;
    Object.assign(this.counters, s.counters);
    for (const key of Object.keys(this.times) as (keyof SenderTimes)[]) delete this.times[key];
    Object.assign(this.times, s.times);
    this.iss = s.iss;
    this.rcvNxt = s.rcvNxt;
    this.windowScale = s.windowScale ?? undefined;
    this.mss = s.mss;
    this.consecutiveTimeouts = s.consecutiveTimeouts;
    this.dupAcks = s.dupAcks;
    this.lastFastRetransmit = s.lastFastRetransmit;
    this.recover = s.recover;
    this.goBackOnPartialAck = s.goBackOnPartialAck;
    this.pendingRetransmit = s.pendingRetransmit ?? undefined;
    this.forceProbe = s.forceProbe;
    this.random = mulberry32(this.seed ^ 0x7e57);
    for (let k = 0; k < s.randomDraws; k++) this.random();
    this.randomDraws = s.randomDraws;
    this.win.restore(s.window);
    this.stream.restore(s.stream);
    this.rtx.restore(s.rtx);
    this.link.restore(s.link);
    if (s.retryTimer !== null) this.retryAt(s.retryTimer.kind, s.retryTimer);
  }

  /** The configuration values a snapshot depends on (times in cycles of this clock). */
  private configKey(): Record<string, number | string> {
    const c = this.config;
    const hz = this.clock.hz;
    return {
      hz,
      payloadBytes: c.payloadBytes,
      seed: this.seed,
      messageBytes: c.messageBytes ?? 32768,
      socketBufferBytes: c.socketBufferBytes ?? 262144,
      mss: this.ourMss,
      rtoMin: Math.round((c.rtoMinSeconds ?? 0.2) * hz),
      rtoInitial: Math.round((c.rtoInitialSeconds ?? 1) * hz),
      rtoMax: Math.round((c.rtoMaxSeconds ?? 60) * hz),
      maxTimeouts: c.maxTimeouts ?? 12,
      arpRetry: Math.round((c.arpRetrySeconds ?? 0.1) * hz),
      maxArpRequests: c.maxArpRequests ?? 50,
      connectRetry: Math.round((c.connectRetrySeconds ?? 0.01) * hz),
      maxConnectAttempts: c.maxConnectAttempts ?? 100,
      mac: Array.from(c.mac ?? PEER_MAC, (b) => b.toString(16).padStart(2, '0')).join(':'),
      ip: formatIpv4(c.ip ?? PEER_IP),
      guestIp: formatIpv4(this.guestIp),
      guestPort: this.guestPort,
      localPort: this.localPort,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Receiving (frames are checked and filtered by the link)

  receive(frameWithFcs: Uint8Array): void {
    this.link.receive(frameWithFcs);
  }

  private guestResolved(): void {
    if (this.state === 'resolving') {
      this.arpTimer?.cancel();
      this.arpTimer = undefined;
      this.connect();
    }
  }

  private receiveTcp(seg: TcpSegment): void {
    const now = this.clock.now();
    if (this.state === 'syn-sent') {
      const acksSyn = (seg.flags & TCP_ACK) !== 0 && seg.ack === (this.iss + 1) >>> 0;
      if ((seg.flags & TCP_RST) !== 0) {
        if (!acksSyn) return; // RFC 9293 3.10.7.3: an RST must acknowledge our SYN
        this.counters.resets++;
        this.refused();
        return;
      }
      if ((seg.flags & TCP_SYN) === 0 || !acksSyn) {
        this.counters.ignored++;
        return;
      }
      this.established(seg, now);
      return;
    }
    if (this.state !== 'established' && this.state !== 'done') {
      this.counters.ignored++;
      return;
    }
    if ((seg.flags & TCP_RST) !== 0) {
      this.counters.resets++;
      this.event('reset', `RST from the guest (seq ${seg.seq})`);
      if (this.state === 'established') this.fail('connection reset by the guest');
      return;
    }
    if ((seg.flags & TCP_SYN) !== 0) {
      // The guest repeats its SYN-ACK: our ACK of it was lost.
      this.sendAck();
      return;
    }
    if ((seg.flags & TCP_ACK) !== 0 && this.state === 'established') this.receiveAck(seg, now);
    const fin = (seg.flags & TCP_FIN) !== 0;
    if (seg.payload.length > 0 || fin) {
      if (seg.seq === this.rcvNxt) {
        this.counters.guestDataBytes += seg.payload.length;
        this.rcvNxt = (this.rcvNxt + seg.payload.length + (fin ? 1 : 0)) >>> 0;
        if (fin && this.times.guestFin === undefined) {
          this.times.guestFin = now;
          this.event('guest-fin');
        }
      }
      this.sendAck();
    }
  }

  private established(seg: TcpSegment, now: number): void {
    this.state = 'established';
    this.times.established = now;
    this.rcvNxt = (seg.seq + 1) >>> 0;
    this.mss = Math.min(this.ourMss, seg.options.mss ?? 536);
    if (seg.options.windowScale !== undefined) {
      // RFC 7323 2.3: a shift above 14 is treated as 14.
      this.windowScale = Math.min(14, seg.options.windowScale);
    }
    this.win.open(seg, this.windowScale);
    this.rtx.acked(0, now); // the SYN, if timed, is acknowledged at offset 0
    this.rtx.timing = undefined;
    this.consecutiveTimeouts = 0;
    this.rtx.update();
    this.rtx.stop();
    this.event('established', `MSS ${this.mss}, window ${seg.window}, scale ${this.windowScale}`);
    this.sendAck();
    this.fillBuffer();
  }

  private receiveAck(seg: TcpSegment, now: number): void {
    const win = this.win;
    const acked = (seg.ack - (this.iss + 1)) | 0;
    if (acked > win.max) {
      // Acknowledges something never sent (RFC 9293 3.10.7.4): answer with an ACK, drop it.
      this.counters.ignored++;
      this.sendAck();
      return;
    }
    if (acked < win.una) return; // an old ACK overtaken by newer ones
    const oldWindow = win.wnd;
    win.update(seg, acked);
    if (acked > win.una) {
      win.una = acked;
      this.counters.bytesAcked = Math.min(acked, this.streamEnd);
      if (win.nxt < acked) win.nxt = acked;
      this.rtx.acked(acked, now);
      this.consecutiveTimeouts = 0;
      this.rtx.update();
      this.dupAcks = 0;
      if (this.goBackOnPartialAck) {
        this.goBackOnPartialAck = false;
        // A partial ACK after a fast retransmit: the guest lacks everything after it. What goes
        // out again may be data the guest kept out of order; its duplicate ACKs for those
        // segments are not a new loss, so `recover` moves up to all that was sent (as a
        // timeout's going back does), and only an ACK beyond it starts another recovery.
        if (acked < this.recover) {
          win.nxt = acked;
          this.recover = win.max;
        }
      }
      this.restartTimer();
      if (acked === this.streamEnd + 1) {
        this.state = 'done';
        this.times.allAcked = now;
        this.rtx.stop();
        this.event('all-acked');
        return;
      }
      this.fillBuffer();
      return;
    }
    // RFC 5681 section 2: a duplicate ACK carries no data, no SYN or FIN, the same
    // acknowledgement and window, while data is outstanding.
    const duplicate =
      seg.payload.length === 0 &&
      (seg.flags & (TCP_SYN | TCP_FIN)) === 0 &&
      win.wnd === oldWindow &&
      win.wnd !== 0 &&
      win.max > win.una;
    if (!duplicate) {
      if (win.wnd !== oldWindow) this.armTimer();
      return;
    }
    this.counters.duplicateAcks++;
    this.dupAcks++;
    // RFC 6582 3.2 step 1: a fast retransmit only if the ACK covers more than `recover` (all
    // that was sent when the last recovery began); below it, the duplicates answer segments
    // sent again that the guest had (it keeps out-of-order data), not a new loss.
    if (this.dupAcks === 3 && acked !== this.lastFastRetransmit && acked > this.recover) {
      this.counters.fastRetransmits++;
      this.lastFastRetransmit = acked;
      this.pendingRetransmit = acked;
      this.recover = win.max;
      this.goBackOnPartialAck = true;
      this.rtx.timing = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Connection set-up

  private requestArp(): void {
    const max = this.config.maxArpRequests ?? 50;
    if (this.counters.arpRequestsSent >= max) {
      this.fail(`no ARP reply from ${formatIpv4(this.guestIp)} after ${max} requests`);
      return;
    }
    this.link.requestArp();
    const retry = Math.round((this.config.arpRetrySeconds ?? 0.1) * this.clock.hz);
    this.retryAt('arp', this.clock.now() + retry);
  }

  /**
   * Schedules the ARP retry or the next connection attempt at `at`: a cycle, or a saved event's
   * place (restore).
   */
  private retryAt(kind: 'arp' | 'connect', at: number | TimerState): void {
    const fire = (): void => {
      this.arpTimer = undefined;
      if (this.state !== 'resolving') return;
      if (kind === 'arp') this.requestArp();
      else this.connect();
    };
    this.arpTimerKind = kind;
    this.arpTimer =
      typeof at === 'number'
        ? this.clock.at(at, fire, RETRY_OWNER)
        : this.clock.restoreAt(at, fire, RETRY_OWNER);
  }

  private connect(): void {
    this.counters.connectAttempts++;
    this.randomDraws++;
    this.iss = Math.floor(this.random() * 2 ** 32) >>> 0;
    this.state = 'syn-sent';
    this.rtx.reset();
    this.consecutiveTimeouts = 0;
    this.sendSyn();
  }

  private sendSyn(): void {
    const now = this.clock.now();
    if (this.times.firstSyn === undefined) {
      this.times.firstSyn = now;
      this.event('syn');
    }
    // Karn's rule: only a SYN that is not a retransmission gives an RTT sample.
    this.rtx.timing = this.consecutiveTimeouts === 0 ? { end: 0, sentAt: now } : undefined;
    this.link.queueSegment({
      srcPort: this.localPort,
      dstPort: this.guestPort,
      seq: this.iss,
      ack: 0,
      flags: TCP_SYN,
      window: OUR_WINDOW,
      options: { mss: this.ourMss, windowScale: 0 },
      payload: new Uint8Array(0),
    });
    this.restartTimer();
  }

  private refused(): void {
    const max = this.config.maxConnectAttempts ?? 100;
    this.rtx.stop();
    this.event('refused', `attempt ${this.counters.connectAttempts}`);
    if (this.counters.connectAttempts >= max) {
      this.fail(`connection refused by ${formatIpv4(this.guestIp)}:${this.guestPort}`);
      return;
    }
    this.state = 'resolving'; // waiting to try again
    const delay = Math.round((this.config.connectRetrySeconds ?? 0.01) * this.clock.hz);
    this.retryAt('connect', this.clock.now() + delay);
  }

  private fail(reason: string): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.error = reason;
    this.rtx.stop();
    this.arpTimer?.cancel();
    this.arpTimer = undefined;
    this.event('failed', reason);
  }

  private event(kind: SenderEventKind, detail?: string): void {
    this.config.onEvent?.({ kind, cycle: this.clock.now(), detail });
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /** The application writes 32 KB messages while the socket buffer has room for one. */
  private fillBuffer(): void {
    this.counters.messages += this.win.fillBuffer();
  }

  private sendAck(): void {
    this.link.queueSegment({
      srcPort: this.localPort,
      dstPort: this.guestPort,
      seq: this.wireSeq(this.win.nxt),
      ack: this.rcvNxt,
      flags: TCP_ACK,
      window: OUR_WINDOW,
      options: {},
      payload: new Uint8Array(0),
    });
  }

  private wireSeq(offset: number): number {
    return (this.iss + 1 + offset) >>> 0;
  }

  /** The next data segment the link may send now, if any. */
  private nextDataFrame(): Uint8Array | undefined {
    if (this.state !== 'established') return undefined;
    const win = this.win;
    const end = this.streamEnd;
    if (this.pendingRetransmit !== undefined) {
      const off = this.pendingRetransmit;
      this.pendingRetransmit = undefined;
      if (off < win.max && off >= win.una) {
        const len = Math.min(this.mss, Math.min(win.max, end) - off);
        return this.dataSegment(off, len, off + len === end, false);
      }
    }
    if (win.nxt > end) return undefined; // everything and the FIN are out
    if (win.nxt === end) return this.dataSegment(end, 0, true, true);
    let len = Math.min(this.mss, win.written - win.nxt, win.usable());
    if (len <= 0 && this.forceProbe) {
      len = 1;
      this.counters.windowProbes++;
    }
    this.forceProbe = false;
    if (len <= 0) {
      this.armTimer();
      return undefined;
    }
    if (len < this.mss && !win.shortSegmentOk(len)) return undefined;
    return this.dataSegment(win.nxt, len, win.nxt + len === end, true);
  }

  /** A segment of stream bytes [off, off + len), with the FIN if it ends the stream. */
  private dataSegment(off: number, len: number, fin: boolean, advance: boolean): Uint8Array {
    const win = this.win;
    if (len > this.scratch.length) this.scratch = new Uint8Array(len);
    const payload = this.scratch.subarray(0, len);
    this.stream.read(off, payload);
    const segEnd = off + len + (fin ? 1 : 0);
    if (off < win.max) {
      this.counters.retransmissions++;
      this.rtx.timing = undefined; // Karn's rule
    } else if (this.rtx.timing === undefined) {
      this.rtx.timing = { end: segEnd, sentAt: this.clock.now() };
    }
    if (len > 0) {
      this.counters.dataSegmentsSent++;
      this.counters.bytesSent += len;
    }
    if (advance) win.nxt = segEnd;
    win.max = Math.max(win.max, segEnd);
    let flags = TCP_ACK;
    if (len > 0 && off + len === win.written) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    const frame = this.link.segmentFrame(
      {
        srcPort: this.localPort,
        dstPort: this.guestPort,
        seq: this.wireSeq(off),
        ack: this.rcvNxt,
        flags,
        window: OUR_WINDOW,
        options: {},
        payload,
      },
      true,
    );
    this.armTimer();
    return frame;
  }

  // -------------------------------------------------------------------------------------------
  // Retransmission (the timer and its estimate: RetransmitTimer.ts)

  /** The timer runs while anything is unacknowledged or a closed window holds data back. */
  private armTimer(): void {
    const win = this.win;
    const outstanding = this.state === 'syn-sent' || win.max > win.una;
    const blocked =
      this.state === 'established' &&
      win.nxt < win.written &&
      win.usable() <= 0 &&
      win.nxt === win.una;
    if (!outstanding && !blocked) this.rtx.stop();
    else this.rtx.start();
  }

  private restartTimer(): void {
    this.rtx.stop();
    this.armTimer();
  }

  private timeout(): void {
    if (this.state !== 'syn-sent' && this.state !== 'established') return;
    const max = this.config.maxTimeouts ?? 12;
    if (++this.consecutiveTimeouts > max) {
      this.fail(`no progress after ${max} retransmission timeouts`);
      return;
    }
    this.rtx.backOff();
    this.rtx.timing = undefined;
    if (this.state === 'syn-sent') {
      this.counters.timeouts++;
      this.sendSyn();
      return;
    }
    // Go back to the oldest unacknowledged byte; later ACKs skip what the guest already has.
    const win = this.win;
    win.nxt = win.una;
    this.recover = win.max;
    this.pendingRetransmit = undefined;
    this.goBackOnPartialAck = false;
    this.dupAcks = 0;
    // A closed window makes this the persist timer: probe with one byte (RFC 9293 3.8.6.1).
    if (win.wnd === 0) this.forceProbe = true;
    else this.counters.timeouts++;
    this.armTimer();
    this.link.pump();
  }
}
