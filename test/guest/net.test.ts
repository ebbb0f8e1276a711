// The guest's network stack on previrt's PC with a network: ARP, ICMP echo, a closed port, and
// TCP transfers to the netserver program, driven by a small scripted peer that builds its frames
// by hand (the real peer, the netperf-style sender, lives in src/net). Addresses and the stream's
// trailer follow the network contract: the guest is 10.0.2.15, the peer 10.0.2.2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import { createMachine, type EndReason, type Machine } from '../../src/machine/Machine.ts';
import { crc32, fcsValid, withFcs } from '../../src/machine/ethernet/frame.ts';
import { buildSkipReason, kernelPath, make, type Variant } from './guest.ts';

const GUEST_MAC = [0x00, 0x0d, 0x42, 0, 0, 0x01];
const PEER_MAC = [0x02, 0, 0, 0, 0, 0x02];
const GUEST_IP = [10, 0, 2, 15];
const PEER_IP = [10, 0, 2, 2];
const MSS = 1460;
const PORT = 5001;

// ---- frames, built by hand (RFC 826, 791, 792, 793) ----

/** RFC 1071 one's-complement sum of 16-bit big-endian words, not yet inverted. */
function sum16(bytes: Uint8Array, sum = 0): number {
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
const checksum = (bytes: Uint8Array, sum = 0): number => ~sum16(bytes, sum) & 0xffff;

function be16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}
function be32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0);
}
const get16 = (b: Uint8Array, at: number): number => (b[at] << 8) | b[at + 1];
const get32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at);

function ethernet(type: number, payload: Uint8Array, dst = GUEST_MAC): Uint8Array {
  const f = new Uint8Array(Math.max(60, 14 + payload.length));
  f.set(dst, 0);
  f.set(PEER_MAC, 6);
  be16(f, 12, type);
  f.set(payload, 14);
  return withFcs(f);
}

function arpRequest(target: number[]): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 1], 0);
  a.set(PEER_MAC, 8);
  a.set(PEER_IP, 14);
  a.set(target, 24);
  return ethernet(0x0806, a, [255, 255, 255, 255, 255, 255]);
}

function ipv4(proto: number, payload: Uint8Array, opts: { frag?: number; badSum?: boolean } = {}): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p.set([0x45, 0], 0);
  be16(p, 2, p.length);
  be16(p, 4, 1);
  be16(p, 6, opts.frag ?? 0x4000);
  p.set([64, proto], 8);
  p.set(PEER_IP, 12);
  p.set(GUEST_IP, 16);
  be16(p, 10, checksum(p.subarray(0, 20)) ^ (opts.badSum === true ? 1 : 0));
  p.set(payload, 20);
  return ethernet(0x0800, p);
}

function icmpEcho(id: number, seq: number, data: Uint8Array, badSum = false): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = 8;
  be16(m, 4, id);
  be16(m, 6, seq);
  m.set(data, 8);
  be16(m, 2, checksum(m) ^ (badSum ? 0x100 : 0));
  return ipv4(1, m);
}

const FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10;

interface TcpOut {
  seq: number;
  ack?: number;
  flags: number;
  data?: Uint8Array;
  sport?: number;
  dport?: number;
  options?: number[];
  badSum?: boolean;
}

function tcpSegment(s: TcpOut): Uint8Array {
  const opts = s.options ?? [];
  const hlen = 20 + opts.length;
  const data = s.data ?? new Uint8Array(0);
  const t = new Uint8Array(hlen + data.length);
  be16(t, 0, s.sport ?? 40000);
  be16(t, 2, s.dport ?? PORT);
  be32(t, 4, s.seq);
  be32(t, 8, s.ack ?? 0);
  t[12] = (hlen / 4) << 4;
  t[13] = s.flags;
  be16(t, 14, 65535);
  t.set(opts, 20);
  t.set(data, hlen);
  const pseudo = new Uint8Array(12);
  pseudo.set(PEER_IP, 0);
  pseudo.set(GUEST_IP, 4);
  pseudo[9] = 6;
  be16(pseudo, 10, t.length);
  be16(t, 16, checksum(t, sum16(pseudo)) ^ (s.badSum === true ? 0x8000 : 0));
  return ipv4(6, t);
}

