import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PCAP_MAGIC_NS, PcapWriter, readPcap } from './pcap.ts';

function capture(add: (w: PcapWriter) => void): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c.slice()));
  add(w);
  return Buffer.concat(chunks);
}

test('a capture reads back: the header, each frame without its FCS, nanosecond stamps', () => {
  const a = Uint8Array.from({ length: 64 }, (_, k) => k);
  const b = Uint8Array.from({ length: 1518 }, (_, k) => 255 - (k & 0xff));
  const file = capture((w) => {
    w.add(1_500_000_123n, a);
    w.add(2_000_000_000n, b);
    w.add(7n, a.subarray(0, 20), false);
    assert.equal(w.frames, 3);
  });
  const v = new DataView(file.buffer, file.byteOffset);
  assert.equal(v.getUint32(0, true), PCAP_MAGIC_NS);
  assert.deepEqual([v.getUint16(4, true), v.getUint16(6, true)], [2, 4]);
  assert.equal(v.getUint32(20, true), 1); // Ethernet
  assert.equal(file.length, 24 + 3 * 16 + 60 + 1514 + 20);
  const records = readPcap(file);
  assert.ok(Array.isArray(records), String(records));
  assert.deepEqual(
    records.map((r) => [r.ns, r.frame.length, r.originalLength]),
    [
      [1_500_000_123n, 60, 60],
      [2_000_000_000n, 1514, 1514],
      [7n, 20, 20],
    ],
  );
  assert.deepEqual(records[0].frame, a.subarray(0, 60));
  assert.deepEqual(records[1].frame, b.subarray(0, 1514));
});

test('what is not a capture gets one line', () => {
  assert.equal(readPcap(new Uint8Array(10)), 'not a pcap file (shorter than its header)');
  assert.match(String(readPcap(new Uint8Array(24))), /^not a little-endian pcap file/);
  const cut = capture((w) => w.add(0n, new Uint8Array(100)));
  assert.equal(readPcap(cut.subarray(0, cut.length - 1)), 'a frame cut short at byte 24');
});

test('tcpdump reads it, where tcpdump is installed', (t) => {
  if (spawnSync('tcpdump', ['--version']).error !== undefined) {
    t.skip('no tcpdump on this machine');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'previrt-pcap-'));
  try {
    // An ARP request from 10.0.2.2 for 10.0.2.15, with an FCS (dropped by the writer).
    const arp = Uint8Array.from([
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06],
      ...[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 2, 2, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15],
      ...new Array<number>(18 + 4).fill(0),
    ]);
    writeFileSync(
      join(dir, 'a.pcap'),
      capture((w) => w.add(1_000_250_000n, arp)),
    );
    const r = spawnSync('tcpdump', ['-r', join(dir, 'a.pcap'), '-nn', '-tt'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout.trim(),
      '1.000250 ARP, Request who-has 10.0.2.15 tell 10.0.2.2, length 46',
    );
    assert.ok(readFileSync(join(dir, 'a.pcap')).length > 0);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
