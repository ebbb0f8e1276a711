import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StateError } from '../../../src/machine/state.ts';
import { timePeriod } from '../../../src/hypervisor/l4/abi.ts';
import type { L4Api } from '../../../src/hypervisor/l4/api.ts';
import type { TsProgram } from '../../../src/hypervisor/l4/thread.ts';
import {
  audit,
  bare,
  boot,
  code,
  parkedVm,
  restored,
  runFor,
  snapshot,
  systemConfig,
  x86Thread,
} from './harness.ts';

/**
 * The whole-system test (guest/system.c): two x86 threads in two spaces, ping-pong, mapping,
 * page faults resolved by an x86 pager, exceptions as IPC, a time-slice preemption, the PIT's
 * interrupt as IPC, the end through the resource monitor.
 */
test('the system guest: two spaces, IPC, mapping, faults, preemption, an interrupt, exit', () => {
  const m = boot(systemConfig());
  const end = m.machine.run(200_000_000);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, m.console());
  assert.equal(
    m.console(),
    [
      'system: main thread 0x04000001',
      'system: ping-pong, page faults and exceptions served',
      'system: mapped, written, unmapped (status written), faulted again',
      'system: preempted at the end of a time slice',
      'system: interrupt 0 received as IPC and acknowledged',
      'system: done',
      '',
    ].join('\n'),
  );
  const s = m.l4.stats() as Record<string, Record<string, number> & number>;
  // B's code, data and stack pages came to A as page faults; A's own from the resource monitor.
  assert.ok(s.ipc.pageFault >= 6, JSON.stringify(s.ipc));
  assert.equal(s.ipc.exception, 2); // int $0x80 and the out to a port B was not given
  assert.equal(s.ipc.interrupt, 1);
  assert.ok(s.ipc.other > 200); // 100 pings and their replies, the fault replies, requests
  assert.equal(s.syscalls.unmap, 1);
  assert.equal(s.syscalls.flush, 1);
  assert.ok(s.pages.mapped > 1024); // the VM's 4 MB to the resource monitor, then pages on
  assert.ok(s.pages.unmapped >= 1);
  assert.ok(s.spaceSwitches > 200);
  assert.equal(s.timeSlices, 1);
  assert.equal(s.spacesDeleted, 1); // B's, with B
  assert.equal(s.threadsHalted, 0);
  assert.equal(m.machine.stats().irqs[0], 1);
  assert.deepEqual(m.l4.vms(), [{ id: 0, state: 'shutdown', ending: 'exit, status 0' }]);
  audit(m);
});

test('the system guest saved at several points and restored into a new build continues exactly', () => {
  const config = systemConfig();
  const whole = boot(config);
  const end = whole.machine.run();
  const want = {
    end,
    console: whole.console(),
    cycles: whole.machine.cpu.cycles,
    machine: whole.machine.stats(),
    l4: whole.l4.stats(),
  };
  // Mid ping-pong, in the map/unmap steps, mid time slice (A spinning), while A waits for the
  // interrupt (blocked in IPC with a timeout), and at the end.
  for (const at of [300_000, 1_500_000, 20_000_000, 30_500_000, 30_990_000]) {
    const first = boot(config);
    first.machine.run(at);
    const s = snapshot(first);
    const second = restored(config, s);
    const end2 = second.machine.run();
    assert.deepEqual(
      {
        end: end2,
        console: first.console() + second.console(),
        cycles: second.machine.cpu.cycles,
        machine: second.machine.stats(),
        l4: second.l4.stats(),
      },
      want,
      `restored at ${at}`,
    );
    audit(second);
  }
});

test('a kernel state that does not fit is refused with a StateError naming the field', () => {
  const config = systemConfig();
  const first = boot(config);
  first.machine.run(1_500_000);
  const good = snapshot(first);
  const tryRestore = (edit: (s: ReturnType<typeof snapshot>) => void): string => {
    const s = structuredClone(good);
    edit(s);
    const m = boot(config);
    try {
      m.machine.restore(s.machine, () => m.l4.restore(s.l4, 'hypervisor'));
    } catch (e) {
      assert.ok(e instanceof StateError, String(e));
      return e.message;
    }
    return 'restored';
  };
  assert.match(
    tryRestore((s) => void ((s.l4 as { version: number }).version = 2)),
    /l4 state version 2/,
  );
  assert.match(
    tryRestore((s) => void ((s.l4.threads[0] as { kind: string }).kind = 'fpu')),
    /hypervisor.threads\[0\].kind/,
  );
  assert.match(
    tryRestore((s) => void (s.l4.threads.find((t) => t.kind === 'ts')!.tid = 0x7777001)),
    /TypeScript thread 0x7777001 is not made by this configuration/,
  );
  assert.match(
    tryRestore((s) => void (s.l4.pool.count = 7)),
    /kernel memory/,
  );
  assert.match(
    tryRestore((s) => void (s.l4.mapping.nodes[1][1] = 999)),
    /no space 999/,
  );
  assert.match(
    tryRestore((s) => void (s.l4.current = 0x12345601)),
    /current: no thread/,
  );
  assert.equal(
    tryRestore(() => {}),
    'restored',
  );
});

/** A TypeScript thread that waits with a timeout, over and over, counting (its state saved). */
class Ticker implements TsProgram {
  ticks = 0;
  start(api: L4Api): void {
    api.wait(timePeriod(1000));
  }
  ipcDone(api: L4Api): void {
    this.ticks++;
    api.wait(timePeriod(1000));
  }
  save(): unknown {
    return { ticks: this.ticks };
  }
  restore(state: unknown): void {
    this.ticks = (state as { ticks: number }).ticks;
  }
}

test('TypeScript threads waiting with timeouts and x86 threads mid time slice: restored exactly', () => {
  const build = () => {
    const m = bare();
    const { vm } = parkedVm(m);
    const ticker = new Ticker();
    vm.createThread({ program: ticker });
    x86Thread(m, vm, code.spin, 0x4000);
    x86Thread(m, vm, code.waitLoop, 0x5000, 120);
    return { m, ticker };
  };
  const whole = build();
  runFor(whole.m, 60_000_000);
  const want = {
    cycles: whole.m.machine.cpu.cycles,
    l4: whole.m.l4.stats(),
    ticks: whole.ticker.ticks,
  };
  assert.ok(want.ticks > 15 && (want.l4.timeSlices as number) >= 2, JSON.stringify(want));
  for (const at of [7_777_777, 33_333_333]) {
    const first = build();
    runFor(first.m, at);
    const s = snapshot(first.m);
    const second = build();
    second.m.machine.restore(s.machine, () => second.m.l4.restore(s.l4, 'hypervisor'));
    // On to where the uninterrupted run stopped.
    second.m.machine.resume();
    second.m.machine.run(want.cycles);
    assert.deepEqual(
      { cycles: second.m.machine.cpu.cycles, l4: second.m.l4.stats(), ticks: second.ticker.ticks },
      want,
      `restored at ${at}`,
    );
    audit(second.m);
  }
});
