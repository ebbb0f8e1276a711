// The client machine against a tiny TCP receiver written here (standing in for the guest):
// both ends on previrt's 1 Gb/s link and simulated clock, with and without the link's seeded
// fault injector. The receiver checks the stream the way netserver does: CRC-32 of everything
// but the 12-byte trailer against the trailer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { SimClock } from '../machine/clock.ts';
import { EthernetLink, type EthernetReceiver, type FaultConfig } from '../machine/ethernet/link.ts';
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
import { parseTrailer, payloadBytes, TRAILER_BYTES } from './stream.ts';
import { GUEST_IP, NETSERVER_PORT, PEER_IP, TcpSender, type SenderConfig } from './TcpSender.ts';

const GUEST_MAC = Uint8Array.from([0, 0x0d, 0x42, 0, 0, 1]);
const HZ = 2_800_000_000;

interface ReceiverOptions {
  /** Receive buffer in bytes (the window when the application keeps up). */
  buffer: number;
  /** Window-scale shift to offer when the peer offers the option. */
  windowScale?: number;
  /** Keep out-of-order segments (true) or drop them and re-ACK (false). */
  keepOutOfOrder: boolean;
  /** The application reads this many bytes every `readEvery` cycles (default: at once). */
  readBytes?: number;
  readEvery?: number;
  /** Answer the SYN with RST this many times first (netserver not listening yet). */
  refuse?: number;
  /** Whether the receiver announces a window that has opened again (default true). */
  windowUpdates?: boolean;
  /** Reset the connection after this many bytes. */
  resetAfter?: number;
  /** Outages: the data segments that arrive `from`-th to `from + count - 1`-th are lost. */
  lose?: { from: number; count: number }[];
}

/** A receive-only TCP on link end 0: ARP, SYN-ACK, in-order delivery, ACK every 2nd segment. */
class TinyReceiver implements EthernetReceiver {
  readonly data: Uint8Array[] = [];
  received = 0;
  finished = false;
  badFrames = 0;
  outOfOrder = 0;
  duplicates = 0;
  private dataSegments = 0;
  private rcvNxt = 0;
  private readonly iss = 1000;
  private ourShift = 0;
  private unread = 0;
  private unacked = 0;
  private delayedAck: ReturnType<SimClock['at']> | undefined;
  private readonly held = new Map<number, TcpSegment>();
  private refusals = 0;
  private peerMac = new Uint8Array(6);
  private peerPort = 0;

  constructor(
    private readonly clock: SimClock,
    private readonly link: EthernetLink,
    private readonly o: ReceiverOptions,
  ) {
    if (o.readBytes !== undefined) this.scheduleRead();
  }

