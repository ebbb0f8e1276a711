import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PortBus } from './bus.ts';

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
