import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withFcs } from '../machine/ethernet/frame.ts';
import { internetChecksum } from './checksum.ts';
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  buildArp,
  buildEthernet,
  buildIpv4,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ipv4,
  parseArp,
  parseEthernet,
  parseIpv4,
} from './headers.ts';
import { IP_PROTO_ICMP, Responder } from './Responder.ts';
import { GUEST_IP, PEER_IP, PEER_MAC } from './senderTypes.ts';

const GUEST_MAC = Uint8Array.from([0x00, 0x0d, 0x42, 0, 0, 1]);

function rig(next?: (f: Uint8Array) => void) {
  const sent: Uint8Array[] = [];
  const r = new Responder({
    transmit: (f) => sent.push(f),
    next: next === undefined ? undefined : { receive: next },
  });
  return { r, sent };
}

const arpRequest = (target: number): Uint8Array =>
  withFcs(
    buildEthernet(
      BROADCAST_MAC,
      GUEST_MAC,
      ETHERTYPE_ARP,
      buildArp({
        op: ARP_REQUEST,
        senderMac: GUEST_MAC,
        senderIp: GUEST_IP,
        targetMac: new Uint8Array(6),
        targetIp: target,
      }),
    ),
  );

function echoRequest(dst = PEER_IP, data = 56): Uint8Array {
  const packet = buildIpv4(
    { src: GUEST_IP, dst, protocol: IP_PROTO_ICMP, id: 7, ttl: 64, dontFragment: true },
    8 + data,
  );
  const icmp = packet.subarray(20);
  icmp.set([8, 0, 0, 0, 0x50, 0x56, 0, 3]);
  for (let k = 8; k < icmp.length; k++) icmp[k] = k;
  const sum = internetChecksum(icmp);
  icmp[2] = sum >> 8;
  icmp[3] = sum & 0xff;
  return withFcs(buildEthernet(PEER_MAC, GUEST_MAC, ETHERTYPE_IPV4, packet));
}

test("ARP for 10.0.2.2 is answered with the peer's MAC; other addresses are not", () => {
  const { r, sent } = rig();
  r.receive(arpRequest(PEER_IP));
  r.receive(arpRequest(ipv4(10, 0, 2, 3)));
  assert.equal(sent.length, 1);
  const eth = parseEthernet(sent[0].subarray(0, sent[0].length - 4));
  assert.ok(typeof eth !== 'string');
  assert.deepEqual(eth.dst, GUEST_MAC);
  const arp = parseArp(eth.payload);
  assert.ok(typeof arp !== 'string');
  assert.equal(arp.op, ARP_REPLY);
  assert.deepEqual(arp.senderMac, PEER_MAC);
  assert.equal(arp.senderIp, PEER_IP);
  assert.equal(arp.targetIp, GUEST_IP);
  assert.deepEqual(r.counters, { ...r.counters, arpReplies: 1, ignored: 1, framesReceived: 2 });
});

test('an echo request gets its reply: addresses swapped, type 0, the same identifier, sequence and data', () => {
  const { r, sent } = rig();
  const request = echoRequest();
  r.receive(request);
  assert.equal(sent.length, 1);
  const eth = parseEthernet(sent[0].subarray(0, sent[0].length - 4));
  assert.ok(typeof eth !== 'string');
  const ip = parseIpv4(eth.payload);
  assert.ok(typeof ip !== 'string');
  assert.equal(ip.src, PEER_IP);
  assert.equal(ip.dst, GUEST_IP);
  assert.equal(ip.protocol, IP_PROTO_ICMP);
  assert.equal(internetChecksum(ip.payload), 0, 'ICMP checksum');
  assert.equal(ip.payload[0], 0);
  assert.deepEqual(
    [...ip.payload.subarray(4)],
    [0x50, 0x56, 0, 3, ...Array.from({ length: 56 }, (_, k) => k + 8)],
  );
  assert.equal(r.counters.echoReplies, 1);
});

test('what it does not answer goes to the next receiver (the netperf client), which then answers ARP', () => {
  const passed: Uint8Array[] = [];
  const { r, sent } = rig((f) => passed.push(f));
  r.receive(arpRequest(PEER_IP));
  r.receive(echoRequest());
  const tcp = withFcs(
    buildEthernet(
      PEER_MAC,
      GUEST_MAC,
      ETHERTYPE_IPV4,
      buildIpv4(
        { src: GUEST_IP, dst: PEER_IP, protocol: 6, id: 1, ttl: 64, dontFragment: true },
        20,
      ),
    ),
  );
  r.receive(tcp);
  assert.equal(sent.length, 1, 'only the echo reply');
  assert.equal(passed.length, 2, 'ARP and TCP');
  assert.equal(r.counters.passedOn, 2);
});

test('bad frames are counted, never thrown', () => {
  const { r, sent } = rig();
  const bad = echoRequest();
  bad[30] ^= 1;
  r.receive(bad);
  r.receive(new Uint8Array(3));
  const badIcmp = echoRequest();
  badIcmp[14 + 20 + 10] ^= 0xff; // data byte: the ICMP checksum no longer matches
  r.receive(withFcs(badIcmp.subarray(0, badIcmp.length - 4)));
  assert.equal(sent.length, 0);
  assert.equal(r.counters.badFcs, 2);
  assert.equal(r.counters.malformed, 1);
});
