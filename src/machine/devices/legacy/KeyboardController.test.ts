import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KBC_STATUS, KeyboardController } from './KeyboardController.ts';

test('8042 status: SYS and INH set, buffers empty, A2 follows the last write (0x64 or 0x60)', () => {
  const kbc = new KeyboardController(() => assert.fail('no reset'));
  assert.equal(kbc.ioRead(4, 1), 0x1c, 'power-on: as QEMU after the firmware self-test');
  assert.equal(kbc.ioRead(0, 1), 0, 'no keyboard: nothing in the output buffer');
  kbc.ioWrite(0, 1, 0xed); // a data byte (a keyboard command) clears A2
  assert.equal(kbc.ioRead(4, 1), KBC_STATUS.SYS | KBC_STATUS.INH);
  kbc.ioWrite(4, 1, 0xae); // a controller command sets it again
  assert.equal(kbc.ioRead(4, 1), 0x1c);
  kbc.ioWrite(1, 1, 0xff); // port B (0x61) is not the data port
  assert.equal(kbc.ioRead(4, 1) & KBC_STATUS.A2, KBC_STATUS.A2);
});

test('8042: 0xFE and the other pulse commands with bit 0 clear reset the machine', () => {
  let resets = 0;
  const kbc = new KeyboardController(() => resets++);
  kbc.ioWrite(4, 1, 0xff); // pulse nothing
  kbc.ioWrite(4, 1, 0xfd); // pulse bit 1 only
  kbc.ioWrite(0, 1, 0xfe); // data, not a command
  assert.equal(resets, 0);
  kbc.ioWrite(4, 1, 0xfe);
  kbc.ioWrite(4, 1, 0xf0);
  assert.equal(resets, 2);
});

test('8042 state: the status register', () => {
  const kbc = new KeyboardController(() => {});
  kbc.ioWrite(0, 1, 0);
  const twin = new KeyboardController(() => {});
  twin.restore(JSON.parse(JSON.stringify(kbc.save())) as ReturnType<KeyboardController['save']>);
  assert.equal(twin.ioRead(4, 1), 0x14);
  assert.throws(
    () => twin.restore({ version: 0 } as never),
    /keyboard: keyboard controller state version 0/,
  );
});
