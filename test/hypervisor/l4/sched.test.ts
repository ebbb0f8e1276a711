import assert from 'node:assert/strict';
import { test } from 'node:test';
import { L4Error, msgTag, Syscall, timePeriod } from '../../../src/hypervisor/l4/abi.ts';
import { message } from '../../../src/hypervisor/l4/api.ts';
import { BUILDER_ID } from '../../../src/hypervisor/l4/resourceMonitor.ts';
import {
  api,
  audit,
  bare,
  code,
  ebx,
  parkedVm,
  Recorder,
  runFor,
  sys,
  x86Thread,
} from './harness.ts';

const MS = 2_800_000;

test('threads of one priority share the CPU round robin, one time slice each (default 10 ms)', () => {
  const m = bare();
  const { vm } = parkedVm(m);
  const a = x86Thread(m, vm, code.spin, 0x4000);
  const b = x86Thread(m, vm, code.spin, 0x5000);
  assert.equal(a.timeslice, 10 * MS);
  runFor(m, 45 * MS);
  // The parked main thread spins too: three threads, ~15 ms each.
  assert.ok(
    m.l4.counters.timeSlices >= 4 && m.l4.counters.timeSlices <= 5,
    `${m.l4.counters.timeSlices}`,
  );
  assert.ok(ebx(m, a) > 1_000_000 && ebx(m, b) > 1_000_000, `${ebx(m, a)} ${ebx(m, b)}`);
  // Shorter slices through Schedule (the builder is their scheduler's task).
  const builder = api(m, BUILDER_ID);
  for (const t of [a, b, m.l4.lookup(vm.mainThread, undefined)!])
    assert.equal(builder.schedule(t.tid, (timePeriod(1000) << 16) >>> 0).error, 0);
  const slices = m.l4.counters.timeSlices;
  runFor(m, 30 * MS);
  assert.ok(m.l4.counters.timeSlices - slices >= 25, `${m.l4.counters.timeSlices - slices}`);
  audit(m);
});

test('a higher-priority thread that becomes ready preempts at once; a yield goes to the next', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const high = x86Thread(m, vm, code.waitLoop, 0x4000, 150);
  runFor(m, MS); // high blocks in its receive, the main thread spins
  assert.equal(high.state, 'receiving');
  assert.equal(m.l4.current, main);
  const sender = api(m, vm.createThread({ program: new Recorder() }));
  const preemptions = m.l4.counters.preemptions;
  assert.equal(sender.send(high.tid, message(5))!.error, 0);
  assert.equal(m.l4.current, high);
  assert.equal(m.l4.counters.preemptions - preemptions, 1);
  runFor(m, MS);
  assert.equal(ebx(m, high), 1);
  assert.equal(m.l4.current, main);
  // ThreadSwitch(nil) from main with another ready thread of its priority: that one runs.
  const other = x86Thread(m, vm, code.spin, 0x5000);
  assert.equal(m.l4.current, main);
  sys(m, Syscall.threadSwitch, { eax: 0 });
  assert.equal(m.l4.current, other);
  audit(m);
});

test('Schedule: only the scheduler, never above its own priority; the state is returned', () => {
  const m = bare();
  const { vm, main } = parkedVm(m);
  const stranger = api(m, vm.createThread({ program: new Recorder() }));
  assert.equal(stranger.schedule(main.tid, 0xffffffff, 50).error, L4Error.noPrivilege);
  const builder = api(m, BUILDER_ID);
  const r = builder.schedule(main.tid, 0xffffffff, 120);
  assert.deepEqual([r.error, r.result], [0, 3]);
  assert.equal(main.priority, 120);
  const waiter = api(m, vm.createThread({ program: new Recorder() }));
  waiter.wait();
  assert.equal(builder.schedule(waiter.self).result, 6); // waiting to receive
  void msgTag;
  audit(m);
});
