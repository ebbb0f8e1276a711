// The client machine saved mid-transfer and restored into a new TcpSender on a new clock
// (TcpSender.save/restore, SimClock.save/restore/restoreAt) continues exactly: the same frames
// at the same cycles, the same events and the same report as the uninterrupted run. The far end
// is a scripted receiver on a scripted wire, both written here so that they can be snapshotted
// too: it drops the first ARP request, refuses the first SYN, loses some data segments and the
// first FIN, repeats its SYN-ACK once, reads more slowly than the wire delivers (the window
// shrinks and grows) and delays its ACKs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimClock, type ClockState } from '../machine/clock.ts';
import type { Timer, TimerState } from '../machine/device.ts';
import { fcsValid, withFcs } from '../machine/ethernet/frame.ts';
import { crc32Update } from './checksum.ts';
import {
  ARP_REPLY,
  ARP_REQUEST,
  buildArp,
  buildEthernet,
  buildTcpFrame,
  ETHERTYPE_ARP,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpSegment,
} from './headers.ts';
import {
  GUEST_IP,
  NETSERVER_PORT,
  PEER_IP,
  TcpSender,
  type SenderEvent,
  type TcpSenderState,
} from './TcpSender.ts';

const HZ = 2_800_000_000;
const BITS_PER_SECOND = 1_000_000_000;
const GUEST_MAC = Uint8Array.from([0, 0x0d, 0x42, 0, 0, 1]);
const PAYLOAD = 768 * 1024;
const BUFFER = 96 * 1024;

/** Wire time of a frame with FCS (preamble, SFD, gap: as src/machine/ethernet/link.ts). */
const wireCycles = (length: number): number =>
  Math.ceil(((8 + length + 12) * 8 * HZ) / BITS_PER_SECOND);
const arrivalCycles = (length: number): number =>
  Math.ceil(((8 + length) * 8 * HZ) / BITS_PER_SECOND);

const pending = (t: Timer | undefined): TimerState | null =>
  t === undefined ? null : { cycle: t.cycle, seq: t.seq };

/** The scripted receiver's state: all numbers, so it can be saved as it is. */
interface GuestVars {
  arpSeen: number;
  synSeen: number;
  dataSeen: number;
  finDropped: boolean;
  rcvNxt: number;
  peerPort: number;
  unread: number;
  unacked: number;
  received: number;
  crc: number;
  finished: boolean;
  /** The window last announced, in bytes. */
  advertised: number;
}

interface WorldState {
  now: number;
  clock: ClockState;
  sender: TcpSenderState;
  guest: GuestVars;
  peerMac: number[];
  delayedAck: TimerState | null;
  read: TimerState | null;
  busy: [number, number];
  inFlight: { toGuest: boolean; frame: number[]; at: TimerState }[];
  sent: string[];
  events: SenderEvent[];
}

class World {
  now = 0;
  readonly clock = new SimClock(HZ, () => this.now);
  readonly sender: TcpSender;
  /** Frames the sender put on the wire: "cycle frame-in-hex". */
  sent: string[] = [];
  events: SenderEvent[] = [];
  private g: GuestVars = {
    arpSeen: 0,
    synSeen: 0,
    dataSeen: 0,
    finDropped: false,
    rcvNxt: 0,
    peerPort: 0,
    unread: 0,
    unacked: 0,
    received: 0,
    crc: 0,
    finished: false,
    advertised: 0,
  };
  private peerMac = new Uint8Array(6);
  private delayedAck: Timer | undefined;
  private read: Timer | undefined;
  /** When each direction's wire is free: [to the guest, to the peer]. */
  private busy: [number, number] = [0, 0];
  private readonly inFlight = new Set<{ toGuest: boolean; frame: Uint8Array; timer: Timer }>();

  constructor() {
    this.sender = new TcpSender({
      clock: this.clock,
      transmit: (frame) => {
        this.sent.push(`${this.clock.now()} ${Buffer.from(frame).toString('hex')}`);
        return this.put(true, frame);
      },
      payloadBytes: PAYLOAD,
      seed: 9,
      arpRetrySeconds: 0.001,
      onEvent: (e) => this.events.push(JSON.parse(JSON.stringify(e)) as SenderEvent), // as saved
    });
  }

  // ---- the wire ----------------------------------------------------------------------------

  private put(toGuest: boolean, frame: Uint8Array): number {
    const d = toGuest ? 0 : 1;
    const start = Math.max(this.clock.now(), this.busy[d]);
    this.busy[d] = start + wireCycles(frame.length);
    this.deliver(toGuest, Uint8Array.from(frame), start + arrivalCycles(frame.length));
    return this.busy[d];
  }

  private deliver(toGuest: boolean, frame: Uint8Array, at: number | TimerState): void {
    const entry = { toGuest, frame, timer: undefined as unknown as Timer };
    const fire = (): void => {
      this.inFlight.delete(entry);
      if (toGuest) this.guestReceive(frame);
      else this.sender.receive(frame);
    };
    entry.timer =
      typeof at === 'number'
        ? this.clock.at(at, fire, 'test.wire')
        : this.clock.restoreAt(at, fire, 'test.wire');
    this.inFlight.add(entry);
  }