  receive(frame: Uint8Array): void {
    if (!fcsValid(frame)) {
      this.badFrames++;
      return;
    }
    const eth = parseEthernet(frame.subarray(0, frame.length - 4));
    if (typeof eth === 'string') return void this.badFrames++;
    if (eth.type === ETHERTYPE_ARP) {
      const arp = parseArp(eth.payload);
      if (typeof arp === 'string' || arp.op !== ARP_REQUEST || arp.targetIp !== GUEST_IP) return;
      const reply = buildArp({
        op: ARP_REPLY,
        senderMac: GUEST_MAC,
        senderIp: GUEST_IP,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      });
      this.put(buildEthernet(arp.senderMac, GUEST_MAC, ETHERTYPE_ARP, reply));
      return;
    }
    const ip = parseIpv4(eth.payload);
    if (typeof ip === 'string') return void this.badFrames++;
    const tcp = parseTcp(ip.payload, ip.src, ip.dst);
    if (typeof tcp === 'string') return void this.badFrames++;
    this.peerMac = eth.src.slice();
    this.peerPort = tcp.srcPort;
    if (tcp.flags & TCP_SYN) {
      if (this.refusals < (this.o.refuse ?? 0)) {
        this.refusals++;
        this.send(0, (tcp.seq + 1) >>> 0, TCP_RST | TCP_ACK, 0);
        return;
      }
      this.rcvNxt = (tcp.seq + 1) >>> 0;
      const scaled = tcp.options.windowScale !== undefined && this.o.windowScale !== undefined;
      this.ourShift = scaled ? (this.o.windowScale ?? 0) : 0;
      this.send(this.iss, this.rcvNxt, TCP_SYN | TCP_ACK, Math.min(this.o.buffer, 65535), {
        mss: 1460,
        windowScale: scaled ? this.ourShift : undefined,
      });
      return;
    }
    const len = tcp.payload.length;
    const fin = (tcp.flags & TCP_FIN) !== 0;
    if (len === 0 && !fin) return;
    const n = this.dataSegments++;
    if (this.o.lose?.some((l) => n >= l.from && n < l.from + l.count) === true) return;
    const delta = (tcp.seq - this.rcvNxt) | 0;
    if (delta !== 0) {
      if (delta < 0) this.duplicates++;
      else {
        this.outOfOrder++;
        if (this.o.keepOutOfOrder && this.room() >= delta + len) this.held.set(tcp.seq, tcp);
      }
      this.ackNow();
      return;
    }
    this.accept(tcp);
    // Anything held that now fits in order.
    for (
      let next = this.held.get(this.rcvNxt);
      next !== undefined;
      next = this.held.get(this.rcvNxt)
    ) {
      this.held.delete(this.rcvNxt);
      this.accept(next);
    }
    if (this.o.resetAfter !== undefined && this.received >= this.o.resetAfter) {
      this.send((this.iss + 1) >>> 0, this.rcvNxt, TCP_RST | TCP_ACK, 0);
      return;
    }
    if (this.finished || ++this.unacked >= 2) this.ackNow();
    else if (this.delayedAck === undefined)
      this.delayedAck = this.clock.at(this.clock.now() + HZ / 5000, () => this.ackNow());
  }

  private accept(tcp: TcpSegment): void {
    const len = tcp.payload.length;
    if (len > this.room()) return; // beyond the window: drop it
    this.data.push(tcp.payload.slice());
    this.received += len;
    this.unread += len;
    if (this.o.readBytes === undefined) this.unread = 0;
    this.rcvNxt = (this.rcvNxt + len) >>> 0;
    if (tcp.flags & TCP_FIN) {
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      this.finished = true;
    }
  }

  private room(): number {
    return this.o.buffer - this.unread;
  }

  private scheduleRead(): void {
    this.clock.at(this.clock.now() + (this.o.readEvery ?? 1), () => {
      const before = this.room();
      this.unread = Math.max(0, this.unread - (this.o.readBytes ?? 0));
      // A window update once the window has opened by an MSS or more (RFC 9293 3.8.6.2.2).
      if (
        before < 1460 &&
        this.room() >= 1460 &&
        this.peerPort !== 0 &&
        this.o.windowUpdates !== false
      )
        this.ackNow();
      if (!this.finished) this.scheduleRead();
    });
  }

  private ackNow(): void {
    this.delayedAck?.cancel();
    this.delayedAck = undefined;
    this.unacked = 0;
    const flags = this.finished ? TCP_ACK | TCP_FIN : TCP_ACK;
    this.send((this.iss + 1) >>> 0, this.rcvNxt, flags, this.room() >> this.ourShift);
  }

  private send(
    seq: number,
    ack: number,
    flags: number,
    window: number,
    options: TcpSegment['options'] = {},
  ): void {
    const seg: TcpSegment = {
      srcPort: NETSERVER_PORT,
      dstPort: this.peerPort,
      seq,
      ack,
      flags,
      window: Math.min(window, 65535),
      options,
      payload: new Uint8Array(0),
    };
    const route = { srcMac: GUEST_MAC, dstMac: this.peerMac, srcIp: GUEST_IP, dstIp: PEER_IP };
    this.put(buildTcpFrame(route, 0, seg));
  }

  put(frame: Uint8Array): void {
    this.link.send(0, withFcs(frame));
  }

