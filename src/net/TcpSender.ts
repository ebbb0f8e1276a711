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
 * retransmit on the third duplicate ACK (RFC 5681 3.2), and when the following ACK is only
 * partial (RFC 6582) the sender goes back to it and resends everything after it, which is what a
 * receiver that drops out-of-order segments needs; zero-window probing; FIN with the last data.
 * Anything the guest does wrong (RST, malformed frames, bad checksums) is counted and reported,
 * never thrown.
 */
import type { Clock, Timer } from '../machine/device.ts';
import { mulberry32 } from '../machine/random.ts';
import type { EthernetReceiver } from '../machine/ethernet/link.ts';
import { fcsValid, withFcs } from '../machine/ethernet/frame.ts';
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  buildArp,
  buildEthernet,
  buildTcpFrame,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  formatIpv4,
  IP_PROTO_TCP,
  ipv4,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  sameMac,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type Route,
  type TcpSegment,
} from './headers.ts';
import { MAX_PAYLOAD, PayloadStream } from './stream.ts';

/** The network contract (lead notes, issue 6). */
export const PEER_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x02]);
export const PEER_IP = ipv4(10, 0, 2, 2);
export const GUEST_IP = ipv4(10, 0, 2, 15);
export const NETSERVER_PORT = 5001;

export interface SenderConfig {
  clock: Clock;
  /** Puts a frame (with FCS) on the wire; returns the cycle the wire is free again. */
  transmit: (frame: Uint8Array) => number | undefined;
  /** Payload bytes N (the 12-byte trailer follows). */
  payloadBytes: number;
  /** Seed of the payload and of the initial sequence numbers (default 1). */
  seed?: number;
  /** Bytes per application write (netperf's send size; default 32 KB). */
  messageBytes?: number;
  /** Socket send buffer: unacknowledged plus unsent bytes (default 256 KB). */
  socketBufferBytes?: number;
  /** The largest segment this side sends and the MSS it offers (default 1460, MTU 1500). */
  mss?: number;
  /** Retransmission timeout bounds in simulated seconds (RFC 6298; Linux's minimum 0.2 s). */
  rtoMinSeconds?: number;
  rtoInitialSeconds?: number;
  rtoMaxSeconds?: number;
  /** Timeouts in a row without progress before the transfer is given up (default 12). */
  maxTimeouts?: number;
  /** Interval of ARP requests while the guest's address is unresolved (default 0.1 s). */
  arpRetrySeconds?: number;
  /** ARP requests before giving up (default 50). */
  maxArpRequests?: number;
  /** After a refused SYN (RST), try again after this long (default 0.01 s) ... */
  connectRetrySeconds?: number;
  /** ... up to this many connection attempts in all (default 100). */
  maxConnectAttempts?: number;
  /** Notable moments, as they happen. */
  onEvent?: (event: SenderEvent) => void;
  mac?: Uint8Array;
  ip?: number;
  guestIp?: number;
  guestPort?: number;
  localPort?: number;
}

export type SenderEventKind =
  'syn' | 'established' | 'refused' | 'all-acked' | 'guest-fin' | 'reset' | 'failed';

export interface SenderEvent {
  kind: SenderEventKind;
  /** Simulated cycle at which it happened. */
  cycle: number;
  detail?: string;
}

export interface SenderCounters {
  /** Frames put on the wire (all kinds). */
  framesSent: number;
  /** TCP segments sent, including pure ACKs, SYNs and retransmissions. */
  segmentsSent: number;
  /** Segments carrying stream bytes. */
  dataSegmentsSent: number;
  /** Stream bytes put on the wire, retransmissions included. */
  bytesSent: number;
  /** Segments sent again (each segment resent counts once per resend). */
  retransmissions: number;
  /** Retransmission timer expiries. */
  timeouts: number;
  /** Fast retransmits after a third duplicate ACK. */
  fastRetransmits: number;
  /** Stream bytes (payload and trailer) the guest has acknowledged. */
  bytesAcked: number;
  /** ACKs repeating the last acknowledgement with nothing new (RFC 5681 definition). */
  duplicateAcks: number;
  /** Segments sent into a zero window to find out whether it has opened. */
  windowProbes: number;
  /** Application writes (netperf's send() calls). */
  messages: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  framesReceived: number;
  /** Frames from the guest whose FCS was wrong. */
  badFcs: number;
  /** Frames from the guest that did not parse or had a bad IPv4/TCP checksum. */
  malformed: number;
  /** Frames not for this connection (other protocols, ports or addresses). */
  ignored: number;
  /** RST segments from the guest. */
  resets: number;
  connectAttempts: number;
  /** Bytes the guest sent on the connection (netserver sends none). */
  guestDataBytes: number;
}

