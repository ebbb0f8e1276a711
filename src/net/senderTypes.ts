/**
 * The client machine's contract and interface (src/net/TcpSender.ts): the addresses of the
 * network contract (lead notes, issue 6), its configuration, the events it reports as they
 * happen, its counters and the report of a run.
 */
import type { Clock, TimerState } from '../machine/device.ts';
import { ipv4 } from './headers.ts';
import type { PeerLinkState } from './PeerLink.ts';
import type { RetransmitTimerState } from './RetransmitTimer.ts';
import type { SendWindowState } from './SendWindow.ts';
import type { PayloadStreamState } from './stream.ts';

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

/** Counters of a new sender: all zero. */
export function newCounters(): SenderCounters {
  return {
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

/**
 * The client machine in a snapshot (DESIGN.md decision 11: typed, versioned; plain JSON data,
 * `null` for "none", frames as byte arrays). Not to be confused with `SenderState`, the
 * connection's state machine, which is one field of it. The sender is restored into a new
 * TcpSender built with the same configuration (`config` is checked) on a clock restored from the
 * same snapshot; its pending clock events come back at their saved places (TimerState).
 */
export interface TcpSenderState {
  version: 1;
  /** The configuration values that shape the run, as the saved sender had them. */
  config: Record<string, number | string>;
  state: SenderState;
  error: string | null;
  counters: SenderCounters;
  times: SenderTimes;
  iss: number;
  rcvNxt: number;
  windowScale: number | null;
  mss: number;
  consecutiveTimeouts: number;
  dupAcks: number;
  lastFastRetransmit: number;
  recover: number;
  goBackOnPartialAck: boolean;
  pendingRetransmit: number | null;
  forceProbe: boolean;
  /** Numbers drawn from the seeded generator (initial sequence numbers): its position. */
  randomDraws: number;
  /** The ARP retry or, after a refused SYN, the wait before the next attempt. */
  retryTimer: (TimerState & { kind: 'arp' | 'connect' }) | null;
  window: SendWindowState;
  rtx: RetransmitTimerState;
  stream: PayloadStreamState;
  link: PeerLinkState;
}
