import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throughJson } from '../../testing.ts';
import { FwCfg } from './FwCfg.ts';

function item(fw: FwCfg, key: number, bytes: number): number[] {
  fw.ioWrite(0, 2, key);
  return Array.from({ length: bytes }, () => fw.ioRead(1, 1));
}

test('fw_cfg: the signature, the interface ID, the CPU count and the RAM size', () => {
  const fw = new FwCfg({ ramBytes: 256 << 20, cpus: 1 });
  assert.equal(String.fromCharCode(...item(fw, 0, 4)), 'QEMU');
  assert.deepEqual(item(fw, 1, 4), [1, 0, 0, 0], 'traditional interface, no DMA');
  assert.deepEqual(item(fw, 5, 2), [1, 0], 'one CPU');
  assert.deepEqual(item(fw, 3, 8), [0, 0, 0, 0x10, 0, 0, 0, 0], '256 MB');
  assert.deepEqual(item(fw, 0x11, 4), [0, 0, 0, 0], 'an unknown key reads as zeros');
  assert.deepEqual(item(fw, 0, 6).slice(4), [0, 0], 'past the end: zeros');
});

test('fw_cfg state: the selected item and the read position survive a restore', () => {
  const a = new FwCfg({ ramBytes: 64 << 20, cpus: 1 });
  a.ioWrite(0, 2, 0);
  a.ioRead(1, 1);
  const b = new FwCfg({ ramBytes: 64 << 20, cpus: 1 });
  b.restore(throughJson(a.save()));
  assert.equal(b.ioRead(1, 1), 'E'.charCodeAt(0));
  assert.throws(() => b.restore({ version: 2 } as never), /version 2/);
});
