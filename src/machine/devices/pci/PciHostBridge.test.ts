import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AccessSize, PciFunction } from '../../device.ts';
import { PciHostBridge } from './PciHostBridge.ts';

/** A function with 256 bytes of plain read/write configuration space, logging each access. */
function fakeFunction(name: string): PciFunction & { config: Uint8Array; log: string[] } {
  const config = new Uint8Array(256);
  const log: string[] = [];
  return {
    name,
    config,
    log,
    configRead(offset: number, size: AccessSize): number {
      log.push(`r${size}@${offset}`);
      let v = 0;
      for (let k = 0; k < size; k++) v |= config[offset + k] << (8 * k);
      return v >>> 0;
    },
    configWrite(offset: number, size: AccessSize, value: number): void {
      log.push(`w${size}@${offset}`);
      for (let k = 0; k < size; k++) config[offset + k] = (value >>> (8 * k)) & 0xff;
    },
  };
}

/** CONFIG_ADDRESS for bus/device/function/register, enable bit set (PCI 3.0, 3.2.2.3.2). */
const address = (bus: number, dev: number, fn: number, reg: number): number =>
  (0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | reg) >>> 0;

test('mechanism #1: CONFIG_ADDRESS reads back (reserved and low bits clear), byte reads of it float', () => {
  const pci = new PciHostBridge();
  pci.ioWrite(0, 4, 0xffffffff);
  assert.equal(pci.ioRead(0, 4), 0x80fffffc);
  pci.ioWrite(0, 2, 0x1234); // only a dword access reaches CONFIG_ADDRESS
  assert.equal(pci.ioRead(0, 4), 0x80fffffc);
  assert.equal(pci.ioRead(0, 1), 0xff);
  assert.equal(pci.ioRead(2, 2), 0xffff);
});

test('the host bridge at 00:00.0 is an i440FX; without the enable bit nothing is selected', () => {
  const pci = new PciHostBridge();
  pci.ioWrite(0, 4, address(0, 0, 0, 0));
  assert.equal(pci.ioRead(4, 4), 0x12378086);
  assert.equal(pci.ioRead(4, 2), 0x8086);
  pci.ioWrite(0, 4, address(0, 0, 0, 0x08));
  assert.equal(pci.ioRead(7, 1), 0x06, 'class code: bridge');
  pci.ioWrite(0, 4, 0); // enable bit clear
  assert.equal(pci.ioRead(4, 4), 0xffffffff);
});

test('bus, device and function decoding; absent functions and other buses read all ones', () => {
  const pci = new PciHostBridge();
  const nic = fakeFunction('nic');
  const other = fakeFunction('other');
  assert.equal(pci.add(3, 0, nic), undefined);
  assert.equal(pci.add(3, 5, other), undefined);
  nic.config.set([0x0b, 0x10, 0x22, 0x00], 0);
  other.config.set([0xaa, 0xbb, 0xcc, 0xdd], 0);
  pci.ioWrite(0, 4, address(0, 3, 0, 0));
  assert.equal(pci.ioRead(4, 4), 0x0022100b);
  pci.ioWrite(0, 4, address(0, 3, 5, 0));
  assert.equal(pci.ioRead(4, 4), 0xddccbbaa);
  for (const [bus, dev, fn] of [
    [0, 3, 1],
    [0, 4, 0],
    [1, 3, 0],
    [0xff, 0, 0],
  ]) {
    pci.ioWrite(0, 4, address(bus, dev, fn, 0));
    assert.equal(pci.ioRead(4, 4), 0xffffffff, `${bus}:${dev}.${fn}`);
    assert.equal(pci.ioRead(6, 2), 0xffff);
    assert.equal(pci.ioRead(5, 1), 0xff);
    pci.ioWrite(4, 4, 0); // a write to nothing is dropped
  }
  assert.deepEqual(nic.log, ['r4@0']);
});

test('byte and word accesses at CONFIG_DATA + n reach register + n', () => {
  const pci = new PciHostBridge();
  const f = fakeFunction('f');
  pci.add(1, 0, f);
  pci.ioWrite(0, 4, address(0, 1, 0, 0x3c));
  pci.ioWrite(4, 1, 0x0b); // interrupt line
  pci.ioWrite(5, 1, 0x01); // interrupt pin
  pci.ioWrite(6, 2, 0x3412);
  assert.deepEqual(f.log, ['w1@60', 'w1@61', 'w2@62']);
  assert.equal(pci.ioRead(4, 4), 0x3412010b);
  assert.equal(pci.ioRead(7, 1), 0x34);
  assert.equal(pci.ioRead(6, 2), 0x3412);
  assert.equal(pci.ioRead(5, 1), 0x01);
});

test('adding a function refuses a taken slot (naming the holder) and slots that do not exist', () => {
  const pci = new PciHostBridge();
  assert.equal(pci.add(3, 0, fakeFunction('nic')), undefined);
  assert.equal(pci.add(3, 0, fakeFunction('second')), 'PCI 00:03.0 is taken by nic');
  assert.equal(pci.add(0, 0, fakeFunction('x')), 'PCI 00:00.0 is taken by host-bridge');
  assert.match(
    pci.add(32, 0, fakeFunction('y')) ?? '',
    /^y: PCI device 32 function 0 does not exist/,
  );
  assert.match(pci.add(1, 8, fakeFunction('z')) ?? '', /function 8 does not exist/);
});

test('the bridge state is CONFIG_ADDRESS; a new bridge restored from it selects the same function', () => {
  const pci = new PciHostBridge();
  pci.ioWrite(0, 4, address(0, 0, 0, 0x08));
  const state = JSON.parse(JSON.stringify(pci.save())) as ReturnType<PciHostBridge['save']>;
  assert.deepEqual(state, { version: 1, address: address(0, 0, 0, 8) });
  const again = new PciHostBridge();
  again.restore(state);
  assert.equal(again.ioRead(4, 4), pci.ioRead(4, 4));
  assert.throws(
    () => again.restore({ version: 2 } as never),
    /pci: PCI host bridge state version 2 is not supported/,
  );
  assert.throws(() => again.restore({ version: 1 } as never), /pci\.address: expected a number/);
});
