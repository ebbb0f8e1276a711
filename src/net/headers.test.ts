import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { crc32Update, internetChecksum, sum16, foldChecksum } from './checksum.ts';
import {
  buildArp,
  buildIpv4,
  buildTcp,
  buildTcpFrame,
  formatFlags,
  formatIpv4,
  ipv4,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
} from './headers.ts';
import { crc32 as fcsCrc32 } from '../machine/ethernet/frame.ts';
import { buildTrailer, parseTrailer, payloadBytes, PayloadStream } from './stream.ts';

const hex = (s: string): Uint8Array =>
  Uint8Array.from(
    s
      .replace(/\s+/g, '')
      .match(/../g)!
      .map((b) => parseInt(b, 16)),
  );

test('Internet checksum: the RFC 1071 section 3 example', () => {
  // RFC 1071 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (ones' complement), checksum 220d.
  const bytes = hex('0001 f203 f4f5 f6f7');
  assert.equal(sum16(bytes) % 0xffff, 0xddf2);
  assert.equal(internetChecksum(bytes), 0x220d);
  // An odd byte is padded with zero on the right.
  assert.equal(foldChecksum(sum16(hex('01'))), ~0x0100 & 0xffff);
});

test('IPv4: a well-known header with checksum 0xb861 parses, builds identically', () => {
  // 192.168.0.1 → 192.168.0.199, UDP, total length 0x73, DF, TTL 64, checksum b861.
  const header = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
  assert.equal(internetChecksum(header), 0, 'a correct header sums to zero');
  const packet = new Uint8Array(0x73);
  packet.set(header);
  const p = parseIpv4(packet);
  assert.ok(typeof p !== 'string', p as string);
  assert.equal(formatIpv4(p.src), '192.168.0.1');
  assert.equal(formatIpv4(p.dst), '192.168.0.199');
  assert.equal(p.protocol, 17);
  assert.equal(p.ttl, 64);
  assert.ok(p.dontFragment);
  assert.equal(p.payload.length, 0x73 - 20);
  const built = buildIpv4(
    { src: p.src, dst: p.dst, protocol: 17, id: 0, ttl: 64, dontFragment: true },
    0x73 - 20,
  );
  assert.deepEqual([...built.subarray(0, 20)], [...header]);

  const bad = packet.slice();
  bad[10] ^= 1;
  assert.equal(parseIpv4(bad), 'bad IPv4 header checksum');
  assert.match(parseIpv4(packet.subarray(0, 19)) as string, /truncated/);
  assert.match(parseIpv4(packet.subarray(0, 60)) as string, /bad IPv4 lengths/);
});

test('TCP: build and parse round trip with options, checksum over the pseudo-header', () => {
  const src = ipv4(10, 0, 2, 2);
  const dst = ipv4(10, 0, 2, 15);
  const payload = Uint8Array.from([1, 2, 3, 4, 5]);
  const seg = buildTcp(
    {
      srcPort: 49153,
      dstPort: 5001,
      seq: 0xfffffff0,
      ack: 7,
      flags: TCP_SYN | TCP_ACK,
      window: 65535,
      options: { mss: 1460, windowScale: 7 },
      payload,
    },
    src,
    dst,
  );
  assert.equal(seg.length, 20 + 8 + 5);
  // Independent check: pseudo-header plus segment sums to 0xffff (RFC 9293 3.1).
  const pseudo = new Uint8Array(12 + seg.length);
  const v = new DataView(pseudo.buffer);
  v.setUint32(0, src);
  v.setUint32(4, dst);
  pseudo[9] = 6;
  v.setUint16(10, seg.length);
  pseudo.set(seg, 12);
  assert.equal(internetChecksum(pseudo), 0);

  const p = parseTcp(seg, src, dst);
  assert.ok(typeof p !== 'string', p as string);
  assert.equal(p.srcPort, 49153);
  assert.equal(p.dstPort, 5001);
  assert.equal(p.seq, 0xfffffff0);
  assert.equal(p.ack, 7);
  assert.equal(formatFlags(p.flags), 'S.');
  assert.deepEqual(p.options, { mss: 1460, windowScale: 7 });
  assert.deepEqual([...p.payload], [1, 2, 3, 4, 5]);

  // A different pseudo-header (wrong address) or a flipped payload bit fails the checksum.
  assert.equal(parseTcp(seg, src, ipv4(10, 0, 2, 16)), 'bad TCP checksum');
  const flipped = seg.slice();
  flipped[30] ^= 0x80;
  assert.equal(parseTcp(flipped, src, dst), 'bad TCP checksum');
  assert.match(parseTcp(seg.subarray(0, 19), src, dst) as string, /truncated/);
});