/** What the guest sent, FCS removed, with the TCP fields picked out when it is TCP. */
interface FromGuest {
  frame: Uint8Array;
  type: number;
  tcp?: { seq: number; ack: number; flags: number; win: number; options: Uint8Array; sport: number };
}

function parse(wire: Uint8Array): FromGuest {
  const frame = wire.slice(0, wire.length - 4);
  const type = get16(frame, 12);
  if (type !== 0x0800 || frame[14 + 9] !== 6) return { frame, type };
  const ip = frame.subarray(14, 14 + get16(frame, 16));
  const t = ip.subarray((ip[0] & 0xf) * 4);
  // Every TCP segment the guest sends must check out, pseudo-header included.
  const pseudo = new Uint8Array(12);
  pseudo.set(ip.subarray(12, 20), 0);
  pseudo[9] = 6;
  be16(pseudo, 10, t.length);
  assert.equal(checksum(t, sum16(pseudo)), 0, 'TCP checksum of a guest segment');
  assert.equal(checksum(ip.subarray(0, 20)), 0, 'IP header checksum of a guest packet');
  const tcp = {
    sport: get16(t, 0),
    seq: get32(t, 4),
    ack: get32(t, 8),
    flags: t[13],
    win: get16(t, 14),
    options: t.slice(20, (t[12] >> 4) * 4),
  };
  return { frame, type, tcp };
}

// ---- the machine and the peer ----

class Peer {
  readonly fromGuest: FromGuest[] = [];
  /** Called for every frame the guest sends, when its last bit reaches us. */
  onFrame: (f: FromGuest) => void = () => {};

  constructor(
    readonly machine: Machine,
    readonly console: () => string,
  ) {
    machine.link!.attach(1, {
      receive: (wire) => {
        if (!fcsValid(wire)) return; // corrupted on the way (fault injection): a NIC drops it
        const f = parse(wire);
        this.fromGuest.push(f);
        this.onFrame(f);
      },
    });
  }

  static boot(variant: Variant, append: string): Peer {
    assert.ok(make(variant).ok);
    let out = '';
    const machine = createMachine({ serialOut: (b) => (out += String.fromCharCode(b)), network: {} });
    if (typeof machine === 'string') throw new Error(machine);
    const error = bootMultiboot(machine, {
      kernel: readFileSync(kernelPath(variant)),
      kernelName: 'kernel.elf',
      cmdline: append,
      modules: [],
    });
    assert.equal(error, undefined);
    const peer = new Peer(machine, () => out.replace(/\r/g, ''));
    // The guest is ready once its stack is up: the broadcast announcement comes after that.
    peer.runUntil(() => peer.fromGuest.length > 0, 200);
    return peer;
  }

  send(frame: Uint8Array): void {
    this.machine.link!.send(1, frame);
  }

  /** Runs until `done()` or `ms` of simulated time; returns how the run ended, if it did. */
  runUntil(done: () => boolean, ms: number): EndReason | undefined {
    const m = this.machine;
    const limit = m.cpu.cycles + (m.costModel.hz / 1000) * ms;
    const slice = m.costModel.hz / 10_000; // 0.1 ms
    while (!done() && m.cpu.cycles < limit) {
      m.resume();
      const end = m.run(Math.min(limit, m.cpu.cycles + slice));
      if (end.kind !== 'cycle-limit') return end;
    }
    return undefined;
  }

  /** Runs to the end of the guest's run (at most `ms` simulated). */
  finish(ms: number): EndReason {
    this.machine.resume();
    return this.machine.run(this.machine.cpu.cycles + (this.machine.costModel.hz / 1000) * ms);
  }

  tcp(): NonNullable<FromGuest['tcp']>[] {
    return this.fromGuest.flatMap((f) => (f.tcp ? [f.tcp] : []));
  }

