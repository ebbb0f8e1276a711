import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno, EvtchnOp, Hypercall, SharedInfo } from '../../../src/hypervisor/xen/abi.ts';
import { domainDma } from '../../../src/hypervisor/xen/devices.ts';
import { freshXen, hypercall, poke, scratch } from './harness.ts';

const grant = (irqs: number[], ports: { base: number; length: number }[] = []) => ({
  name: 'test device',
  ioPorts: ports,
  ioMemory: [],
  irqs,
});

test('a granted IRQ line arrives as its pirq event; the line stays masked until the port is unmasked', () => {
  const xm = freshXen();
  const { xen, domain, machine } = xm;
  const arg = scratch(xm, 1);
  poke(xm, arg, 11, 0, 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_pirq, arg), -Errno.EPERM);
  xen.grantDevice(domain, grant([11]));
  poke(xm, arg, 5, 0, 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_pirq, arg), -Errno.EPERM);
  poke(xm, arg, 11, 0, 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_pirq, arg), 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_pirq, arg), -Errno.EEXIST);
  const port = machine.cpu.readLinear(arg + 8, 4);
  assert.equal(machine.ports.read(0xa1, 1) & 0x08, 0); // bound: unmasked
  machine.pic.setIrq(11, true);
  machine.cpu.step(); // the interrupt exits to the hypervisor
  assert.equal(machine.cpu.counters.interrupts, 1);
  assert.equal(xen.readShared32(domain, SharedInfo.evtchn_pending) & (1 << port), 1 << port);
  assert.equal(machine.ports.read(0xa1, 1) & 0x08, 0x08); // masked until the guest is done
  machine.pic.setIrq(11, false);
  poke(xm, arg, port);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.unmask, arg), 0);
  assert.equal(machine.ports.read(0xa1, 1) & 0x08, 0);
});

test('IN/OUT from ring 1 reach granted ports only', () => {
  const xm = freshXen();
  const { xen, domain, machine } = xm;
  const cpu = machine.cpu;
  xen.grantDevice(domain, grant([], [{ base: 0x80, length: 1 }]));
  // out %al, $0x80 ; out %al, $0x70 (not granted: #GP, no handler, the domain crashes)
  const code = scratch(xm, 8);
  [0xe6, 0x80, 0xe6, 0x70].forEach((b, k) => cpu.writeLinear(code + k, 1, b));
  cpu.eip = code;
  cpu.step();
  assert.equal(xen.counters.ioEmulated, 1);
  assert.equal(cpu.eip, code + 2);
  assert.equal(domain.alive, true);
  cpu.step();
  assert.equal(xen.counters.ioEmulated, 1);
  assert.equal(domain.alive, false);
  assert.match(domain.ending ?? '', /unhandled #GP/);
});

test('DMA is confined to the domain: translated through its p2m, refused outside its frames', () => {
  const xm = freshXen();
  const { xen, domain } = xm;
  const dma = domainDma(domain.p2m, (mfn) => xen.frames.ownedBy(domain, mfn));
  const base = domain.p2m[10] * 4096;
  assert.equal(dma.translate(10 * 4096 + 12, 1514), base + 12);
  assert.equal(dma.translate(domain.p2m.length * 4096 - 4, 8), undefined);
  assert.equal(dma.translate(-4096, 8), undefined);
  assert.equal(dma.allows(base, 8192), true);
  assert.equal(dma.allows(xen.gdtMfn * 4096, 4), false);
  assert.equal(dma.allows(0, 64), false);
  // The domain's last frame (shared info) is its own; the one after it is nobody's.
  assert.equal(dma.allows(domain.sharedInfoMfn * 4096 + 4000, 200), false);
});
