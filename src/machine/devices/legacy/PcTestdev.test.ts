import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throughJson } from '../../testing.ts';
import { PcTestdev } from './PcTestdev.ts';

function testdev(levels: Map<number, boolean> = new Map()): PcTestdev {
  return new PcTestdev((line) => (line < 16 ? { set: (l) => levels.set(line, l) } : undefined));
}

test('pc-testdev: the scratch register reads back by byte lanes; the flush port is harmless', () => {
  const dev = testdev();
  dev.ports.ioWrite(0, 4, 0x12345678);
  assert.equal(dev.ports.ioRead(0, 4), 0x12345678);
  dev.ports.ioWrite(1, 1, 0xab);
  assert.equal(dev.ports.ioRead(0, 4), 0x1234ab78);
  assert.equal(dev.ports.ioRead(2, 2), 0x1234);
  dev.ports.ioWrite(4, 4, 0x1000); // flush page
  assert.equal(dev.ports.ioRead(0, 4), 0x1234ab78);
});

test('pc-testdev: IRQ line ports drive the ISA lines; the memory window holds what is written', () => {
  const levels = new Map<number, boolean>();
  const dev = testdev(levels);
  dev.irqPorts.ioWrite(10, 1, 1);
  dev.irqPorts.ioWrite(4, 1, 0);
  dev.irqPorts.ioWrite(20, 1, 1); // no line 20 on this PC
  assert.deepEqual(
    [...levels],
    [
      [10, true],
      [4, false],
    ],
  );
  dev.iomem.mmioWrite(0xfffe, 2, 0xbeef);
  dev.iomem.mmioWrite(0x100, 4, 0xdeadbeef);
  assert.equal(dev.iomem.mmioRead(0x100, 4), 0xdeadbeef);
  assert.equal(dev.iomem.mmioRead(0x102, 1), 0xad);
  assert.equal(dev.iomem.mmioRead(0xfffe, 4), 0xbeef, 'nothing past the end');
  const again = testdev();
  again.restore(throughJson(dev.save()));
  assert.equal(again.iomem.mmioRead(0x100, 4), 0xdeadbeef);
  assert.equal(again.ports.ioRead(0, 4), dev.ports.ioRead(0, 4));
});
