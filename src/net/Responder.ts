/**
 * The host on the far end of the wire for `previrt run --nic`: 10.0.2.2 (the network contract's
 * peer, senderTypes.ts) answering ARP requests for its address (RFC 826) and ICMP echo requests
 * to it (RFC 792), so that `ping 10.0.2.2` from the guest is answered. Everything else it hands
 * to the next receiver, when there is one (the netperf client for TCP: `previrt run --nic
 * dp83820,netperf=SIZE`), and counts otherwise.
 *
 * Like the netperf client it is another computer: it answers in the cycle a frame arrives and
 * costs the guest nothing; its replies queue on the wire (link.ts serialises each direction).
 */
import type { EthernetReceiver } from '../machine/ethernet/link.ts';
import { fcsValid, withFcs } from '../machine/ethernet/frame.ts';
import { internetChecksum } from './checksum.ts';
import {
  ARP_REPLY,
  ARP_REQUEST,
  buildArp,
  buildEthernet,
  buildIpv4,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  parseArp,
  parseEthernet,
  parseIpv4,
  sameMac,
} from './headers.ts';
import { PEER_IP, PEER_MAC } from './senderTypes.ts';

export const IP_PROTO_ICMP = 1;
const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;

export interface ResponderCounters {
  framesReceived: number;
  arpReplies: number;
  echoReplies: number;
  /** Frames passed on to the next receiver. */
  passedOn: number;
  /** Frames for someone else, or of a kind it does not answer, with no next receiver. */
  ignored: number;
  badFcs: number;
  malformed: number;
}

export interface ResponderConfig {
  /** Puts a frame (with FCS) on the wire. */
  transmit: (frame: Uint8Array) => unknown;
  mac?: Uint8Array;
  ip?: number;
  /**
   * Takes what the responder does not answer (frames with FCS, unchanged). It then also answers
   * ARP for the address itself (the netperf client does), so the responder leaves ARP to it.
   */
  next?: EthernetReceiver;
}

export class Responder implements EthernetReceiver {
  readonly counters: ResponderCounters = {
    framesReceived: 0,
    arpReplies: 0,
    echoReplies: 0,
    passedOn: 0,
    ignored: 0,
    badFcs: 0,
    malformed: 0,
  };
  private readonly mac: Uint8Array;
  private readonly ip: number;
  private ipId = 0;

  constructor(private readonly config: ResponderConfig) {
    this.mac = config.mac ?? PEER_MAC;
    this.ip = config.ip ?? PEER_IP;
  }

  receive(frameWithFcs: Uint8Array): void {
    const c = this.counters;
    c.framesReceived++;
    if (!fcsValid(frameWithFcs)) {
      c.badFcs++;
      return;
    }
    // GUEST-CONTROLLED: parsed defensively; anything odd is counted, never thrown.
    const eth = parseEthernet(frameWithFcs.subarray(0, frameWithFcs.length - 4));
    if (typeof eth === 'string') {
      c.malformed++;
      return;
    }
    if (eth.type === ETHERTYPE_IPV4 && sameMac(eth.dst, this.mac)) {
      const ip = parseIpv4(eth.payload);
      if (typeof ip === 'string') {
        c.malformed++;
        return;
      }
      if (ip.protocol === IP_PROTO_ICMP && ip.dst === this.ip) {
        this.icmp(eth.src, ip.src, ip.payload);
        return;
      }
    } else if (eth.type === ETHERTYPE_ARP && this.config.next === undefined) {
      this.arp(eth.payload);
      return;
    }
    if (this.config.next !== undefined) {
      c.passedOn++;
      this.config.next.receive(frameWithFcs);
    } else c.ignored++;
  }

  private arp(payload: Uint8Array): void {
    const arp = parseArp(payload);
    if (typeof arp === 'string') {
      this.counters.malformed++;
      return;
    }
    if (arp.op !== ARP_REQUEST || arp.targetIp !== this.ip) {
      this.counters.ignored++;
      return;
    }
    this.counters.arpReplies++;
    const reply = buildArp({
      op: ARP_REPLY,
      senderMac: this.mac,
      senderIp: this.ip,
      targetMac: arp.senderMac,
      targetIp: arp.senderIp,
    });
    this.send(buildEthernet(arp.senderMac, this.mac, ETHERTYPE_ARP, reply));
  }

  /** An echo request gets its reply: the same identifier, sequence number and data (RFC 792). */
  private icmp(mac: Uint8Array, src: number, icmp: Uint8Array): void {
    if (icmp.length < 8 || internetChecksum(icmp) !== 0) {
      this.counters.malformed++;
      return;
    }
    if (icmp[0] !== ICMP_ECHO_REQUEST || icmp[1] !== 0) {
      this.counters.ignored++;
      return;
    }
    this.counters.echoReplies++;
    this.ipId = (this.ipId + 1) & 0xffff;
    const packet = buildIpv4(
      {
        src: this.ip,
        dst: src,
        protocol: IP_PROTO_ICMP,
        id: this.ipId,
        ttl: 64,
        dontFragment: false,
      },
      icmp.length,
    );
    const reply = packet.subarray(20);
    reply.set(icmp);
    reply[0] = ICMP_ECHO_REPLY;
    reply[2] = 0;
    reply[3] = 0;
    const sum = internetChecksum(reply);
    reply[2] = sum >> 8;
    reply[3] = sum & 0xff;
    this.send(buildEthernet(mac, this.mac, ETHERTYPE_IPV4, packet));
  }

  private send(frame: Uint8Array): void {
    this.config.transmit(withFcs(frame));
  }
}
