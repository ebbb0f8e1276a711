import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testClock } from '../../testing.ts';
import { Uart16550 } from './Uart16550.ts';

test('16550A: divisor latch, THR to the sink, RX with the RDA interrupt, IIR and LSR', () => {
  const { clock, advance } = testClock();
  const out: number[] = [];
  let irq = false;
  const uart = new Uart16550('com1', clock, { set: (l) => (irq = l) }, (b) => out.push(b));
  uart.ioWrite(3, 1, 0x80);
  uart.ioWrite(0, 1, 1);
  uart.ioWrite(1, 1, 0);
  assert.equal(uart.ioRead(0, 1), 1, 'divisor low byte reads back under DLAB');
  uart.ioWrite(3, 1, 0x03);
  uart.ioWrite(0, 1, 0x41);
  assert.deepEqual(out, [0x41]);
  assert.equal(uart.ioRead(5, 1) & 0x60, 0x60, 'THR empty');
  uart.ioWrite(1, 1, 0x01); // RDA interrupt
  uart.receive([0x7a]);
  assert.equal(irq, false, 'the byte takes a character time to arrive');
  advance(1_000_000);
  assert.equal(irq, true);
  assert.equal(uart.ioRead(2, 1) & 0x0f, 0x04, 'IIR: received data available');
  assert.equal(uart.ioRead(5, 1) & 1, 1, 'LSR: data ready');
  assert.equal(uart.ioRead(0, 1), 0x7a);
  assert.equal(irq, false);
  assert.equal(uart.ioRead(2, 1) & 0x0f, 0x01, 'IIR: nothing pending');
  uart.ioWrite(1, 1, 0x03); // THRE interrupt enabled while THR is empty: pending at once
  assert.equal(uart.ioRead(2, 1) & 0x0f, 0x02);
  assert.equal(uart.ioRead(2, 1) & 0x0f, 0x01, 'reading IIR cleared THRE');
});
