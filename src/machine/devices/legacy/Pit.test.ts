import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testClock } from '../../testing.ts';
import { Pit, PIT_HZ } from './Pit.ts';

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
