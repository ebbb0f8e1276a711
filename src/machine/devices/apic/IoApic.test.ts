import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throughJson } from '../../testing.ts';
import { IoApic, type ApicMessage } from './IoApic.ts';

function rig(): {
  io: IoApic;
  sent: ApicMessage[];
  write: (reg: number, v: number) => void;
  read: (reg: number) => number;
} {
  const sent: ApicMessage[] = [];
  const io = new IoApic((m) => sent.push(m));
  return {
    io,
    sent,
    write: (reg, v) => {
      io.mmioWrite(0, 4, reg);
      io.mmioWrite(0x10, 4, v);
    },
    read: (reg) => {
      io.mmioWrite(0, 4, reg);
      return io.mmioRead(0x10, 4);
    },
  };
}

test('I/O APIC: version, every entry masked at reset, IRQ 0 on pin 2', () => {
  const r = rig();
  assert.equal(r.read(1), 0x00170011, '24 entries, version 0x11');
  for (let pin = 0; pin < 24; pin++) assert.equal(r.read(0x10 + pin * 2), 0x10000);
  r.io.setPin(5, true);
  assert.deepEqual(r.sent, [], 'masked: nothing');
  assert.equal(IoApic.pinOfIsaIrq(0), 2);
  assert.equal(IoApic.pinOfIsaIrq(11), 11);
});

test('I/O APIC: an edge pin sends once per rising edge while unmasked', () => {
  const r = rig();
  r.write(0x10 + 4 * 2, 0x31); // pin 4: vector 0x31, fixed, physical, edge
  r.write(0x10 + 4 * 2 + 1, 0x01000000); // APIC ID 1
  r.io.setPin(4, true);
  r.io.setPin(4, true);
  r.io.setPin(4, false);
  r.io.setPin(4, true);
  assert.deepEqual(r.sent, [
    { vector: 0x31, mode: 0, level: false, destination: 1, logical: false },
    { vector: 0x31, mode: 0, level: false, destination: 1, logical: false },
  ]);
});

test('I/O APIC: a level pin holds remote IRR until the EOI, then sends again if still asserted', () => {
  const r = rig();
  r.io.setPin(11, true); // asserted while masked
  r.write(0x10 + 11 * 2, 0xa000 | 0x45); // level, active low (kept, not applied), vector 0x45
  assert.equal(r.sent.length, 1, 'unmasking an asserted level pin sends');
  assert.equal(r.read(0x10 + 11 * 2) & (1 << 14), 1 << 14, 'remote IRR');
  r.io.setPin(11, true);
  assert.equal(r.sent.length, 1, 'held until the EOI');
  r.io.eoi(0x45);
  assert.equal(r.sent.length, 2, 'still asserted: again');
  r.io.setPin(11, false);
  r.io.eoi(0x45);
  assert.equal(r.sent.length, 2);
  assert.equal(r.read(0x10 + 11 * 2) & (1 << 14), 0, 'remote IRR clear');
  assert.equal(r.sent[0].level, true);
});

test('I/O APIC state: entries, selection and pin levels survive a restore', () => {
  const a = rig();
  a.write(0x10 + 3 * 2, 0x8033);
  a.io.setPin(3, true);
  a.io.mmioWrite(0, 4, 0x10 + 3 * 2);
  const b = rig();
  b.io.restore(throughJson(a.io.save()));
  assert.deepEqual(b.io.save(), a.io.save());
  assert.equal(b.io.mmioRead(0x10, 4), a.io.mmioRead(0x10, 4));
  b.io.eoi(0x33);
  a.io.eoi(0x33);
  assert.deepEqual(b.io.save(), a.io.save());
  assert.equal(a.io.save().sentByPin[3], 2, 'pin 3 sent at the assertion and after its EOI');
  assert.throws(() => b.io.restore({ version: 1 } as never), /version 1/);
});
