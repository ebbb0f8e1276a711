/**
 * The client machine's end of the wire, below its TCP (TcpSender.ts): frames in — FCS, Ethernet,
 * ARP and IPv4 checked and filtered down to the one connection's TCP segments — and frames out,
 * one at a time as the wire frees up, control frames (ARP, SYN, pure ACKs) ahead of data. It
 * answers the guest's ARP requests and learns the guest's MAC from its ARP packets or, failing
 * that, from the first segment of the connection.
 */
import type { Clock, Timer, TimerState } from '../machine/device.ts';
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
  IP_PROTO_TCP,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  sameMac,
  type Route,
  type TcpSegment,
} from './headers.ts';
import type { SenderCounters } from './senderTypes.ts';

/** Both ends of the connection. */
export interface LinkAddresses {
  mac: Uint8Array;
  ip: number;
  guestIp: number;
  guestPort: number;
  localPort: number;
}

/** What the link hands up to the TCP above it, and asks of it. */
export interface LinkUser {
  /** A segment of the connection arrived (addresses, ports and checksums checked). */
  segment(seg: TcpSegment): void;
  /** An ARP packet from the guest's address told its MAC. */
  guestResolved(): void;
  /**
   * The next data segment's frame with its FCS (`segmentFrame(s, true)`), when no control
   * frame waits (undefined: none now).
   */
  nextDataFrame(): Uint8Array | undefined;
  /** Whether to look for another frame after one has gone (the connection is sending). */
  sending(): boolean;
}

/**
 * Its part of the client machine's snapshot: what it learnt, the frames waiting for the wire
 * (as byte arrays, without FCS), when the wire is free and the pending wait for it. `null` for
 * "none".
 */
export interface PeerLinkState {
  guestMac: number[] | null;
  lastMalformed: string | null;
  pumpTimer: TimerState | null;
  wireFreeAt: number;
  control: number[][];
  ipId: number;
}

/** The name its clock event has in snapshots (the clock's `unrestored` audit). */
const OWNER = 'tcp-sender.wire';

export class PeerLink {
  /** The guest's MAC, once learnt. */
  guestMac: Uint8Array | undefined;
  /** The last malformed frame's problem, for the report. */
  lastMalformed: string | undefined;
  private pumpTimer: Timer | undefined;
  private wireFreeAt = 0;
  private readonly control: Uint8Array[] = [];
  private ipId = 0;

  constructor(
    private readonly clock: Clock,
    /** Puts a frame (with FCS) on the wire; returns the cycle the wire is free again. */
    private readonly transmit: (frame: Uint8Array) => number | undefined,
    private readonly addr: LinkAddresses,
    private readonly counters: SenderCounters,
    private readonly user: LinkUser,
  ) {}

