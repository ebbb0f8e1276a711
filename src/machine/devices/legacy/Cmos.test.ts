import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneClock, testClock, throughJson } from '../../testing.ts';
import { Cmos } from './Cmos.ts';

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

test('CMOS state: index, NMI mask and RAM; the time keeps following the clock', () => {
  const a = testClock(1000);
  const rtc = new Cmos(a.clock, Date.UTC(2026, 0, 1) / 1000);
  rtc.ioWrite(0, 1, 0x0b);
  rtc.ioWrite(1, 1, 0x06); // binary, 24 h
  rtc.ioWrite(0, 1, 0x40);
  rtc.ioWrite(1, 1, 0x99); // a byte of CMOS RAM
  rtc.ioWrite(0, 1, 0x80); // index 0 (seconds) with NMI masked
  a.advance(5000);
  const b = cloneClock(a);
  const twin = new Cmos(b.clock, Date.UTC(2026, 0, 1) / 1000);
  twin.restore(throughJson(rtc.save()));
  assert.deepEqual(twin.save(), rtc.save());
  assert.equal(twin.nmiMasked, true);
  assert.equal(twin.ioRead(1, 1), 5, 'seconds, binary');
  twin.ioWrite(0, 1, 0x40);
  assert.equal(twin.ioRead(1, 1), 0x99);
  assert.throws(
    () => twin.restore({ ...rtc.save(), ram: 'AAAA' }),
    /cmos\.ram: expected 128 bytes, got 3/,
  );
});
