// set_timer_op from a running guest: the timer event is scheduled in the middle of the machine's
// run slice, which was computed before the event existed; the tick must still come on time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EvtchnOp,
  Hypercall,
  Selector,
  SharedInfo,
  Virq,
} from '../../../src/hypervisor/xen/abi.ts';
import { freshXen, hypercall, poke, scratch } from './harness.ts';

const le = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

test('a timer armed by hypercall mid-slice fires at its deadline, not at the end of the slice', () => {
  const xm = freshXen();
  const { xen, domain, machine } = xm;
  const cpu = machine.cpu;
  const hz = machine.costModel.hz;
  const arg = scratch(xm, 1);
  const code = scratch(xm, 8);
  const callback = code + 0x100;
  // The event callback powers the domain off with status 7: sched_op(shutdown, {poweroff, 7}).
  poke(xm, arg + 64, 0, 7);
  const power = [0xb8, ...le(Hypercall.sched_op), 0xbb, ...le(2), 0xb9, ...le(arg + 64)];
  [...power, 0xcd, 0x82, 0xeb, 0xfe].forEach((b, k) => cpu.writeLinear(callback + k, 1, b));
  assert.equal(
    hypercall(
      xm,
      Hypercall.set_callbacks,
      Selector.RING1_CS,
      callback,
      Selector.RING1_CS,
      callback,
    ),
    0,
  );
  poke(xm, arg, Virq.TIMER, 0);
  assert.equal(hypercall(xm, Hypercall.event_channel_op, EvtchnOp.bind_virq, arg), 0);
  xen.writeShared8(domain, SharedInfo.upcall_mask, 0);

  // The guest arms the timer 1 ms ahead, then spins (never blocks, never traps).
  const deadlineNs = xen.systemTime(domain) + 1_000_000;
  const arm = [0xb8, ...le(Hypercall.set_timer_op), 0xbb, ...le(deadlineNs), 0x31, 0xc9];
  [...arm, 0xcd, 0x82, 0xeb, 0xfe].forEach((b, k) => cpu.writeLinear(code + k, 1, b));
  cpu.eip = code;
  const deadline = domain.startCycle + (deadlineNs * hz) / 1e9;
  const end = machine.run(cpu.cycles + hz);
  assert.deepEqual(end, { kind: 'exit', value: 7 });
  assert.equal(xen.counters.timerInterrupts, 1);
  // The upcall and the shutdown hypercall take a few thousand cycles, not a 10 ms slice.
  assert.ok(cpu.cycles >= deadline, `${cpu.cycles} < ${deadline}`);
  assert.ok(cpu.cycles - deadline < 10_000, `${cpu.cycles - deadline} cycles late`);
});