  /** The last TCP segment the guest sent, after running until one more than `count` exists. */
  nextTcp(count: number, ms = 20): NonNullable<FromGuest['tcp']> {
    this.runUntil(() => this.tcp().length > count, ms);
    const all = this.tcp();
    assert.ok(all.length > count, `no TCP segment from the guest\n${this.console()}`);
    return all[count];
  }

  netLine(): number[] {
    const m = /^net: rx frames (\d+), bad checksum (\d+), dropped (\d+), out-of-order (\d+), acks (\d+)$/m.exec(
      this.console(),
    );
    assert.ok(m, this.console());
    return m.slice(1).map(Number);
  }
}

/** A seeded pseudo-random payload followed by the contract's 12-byte trailer. */
function stream(n: number, seed: number, corruptCrc = false): Uint8Array {
  const s = new Uint8Array(n + 12);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    s[i] = x & 0xff;
  }
  s.set([0x50, 0x56, 0x43, 0x4b], n); // "PVCK"
  const v = new DataView(s.buffer);
  v.setUint32(n + 4, n, true);
  v.setUint32(n + 8, (crc32(s, 0, n) ^ (corruptCrc ? 1 : 0)) >>> 0, true);
  return s;
}

const ISN = 0x10000000;
const MSS_OPTION = [2, 4, MSS >> 8, MSS & 0xff];
const WSCALE_OPTION = [1, 3, 3, 7]; // NOP, window scale 7

/** SYN (offering window scaling unless told not to), the guest's SYN-ACK, our ACK. */
function handshake(peer: Peer, scaling = true): NonNullable<FromGuest['tcp']> {
  const before = peer.tcp().length;
  const options = scaling ? [...MSS_OPTION, ...WSCALE_OPTION] : MSS_OPTION;
  peer.send(tcpSegment({ seq: ISN, flags: SYN, options }));
  const synAck = peer.nextTcp(before);
  assert.equal(synAck.flags, SYN | ACK);
  assert.equal(synAck.ack, ISN + 1);
  peer.send(tcpSegment({ seq: ISN + 1, ack: synAck.seq + 1, flags: ACK }));
  return synAck;
}

/**
 * Sends `data` honouring the guest's advertised window (scaled by `shift`, as its SYN-ACK says), one
 * segment per MSS, clocked by the guest's ACKs, then FIN; goes back to the first unacknowledged
 * byte when nothing moved for 5 ms (the retransmission timeout of any TCP sender). Runs until
 * the guest's run ends.
 */
function transfer(peer: Peer, data: Uint8Array, iss: number, shift = 3): { end: EndReason; retransmissions: number } {
  const clock = peer.machine.clock;
  let una = ISN + 1,
    nxt = una,
    wnd = 0,
    finSent = false,
    retransmissions = 0;
  const end = ISN + 1 + data.length;
  const pump = (): void => {
    while (nxt - una < wnd && nxt < end) {
      const len = Math.min(MSS, end - nxt, una + wnd - nxt);
      const off = nxt - ISN - 1;
      peer.send(tcpSegment({ seq: nxt, ack: iss + 1, flags: ACK | PSH, data: data.subarray(off, off + len) }));
      nxt += len;
    }
    if (una === end && !finSent) {
      finSent = true;
      peer.send(tcpSegment({ seq: end, ack: iss + 1, flags: FIN | ACK }));
    }
  };
  peer.onFrame = (f) => {
    if (f.tcp === undefined || (f.tcp.flags & ACK) === 0) return;
    if (f.tcp.ack - una > 0 && f.tcp.ack <= end) una = f.tcp.ack;
    if (f.tcp.ack === end + 1) finAcked = true;
    wnd = f.tcp.win << shift;
    pump();
  };
  let finAcked = false,
    seen = -1;
  const rto = (): void => {
    if (finAcked) return;
    if (una === seen) {
      retransmissions++;
      nxt = una;
      finSent = false;
      pump();
    }
    seen = una;
    clock.at(clock.now() + clock.hz / 200, rto);
  };
  wnd = 65535; // the SYN-ACK's unscaled window, before the first ACK updates it
  pump();
  rto();
  return { end: peer.finish(2000), retransmissions };
}

