import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createXenMachine } from '../../../src/hypervisor/xen/machine.ts';
import { buildPvGuest } from './build.ts';

test('a PV guest boots in ring 1, prints, faults, takes a timer upcall, visits ring 3, powers off', () => {
  let out = '';
  const xm = createXenMachine({
    kernel: buildPvGuest('hello'),
    kernelName: 'hello.elf',
    console: (b) => (out += String.fromCharCode(b)),
  });
  assert.equal(typeof xm, 'object', String(xm));
  if (typeof xm === 'string') return;
  const end = xm.machine.run(2_800_000_000);
  assert.deepEqual(end, { kind: 'exit', value: 7 }, out);
  assert.match(out, /pv hello: booted in ring 1\n/);
  assert.match(out, /pv hello: console ring works\n/);
  assert.match(out, /pv hello: writable page-table mapping refused\n/);
  assert.match(out, /pv hello: page fault handled\n/);
  assert.match(out, /pv hello: timer upcall\n/);
  assert.match(out, /pv hello: ring 3 and back\n/);
  const c = xm.xen.counters;
  assert.equal(c.bounces[14], 1);
  assert.equal(c.bounces[0x80], 1);
  assert.equal(c.upcalls, 1);
  assert.equal(c.timerInterrupts, 1);
  assert.deepEqual(xm.xen.end, {
    domain: 0,
    kind: 'poweroff',
    status: 7,
    message: 'poweroff, status 7',
  });
  assert.deepEqual(xm.xen.frames.audit(xm.xen.domains), []);
  // The timer was armed 1 ms ahead and the guest blocked: simulated time passed, mostly idle.
  const s = xm.machine.stats();
  assert.ok(s.simulatedSeconds >= 0.001, `${s.simulatedSeconds}`);
  assert.ok(s.idleCycles > 0);
});
