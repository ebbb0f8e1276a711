// One port map for the raw PC and the in-place VMM's virtual platform: every entry of the table
// holds a device at the same range on both buses, and the devices the VMM does not model itself
// (the PIT is its own, driven by the backend's timer) are the machine's classes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PortBus } from '../../src/machine/bus.ts';
import { createMachine, Machine } from '../../src/machine/Machine.ts';
import { PC_PORTS } from '../../src/machine/portMap.ts';
import { VirtualPlatform } from '../../src/vmm/platform.ts';

function platform(): VirtualPlatform {
  return new VirtualPlatform({
    interruptLine: () => {},
    consoleByte: () => {},
    exit: () => {},
    reset: () => {},
    rtcStartSeconds: 0,
    deviceEoi: () => {},
    nowNs: () => 0,
    programmed: () => {},
    deviceEventAt: () => {},
  });
}

function layout(bus: PortBus): { port: string; base: number; length: number; device: string }[] {
  return Object.entries(PC_PORTS).map(([port, { base }]) => {
    const r = bus.find(base);
    assert.ok(r !== undefined, `${port} at 0x${base.toString(16)}`);
    return { port, base: r.base, length: r.length, device: r.device.name };
  });
}

test('the machine and the virtual platform place the same devices at the same ranges', () => {
  const machine = createMachine();
  assert.ok(machine instanceof Machine);
  const raw = layout(machine.ports);
  const vmm = layout(platform().ports);
  assert.deepEqual(
    raw.map(({ port, base, length }) => ({ port, base, length })),
    Object.entries(PC_PORTS).map(([port, { base, length }]) => ({ port, base, length })),
  );
  assert.deepEqual(
    vmm.map(({ port, base, length }) => ({ port, base, length })),
    raw.map(({ port, base, length }) => ({ port, base, length })),
  );
  for (const [k, r] of raw.entries()) {
    if (r.port === 'pit') assert.equal(vmm[k].device, 'vpit');
    else assert.equal(vmm[k].device, r.device, r.port);
  }
});

test('the keyboard controller status reads the same on both', () => {
  const machine = createMachine();
  assert.ok(machine instanceof Machine);
  assert.equal(machine.ports.read(0x64, 1), 0x1c);
  assert.equal(platform().read(0x64, 1), 0x1c);
});