export type SenderState = 'idle' | 'resolving' | 'syn-sent' | 'established' | 'done' | 'failed';

/** Simulated cycles of the moments a run is measured between. */
export interface SenderTimes {
  firstSyn?: number;
  established?: number;
  /** Every stream byte and the FIN acknowledged. */
  allAcked?: number;
  guestFin?: number;
}

export interface SenderReport {
  state: SenderState;
  error?: string;
  /** The last malformed frame's problem, for the report. */
  lastMalformed?: string;
  payloadBytes: number;
  streamBytes: number;
  payloadCrc: number;
  mss: number;
  /** The guest's window-scale shift, if both sides offered the option. */
  windowScale?: number;
  /** The largest window the guest advertised, scaled, in bytes. */
  maxWindow: number;
  times: SenderTimes;
  counters: SenderCounters;
}

/** Window this side advertises: it receives nothing but the guest's ACKs and FIN. */
const OUR_WINDOW = 65535;

export class TcpSender implements EthernetReceiver {
  readonly counters: SenderCounters = {
    framesSent: 0,
    segmentsSent: 0,
    dataSegmentsSent: 0,
    bytesSent: 0,
    retransmissions: 0,
    timeouts: 0,
    fastRetransmits: 0,
    bytesAcked: 0,
    duplicateAcks: 0,
    windowProbes: 0,
    messages: 0,
    arpRequestsSent: 0,
    arpRepliesSent: 0,
    framesReceived: 0,
    badFcs: 0,
    malformed: 0,
    ignored: 0,
    resets: 0,
    connectAttempts: 0,
    guestDataBytes: 0,
  };
  readonly times: SenderTimes = {};
  state: SenderState = 'idle';
  error: string | undefined;
  lastMalformed: string | undefined;

  private readonly clock: Clock;
  private readonly stream: PayloadStream;
  private readonly mac: Uint8Array;
  private readonly ip: number;
  private readonly guestIp: number;
  private readonly guestPort: number;
  private readonly localPort: number;
  private readonly messageBytes: number;
  private readonly socketBuffer: number;
  private readonly ourMss: number;
  private readonly rtoMin: number;
  private readonly rtoMax: number;
  private readonly rtoInitial: number;
  private readonly random: () => number;
  private guestMac: Uint8Array | undefined;

  // Sequence space, as offsets into the stream: byte k has sequence number iss + 1 + k, the FIN
  // has offset `streamEnd`. sndNxt is the next offset to send (it goes back on a timeout);
  // sndMax the highest offset sent so far.
  private iss = 0;
  private rcvNxt = 0;
  private sndUna = 0;
  private sndNxt = 0;
  private sndMax = 0;
  private sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndWscale = 0;
  private windowScale: number | undefined;
  private mss = 536;
  /** End of what the application has written into the socket buffer. */
  private written = 0;
  private readonly streamEnd: number;

  // Retransmission state.
  private rto: number;
  private srtt: number | undefined;
  private rttvar = 0;
  private timing: { end: number; sentAt: number } | undefined;
  private consecutiveTimeouts = 0;
  private dupAcks = 0;
  private lastFastRetransmit = -1;
  private recover = 0;
  private goBackOnPartialAck = false;
  private pendingRetransmit: number | undefined;
  private forceProbe = false;

