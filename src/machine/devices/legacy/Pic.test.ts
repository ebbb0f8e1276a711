import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throughJson } from '../../testing.ts';
import { DualPic } from './Pic.ts';

function initPic(pic: DualPic): void {
  for (const [chip, base, cascade] of [
    [pic.master, 0x20, 4],
    [pic.slave, 0x28, 2],
  ] as const) {
    chip.ioWrite(0, 1, 0x11); // ICW1: edge, cascade, ICW4 follows
    chip.ioWrite(1, 1, base); // ICW2: vector base
    chip.ioWrite(1, 1, cascade); // ICW3
    chip.ioWrite(1, 1, 0x01); // ICW4: 8086 mode
  }
}

test('8259A: ICW programming, IRR/ISR/IMR, priority, EOI, cascade, spurious', () => {
  let intr = false;
  const pic = new DualPic((l) => (intr = l));
  initPic(pic);
  assert.equal(pic.master.ioRead(1, 1), 0, 'ICW1 clears IMR');
  pic.master.ioWrite(1, 1, 0xfd); // unmask IRQ 1 only
  pic.setIrq(0, true);
  assert.equal(intr, false, 'masked IRQ 0 does not interrupt');
  assert.equal(pic.master.ioRead(0, 1) & 1, 1, 'but it is in IRR');
  pic.setIrq(1, true);
  assert.equal(intr, true);
  assert.equal(pic.acknowledge(), 0x21);
  pic.master.ioWrite(0, 1, 0x0b); // OCW3: read ISR
  assert.equal(pic.master.ioRead(0, 1), 0x02);
  pic.setIrq(1, false);
  pic.setIrq(1, true); // a new edge while IRQ 1 is in service: pending, not delivered
  assert.equal(intr, false);
  pic.master.ioWrite(0, 1, 0x20); // non-specific EOI
  assert.equal(intr, true);
  assert.equal(pic.acknowledge(), 0x21);
  pic.master.ioWrite(0, 1, 0x61); // specific EOI for IRQ 1
  assert.equal(pic.master.ioRead(0, 1), 0);
  // Cascade: IRQ 12 through master input 2.
  pic.master.ioWrite(1, 1, 0xf9);
  pic.slave.ioWrite(1, 1, 0xef);
  pic.setIrq(12, true);
  assert.equal(intr, true);
  assert.equal(pic.acknowledge(), 0x2c);
  assert.equal(pic.delivered[12], 1);
  // Spurious: nothing pending at INTA gives IRQ 7's vector and sets no ISR bit.
  pic.slave.ioWrite(0, 1, 0x20);
  pic.master.ioWrite(0, 1, 0x20);
  assert.equal(pic.acknowledge(), 0x27);
  assert.equal(pic.spurious, 1);
  assert.equal(pic.master.ioRead(0, 1), 0);
});

test('8259A state: a restored pair has the same registers, counters and INTR, and goes on alike', () => {
  let intrA = false;
  const a = new DualPic((l) => (intrA = l));
  initPic(a);
  a.elcr.ioWrite(1, 1, 0x08); // IRQ 11 level-triggered
  a.master.ioWrite(1, 1, 0xf8);
  a.slave.ioWrite(1, 1, 0xf7);
  a.setIrq(1, true);
  assert.equal(a.acknowledge(), 0x21); // IRQ 1 in service
  a.setIrq(0, true); // IRQ 0 requested, higher priority: pending INTR
  a.setIrq(11, true); // level, waiting behind IRQ 1
  a.master.ioWrite(0, 1, 0x0b); // reading ISR
  const state = throughJson(a.save());
  let intrB = false;
  const b = new DualPic((l) => (intrB = l));
  b.restore(state);
  assert.deepEqual(b.save(), a.save());
  assert.equal(intrB, intrA);
  assert.equal(b.master.ioRead(0, 1), 0x02, 'ISR read selected');
  for (const pic of [a, b]) {
    assert.equal(pic.acknowledge(), 0x20);
    pic.master.ioWrite(0, 1, 0x20);
    pic.master.ioWrite(0, 1, 0x20);
    assert.equal(pic.acknowledge(), 0x2b, 'then the level-triggered IRQ 11');
  }
  assert.deepEqual(b.save(), a.save());
  assert.throws(
    () => b.restore({ ...state, version: 7 } as never),
    /pic: 8259A pair state version 7/,
  );
  assert.throws(
    () => b.restore({ ...state, master: { ...state.master, irr: 'x' } } as never, 'devices.pic'),
    /^StateError: devices\.pic\.master\.irr: expected a number, got a string$/,
  );
});
