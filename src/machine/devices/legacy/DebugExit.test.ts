import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DebugExit } from './DebugExit.ts';

test('isa-debug-exit hands on the value of the write, as wide as the access; reads float high', () => {
  const values: number[] = [];
  const dev = new DebugExit((v) => values.push(v));
  dev.ioWrite(0, 1, 0x1234);
  dev.ioWrite(0, 2, 0x12345);
  dev.ioWrite(0, 4, 0x100);
  assert.deepEqual(values, [0x34, 0x2345, 0x100]);
  assert.equal(dev.ioRead(), 0xff);
});