test('TCP: options the peer does not use (SACK permitted, timestamps) are stepped over', () => {
  // A Linux-style SYN laid out by hand from the RFCs: 192.168.1.2:54321 → 192.168.1.1:80, seq
  // 0x12345678, window 29200, MSS 1460, SACK permitted (RFC 2018), timestamps (RFC 7323 3),
  // NOP, window scale 7; the checksum is filled in from the pseudo-header sum.
  const src = ipv4(192, 168, 1, 2);
  const dst = ipv4(192, 168, 1, 1);
  const seg = hex(
    'd431 0050 1234 5678 0000 0000 a002 7210 0000 0000' +
      '0204 05b4 0402 080a 0001 e240 0000 0000 0103 0307',
  );
  const pseudo = new Uint8Array(12 + seg.length);
  const v = new DataView(pseudo.buffer);
  v.setUint32(0, src);
  v.setUint32(4, dst);
  pseudo[9] = 6;
  v.setUint16(10, seg.length);
  pseudo.set(seg, 12);
  new DataView(seg.buffer).setUint16(16, internetChecksum(pseudo));
  const p = parseTcp(seg, src, dst);
  assert.ok(typeof p !== 'string', p as string);
  assert.deepEqual(p.options, { mss: 1460, windowScale: 7 });
  assert.equal(p.window, 29200);
  assert.equal(formatFlags(p.flags), 'S');
});

test('Ethernet, ARP and a whole TCP frame', () => {
  const mac = Uint8Array.from([2, 0, 0, 0, 0, 2]);
  const guest = Uint8Array.from([0, 0x0d, 0x42, 0, 0, 1]);
  const arp = buildArp({
    op: 1,
    senderMac: mac,
    senderIp: ipv4(10, 0, 2, 2),
    targetMac: new Uint8Array(6),
    targetIp: ipv4(10, 0, 2, 15),
  });
  assert.deepEqual(
    [...arp],
    [...hex('0001 0800 0604 0001 020000000002 0a000202 000000000000 0a00020f')],
  );
  const back = parseArp(arp);
  assert.ok(typeof back !== 'string');
  assert.equal(formatIpv4(back.targetIp), '10.0.2.15');
  assert.match(parseArp(arp.subarray(0, 27)) as string, /truncated/);

  const frame = buildTcpFrame(
    { srcMac: mac, dstMac: guest, srcIp: ipv4(10, 0, 2, 2), dstIp: ipv4(10, 0, 2, 15) },
    1,
    {
      srcPort: 49153,
      dstPort: 5001,
      seq: 1,
      ack: 2,
      flags: TCP_ACK | TCP_PSH,
      window: 100,
      options: {},
      payload: new Uint8Array(0),
    },
  );
  assert.equal(frame.length, 60, 'padded to the Ethernet minimum');
  const eth = parseEthernet(frame);
  assert.ok(typeof eth !== 'string');
  assert.equal(eth.type, 0x0800);
  const ip = parseIpv4(eth.payload);
  assert.ok(typeof ip !== 'string');
  assert.equal(ip.payload.length, 20, 'padding cut off by the IP total length');
  const tcp = parseTcp(ip.payload, ip.src, ip.dst);
  assert.ok(typeof tcp !== 'string');
  assert.equal(formatFlags(tcp.flags), 'P.');
});

test('CRC-32: the check value, zlib and the Ethernet FCS agree; it continues across pieces', () => {
  const check = new TextEncoder().encode('123456789');
  assert.equal(crc32Update(0, check), 0xcbf43926);
  const data = new Uint8Array(100_000);
  payloadBytes(42, 0, data);
  const whole = crc32Update(0, data);
  assert.equal(whole, fcsCrc32(data));
  const zlibCrc = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (zlibCrc !== undefined) assert.equal(whole, zlibCrc(data) >>> 0);
  assert.equal(crc32Update(crc32Update(0, data.subarray(0, 777)), data.subarray(777)), whole);
});

test('payload stream: any offset reads the same bytes; trailer carries length and CRC', () => {
  const n = 100_003;
  const s = new PayloadStream(n, 7);
  const all = new Uint8Array(s.length);
  // Read it in odd pieces, some out of order (as retransmissions do).
  s.read(5000, all.subarray(5000, 6461));
  for (let off = 0; off < s.length; off += 1449)
    s.read(off, all.subarray(off, Math.min(s.length, off + 1449)));
  const payload = all.subarray(0, n);
  const again = new Uint8Array(n);
  payloadBytes(7, 0, again);
  assert.deepEqual(payload, again);
  const t = parseTrailer(all.subarray(n));
  assert.ok(typeof t !== 'string');
  assert.equal(t.length, n);
  assert.equal(t.crc, crc32Update(0, payload));
  assert.equal(s.payloadCrc(), t.crc);
  // A different seed gives a different stream; the trailer layout is fixed.
  const other = new Uint8Array(64);
  payloadBytes(8, 0, other);
  assert.notDeepEqual(other, payload.subarray(0, 64));
  assert.deepEqual([...buildTrailer(1, 0x01020304)], [80, 86, 67, 75, 1, 0, 0, 0, 4, 3, 2, 1]);
  assert.match(parseTrailer(new Uint8Array(12)) as string, /magic/);
});