  // ---- the scripted receiver ---------------------------------------------------------------

  private guestReceive(frame: Uint8Array): void {
    const g = this.g;
    assert.ok(fcsValid(frame));
    const eth = parseEthernet(frame.subarray(0, frame.length - 4));
    assert.ok(typeof eth !== 'string');
    if (eth.type === ETHERTYPE_ARP) {
      const arp = parseArp(eth.payload);
      assert.ok(typeof arp !== 'string' && arp.op === ARP_REQUEST);
      if (++g.arpSeen === 1) return; // the first request is lost
      const reply = buildArp({
        op: ARP_REPLY,
        senderMac: GUEST_MAC,
        senderIp: GUEST_IP,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      });
      this.put(false, withFcs(buildEthernet(arp.senderMac, GUEST_MAC, ETHERTYPE_ARP, reply)));
      return;
    }
    const ip = parseIpv4(eth.payload);
    assert.ok(typeof ip !== 'string');
    const tcp = parseTcp(ip.payload, ip.src, ip.dst);
    assert.ok(typeof tcp !== 'string');
    this.peerMac = eth.src.slice();
    g.peerPort = tcp.srcPort;
    if ((tcp.flags & TCP_SYN) !== 0) {
      if (++g.synSeen === 1) {
        this.send(0, (tcp.seq + 1) >>> 0, TCP_RST | TCP_ACK, 0);
        return;
      }
      g.rcvNxt = (tcp.seq + 1) >>> 0;
      this.send(1000, g.rcvNxt, TCP_SYN | TCP_ACK, 65535, { mss: 1460, windowScale: 2 });
      return;
    }
    const len = tcp.payload.length;
    const fin = (tcp.flags & TCP_FIN) !== 0;
    if (len === 0 && !fin) return;
    g.dataSeen++;
    if (g.dataSeen === 100) {
      // The guest repeats its SYN-ACK (as if ours was lost): the sender's ACK of it waits for
      // the busy wire in its queue of control frames.
      this.send(1000, (tcp.seq - g.received - 1) >>> 0, TCP_SYN | TCP_ACK, 65535, { mss: 1460 });
    }
    if (g.dataSeen % 53 === 17) return; // lost on the way
    if (fin && !g.finDropped) {
      g.finDropped = true; // the first FIN is lost: only the timeout brings it back
      return;
    }
    if (tcp.seq !== g.rcvNxt || len > BUFFER - g.unread) {
      this.ackNow(); // out of order or beyond the window: dropped, the ACK repeated
      return;
    }
    g.received += len;
    g.unread += len;
    g.crc = crc32Update(g.crc, tcp.payload);
    g.rcvNxt = (g.rcvNxt + len + (fin ? 1 : 0)) >>> 0;
    if (fin) g.finished = true;
    this.read ??= this.clock.at(this.clock.now() + HZ / 10000, this.readSome, 'test.read');
    if (fin || ++g.unacked >= 2) this.ackNow();
    else this.delayedAck ??= this.clock.at(this.clock.now() + HZ / 5000, this.ackNow, 'test.ack');
  }

  /** The application reads 6 KB every 0.1 ms (60 MB/s: slower than the wire). */
  private readonly readSome = (): void => {
    const g = this.g;
    this.read = undefined;
    g.unread = Math.max(0, g.unread - 6144);
    // A window update once the window has grown by a quarter of the buffer (RFC 1122 4.2.3.3).
    if (BUFFER - g.unread - g.advertised >= BUFFER / 4) this.ackNow();
    if (g.unread > 0) {
      this.read = this.clock.at(this.clock.now() + HZ / 10000, this.readSome, 'test.read');
    }
  };

  private readonly ackNow = (): void => {
    const g = this.g;
    this.delayedAck?.cancel();
    this.delayedAck = undefined;
    g.unacked = 0;
    g.advertised = BUFFER - g.unread;
    const flags = g.finished ? TCP_ACK | TCP_FIN : TCP_ACK;
    this.send(1001, g.rcvNxt, flags, (BUFFER - g.unread) >> 2);
  };

  private send(
    seq: number,
    ack: number,
    flags: number,
    window: number,
    options: TcpSegment['options'] = {},
  ): void {
    const seg: TcpSegment = {
      srcPort: NETSERVER_PORT,
      dstPort: this.g.peerPort,
      seq,
      ack,
      flags,
      window: Math.min(window, 65535),
      options,
      payload: new Uint8Array(0),
    };
    const route = { srcMac: GUEST_MAC, dstMac: this.peerMac, srcIp: GUEST_IP, dstIp: PEER_IP };
    this.put(false, withFcs(buildTcpFrame(route, 0, seg)));
  }

  // ---- running and snapshots ---------------------------------------------------------------

  /** Fires every event up to `cycle`; the clock then stands at `cycle`. */
  runUntil(cycle: number): void {
    for (let next = this.clock.next(); next !== undefined && next <= cycle;) {
      this.now = next;
      this.clock.fireDue(next);
      next = this.clock.next();
    }
    this.now = Math.max(this.now, cycle);
  }

