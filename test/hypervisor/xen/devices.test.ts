import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Errno,
  EvtchnOp,
  Hypercall,
  PhysdevOp,
  SharedInfo,
} from '../../../src/hypervisor/xen/abi.ts';
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

test("a granted device's DMA is translated from the domain's pseudo-physical addresses and refused outside it", () => {
  const xm = freshXen();
  const { xen, domain, machine } = xm;
  const ram = machine.ram;
  const seen: number[] = [];
  // The device's bus-master port, as the machine gives it: machine addresses.
  const port = {
    read: (maddr: number, into: Uint8Array) => {
      seen.push(maddr);
      into.set(ram.subarray(maddr, maddr + into.length));
      return true;
    },
    write: (maddr: number, from: Uint8Array) => {
      seen.push(maddr);
      ram.set(from, maddr);
      return true;
    },
  };
  xen.grantDevice(domain, { ...grant([]), dma: port });
  const frame = domain.p2m[20];
  ram.set([1, 2, 3, 4], frame * 4096 + 8);
  const into = new Uint8Array(4);
  assert.equal(port.read(20 * 4096 + 8, into), true);
  assert.deepEqual([...into], [1, 2, 3, 4]);
  assert.deepEqual(seen, [frame * 4096 + 8]);
  assert.equal(port.write(21 * 4096, Uint8Array.of(9)), true);
  assert.equal(ram[domain.p2m[21] * 4096], 9);
  // Past the domain's memory, negative, or a hypervisor frame's machine address: refused, and
  // the device never touches memory.
  const past = domain.p2m.length * 4096;
  assert.equal(port.read(past, into), false);
  assert.equal(port.write(past - 2, Uint8Array.of(1, 2, 3, 4)), false);
  assert.equal(port.read(-4096, into), false);
  assert.equal(port.write(0xe0000000, Uint8Array.of(1)), false);
  assert.equal(seen.length, 2);
  assert.equal(xen.counters.dmaTranslated, 2);
  assert.equal(xen.counters.dmaRefused, 4);
});

test("physdev_op: the granted function's configuration space; BARs stay the hypervisor's", () => {
  const xm = freshXen();
  const { xen, domain } = xm;
  const config = new Uint8Array(256);
  const view = new DataView(config.buffer);
  view.setUint32(0, 0x0022100b, true);
  view.setUint32(0x14, 0xe0000000, true);
  const writes: string[] = [];
  const pci = {
    read: (o: number, n: 1 | 2 | 4) =>
      n === 4 ? view.getUint32(o, true) : n === 2 ? view.getUint16(o, true) : config[o],
    write: (o: number, n: 1 | 2 | 4, v: number) => {
      writes.push(`${o.toString(16)}/${n}=${v.toString(16)}`);
    },
  };
  const arg = scratch(xm, 1);
  const op = (cmd: number, offset: number, size: number, value = 0): number => {
    poke(xm, arg, offset, size, value);
    return hypercall(xm, Hypercall.physdev_op, cmd, arg);
  };
  assert.equal(op(PhysdevOp.pci_config_read, 0, 4), -Errno.EPERM); // nothing granted yet
  xen.grantDevice(domain, { ...grant([]), pci });
  assert.equal(op(PhysdevOp.pci_config_read, 0, 4), 0);
  assert.equal(xm.machine.cpu.readLinear(arg + 8, 4), 0x0022100b);
  assert.equal(op(PhysdevOp.pci_config_read, 2, 4), -Errno.EINVAL); // unaligned
  assert.equal(op(PhysdevOp.pci_config_write, 0x14, 4, 0xffffffff), 0); // BAR: ignored
  assert.equal(op(PhysdevOp.pci_config_write, 0x04, 4, 0xffff0007), 0); // command only
  assert.equal(op(PhysdevOp.pci_config_write, 0x3c, 1, 5), 0);
  assert.equal(op(7, 0, 4), -Errno.ENOSYS);
  assert.deepEqual(writes, ['4/2=7', '3c/1=5']);
});