  // Timers and the wire.
  private rtoTimer: Timer | undefined;
  private arpTimer: Timer | undefined;
  private pumpTimer: Timer | undefined;
  private wireFreeAt = 0;
  private readonly control: Uint8Array[] = [];
  private ipId = 0;

  constructor(private readonly config: SenderConfig) {
    this.clock = config.clock;
    if (!Number.isInteger(config.payloadBytes) || config.payloadBytes < 0)
      throw new RangeError(`payload must be a whole number of bytes (got ${config.payloadBytes})`);
    if (config.payloadBytes > MAX_PAYLOAD)
      throw new RangeError(`payload must be at most ${MAX_PAYLOAD} bytes`);
    const seed = config.seed ?? 1;
    this.stream = new PayloadStream(config.payloadBytes, seed);
    this.streamEnd = this.stream.length;
    this.mac = config.mac ?? PEER_MAC;
    this.ip = config.ip ?? PEER_IP;
    this.guestIp = config.guestIp ?? GUEST_IP;
    this.guestPort = config.guestPort ?? NETSERVER_PORT;
    this.localPort = config.localPort ?? 49152 + ((seed >>> 0) % 16384);
    this.messageBytes = config.messageBytes ?? 32768;
    this.socketBuffer = config.socketBufferBytes ?? 262144;
    this.ourMss = config.mss ?? 1460;
    const hz = this.clock.hz;
    this.rtoMin = Math.round((config.rtoMinSeconds ?? 0.2) * hz);
    this.rtoMax = Math.round((config.rtoMaxSeconds ?? 60) * hz);
    this.rtoInitial = Math.round((config.rtoInitialSeconds ?? 1) * hz);
    this.rto = this.rtoInitial;
    this.random = mulberry32(seed ^ 0x7e57);
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
      maxWindow: this.maxSndWnd,
      times: { ...this.times },
      counters: { ...this.counters },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  receive(frameWithFcs: Uint8Array): void {
    this.counters.framesReceived++;
    if (!fcsValid(frameWithFcs)) {
      this.counters.badFcs++;
      return;
    }
    // GUEST-CONTROLLED: everything below is parsed defensively; problems are counted.
    const eth = parseEthernet(frameWithFcs.subarray(0, frameWithFcs.length - 4));
    if (typeof eth === 'string') return this.malformed(eth);
    if (!sameMac(eth.dst, this.mac) && !sameMac(eth.dst, BROADCAST_MAC)) {
      this.counters.ignored++;
      return;
    }
    if (eth.type === ETHERTYPE_ARP) return this.receiveArp(eth.payload);
    if (eth.type !== ETHERTYPE_IPV4) {
      this.counters.ignored++;
      return;
    }
    const ip = parseIpv4(eth.payload);
    if (typeof ip === 'string') return this.malformed(ip);
    if (ip.dst !== this.ip || ip.src !== this.guestIp || ip.protocol !== IP_PROTO_TCP) {
      this.counters.ignored++;
      return;
    }
    const tcp = parseTcp(ip.payload, ip.src, ip.dst);
    if (typeof tcp === 'string') return this.malformed(tcp);
    if (tcp.srcPort !== this.guestPort || tcp.dstPort !== this.localPort) {
      this.counters.ignored++;
      return;
    }
    if (this.guestMac === undefined) this.guestMac = eth.src.slice();
    this.receiveTcp(tcp);
    this.pump();
  }

  private malformed(why: string): void {
    this.counters.malformed++;
    this.lastMalformed = why;
  }

  private receiveArp(payload: Uint8Array): void {
    const arp = parseArp(payload);
    if (typeof arp === 'string') return this.malformed(arp);
    if (arp.senderIp === this.guestIp) {
      this.guestMac = arp.senderMac;
      if (this.state === 'resolving') {
        this.arpTimer?.cancel();
        this.arpTimer = undefined;
        this.connect();
      }
    }
    if (arp.op === ARP_REQUEST && arp.targetIp === this.ip) {
      this.counters.arpRepliesSent++;
      const reply = buildArp({
        op: ARP_REPLY,
        senderMac: this.mac,
        senderIp: this.ip,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      });
      this.queue(buildEthernet(arp.senderMac, this.mac, ETHERTYPE_ARP, reply));
    } else if (arp.op !== ARP_REPLY && arp.op !== ARP_REQUEST) this.counters.ignored++;
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
      this.sndWscale = this.windowScale;
    }
    // The window in a SYN segment is never scaled (RFC 7323 2.2).
    this.sndWnd = seg.window;
    this.maxSndWnd = seg.window;
    this.sndWl1 = seg.seq;
    this.sndWl2 = 0;
    if (this.timing !== undefined) this.sampleRtt(now - this.timing.sentAt);
    this.timing = undefined;
    this.consecutiveTimeouts = 0;
    this.rto = this.computedRto();
    this.stopTimer();
    this.event('established', `MSS ${this.mss}, window ${seg.window}, scale ${this.windowScale}`);
    this.sendAck();
    this.fillBuffer();
  }