  /** Runs until nothing is left to happen. */
  finish(): void {
    this.runUntil(HZ * 60);
    assert.equal(this.clock.next(), undefined, 'the run came to an end');
  }

  save(): WorldState {
    return {
      now: this.now,
      clock: this.clock.save(),
      sender: this.sender.save(),
      guest: { ...this.g },
      peerMac: Array.from(this.peerMac),
      delayedAck: pending(this.delayedAck),
      read: pending(this.read),
      busy: [...this.busy],
      inFlight: [...this.inFlight].map((f) => ({
        toGuest: f.toGuest,
        frame: Array.from(f.frame),
        at: { cycle: f.timer.cycle, seq: f.timer.seq },
      })),
      sent: [...this.sent],
      events: this.events.map((e) => ({ ...e })),
    };
  }

  /** A new world from a snapshot: the clock first, then every owner of its events. */
  static restore(s: WorldState): World {
    const w = new World();
    w.now = s.now;
    w.clock.restore(s.clock);
    w.sender.restore(s.sender);
    w.g = { ...s.guest };
    w.peerMac = Uint8Array.from(s.peerMac);
    if (s.delayedAck !== null) w.delayedAck = w.clock.restoreAt(s.delayedAck, w.ackNow, 'test.ack');
    if (s.read !== null) w.read = w.clock.restoreAt(s.read, w.readSome, 'test.read');
    w.busy = [...s.busy];
    for (const f of s.inFlight) w.deliver(f.toGuest, Uint8Array.from(f.frame), f.at);
    w.sent = [...s.sent];
    w.events = s.events.map((e) => ({ ...e }));
    assert.equal(w.clock.unrestored(s.clock), undefined);
    return w;
  }

  outcome(): unknown {
    return {
      sent: this.sent,
      events: this.events,
      report: this.sender.report(),
      guest: this.g,
      now: this.now,
      state: this.sender.save(),
    };
  }
}

test('the client machine restored mid-transfer sends the same frames at the same cycles', () => {
  const reference = new World();
  reference.sender.start();
  reference.finish();
  const expected = reference.outcome();
  const report = reference.sender.report();
  assert.equal(report.state, 'done', report.error);
  const c = report.counters;
  assert.ok(c.arpRequestsSent >= 2 && c.resets === 1 && c.connectAttempts === 2);
  assert.ok(c.retransmissions > 0 && c.fastRetransmits > 0 && c.timeouts > 0, JSON.stringify(c));
  assert.equal(c.bytesAcked, report.streamBytes);

  const at = (kind: string): number => {
    const e = reference.events.find((x) => x.kind === kind);
    assert.ok(e !== undefined, kind);
    return e.cycle;
  };
  const acked = at('all-acked');
  const sentAt = (k: number): number => Number(reference.sent[k].split(' ')[0]);
  // While resolving (ARP retry pending), refused (next attempt pending), at the start of the
  // transfer, in the middle of it with frames on the wire both ways (the slow reader's window
  // and the losses shaping it), while the lost FIN waits for its timeout, and after the end.
  // The moment the sender's ACK of the repeated SYN-ACK waits for the wire.
  const probe = new World();
  probe.sender.start();
  let queued = -1;
  for (let next = probe.clock.next(); next !== undefined && queued < 0; next = probe.clock.next()) {
    probe.runUntil(next);
    if (probe.sender.save().link.control.length > 0) queued = next;
  }
  assert.ok(queued > 0, 'a control frame waited for the wire');
  const points = [
    0,
    queued,
    at('refused') + 1,
    at('established') + 5000,
    ...[0.2, 0.45, 0.7, 0.9].map((f) => sentAt(Math.floor(reference.sent.length * f)) + 1234),
    acked - Math.floor(HZ * 0.1),
    acked + 1,
  ];
  for (const n of points) {
    const first = new World();
    first.sender.start();
    first.runUntil(n);
    const snapshot = JSON.parse(JSON.stringify(first.save())) as WorldState;
    const second = World.restore(snapshot);
    assert.deepEqual(second.sender.save(), snapshot.sender, `restore keeps the state (N=${n})`);
    second.finish();
    assert.deepEqual(second.outcome(), expected, `restored at cycle ${n}`);
    // Saving changed nothing in the sender that was saved.
    first.finish();
    assert.deepEqual(first.outcome(), expected, `saved at cycle ${n}`);
  }
});

test('a sender state from another configuration or version is refused', () => {
  const w = new World();
  w.sender.start();
  const state = w.sender.save();
  const clock = new SimClock(HZ, () => 0);
  const other = new TcpSender({ clock, transmit: () => 0, payloadBytes: PAYLOAD + 1, seed: 9 });
  assert.throws(
    () => other.restore(state),
    /sender state: saved with payloadBytes 786432, this sender has 786433/,
  );
  assert.throws(
    () => other.restore({ ...state, version: 2 } as unknown as TcpSenderState),
    /sender state version 2 is not supported \(expected 1\)/,
  );
});