const noBuild = buildSkipReason();

test('ARP, ICMP echo, a closed port, bad and fragmented packets', { skip: noBuild }, () => {
  const peer = Peer.boot('native', 'init=sleep -- 30');
  // ARP: a request for our address is answered to the asker; one for another is not.
  peer.send(arpRequest([10, 0, 2, 99]));
  peer.send(arpRequest(GUEST_IP));
  peer.runUntil(() => peer.fromGuest.length > 1, 5);
  const arp = peer.fromGuest[1].frame;
  assert.deepEqual([...arp.subarray(0, 14)], [...PEER_MAC, ...GUEST_MAC, 0x08, 0x06]);
  assert.deepEqual([...arp.subarray(14, 22)], [0, 1, 8, 0, 6, 4, 0, 2]); // an ARP reply
  assert.deepEqual([...arp.subarray(22, 32)], [...GUEST_MAC, ...GUEST_IP]);
  assert.deepEqual([...arp.subarray(32, 42)], [...PEER_MAC, ...PEER_IP]);

  // ICMP echo: the reply carries the same identifier, sequence and data, with good checksums.
  const data = Uint8Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff);
  peer.send(icmpEcho(0x1234, 1, data, true)); // bad ICMP checksum: ignored
  peer.send(icmpEcho(0x1234, 2, data));
  peer.runUntil(() => peer.fromGuest.length > 2, 5);
  const reply = peer.fromGuest[2].frame;
  assert.equal(peer.fromGuest.length, 3);
  const ip = reply.subarray(14);
  assert.equal(get16(ip, 2), 20 + 8 + data.length);
  assert.equal(ip[9], 1);
  assert.deepEqual([...ip.subarray(12, 20)], [...GUEST_IP, ...PEER_IP]);
  assert.equal(checksum(ip.subarray(0, 20)), 0);
  const icmp = ip.subarray(20, 20 + 8 + data.length);
  assert.equal(checksum(icmp), 0);
  assert.deepEqual([icmp[0], icmp[1], get16(icmp, 4), get16(icmp, 6)], [0, 0, 0x1234, 2]);
  assert.deepEqual([...icmp.subarray(8)], [...data]);

  // A SYN to a closed port gets RST|ACK; a bad IP header checksum and a fragment are dropped.
  peer.send(tcpSegment({ seq: 777, flags: SYN, dport: 80 }));
  const rst = peer.nextTcp(0, 5);
  assert.deepEqual([rst.flags, rst.seq, rst.ack, rst.sport], [RST | ACK, 0, 778, 80]);
  peer.send(ipv4(1, new Uint8Array(16), { badSum: true }));
  peer.send(ipv4(1, new Uint8Array(16), { frag: 0x2000 })); // MF: the first of several
  // A frame whose FCS is wrong (the NIC hands it over flagged, the driver drops it), and a
  // truncated packet: the IP length promises more than the frame holds.
  const corrupt = icmpEcho(0x1234, 3, data);
  corrupt[corrupt.length - 1] ^= 0xff;
  peer.send(corrupt);
  const truncated = icmpEcho(0x1234, 4, data).slice(0, 14 + 20 + 40);
  peer.send(withFcs(truncated));
  // An oversize frame (2,046 bytes with FCS, beyond Ethernet's 1,518): the link refuses it, and
  // handed straight to the NIC (as a faulty wire would) it overflows the driver's 1,536-byte
  // buffer, the NIC flags it too long and the driver drops it.
  const oversize = icmpEcho(0x1234, 5, new Uint8Array(2000));
  peer.send(oversize);
  assert.equal(peer.machine.link!.counters(1).oversize, 1);
  peer.machine.nic!.receive(oversize);
  const end = peer.finish(100);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, peer.console());
  assert.equal(peer.fromGuest.length, 4);
  // rx frames: 2 ARP, 3 echo, SYN, bad header, fragment, truncated, oversize; bad checksum: ICMP
  // and IP header; dropped: the other ARP request, the closed port, the fragment, the FCS, the
  // truncated, the oversize.
  assert.deepEqual(peer.netLine(), [10, 2, 6, 0, 0]);
});

