import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throughJson } from '../../testing.ts';
import { Eeprom93c46 } from './Eeprom93c46.ts';

const MAC = Uint8Array.from([0x00, 0x0d, 0x42, 0x10, 0x20, 0x30]);

/** Clocks in start bit, READ opcode and a 6-bit address (reference 2d). */
function command(e: Eeprom93c46, address: number): void {
  e.drive(true, false, false);
  for (const bit of [1, 1, 0, ...Array.from({ length: 6 }, (_, k) => (address >> (5 - k)) & 1)]) {
    e.drive(true, false, bit === 1);
    e.drive(true, true, bit === 1);
  }
}

/** Clocks out `n` data bits, MSB first. */
function bits(e: Eeprom93c46, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) {
    e.drive(true, false, false);
    e.drive(true, true, false);
    v = (v << 1) | (e.dataOut ? 1 : 0);
  }
  return v;
}

test('93C46: READ shifts the word out MSB first; the MAC is in words 0xA-0xC', () => {
  const e = new Eeprom93c46(MAC);
  command(e, 0xb);
  assert.equal(bits(e, 16), MAC[2] | (MAC[3] << 8));
  e.drive(false, false, false);
  assert.equal(e.isSelected, false);
  command(e, 0xc);
  assert.equal(bits(e, 16), MAC[0] | (MAC[1] << 8));
});

test('93C46 state: a read interrupted half way goes on in a restored part', () => {
  const e = new Eeprom93c46(MAC);
  command(e, 0xa);
  const high = bits(e, 7);
  const twin = new Eeprom93c46(new Uint8Array(6));
  twin.restore(throughJson(e.save()));
  assert.deepEqual(twin.save(), e.save());
  assert.equal((high << 9) | bits(twin, 9), MAC[4] | (MAC[5] << 8));
  assert.throws(
    () => twin.restore({ ...e.save(), words: [] }),
    /eeprom\.words: expected 64 entries, got 0/,
  );
});
