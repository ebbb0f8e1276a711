import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PortBus } from '../../bus.ts';
import { SimClock } from '../../clock.ts';
import { Cmos } from './cmos.ts';
import { DualPic } from './pic.ts';
import { Pit, PIT_HZ } from './pit.ts';
import { Uart16550 } from './uart.ts';

/** A clock whose time the test sets. */
function testClock(hz = 2_800_000_000): { clock: SimClock; advance: (to: number) => void } {
  let now = 0;
  const clock = new SimClock(hz, () => now);
  return {
    clock,
    advance: (to) => {
      now = to;
      clock.fireDue(to);
    },
  };
}

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

test('8254: mode 2 raises IRQ 0 once per period; latch and read-back', () => {
  const { clock, advance } = testClock();
  let edges = 0;
  const pit = new Pit(clock, { set: (l) => (edges += l ? 1 : 0) });
  pit.ioWrite(3, 1, 0x34); // channel 0, lobyte/hibyte, mode 2
  const divisor = 11932; // ~100 Hz
  pit.ioWrite(0, 1, divisor & 0xff);
  pit.ioWrite(0, 1, divisor >> 8);
  const period = (divisor * 2_800_000_000) / PIT_HZ;
  advance(Math.floor(period * 10.5));
  assert.equal(edges, 10);
  assert.equal(pit.ticks, 10);
  pit.ioWrite(3, 1, 0x00); // latch channel 0
  const lo = pit.ioRead(0, 1);
  const hi = pit.ioRead(0, 1);
  const count = lo | (hi << 8);
  assert.ok(Math.abs(count - divisor / 2) < 4, `half way through a period: ${count}`);
  pit.ioWrite(3, 1, 0xe2); // read-back: status only, channel 0
  assert.equal(pit.ioRead(0, 1) & 0x3f, 0x34 & 0x3f, 'status shows access mode and mode');
});

test('8254: mode 0 interrupts once at terminal count', () => {
  const { clock, advance } = testClock();
  let edges = 0;
  const pit = new Pit(clock, { set: (l) => (edges += l ? 1 : 0) });
  pit.ioWrite(3, 1, 0x30);
  pit.ioWrite(0, 1, 0x00);
  pit.ioWrite(0, 1, 0x10); // 4096 ticks
  advance(Math.ceil((4096 * 2_800_000_000) / PIT_HZ) * 5);
  assert.equal(edges, 1);
});

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

test('CMOS RTC: BCD and binary time from the injected start plus simulated time', () => {
  const { clock, advance } = testClock(1000);
  const rtc = new Cmos(clock, Date.UTC(2026, 10, 25, 13, 59, 58) / 1000);
  const read = (r: number): number => {
    rtc.ioWrite(0, 1, r);
    return rtc.ioRead(1, 1);
  };
  assert.equal(read(0x00), 0x58);
  assert.equal(read(0x04), 0x13);
  assert.equal(read(0x09), 0x26);
  assert.equal(read(0x32), 0x20);
  advance(3000); // three simulated seconds
  assert.equal(read(0x02), 0x00);
  assert.equal(read(0x04), 0x14);
  rtc.ioWrite(0, 1, 0x0b);
  rtc.ioWrite(1, 1, 0x06); // binary, 24 h
  assert.equal(read(0x00), 1);
  assert.equal(read(0x0d), 0x80);
});

test('the port bus refuses overlapping ranges and names both devices', () => {
  const bus = new PortBus();
  const dev = (name: string) => ({ name, ioRead: () => 0, ioWrite: () => {} });
  assert.notEqual(typeof bus.register(0x3f8, 8, dev('com1')), 'string');
  const clash = bus.register(0x3fc, 2, dev('other'));
  assert.equal(typeof clash, 'string');
  assert.match(clash as string, /other .* overlaps com1/);
  assert.equal(bus.read(0x1234, 1), 0xff);
  assert.equal(bus.unclaimedReads, 1);
});
