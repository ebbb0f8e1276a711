// Several VMs on one machine (GuestConfig.vms, issue "reuse"): on xen and on l4 an extra VM runs
// the afterburned kernel's self-test beside the guest, each through its own in-place VMM, while
// the guest sleeps; the extra VM's end is reported on its own console and the run goes on until
// the guest's end. On xen the domains share the CPU through the scheduler (its busy cycles by
// domain add up to the machine's), two CPU-bound domains get the CPU in turns of a 10 ms slice,
// and a para-virtualized guest takes an extra VM too. A snapshot taken while both VMs run
// continues exactly. The CLI's --vm refuses the raw PC and kernels the VMM cannot run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest, GuestConfig } from '../../src/platforms/platform.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import { BUILD, buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();
const LIMIT = 2_800_000_000 * 5;

interface Consoles {
  guest: string;
  vm: string;
}

function boot(
  platform: string,
  out: Consoles,
  guestCmdline: string,
  vmCmdline: string,
  kernel = kernelPath('afterburned'),
): Guest {
  const afterburned = readFileSync(kernelPath('afterburned'));
  const config: GuestConfig = {
    platform,
    kernel: readFileSync(kernel),
    kernelName: 'guest.elf',
    cmdline: guestCmdline,
    memoryMb: 128,
    console: (b) => (out.guest += String.fromCharCode(b)),
    vms: [
      {
        kernel: afterburned,
        kernelName: 'vm.elf',
        cmdline: vmCmdline,
        memoryMb: 32,
        console: (b) => (out.vm += String.fromCharCode(b)),
      },
    ],
  };
  const g = createGuest(config);
  assert.ok(typeof g !== 'string', String(g));
  return g;
}

describe('several VMs on one machine', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok && make('xen-para').ok);
  });

  for (const platform of ['xen', 'l4']) {
    it(`${platform}: an extra VM passes its self-test while the guest sleeps; the guest's end ends the run`, () => {
      const out: Consoles = { guest: '', vm: '' };
      const g = boot(platform, out, 'init=sleep -- 500', 'init=selftest');
      const end = g.machine.run(LIMIT);
      assert.deepEqual(end, { kind: 'exit', value: 0 }, out.guest);
      assert.match(out.vm, /selftest: PASS/, out.vm);
      assert.doesNotMatch(out.guest, /selftest/, 'the consoles are apart');
      assert.match(out.guest, /init exited with status 0/);
      // The extra VM's end is its own line on its console, and did not end the run.
      assert.match(
        out.vm,
        platform === 'xen' ? /\(xen\) domain 0: poweroff, status 0/ : /\(l4\) vm0: exit, status 0/,
      );
      const states = g.hypervisor!.vms().map((v) => v.state);
      assert.equal(states.length, 2);
      assert.equal(states[0], 'shutdown');
      const stats = g.stats();
      assert.equal(stats.vms?.length, 1);
      const calls = Object.values(stats.vms![0].vmm.calls as Record<string, number>);
      assert.ok(
        calls.reduce((a, b) => a + b, 0) > 1000,
        "the extra VM's in-place VMM did the work",
      );
      if (platform === 'xen') {
        const sched = stats.hypervisor!.counters.scheduler as {
          switches: number;
          busyCycles: Record<string, number>;
        };
        assert.ok(sched.switches > 10, `switches ${sched.switches}`);
        const busy = Object.values(sched.busyCycles).reduce((a, b) => a + b, 0);
        assert.equal(busy, stats.machine.busyCycles, 'every busy cycle belongs to a domain');
        assert.ok(sched.busyCycles.dom0 > 0 && sched.busyCycles.dom1 > 0);
      }
    });
  }

  it('xen: two CPU-bound domains share the CPU in 10 ms turns', () => {
    const out: Consoles = { guest: '', vm: '' };
    const g = boot('xen', out, 'init=spin', 'init=spin');
    const hz = g.machine.costModel.hz;
    const end = g.machine.run(hz); // one simulated second
    assert.equal(end.kind, 'cycle-limit');
    const sched = g.stats().hypervisor!.counters.scheduler as {
      switches: number;
      busyCycles: Record<string, number>;
    };
    // About 100 slices in a second; each domain gets about half of the CPU.
    assert.ok(sched.switches >= 90 && sched.switches <= 110, `switches ${sched.switches}`);
    const { dom0, dom1 } = sched.busyCycles;
    assert.ok(Math.abs(dom0 - dom1) < hz * 0.05, `dom0 ${dom0}, dom1 ${dom1}`);
  });

  it('xen: a para-virtualized guest with an afterburned VM beside it', () => {
    const out: Consoles = { guest: '', vm: '' };
    const g = boot(
      'xen',
      out,
      'init=sleep -- 500',
      'init=selftest',
      join(BUILD, 'xen-para', 'kernel.elf'),
    );
    const end = g.machine.run(LIMIT);
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out.guest);
    assert.match(out.vm, /selftest: PASS/);
  });

  for (const platform of ['xen', 'l4']) {
    it(`${platform}: a snapshot taken while both VMs run continues exactly`, () => {
      const run = (
        snapshotAt: number | undefined,
      ): { out: Consoles; end: unknown; stats: unknown } => {
        const out: Consoles = { guest: '', vm: '' };
        let g = boot(platform, out, 'init=selftest', 'init=selftest');
        if (snapshotAt !== undefined) {
          assert.equal(g.machine.run(snapshotAt).kind, 'cycle-limit');
          const saved = g.save();
          const r = restoreGuest(saved, {
            console: (b) => (out.guest += String.fromCharCode(b)),
            vmConsole: () => (b) => (out.vm += String.fromCharCode(b)),
          });
          assert.ok(typeof r !== 'string', String(r));
          g = r;
        }
        const end = g.machine.run(LIMIT);
        return { out, end, stats: g.stats() };
      };
      const whole = run(undefined);
      assert.match(whole.out.guest, /selftest: PASS/);
      const resumed = run(40_000_000);
      assert.deepEqual(resumed, whole);
    });
  }

  it("previrt run --vm: the extra VM's lines are prefixed; bad uses get one line", () => {
    const k = kernelPath('afterburned');
    const cli = (args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], { encoding: 'utf8' });
    const ok = cli([
      '--hypervisor',
      'xen',
      '--memory',
      '128',
      '--kernel',
      k,
      '--append',
      'init=sleep -- 300',
      '--vm',
      `${k} init=selftest`,
    ]);
    assert.equal(ok.status, 1, ok.stderr);
    assert.match(ok.stdout, /^\[vm1\] selftest: PASS$/m);
    assert.match(ok.stdout, /^kernel: init exited with status 0$/m);
    const raw = cli(['--kernel', k, '--vm', k]);
    assert.equal(raw.status, 2);
    assert.equal(
      raw.stderr.trim(),
      'previrt run: more VMs need a hypervisor (--hypervisor xen or l4), not the raw PC',
    );
    const native = cli(['--hypervisor', 'l4', '--kernel', k, '--vm', kernelPath('native')]);
    assert.equal(native.status, 2);
    assert.match(native.stderr, /^previrt run: .*native.*: not an afterburned kernel/);
    const small = cli(['--hypervisor', 'xen', '--kernel', k, '--vm', k, '--vm-memory', '8']);
    assert.equal(small.status, 2);
    assert.match(small.stderr, /--vm-memory: '8' is not a size of at least 16 MB/);
  });
});