  /** What netserver checks: CRC-32 of the payload against the trailer. */
  verdict(): { length: number; crc: number; expected: number; ok: boolean } {
    const all = new Uint8Array(this.received);
    let off = 0;
    for (const d of this.data) {
      all.set(d, off);
      off += d.length;
    }
    const payload = all.subarray(0, Math.max(0, all.length - TRAILER_BYTES));
    const t = parseTrailer(all.subarray(all.length - TRAILER_BYTES));
    const zlibCrc = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
    const crc = zlibCrc !== undefined ? zlibCrc(payload) >>> 0 : crc32Update(0, payload);
    if (typeof t === 'string') return { length: payload.length, crc, expected: -1, ok: false };
    return {
      length: payload.length,
      crc,
      expected: t.crc,
      ok: t.crc === crc && t.length === payload.length,
    };
  }
}

interface World {
  clock: SimClock;
  link: EthernetLink;
  sender: TcpSender;
  receiver: TinyReceiver;
  /** Runs events until the sender is done or failed (or the simulated time limit). */
  run(limitSeconds?: number): void;
}

function world(
  bytes: number,
  o: ReceiverOptions,
  faults?: FaultConfig,
  extra: Partial<SenderConfig> = {},
): World {
  let now = 0;
  const clock = new SimClock(HZ, () => now);
  const link = new EthernetLink(clock, 1_000_000_000, faults);
  const receiver = new TinyReceiver(clock, link, o);
  const sender = new TcpSender({
    clock,
    transmit: (f) => link.send(1, f),
    payloadBytes: bytes,
    seed: 3,
    ...extra,
  });
  link.attach(0, receiver);
  link.attach(1, sender);
  return {
    clock,
    link,
    sender,
    receiver,
    run(limitSeconds = 600) {
      sender.start();
      const limit = limitSeconds * HZ;
      while (sender.state !== 'done' && sender.state !== 'failed') {
        const next = clock.next();
        if (next === undefined || next > limit) break;
        now = next;
        clock.fireDue(next);
      }
      // Let the last frames (the receiver's FIN, our ACK of it) cross the wire.
      const settle = now + HZ / 1000;
      for (let next = clock.next(); next !== undefined && next <= settle; next = clock.next()) {
        now = next;
        clock.fireDue(next);
      }
    },
  };
}

test('a clean transfer runs at the speed of the wire and arrives intact', () => {
  const bytes = 4 << 20;
  const w = world(bytes, { buffer: 256 * 1024, windowScale: 3, keepOutOfOrder: false });
  w.run();
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  const v = w.receiver.verdict();
  assert.ok(v.ok, JSON.stringify(v));
  assert.equal(v.length, bytes);
  assert.equal(v.crc, r.payloadCrc);
  // Nothing lost, nothing resent; the window was the 256 KB socket buffer, scaled by 8.
  assert.equal(r.counters.retransmissions, 0);
  assert.equal(r.counters.timeouts, 0);
  assert.equal(r.counters.bytesAcked, bytes + TRAILER_BYTES);
  assert.equal(r.windowScale, 3);
  assert.equal(r.mss, 1460);
  assert.equal(r.maxWindow, 256 * 1024);
  assert.equal(r.counters.messages, bytes / 32768 + 1);
  // Payload rate: each 1460-byte segment takes 1538 bytes of wire time (8 preamble, 14 + 20
  // + 20 headers, 4 FCS, 12 gap): 949 Mb/s at most.
  const seconds = (r.times.allAcked! - r.times.firstSyn!) / HZ;
  const mbps = (bytes * 8) / seconds / 1e6;
  assert.ok(mbps > 900 && mbps < 950, `${mbps.toFixed(1)} Mb/s`);
  assert.ok(r.times.guestFin !== undefined, 'the receiver closed too');
  // The payload is the seeded stream.
  const expected = new Uint8Array(1000);
  payloadBytes(3, 0, expected);
  assert.deepEqual(w.receiver.data[0].subarray(0, 1000), expected);
});