  receive(frameWithFcs: Uint8Array): void {
    const addr = this.addr;
    this.counters.framesReceived++;
    if (!fcsValid(frameWithFcs)) {
      this.counters.badFcs++;
      return;
    }
    // GUEST-CONTROLLED: everything below is parsed defensively; problems are counted.
    const eth = parseEthernet(frameWithFcs.subarray(0, frameWithFcs.length - 4));
    if (typeof eth === 'string') return this.malformed(eth);
    if (!sameMac(eth.dst, addr.mac) && !sameMac(eth.dst, BROADCAST_MAC)) {
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
    if (ip.dst !== addr.ip || ip.src !== addr.guestIp || ip.protocol !== IP_PROTO_TCP) {
      this.counters.ignored++;
      return;
    }
    const tcp = parseTcp(ip.payload, ip.src, ip.dst);
    if (typeof tcp === 'string') return this.malformed(tcp);
    if (tcp.srcPort !== addr.guestPort || tcp.dstPort !== addr.localPort) {
      this.counters.ignored++;
      return;
    }
    if (this.guestMac === undefined) this.guestMac = eth.src.slice();
    this.user.segment(tcp);
    this.pump();
  }

  private malformed(why: string): void {
    this.counters.malformed++;
    this.lastMalformed = why;
  }

  private receiveArp(payload: Uint8Array): void {
    const { mac, ip, guestIp } = this.addr;
    const arp = parseArp(payload);
    if (typeof arp === 'string') return this.malformed(arp);
    if (arp.senderIp === guestIp) {
      this.guestMac = arp.senderMac;
      this.user.guestResolved();
    }
    if (arp.op === ARP_REQUEST && arp.targetIp === ip) {
      this.counters.arpRepliesSent++;
      const reply = buildArp({
        op: ARP_REPLY,
        senderMac: mac,
        senderIp: ip,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      });
      this.queue(buildEthernet(arp.senderMac, mac, ETHERTYPE_ARP, reply));
    } else if (arp.op !== ARP_REPLY && arp.op !== ARP_REQUEST) this.counters.ignored++;
  }

  /** Asks who has the guest's address (broadcast). */
  requestArp(): void {
    const { mac, ip, guestIp } = this.addr;
    this.counters.arpRequestsSent++;
    const request = buildArp({
      op: ARP_REQUEST,
      senderMac: mac,
      senderIp: ip,
      targetMac: new Uint8Array(6),
      targetIp: guestIp,
    });
    this.queue(buildEthernet(BROADCAST_MAC, mac, ETHERTYPE_ARP, request));
  }

  private route(): Route {
    return {
      srcMac: this.addr.mac,
      dstMac: this.guestMac ?? BROADCAST_MAC,
      srcIp: this.addr.ip,
      dstIp: this.addr.guestIp,
    };
  }

  /** Queues a control segment (SYN, pure ACK) ahead of data. */
  queueSegment(s: TcpSegment): void {
    this.queue(this.segmentFrame(s));
  }

  /** The frame of a segment to the guest (counted as sent); with `fcs`, followed by its FCS. */
  segmentFrame(s: TcpSegment, fcs = false): Uint8Array {
    this.counters.segmentsSent++;
    this.ipId = (this.ipId + 1) & 0xffff;
    return buildTcpFrame(this.route(), this.ipId, s, fcs);
  }

  private queue(frame: Uint8Array): void {
    this.control.push(frame);
    this.pump();
  }

  /** Sends frames while the wire is free; when it is busy, comes back when it is free. */
  pump(): void {
    if (this.pumpTimer !== undefined) return;
    const now = this.clock.now();
    if (this.wireFreeAt > now) {
      this.pumpTimer = this.clock.at(this.wireFreeAt, this.wireFree, OWNER);
      return;
    }
    // PERF: a data frame comes with its FCS, built in one buffer (no copy to append it).
    const control = this.control.shift();
    const frame = control !== undefined ? withFcs(control) : this.user.nextDataFrame();
    if (frame === undefined) return;
    this.counters.framesSent++;
    this.wireFreeAt = this.transmit(frame) ?? now;
    if (this.control.length > 0 || this.user.sending()) this.pump();
  }

  private readonly wireFree = (): void => {
    this.pumpTimer = undefined;
    this.pump();
  };

  save(): PeerLinkState {
    const t = this.pumpTimer;
    return {
      guestMac: this.guestMac === undefined ? null : Array.from(this.guestMac),
      lastMalformed: this.lastMalformed ?? null,
      pumpTimer: t === undefined ? null : { cycle: t.cycle, seq: t.seq },
      wireFreeAt: this.wireFreeAt,
      control: this.control.map((f) => Array.from(f)),
      ipId: this.ipId,
    };
  }

  /** After the clock's restore: the same frames waiting, the wait for the wire at its place. */
  restore(s: PeerLinkState): void {
    this.pumpTimer?.cancel();
    this.pumpTimer = undefined;
    this.guestMac = s.guestMac === null ? undefined : Uint8Array.from(s.guestMac);
    this.lastMalformed = s.lastMalformed ?? undefined;
    this.wireFreeAt = s.wireFreeAt;
    this.control.length = 0;
    for (const f of s.control) this.control.push(Uint8Array.from(f));
    this.ipId = s.ipId;
    if (s.pumpTimer !== null) {
      this.pumpTimer = this.clock.restoreAt(s.pumpTimer, this.wireFree, OWNER);
    }
  }
}
