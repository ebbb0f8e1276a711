import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  arrayOf,
  bool,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  nullable,
  num,
  StateError,
} from './state.ts';
import { mulberry32 } from './random.ts';

test('bytes are base64 (RFC 4648): every length round-trips and matches the reference', () => {
  const rand = mulberry32(3);
  for (const n of [0, 1, 2, 3, 4, 5, 255, 4096, 100_001]) {
    const b = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
    const text = encodeBytes(b);
    assert.equal(text, Buffer.from(b).toString('base64'), `length ${n}`);
    assert.deepEqual(decodeBytes(text, 'x'), b);
  }
});

test('bad base64 and a wrong length are state errors that name the field', () => {
  assert.throws(() => decodeBytes('abc', 'dev.fifo'), /^StateError: dev\.fifo: not base64/);
  assert.throws(() => decodeBytes('ab*=', 'dev.fifo'), /dev\.fifo: not base64 \(character 2\)/);
  assert.throws(() => decodeBytes('AAAA', 'dev.config', 4), /dev\.config: expected 4 bytes, got 3/);
  assert.throws(() => decodeBytes(7, 'dev.config'), /expected base64 bytes, got a number/);
  assert.throws(() => bytes('A=AA', 'x'), StateError);
});

test('a versioned state check names the version first, then the field', () => {
  interface S {
    version: 2;
    a: number;
    list: boolean[];
    maybe: number | null;
  }
  const check = checkState<S>('widget', 2, { a: num, list: arrayOf(bool), maybe: nullable(num) });
  check({ version: 2, a: 1, list: [true], maybe: null }, 'w');
  assert.throws(
    () => check({ version: 1, a: 1 }, 'w'),
    /^StateError: w: widget state version 1 is not supported \(expected 2\)$/,
  );
  assert.throws(() => check({ a: 1 }, 'w'), /widget state version null is not supported/);
  assert.throws(
    () => check({ version: 2, list: [], maybe: 1 }, 'w'),
    /^StateError: w\.a: expected a number, got nothing \(missing\)$/,
  );
  assert.throws(
    () => check({ version: 2, a: 1, list: [1], maybe: 1 }, 'w'),
    /w\.list\[0\]: expected true or false, got a number/,
  );
  assert.throws(() => check('x', 'w'), /w: expected the widget state \(an object\), got a string/);
});