  private receiveAck(seg: TcpSegment, now: number): void {
    const acked = (seg.ack - (this.iss + 1)) | 0;
    if (acked > this.sndMax) {
      // Acknowledges something never sent (RFC 9293 3.10.7.4): answer with an ACK, drop it.
      this.counters.ignored++;
      this.sendAck();
      return;
    }
    if (acked < this.sndUna) return; // an old ACK overtaken by newer ones
    const oldWindow = this.sndWnd;
    // RFC 9293 3.10.7.4: take the window only from segments no older than the last update.
    const seqDelta = (seg.seq - this.sndWl1) | 0;
    if (seqDelta > 0 || (seqDelta === 0 && acked >= this.sndWl2)) {
      this.sndWnd = seg.window << this.sndWscale;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seg.seq;
      this.sndWl2 = acked;
    }
    if (acked > this.sndUna) {
      this.sndUna = acked;
      this.counters.bytesAcked = Math.min(acked, this.streamEnd);
      if (this.sndNxt < acked) this.sndNxt = acked;
      if (this.timing !== undefined && acked >= this.timing.end) {
        this.sampleRtt(now - this.timing.sentAt);
        this.timing = undefined;
      }
      this.consecutiveTimeouts = 0;
      this.rto = this.computedRto();
      this.dupAcks = 0;
      if (this.goBackOnPartialAck) {
        this.goBackOnPartialAck = false;
        // A partial ACK after a fast retransmit: the guest lacks everything after it.
        if (acked < this.recover) this.sndNxt = acked;
      }
      this.restartTimer();
      if (acked === this.streamEnd + 1) {
        this.state = 'done';
        this.times.allAcked = now;
        this.stopTimer();
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
      this.sndWnd === oldWindow &&
      this.sndWnd !== 0 &&
      this.sndMax > this.sndUna;
    if (!duplicate) {
      if (this.sndWnd !== oldWindow) this.armTimer();
      return;
    }
    this.counters.duplicateAcks++;
    this.dupAcks++;
    if (this.dupAcks === 3 && acked !== this.lastFastRetransmit) {
      this.counters.fastRetransmits++;
      this.lastFastRetransmit = acked;
      this.pendingRetransmit = acked;
      this.recover = this.sndMax;
      this.goBackOnPartialAck = true;
      this.timing = undefined;
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
    this.counters.arpRequestsSent++;
    const request = buildArp({
      op: ARP_REQUEST,
      senderMac: this.mac,
      senderIp: this.ip,
      targetMac: new Uint8Array(6),
      targetIp: this.guestIp,
    });
    this.queue(buildEthernet(BROADCAST_MAC, this.mac, ETHERTYPE_ARP, request));
    const retry = Math.round((this.config.arpRetrySeconds ?? 0.1) * this.clock.hz);
    this.arpTimer = this.clock.at(this.clock.now() + retry, () => {
      this.arpTimer = undefined;
      if (this.state === 'resolving') this.requestArp();
    });
  }

  private connect(): void {
    this.counters.connectAttempts++;
    this.iss = Math.floor(this.random() * 2 ** 32) >>> 0;
    this.state = 'syn-sent';
    this.rto = this.rtoInitial;
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
    this.timing = this.consecutiveTimeouts === 0 ? { end: 0, sentAt: now } : undefined;
    this.queueSegment({
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
    this.stopTimer();
    this.event('refused', `attempt ${this.counters.connectAttempts}`);
    if (this.counters.connectAttempts >= max) {
      this.fail(`connection refused by ${formatIpv4(this.guestIp)}:${this.guestPort}`);
      return;
    }
    this.state = 'resolving'; // waiting to try again
    const delay = Math.round((this.config.connectRetrySeconds ?? 0.01) * this.clock.hz);
    this.arpTimer = this.clock.at(this.clock.now() + delay, () => {
      this.arpTimer = undefined;
      if (this.state === 'resolving') this.connect();
    });
  }

  private fail(reason: string): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.error = reason;
    this.stopTimer();
    this.arpTimer?.cancel();
    this.event('failed', reason);
  }

  private event(kind: SenderEventKind, detail?: string): void {
    this.config.onEvent?.({ kind, cycle: this.clock.now(), detail });
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /** The application writes 32 KB messages while the socket buffer has room for one. */
  private fillBuffer(): void {
    const payloadEnd = this.stream.payloadLength;
    while (this.written < this.streamEnd) {
      // The payload goes in messages; the trailer is one last small write.
      const size =
        this.written < payloadEnd
          ? Math.min(this.messageBytes, payloadEnd - this.written)
          : this.streamEnd - this.written;
      if (this.written + size - this.sndUna > this.socketBuffer) break;
      this.written += size;
      this.counters.messages++;
    }
  }

  private route(): Route {
    return {
      srcMac: this.mac,
      dstMac: this.guestMac ?? BROADCAST_MAC,
      srcIp: this.ip,
      dstIp: this.guestIp,
    };
  }

  private queueSegment(s: TcpSegment): void {
    this.control.push(this.segmentFrame(s));
    this.pump();
  }

  private segmentFrame(s: TcpSegment): Uint8Array {
    this.counters.segmentsSent++;
    this.ipId = (this.ipId + 1) & 0xffff;
    return buildTcpFrame(this.route(), this.ipId, s);
  }

  private queue(frame: Uint8Array): void {
    this.control.push(frame);
    this.pump();
  }

  private sendAck(): void {
    this.queueSegment({
      srcPort: this.localPort,
      dstPort: this.guestPort,
      seq: this.wireSeq(this.sndNxt),
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

  /** Sends frames while the wire is free; when it is busy, comes back when it is free. */
  private pump(): void {
    if (this.pumpTimer !== undefined) return;
    const now = this.clock.now();
    if (this.wireFreeAt > now) {
      this.pumpTimer = this.clock.at(this.wireFreeAt, () => {
        this.pumpTimer = undefined;
        this.pump();
      });
      return;
    }
    const frame = this.control.shift() ?? this.nextDataFrame();
    if (frame === undefined) return;
    this.counters.framesSent++;
    this.wireFreeAt = this.config.transmit(withFcs(frame)) ?? now;
    if (this.control.length > 0 || this.state === 'established') this.pump();
  }

  private usableWindow(): number {
    return Math.min(this.sndWnd, this.socketBuffer) - (this.sndNxt - this.sndUna);
  }

  private nextDataFrame(): Uint8Array | undefined {
    if (this.state !== 'established') return undefined;
    const end = this.streamEnd;
    if (this.pendingRetransmit !== undefined) {
      const off = this.pendingRetransmit;
      this.pendingRetransmit = undefined;
      if (off < this.sndMax && off >= this.sndUna) {
        const len = Math.min(this.mss, Math.min(this.sndMax, end) - off);
        return this.dataSegment(off, len, off + len === end, false);
      }
    }
    if (this.sndNxt > end) return undefined; // everything and the FIN are out
    if (this.sndNxt === end) return this.dataSegment(end, 0, true, true);
    let len = Math.min(this.mss, this.written - this.sndNxt, this.usableWindow());
    if (len <= 0 && this.forceProbe) {
      len = 1;
      this.counters.windowProbes++;
    }
    this.forceProbe = false;
    if (len <= 0) {
      this.armTimer();
      return undefined;
    }
    // Sender-side silly-window avoidance (RFC 9293 3.8.6.2.1): a short segment only when it
    // empties the buffer, nothing is in flight, or it fills half the largest window seen.
    const shortOk =
      this.sndNxt + len === this.written ||
      this.sndNxt === this.sndUna ||
      len >= this.maxSndWnd / 2;
    if (len < this.mss && !shortOk) return undefined;
    return this.dataSegment(this.sndNxt, len, this.sndNxt + len === end, true);
  }

  /** A segment of stream bytes [off, off + len), with the FIN if it ends the stream. */
  private dataSegment(off: number, len: number, fin: boolean, advance: boolean): Uint8Array {
    const payload = new Uint8Array(len);
    this.stream.read(off, payload);
    const segEnd = off + len + (fin ? 1 : 0);
    if (off < this.sndMax) {
      this.counters.retransmissions++;
      this.timing = undefined; // Karn's rule
    } else if (this.timing === undefined) {
      this.timing = { end: segEnd, sentAt: this.clock.now() };
    }
    if (len > 0) {
      this.counters.dataSegmentsSent++;
      this.counters.bytesSent += len;
    }
    if (advance) this.sndNxt = segEnd;
    this.sndMax = Math.max(this.sndMax, segEnd);
    let flags = TCP_ACK;
    if (len > 0 && off + len === this.written) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    const frame = this.segmentFrame({
      srcPort: this.localPort,
      dstPort: this.guestPort,
      seq: this.wireSeq(off),
      ack: this.rcvNxt,
      flags,
      window: OUR_WINDOW,
      options: {},
      payload,
    });
    this.armTimer();
    return frame;
  }

  // -------------------------------------------------------------------------------------------
  // Retransmission timer (RFC 6298)

  private sampleRtt(rtt: number): void {
    if (this.srtt === undefined) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
  }

  private computedRto(): number {
    if (this.srtt === undefined) return this.rtoInitial;
    const rto = this.srtt + Math.max(1, 4 * this.rttvar);
    return Math.min(this.rtoMax, Math.max(this.rtoMin, Math.round(rto)));
  }

  /** The timer runs while anything is unacknowledged or a closed window holds data back. */
  private armTimer(): void {
    const outstanding = this.state === 'syn-sent' || this.sndMax > this.sndUna;
    const blocked =
      this.state === 'established' &&
      this.sndNxt < this.written &&
      this.usableWindow() <= 0 &&
      this.sndNxt === this.sndUna;
    if (!outstanding && !blocked) this.stopTimer();
    else if (this.rtoTimer === undefined)
      this.rtoTimer = this.clock.at(this.clock.now() + this.rto, () => this.timeout());
  }

  private restartTimer(): void {
    this.stopTimer();
    this.armTimer();
  }

  private stopTimer(): void {
    this.rtoTimer?.cancel();
    this.rtoTimer = undefined;
  }

  private timeout(): void {
    this.rtoTimer = undefined;
    if (this.state !== 'syn-sent' && this.state !== 'established') return;
    const max = this.config.maxTimeouts ?? 12;
    if (++this.consecutiveTimeouts > max) {
      this.fail(`no progress after ${max} retransmission timeouts`);
      return;
    }
    this.rto = Math.min(this.rtoMax, this.rto * 2);
    this.timing = undefined;
    if (this.state === 'syn-sent') {
      this.counters.timeouts++;
      this.sendSyn();
      return;
    }
    // Go back to the oldest unacknowledged byte; later ACKs skip what the guest already has.
    this.sndNxt = this.sndUna;
    this.recover = this.sndMax;
    this.pendingRetransmit = undefined;
    this.goBackOnPartialAck = false;
    this.dupAcks = 0;
    // A closed window makes this the persist timer: probe with one byte (RFC 9293 3.8.6.1).
    if (this.sndWnd === 0) this.forceProbe = true;
    else this.counters.timeouts++;
    this.armTimer();
    this.pump();
  }
}
