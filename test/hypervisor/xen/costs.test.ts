import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConsoleRing,
  EvtchnOp,
  Hypercall,
  SharedInfo,
  UVMF_INVLPG,
  Virq,
} from '../../../src/hypervisor/xen/abi.ts';
import { P4_2_8GHZ } from '../../../src/machine/costModel.ts';
import { freshXen, hypercall, mfnOf, poke, pteAddress, scratch } from './harness.ts';

const sw = P4_2_8GHZ.software;
const cpu = P4_2_8GHZ.cpu;

test('a null hypercall costs the trap in and the return (cost-model.md: 500 + 300)', () => {
  const xm = freshXen();
  const m = xm.machine;
  // mov $17, %eax ; xor %ebx, %ebx ; int $0x82 ; at a scratch page the guest can execute
  const code = scratch(xm, 8);
  const bytes = [0xb8, 17, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x82];
  bytes.forEach((b, k) => m.cpu.writeLinear(code + k, 1, b));
  m.cpu.eip = code;
  m.cpu.step();
  m.cpu.step();
  const before = m.cpu.cycles;
  m.cpu.step();
  assert.equal(m.cpu.eax, 0x00010000);
  assert.equal(m.cpu.eip, code + bytes.length);
  // The CPU charges INT n its base cycle before the exit (x86 accounting, not the hypervisor's).
  const spent = m.cpu.cycles - before;
  assert.ok(
    spent >= cpu.gatePrivilege + cpu.iretOuter &&
      spent <= cpu.gatePrivilege + cpu.iretOuter + cpu.base,
    `${spent}`,
  );
  assert.equal(xm.xen.counters.hypercalls.xen_version, 1);
});

test('page-table work is charged per entry from the preset', () => {
  const xm = freshXen();
  const m = xm.machine;
  const va = scratch(xm, 2);
  const req = scratch(xm, 1);
  poke(xm, req, pteAddress(xm, va), 0, (mfnOf(xm, va) << 12) | 3, 0);
  poke(xm, req + 16, pteAddress(xm, va), 0, (mfnOf(xm, va) << 12) | 1, 0);
  m.cpu.readLinear(req, 4); // the request page's TLB miss is the CPU's, not the hypervisor's
  let before = m.cpu.cycles;
  assert.equal(hypercall(xm, Hypercall.mmu_update, req, 2, 0, 0x7ff0), 0);
  assert.equal(m.cpu.cycles - before, 2 * sw.xenPteUpdate + cpu.iretOuter);
  before = m.cpu.cycles;
  assert.equal(hypercall(xm, Hypercall.update_va_mapping, va, 0, 0, UVMF_INVLPG), 0);
  assert.equal(m.cpu.cycles - before, sw.xenPteUpdate + cpu.invlpg + cpu.iretOuter);
  // Pinning an L1 scans its 1024 entries.
  const op = scratch(xm, 3);
  poke(xm, op, 0, mfnOf(xm, va), 0);
  m.cpu.readLinear(op, 4);
  before = m.cpu.cycles;
  assert.equal(hypercall(xm, Hypercall.mmuext_op, op, 1, 0, 0x7ff0), 0);
  assert.equal(m.cpu.cycles - before, 1024 * sw.xenPinPerEntry + cpu.iretOuter);
});

test('console input reaches the ring and raises the console port; VIRQ_CONSOLE when bound', () => {
  const xm = freshXen();
  const { xen, domain } = xm;
  const arg = scratch(xm, 1);
  poke(xm, arg, Virq.CONSOLE, 0, 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_virq, arg), 0);
  const port = xm.machine.cpu.readLinear(arg + 8, 4);
  assert.equal(port, 2); // port 1 is the console ring's
  xen.input([0x68, 0x69]);
  const ring = domain.consoleMfn * 4096;
  const view = new DataView(xm.machine.ram.buffer);
  assert.equal(view.getUint32(ring + ConsoleRing.in_prod, true), 2);
  assert.equal(xm.machine.ram[ring + ConsoleRing.in + 1], 0x69);
  const pending = xen.readShared32(domain, SharedInfo.evtchn_pending);
  assert.equal(pending, (1 << 1) | (1 << 2));
  assert.equal(xen.readShared8(domain, SharedInfo.upcall_pending), 1);
  // Events are still masked at start of day: no upcall yet (and no callback registered).
  assert.equal(xen.counters.upcalls, 0);
});