test('without window scaling the window is 64 KB less a byte, and throughput follows it', () => {
  const bytes = 1 << 20;
  const w = world(bytes, { buffer: 65535, keepOutOfOrder: false });
  w.run();
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  assert.ok(w.receiver.verdict().ok);
  assert.equal(r.windowScale, undefined);
  assert.equal(r.maxWindow, 65535);
});

test('a slow reader closes the window; the sender waits, probes and finishes', () => {
  const bytes = 512 * 1024;
  // The application reads 8 KB every 0.5 ms (~131 Mb/s): the 32 KB window fills and closes.
  const w = world(bytes, {
    buffer: 32 * 1024,
    keepOutOfOrder: false,
    readBytes: 8192,
    readEvery: HZ / 2000,
  });
  w.run();
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  assert.ok(w.receiver.verdict().ok);
  const seconds = (r.times.allAcked! - r.times.firstSyn!) / HZ;
  const mbps = (bytes * 8) / seconds / 1e6;
  assert.ok(mbps > 100 && mbps < 140, `reader-limited: ${mbps.toFixed(1)} Mb/s`);
});

test('a closed window that is never announced open again is found by probing', () => {
  const bytes = 64 * 1024;
  const w = world(bytes, {
    buffer: 16 * 1024,
    keepOutOfOrder: false,
    readBytes: 16 * 1024,
    readEvery: HZ / 1000,
    windowUpdates: false,
  });
  w.run();
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  assert.ok(w.receiver.verdict().ok);
  assert.ok(r.counters.windowProbes > 0, `${r.counters.windowProbes} probes`);
  assert.equal(r.counters.timeouts, 0, 'probes are not timeouts');
});

for (const keepOutOfOrder of [false, true]) {
  test(`drop, duplicate, reorder and corrupt on the wire: the stream still arrives intact (receiver ${keepOutOfOrder ? 'keeps' : 'drops'} out-of-order segments)`, () => {
    const bytes = 2 << 20;
    const faults = { seed: 11, drop: 0.01, duplicate: 0.01, reorder: 0.02, corrupt: 0.01 };
    const w = world(bytes, { buffer: 256 * 1024, windowScale: 3, keepOutOfOrder }, faults);
    w.run();
    const r = w.sender.report();
    assert.equal(r.state, 'done', r.error);
    const v = w.receiver.verdict();
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.length, bytes);
    const toGuest = w.link.counters(1);
    const toPeer = w.link.counters(0);
    assert.ok(toGuest.dropped > 0 && toGuest.duplicated > 0 && toGuest.reordered > 0);
    assert.ok(toGuest.corrupted > 0 && toPeer.dropped > 0);
    assert.ok(r.counters.retransmissions > 0);
    assert.ok(r.counters.fastRetransmits > 0);
    assert.ok(r.counters.duplicateAcks > 0);
    assert.ok(w.receiver.badFrames > 0, 'corrupted frames fail the FCS at the receiver');
    // Corrupted ACKs fail the FCS at the sender and are counted, not thrown (a corrupted frame
    // may also be duplicated, so there can be more bad frames than corruptions).
    assert.ok(r.counters.badFcs >= toPeer.corrupted && toPeer.corrupted > 0);
  });
}

test('after an outage, the duplicate ACKs for data sent again that the receiver kept start no new recovery', () => {
  // 120 segments lost in a row (a driver VM's outage), the receiver keeping what came after:
  // one fast retransmit, one going back, and the ACKs for the segments it already had are
  // not taken for new losses (test/platforms/reuseRestart.test.ts has the whole-system case).
  const bytes = 4 << 20;
  const w = world(bytes, {
    buffer: 256 * 1024,
    windowScale: 3,
    keepOutOfOrder: true,
    lose: [{ from: 1000, count: 120 }],
  });
  w.run();
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  assert.ok(w.receiver.verdict().ok);
  assert.equal(r.counters.timeouts, 0);
  assert.equal(r.counters.fastRetransmits, 1, JSON.stringify(r.counters));
  // Sent again: the lost segments and the window behind them once, at most.
  assert.ok(r.counters.retransmissions <= 120 + 180, JSON.stringify(r.counters));
});

