// Whole-system runs of the in-place VMM on the L4-style microkernel (issue 13, part 2): the same
// afterburned guest ELF passes the self-test raw, on xen and on l4, the native build is refused,
// --stats shows the microkernel's and the VMM's counters, init arguments and the shell with
// piped input work under l4.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { L4Kernel } from '../../src/hypervisor/l4/L4.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { buildSkipReason, comparableLines, kernelPath, make, ROOT } from '../guest/guest.ts';

const skip = buildSkipReason();

function previrt(args: string[], input = ''): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), 'run', ...args], {
    input,
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { status: r.status, out: r.stdout.replace(/\r/g, ''), err: r.stderr };
}

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('the afterburned guest on --hypervisor l4', { skip }, () => {
  const kernel = kernelPath('afterburned');
  before(() => {
    for (const v of ['afterburned', 'native'] as const) {
      const r = make(v);
      assert.ok(r.ok, r.output);
    }
  });

  it('passes the whole self-test on none, xen and l4 with the same bytes', () => {
    const hash = sha(kernel);
    const run = (h: string): ReturnType<typeof previrt> =>
      previrt([
        '--hypervisor',
        h,
        '--kernel',
        kernel,
        '--append',
        'init=selftest',
        '--stats',
        '--json',
      ]);
    const raw = run('none');
    const xen = run('xen');
    const l4 = run('l4');
    assert.equal(sha(kernel), hash, 'the VMM rewrites the loaded image, never the file');
    for (const r of [raw, xen, l4]) {
      assert.match(r.out, /^selftest: PASS$/m, r.out + r.err);
      assert.equal(r.status, 1);
    }
    assert.deepEqual(comparableLines(l4.out), comparableLines(raw.out));
    assert.deepEqual(comparableLines(l4.out), comparableLines(xen.out));
    const stats = JSON.parse(l4.err);
    assert.equal(stats.hypervisor, 'l4');
    const k = stats.l4;
    // The microkernel's counters: IPC by kind, map/unmap/flush, space switches, time slices.
    assert.ok(k.ipc.pageFault > 0, 'page faults of the kernel thread and the processes');
    assert.ok(k.ipc.exception > 0, 'system calls and faults of the processes as exceptions');
    assert.ok(k.ipc.other > 0, "the VMM's own messages and requests");
    assert.ok(k.pages.mapped > 0 && k.pages.unmapped > 0);
    assert.ok(k.syscalls.flush > 0 && k.syscalls.unmap > 0);
    assert.ok(k.spaceSwitches > 0);
    assert.equal(typeof k.timeSlices, 'number');
    assert.ok(k.spacesCreated >= 4, 'one space per guest page directory');
    assert.ok(k.timeouts > 0, "the virtual timer is the monitor's IPC timeout");
    assert.equal(k.threadsHalted, 0);
    // The VMM's: the core's and its backend's.
    const v = stats.vmm;
    assert.ok(v.calls.pte_set > 0 && v.calls.iret > 0);
    assert.ok(v.virtualInterrupts['32'] > 0, 'timer ticks arrive as virtual interrupts');
    assert.ok(v.trapsForwarded['128'] > 0, 'system calls reach the guest kernel');
    assert.ok(v.l4.userExceptions > 0 && v.l4.userResumes > 0);
    assert.ok(v.l4.userFaultsMapped > 0 && v.l4.userFaultsReflected > 0);
    assert.ok(v.l4.processSpaces >= 4);
    assert.equal(stats.cpu.interrupts, 0, 'no hardware interrupt without a device given');
  });

  it('on a 1 GB machine the VM gets what the kernel’s one-to-one map holds (768 MB) and passes', () => {
    const r = previrt([
      '--hypervisor',
      'l4',
      '--memory',
      '1024',
      '--kernel',
      kernel,
      '--append',
      'init=selftest',
    ]);
    assert.match(
      r.out,
      /^vm: kernel page directory at [0-9a-f]+ maps 767 MB of RAM/m,
      r.out + r.err,
    );
    assert.match(r.out, /^selftest: PASS$/m, r.out + r.err);
    assert.equal(r.status, 1);
    const small = previrt(['--hypervisor', 'l4', '--memory', '16', '--kernel', kernel]);
    assert.equal(small.status, 2);
    assert.match(small.err, /^previrt run: VM memory must be at least 16 MB \(got 11 MB\)$/m);
  });

  it('refuses the native build with one clear line, status 2', () => {
    const r = previrt(['--hypervisor', 'l4', '--kernel', kernelPath('native')]);
    assert.equal(r.status, 2);
    assert.match(r.err, /^previrt run: .*not an afterburned kernel \(no \.afterburn section\)/);
    assert.equal(r.err.trim().split('\n').length, 1);
  });

  it('runs init=hello with arguments', () => {
    const r = previrt([
      '--hypervisor',
      'l4',
      '--kernel',
      kernel,
      '--append',
      'init=hello -- one two',
    ]);
    assert.match(r.out, /^hello from pid 1: one two$/m, r.out + r.err);
    assert.equal(r.status, 1);
  });

  it('runs the shell with piped input', () => {
    const r = previrt(['--hypervisor', 'l4', '--kernel', kernel], 'hello x y\nexit 3\n');
    assert.match(r.out, /^hello from pid 2: x y$/m, r.out + r.err);
    assert.match(r.out, /kernel: init exited with status 3/);
    assert.equal(r.status, 7);
  });
});

describe('the l4 backend inside', { skip }, () => {
  it('keeps the microkernel consistent: its audit holds all through the self-test', () => {
    assert.ok(make('afterburned').ok);
    let out = '';
    const g = createGuest({
      platform: 'l4',
      kernel: readFileSync(kernelPath('afterburned')),
      kernelName: 'kernel.elf',
      cmdline: 'init=selftest',
      console: (b) => (out += String.fromCharCode(b)),
    });
    assert.ok(typeof g !== 'string', String(g));
    const l4 = g.hypervisor as L4Kernel;
    let end = g.machine.run(20_000_000);
    let audits = 0;
    while (end.kind === 'cycle-limit') {
      assert.deepEqual(l4.audit(), [], `audit at cycle ${g.machine.cpu.cycles}`);
      audits++;
      g.machine.resume();
      end = g.machine.run(g.machine.cpu.cycles + 20_000_000);
    }
    assert.ok(audits >= 5);
    assert.deepEqual(end, { kind: 'exit', value: 0 });
    assert.match(out, /^selftest: PASS$/m);
    assert.deepEqual(l4.audit(), []);
    const v = g.stats().vmm as unknown as {
      l4: { paging: { entriesUnmapped: number; cr3Flushed: number; cr3Kept: number } };
    };
    // Page-table writes became unmaps of what they invalidated; CR3 loads flushed or kept.
    assert.ok(v.l4.paging.entriesUnmapped > 0);
    assert.ok(v.l4.paging.cr3Flushed > 0);
    assert.equal(l4.vms()[0].state, 'shutdown');
  });
});
