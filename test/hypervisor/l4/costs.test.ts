import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fpage, mapItem } from '../../../src/hypervisor/l4/abi.ts';
import { message } from '../../../src/hypervisor/l4/api.ts';
import { BUILDER_ID } from '../../../src/hypervisor/l4/resourceMonitor.ts';
import {
  api,
  audit,
  bare,
  ebx,
  mapVmPages,
  parkedVm,
  Recorder,
  runFor,
  x86Thread,
} from './harness.ts';

// reference/cost-model.md: the trap in and out 500 + 300, an IPC 250, a page mapped or unmapped
// 100, an address-space switch a MOV to CR3 (200) plus the TLB refills the CPU counts itself.

test('an x86 system call costs the trap in and out: 500 + 300 (and its three instructions)', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  // int $0x38 (SystemClock); inc %ebx; jmp back
  const t = x86Thread(m, vm, [0xcd, 0x38, 0x43, 0xeb, 0xfb], 0x4000, 120);
  runFor(m, 100_000);
  const [c0, n0] = [m.machine.cpu.cycles, ebx(m, t)];
  runFor(m, 1_000_000);
  const per = (m.machine.cpu.cycles - c0) / (ebx(m, t) - n0);
  assert.ok(Math.abs(per - 803) < 1, `${per} cycles per round`);
  audit(m);
});

test('TypeScript threads pay what the trap ABI costs: 800 a call, 250 an IPC, 300 each return', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const cpu = m.machine.cpu;
  const a = api(m, vm.createThread({ program: new Recorder() }));
  const b = api(m, vm.createThread({ program: new Recorder() }));
  let before = cpu.cycles;
  a.systemClock();
  assert.equal(cpu.cycles - before, 800);
  a.wait();
  before = cpu.cycles;
  b.send(a.self, message(1, [1, 2, 3]));
  // b's trap in, the IPC, a's blocked call returning, b's call returning.
  assert.equal(cpu.cycles - before, 500 + 250 + 300 + 300);
  audit(m);
});

test('mapping costs 100 a page, unmapping 100 a page, a space switch 200', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const other = parkedVm(m);
  mapVmPages(m, vm, 0x20000, 4);
  const cpu = m.machine.cpu;
  const a = api(m, vm.createThread({ program: new Recorder() }));
  const r = api(m, other.vm.createThread({ program: new Recorder() }));
  r.setAcceptor(fpage(0x800000, 14));
  r.wait();
  // a's space is the one the CPU runs; r's is not: delivering to r switches to it and back.
  let before = cpu.cycles;
  const switches = m.l4.counters.spaceSwitches;
  a.send(r.self, message(0, [], mapItem(0x20000, fpage(0x20000, 14, 7))));
  assert.equal(m.l4.counters.spaceSwitches - switches, 2);
  assert.equal(cpu.cycles - before, 500 + 250 + 4 * 100 + 200 + 300 + 200 + 300);
  before = cpu.cycles;
  a.unmap([fpage(0x20000, 14, 7)]);
  assert.equal(cpu.cycles - before, 800 + 4 * 100);
  // A root thread's call from the host switches to its space and back: 2 × 200 more.
  before = cpu.cycles;
  api(m, BUILDER_ID).systemClock();
  assert.equal(cpu.cycles - before, 800 + 400);
  audit(m);
});
