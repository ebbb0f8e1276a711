// Whole-system runs of the in-place VMM on the Xen-style hypervisor (issue 7): the same
// afterburned guest ELF passes the self-test on raw hardware and on xen, the native build is
// refused, the shell and init arguments work under xen.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { buildSkipReason, comparableLines, kernelPath, make, ROOT } from '../guest/guest.ts';

const skip = buildSkipReason();

function previrt(args: string[], input = ''): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), 'run', ...args], {
    input,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout.replace(/\r/g, ''), err: r.stderr };
}

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('the afterburned guest on --hypervisor xen', { skip }, () => {
  const kernel = kernelPath('afterburned');
  before(() => {
    for (const v of ['afterburned', 'native'] as const) {
      const r = make(v);
      assert.ok(r.ok, r.output);
    }
  });

  it('passes the whole self-test on none and on xen with the same bytes', () => {
    const hash = sha(kernel);
    const raw = previrt(['--kernel', kernel, '--append', 'init=selftest']);
    const xen = previrt([
      '--hypervisor',
      'xen',
      '--kernel',
      kernel,
      '--append',
      'init=selftest',
      '--stats',
      '--json',
    ]);
    assert.equal(sha(kernel), hash, 'the VMM rewrites the loaded image, never the file');
    assert.match(raw.out, /^selftest: PASS$/m, raw.out + raw.err);
    assert.match(xen.out, /^selftest: PASS$/m, xen.out + xen.err);
    assert.equal(raw.status, 1);
    assert.equal(xen.status, 1);
    assert.deepEqual(comparableLines(xen.out), comparableLines(raw.out));
    const stats = JSON.parse(xen.err);
    assert.equal(stats.hypervisor, 'xen');
    assert.ok(stats.xen.hypercalls.mmu_update > 0, 'page tables are made real through mmu_update');
    assert.ok(stats.xen.hypercalls.mmuext_op > 0);
    assert.ok(stats.xen.bounces['128'] > 0, 'system calls are bounced');
    assert.ok(stats.vmm.calls.pte_set > 0 && stats.vmm.calls.iret > 0);
    assert.ok(stats.vmm.virtualInterrupts['32'] > 0, 'timer ticks arrive as virtual interrupts');
    assert.equal(stats.xen.hypercallErrors, 0);
    assert.equal(stats.cpu.interrupts, 0, 'the hypervisor takes no hardware interrupt itself');
  });

  it('refuses the native build with one clear line', () => {
    const r = previrt(['--hypervisor', 'xen', '--kernel', kernelPath('native')]);
    assert.equal(r.status, 2);
    assert.match(r.err, /^previrt run: .*not an afterburned kernel \(no \.afterburn section\)/);
    assert.equal(r.err.trim().split('\n').length, 1);
  });

  it('runs init=hello with arguments', () => {
    const r = previrt([
      '--hypervisor',
      'xen',
      '--kernel',
      kernel,
      '--append',
      'init=hello -- one two',
    ]);
    assert.match(r.out, /^hello from pid 1: one two$/m, r.out + r.err);
    assert.equal(r.status, 1);
  });

  it('runs the shell with piped input', () => {
    const r = previrt(['--hypervisor', 'xen', '--kernel', kernel], 'hello x y\nexit 3\n');
    assert.match(r.out, /^hello from pid 2: x y$/m, r.out + r.err);
    assert.match(r.out, /kernel: init exited with status 3/);
    assert.equal(r.status, 7);
  });

  it('takes piped input longer than the console ring, one UART interrupt per byte', () => {
    const lines = Array.from(
      { length: 30 },
      (_, i) => `hello line ${i} abcdefghijklmnopqrstuvwxyz`,
    );
    const input = `${lines.join('\n')}\nexit 5\n`;
    assert.ok(input.length > 1024, 'more than the console ring holds at once');
    const r = previrt(['--hypervisor', 'xen', '--kernel', kernel, '--stats', '--json'], input);
    for (let i = 0; i < lines.length; i++) {
      assert.match(r.out, new RegExp(`hello from pid \\d+: line ${i} abc`), r.out + r.err);
    }
    assert.equal(r.status, 11);
    const stats = JSON.parse(r.err);
    assert.equal(stats.vmm.virtualInterrupts['36'], input.length);
  });

  it('rejects a bad --hypervisor value', () => {
    const r = previrt(['--hypervisor', 'l5', '--kernel', kernel]);
    assert.equal(r.status, 2);
    assert.match(r.err, /--hypervisor: 'l5' is not one of none, xen/);
  });
});