for (const variant of ['native', 'afterburned'] as const) {
  test(`${variant}: a 200 KB transfer to netserver, with window scaling and ACKs every second segment`, { skip: noBuild }, () => {
    const peer = Peer.boot(variant, 'init=netserver');
    const synAck = handshake(peer);
    // SYN-ACK options: MSS 1460, then window scaling (we offered it) with shift 3.
    assert.deepEqual([...synAck.options], [2, 4, MSS >> 8, MSS & 0xff, 1, 3, 3, 3]);
    assert.equal(synAck.win, 65535);
    const data = stream(200 * 1024, 6);
    const { end } = transfer(peer, data, synAck.seq);
    const out = peer.console();
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
    const crc = crc32(data, 0, data.length - 12).toString(16).padStart(8, '0');
    assert.match(out, new RegExp(`^netserver: received 204800 bytes in \\d+ ms, crc32 ${crc} ok$`, 'm'));
    // The guest ACKs at least every second full segment; its window's right edge never moves left
    // by more than the scaling unit; it ends with the ACK of our FIN and its own FIN.
    const acks = peer.tcp().slice(1);
    let last = ISN + 1,
      edge = 0;
    for (const a of acks) {
      assert.ok(a.ack - last <= 2 * MSS + 1, `ACK jumped from ${last} to ${a.ack}`);
      const right = a.ack + (a.win << 3);
      assert.ok(right >= edge - 7, 'window shrank');
      assert.ok(a.win << 3 <= 256 * 1024);
      last = a.ack;
      edge = Math.max(edge, right);
    }
    assert.equal(last, ISN + 1 + data.length + 1);
    assert.ok(acks.some((a) => (a.flags & FIN) !== 0), 'the guest closes its side');
    const [rx, bad, dropped, ooo, sent] = peer.netLine();
    assert.deepEqual([bad, dropped, ooo], [0, 0, 0]);
    // The driver sets the NIC's 200 us interrupt hold-off (as Linux's ns83820): frames that
    // arrive back to back share an interrupt.
    const irqs = peer.machine.stats().irqs[11];
    assert.ok(irqs > 0 && irqs * 3 < rx, `${irqs} NIC interrupts for ${rx} frames`);
    assert.ok(rx >= Math.ceil(data.length / MSS) + 3, `rx ${rx}`);
    assert.ok(sent < Math.ceil(data.length / MSS), `acks ${sent}`);
  });
}

test('without window scaling, a wrong CRC in the trailer: MISMATCH and status 1', { skip: noBuild }, () => {
  const peer = Peer.boot('native', 'init=netserver');
  const synAck = handshake(peer, false);
  assert.deepEqual([...synAck.options], MSS_OPTION); // no window scaling: we did not offer it
  // More than the 64 KB window, so the sender must wait for the reader to make room.
  const data = stream(100_000, 9, true);
  const { end } = transfer(peer, data, synAck.seq, 0);
  const out = peer.console();
  assert.deepEqual(end, { kind: 'exit', value: 1 }, out);
  const crc = crc32(data, 0, 100_000);
  const hex = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');
  assert.match(
    out,
    new RegExp(`^netserver: received 100000 bytes in \\d+ ms, crc32 ${hex(crc)} MISMATCH expected ${hex(crc ^ 1)}$`, 'm'),
  );
});