test('a lossy start: lost ARP, SYN and SYN-ACK are retried', () => {
  // Drop half of everything: resolution and the handshake must be retried until they pass.
  const w = world(
    64 * 1024,
    { buffer: 64 * 1024, keepOutOfOrder: false },
    { seed: 5, drop: 0.5 },
    {
      maxTimeouts: 30,
    },
  );
  w.run(3600);
  const r = w.sender.report();
  assert.equal(r.state, 'done', r.error);
  assert.ok(w.receiver.verdict().ok);
  assert.ok(r.counters.timeouts > 0);
});

test('a refused connection is retried; a reset is counted and reported, never thrown', () => {
  const refused = world(10_000, { buffer: 65535, keepOutOfOrder: false, refuse: 3 });
  const events: string[] = [];
  (refused.sender['config'] as SenderConfig).onEvent = (e) => events.push(e.kind);
  refused.run();
  assert.equal(refused.sender.state, 'done');
  assert.equal(refused.sender.counters.resets, 3);
  assert.equal(refused.sender.counters.connectAttempts, 4);
  assert.deepEqual(events.slice(0, 5), ['syn', 'refused', 'refused', 'refused', 'established']);

  const reset = world(1 << 20, { buffer: 65535, keepOutOfOrder: false, resetAfter: 100_000 });
  reset.run();
  const r = reset.sender.report();
  assert.equal(r.state, 'failed');
  assert.equal(r.error, 'connection reset by the guest');
  assert.equal(r.counters.resets, 1);

  const never = world(1000, { buffer: 65535, keepOutOfOrder: false, refuse: 1000 }, undefined, {
    maxConnectAttempts: 5,
  });
  never.run();
  assert.equal(never.sender.state, 'failed');
  assert.match(never.sender.error ?? '', /connection refused by 10\.0\.2\.15:5001/);
});

test('malformed frames from the guest are counted; nobody answering ARP is reported', () => {
  const w = world(100_000, { buffer: 65535, keepOutOfOrder: false });
  const good = buildTcpFrame(
    {
      srcMac: GUEST_MAC,
      dstMac: Uint8Array.from([2, 0, 0, 0, 0, 2]),
      srcIp: GUEST_IP,
      dstIp: PEER_IP,
    },
    9,
    {
      srcPort: NETSERVER_PORT,
      dstPort: 49155,
      seq: 1,
      ack: 1,
      flags: TCP_ACK,
      window: 1,
      options: {},
      payload: new Uint8Array(0),
    },
  );
  const badTcp = good.slice();
  badTcp[14 + 20 + 16] ^= 0xff; // TCP checksum
  const badIp = good.slice();
  badIp[14 + 10] ^= 0xff; // IPv4 header checksum
  const truncated = good.slice(0, 14 + 10);
  for (const f of [badTcp, badIp, truncated]) w.sender.receive(withFcs(f));
  const badFcs = withFcs(good);
  badFcs[badFcs.length - 1] ^= 1;
  w.sender.receive(badFcs);
  w.sender.receive(new Uint8Array(3));
  assert.equal(w.sender.counters.malformed, 3);
  assert.equal(w.sender.counters.badFcs, 2);
  assert.match(w.sender.report().lastMalformed ?? '', /truncated IPv4 header/);

  // Nobody on the other end.
  let now = 0;
  const clock = new SimClock(HZ, () => now);
  const link = new EthernetLink(clock);
  const lonely = new TcpSender({
    clock,
    transmit: (f) => link.send(1, f),
    payloadBytes: 10,
    maxArpRequests: 3,
  });
  lonely.start();
  for (let next = clock.next(); next !== undefined; next = clock.next()) {
    now = next;
    clock.fireDue(next);
  }
  assert.equal(lonely.state, 'failed');
  assert.equal(lonely.error, 'no ARP reply from 10.0.2.15 after 3 requests');
});
