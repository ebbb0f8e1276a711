import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine } from '../../Machine.ts';
import { DmaPageRegisters } from './DmaPageRegisters.ts';

test('the DMA page registers read back what was written, 0 at power-on, and keep it in a snapshot', () => {
  const pages = new DmaPageRegisters();
  assert.equal(pages.ioRead(6, 1), 0); // 0x87, channel 0: what Linux's i8237 driver reads
  pages.ioWrite(6, 1, 0x12);
  pages.ioWrite(0, 2, 0xbbaa); // 0x81 and 0x82
  assert.equal(pages.ioRead(6, 1), 0x12);
  assert.equal(pages.ioRead(0, 1), 0xaa);
  assert.equal(pages.ioRead(1, 1), 0xbb);
  const again = new DmaPageRegisters();
  again.restore(pages.save());
  assert.deepEqual(again.save(), pages.save());
  assert.throws(() => again.restore({ version: 1, pages: [1, 2] }), /pages/);
});

test('the machine has them at 0x81-0x8f beside the POST port, which still reads 0xff', () => {
  const m = createMachine({ memoryMb: 4 });
  assert.ok(typeof m !== 'string');
  assert.equal(m.ports.read(0x87, 1), 0);
  m.ports.write(0x87, 1, 0x5a);
  m.ports.write(0x8f, 1, 0xa5);
  assert.equal(m.ports.read(0x87, 1), 0x5a);
  assert.equal(m.ports.read(0x8f, 1), 0xa5);
  m.ports.write(0x80, 1, 0x42);
  assert.equal(m.ports.read(0x80, 1), 0xff);
  assert.equal(m.ports.unclaimedReads + m.ports.unclaimedWrites, 0);
  assert.equal(m.save().devices.dmaPages.pages[6], 0x5a);
});
