import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXTSTS, insertTxChecksums, rxChecksumStatus } from './checksumOffload.ts';
import { ipFrame } from './testFrames.ts';

test('TX: the engine fills in the IPv4 and TCP/UDP checksums asked for; RX reports them good', () => {
  for (const protocol of [6, 17] as const) {
    for (const vlan of [false, true]) {
      const f = ipFrame(protocol, 333, vlan);
      const l4bit = protocol === 6 ? EXTSTS.TCPPKT : EXTSTS.UDPPKT;
      const errs = EXTSTS.IPERR | EXTSTS.TCPERR | EXTSTS.UDPERR;
      assert.equal(rxChecksumStatus(f) & errs, EXTSTS.IPERR | (protocol === 6 ? EXTSTS.TCPERR : 0));
      // Whatever the driver left in the fields (Linux: the pseudo-header sum) is replaced.
      f[vlan ? 18 + 20 + (protocol === 6 ? 16 : 6) : 14 + 20 + (protocol === 6 ? 16 : 6)] = 0xab;
      insertTxChecksums(f, EXTSTS.IPPKT | l4bit);
      assert.equal(rxChecksumStatus(f), EXTSTS.IPPKT | l4bit, `protocol ${protocol}, vlan ${vlan}`);
      f[f.length - 1] ^= 1;
      assert.equal(
        rxChecksumStatus(f),
        EXTSTS.IPPKT | l4bit | (protocol === 6 ? EXTSTS.TCPERR : EXTSTS.UDPERR),
      );
    }
  }
});

test('TX: only what extsts asks for, or everything with GCHK; RX: fragments, no-checksum UDP, not IPv4', () => {
  const f = ipFrame(6, 100);
  insertTxChecksums(f, EXTSTS.IPPKT);
  assert.equal(rxChecksumStatus(f), EXTSTS.IPPKT | EXTSTS.TCPPKT | EXTSTS.TCPERR, 'TCP left alone');
  insertTxChecksums(f, 0, true);
  assert.equal(rxChecksumStatus(f), EXTSTS.IPPKT | EXTSTS.TCPPKT);
  const frag = ipFrame(6, 100);
  frag[14 + 6] = 0x20; // MF
  insertTxChecksums(frag, EXTSTS.IPPKT | EXTSTS.TCPPKT);
  assert.equal(rxChecksumStatus(frag), EXTSTS.IPPKT, 'a fragment: no TCP status');
  const udp = ipFrame(17, 10);
  insertTxChecksums(udp, EXTSTS.IPPKT);
  assert.equal(rxChecksumStatus(udp), EXTSTS.IPPKT | EXTSTS.UDPPKT, 'UDP checksum 0: none sent');
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  insertTxChecksums(arp, EXTSTS.IPPKT | EXTSTS.TCPPKT);
  assert.deepEqual(arp.subarray(14), new Uint8Array(46), 'not IPv4: untouched');
  assert.equal(rxChecksumStatus(arp), 0);
  const truncated = ipFrame(6, 100).subarray(0, 60);
  insertTxChecksums(truncated, EXTSTS.IPPKT | EXTSTS.TCPPKT);
  assert.equal(rxChecksumStatus(truncated), 0, 'a length past the frame: not a packet');
});
