import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneClock, testClock, throughJson } from '../../testing.ts';
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

test('8254 state: a restored PIT keeps its phase, its pending edge and its latches', () => {
  const a = testClock();
  let edgesA = 0;
  const pit = new Pit(a.clock, { set: (l) => (edgesA += l ? 1 : 0) });
  pit.ioWrite(3, 1, 0x34);
  pit.ioWrite(0, 1, 11932 & 0xff);
  pit.ioWrite(0, 1, 11932 >> 8);
  pit.ioWrite(3, 1, 0xb0); // channel 2, mode 0, low then high
  pit.ioWrite(2, 1, 0x34); // ... only the low byte written so far
  a.advance(Math.floor(((11932 * 2_800_000_000) / PIT_HZ) * 3.3));
  pit.ioWrite(3, 1, 0x00); // latch channel 0
  assert.equal(pit.ioRead(0, 1) >= 0, true); // low byte read: the high byte is next
  const state = throughJson(pit.save());
  assert.equal(state.channels[0].edge?.cycle !== undefined, true, 'channel 0 has an edge due');
  const b = cloneClock(a);
  let edgesB = 0;
  const twin = new Pit(b.clock, { set: (l) => (edgesB += l ? 1 : 0) });
  twin.restore(state);
  assert.equal(b.audit(), undefined, 'the pending edge came back at its place');
  assert.deepEqual(twin.save(), pit.save());
  assert.equal(twin.ioRead(0, 1), pit.ioRead(0, 1), 'the latched high byte');
  twin.ioWrite(2, 1, 0x12);
  pit.ioWrite(2, 1, 0x12);
  const later = a.now() + 100_000_000;
  a.advance(later);
  b.advance(later);
  assert.equal(edgesB, edgesA - 3, 'as many edges after the snapshot');
  assert.equal(twin.ticks, pit.ticks);
  assert.deepEqual(twin.save(), pit.save());
  for (const ch of [0, 2]) assert.equal(twin.ioRead(ch, 1), pit.ioRead(ch, 1));
  assert.throws(
    () => twin.restore({ ...state, channels: [] }),
    /pit\.channels: expected 3 entries, got 0/,
  );
});
