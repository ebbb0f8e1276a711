import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneClock, testClock, throughJson } from '../../testing.ts';
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

test('16550A state: registers, the receive FIFO, host bytes still on the line and their next arrival', () => {
  const a = testClock();
  const outA: number[] = [];
  const uart = new Uart16550('com1', a.clock, { set: () => {} }, (b) => outA.push(b));
  uart.ioWrite(3, 1, 0x80);
  uart.ioWrite(0, 1, 1); // 115200 baud
  uart.ioWrite(3, 1, 0x03);
  uart.ioWrite(2, 1, 0xc1); // FIFO on, trigger level 14
  uart.ioWrite(1, 1, 0x01);
  uart.ioWrite(7, 1, 0x5a);
  uart.receive([1, 2, 3, 4, 5, 6]);
  a.advance(1_000_000); // about four characters at 115200 baud
  const state = throughJson(uart.save());
  assert.ok(state.rx.length > 0 && state.input.length > 0 && state.arrival !== null);
  const b = cloneClock(a);
  let irqB = false;
  const twin = new Uart16550('com1', b.clock, { set: (l) => (irqB = l) }, () => {});
  twin.restore(state);
  assert.equal(b.audit(), undefined);
  assert.equal(irqB, true, 'the pending RDA (timeout) interrupt is driven again');
  assert.deepEqual(twin.save(), uart.save());
  a.advance(10_000_000);
  b.advance(10_000_000);
  const read = (u: Uart16550): number[] => {
    const got: number[] = [];
    while ((u.ioRead(5, 1) & 1) !== 0) got.push(u.ioRead(0, 1));
    return got;
  };
  assert.deepEqual(read(twin), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(read(uart), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(twin.save(), uart.save());
  assert.throws(() => twin.restore({ ...state, rx: '***' }), /com1\.rx: expected base64 bytes/);
});