test('bad checksum, out-of-order and duplicate segments', { skip: noBuild }, () => {
  const peer = Peer.boot('native', 'init=netserver');
  const synAck = handshake(peer);
  const data = stream(5 * MSS - 12, 3);
  const seg = (k: number, extra: Partial<TcpOut> = {}): Uint8Array =>
    tcpSegment({
      seq: ISN + 1 + k * MSS,
      ack: synAck.seq + 1,
      flags: ACK,
      data: data.subarray(k * MSS, (k + 1) * MSS),
      ...extra,
    });
  let n = peer.tcp().length;
  const expectAck = (ack: number, why: string): void => {
    const a = peer.nextTcp(n, 5);
    n++;
    assert.equal(a.ack, ack, why);
  };
  // Segment 0 with a bad TCP checksum: dropped, counted, not acknowledged.
  peer.send(seg(0, { badSum: true }));
  peer.runUntil(() => false, 5);
  assert.equal(peer.tcp().length, n, 'a segment with a bad checksum was answered');
  // Segment 1 ahead of the gap: kept, and a duplicate ACK at once for what we still miss.
  peer.send(seg(1));
  expectAck(ISN + 1, 'out of order');
  // Segment 0 again, good this time: the gap closes, ACK at once for both.
  peer.send(seg(0));
  expectAck(ISN + 1 + 2 * MSS, 'gap filled');
  // Segment 0 a third time: a duplicate, re-ACKed.
  peer.send(seg(0));
  expectAck(ISN + 1 + 2 * MSS, 'duplicate');
  // Segment 3 before 2, then 4 with FIN, then 2: all arrive, the stream ends.
  peer.send(seg(3));
  expectAck(ISN + 1 + 2 * MSS, 'out of order again');
  peer.send(seg(4, { flags: ACK | FIN }));
  expectAck(ISN + 1 + 2 * MSS, 'FIN out of order');
  peer.send(seg(2));
  expectAck(ISN + 1 + data.length + 1, 'everything, FIN included');
  const end = peer.finish(100);
  const out = peer.console();
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
  assert.match(out, new RegExp(`^netserver: received ${data.length - 12} bytes in \\d+ ms, crc32 [0-9a-f]{8} ok$`, 'm'));
  const [, bad, , ooo] = peer.netLine();
  assert.deepEqual([bad, ooo], [1, 3]);
});

test('a transfer through a link that drops, duplicates, reorders and corrupts frames', { skip: noBuild }, () => {
  const peer = Peer.boot('native', 'init=netserver');
  const synAck = handshake(peer);
  peer.runUntil(() => false, 1); // the handshake's ACK is in before the faults start
  peer.machine.link!.setFaults({ seed: 11, drop: 0.02, duplicate: 0.02, reorder: 0.03, corrupt: 0.02 });
  const data = stream(200 * 1024, 12);
  const { end, retransmissions } = transfer(peer, data, synAck.seq);
  const out = peer.console();
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
  const crc = crc32(data, 0, data.length - 12).toString(16).padStart(8, '0');
  assert.match(out, new RegExp(`^netserver: received 204800 bytes in \\d+ ms, crc32 ${crc} ok$`, 'm'));
  const link = peer.machine.link!.counters(1);
  assert.ok(link.dropped + link.corrupted > 0 && link.reordered > 0 && link.duplicated > 0);
  assert.ok(retransmissions > 0);
  const [, , dropped, ooo] = peer.netLine();
  assert.ok(dropped >= link.corrupted, `dropped ${dropped}, corrupted ${link.corrupted}`);
  assert.ok(ooo > 0);
});

test('a second SYN is refused; a reset from the peer ends netserver with an error', { skip: noBuild }, () => {
  const peer = Peer.boot('native', 'init=netserver');
  const synAck = handshake(peer);
  // Another connection attempt (another source port) while this one is open: RST|ACK.
  const n = peer.tcp().length;
  peer.send(tcpSegment({ seq: 0x2000, flags: SYN, options: MSS_OPTION, sport: 40001 }));
  const rst = peer.nextTcp(n, 5);
  assert.deepEqual([rst.flags, rst.ack], [RST | ACK, 0x2001]);
  // Some data, then the peer resets the connection: recv fails, netserver says so.
  peer.send(tcpSegment({ seq: ISN + 1, ack: synAck.seq + 1, flags: ACK, data: new Uint8Array(100) }));
  peer.runUntil(() => false, 5);
  peer.send(tcpSegment({ seq: ISN + 101, flags: RST }));
  const end = peer.finish(100);
  assert.deepEqual(end, { kind: 'exit', value: 1 }, peer.console());
  assert.match(peer.console(), /^netserver: recv failed with error 104 after 100 bytes$/m);
});
