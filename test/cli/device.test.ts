/**
 * `previrt run --device pc-testdev`: QEMU's test device on the raw PC, for test kernels; bad
 * values and a hypervisor get one line and status 2; `createGuest`'s testDevices puts the
 * device's scratch register at port 0xE0 (and only then).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

function previrt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test(
  '--device pc-testdev: the port is there for the kernel, and only on the raw PC',
  { skip: buildSkipReason() },
  () => {
    assert.ok(make('native').ok && make('afterburned').ok);
    const kernel = readFileSync(kernelPath('native'));
    for (const testDevices of [true, false]) {
      const g = createGuest({ platform: 'none', kernel, kernelName: 'k.elf', testDevices });
      assert.ok(typeof g !== 'string', String(g));
      g.machine.ports.write(0xe0, 4, 0x1234abcd);
      const read = g.machine.ports.read(0xe0, 4) >>> 0;
      if (testDevices) assert.equal(read, 0x1234abcd);
      else assert.notEqual(read, 0x1234abcd, 'no device without the option');
    }
    // The self-test runs as without it (it passes: status 1 from isa-debug-exit).
    const r = previrt([
      '--kernel',
      kernelPath('native'),
      '--append',
      'init=selftest',
      '--device',
      'pc-testdev',
    ]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /selftest: PASS/);
    for (const [args, message] of [
      [
        ['--device', 'nope'],
        /^previrt run: --device: unknown device 'nope' \(known: pc-testdev\)$/,
      ],
      [
        ['--hypervisor', 'xen', '--device', 'pc-testdev'],
        /^previrt run: a test device \(pc-testdev\) is the raw PC's: leave out --hypervisor$/,
      ],
    ] as const) {
      const bad = previrt(['--kernel', kernelPath('afterburned'), ...args]);
      assert.equal(bad.status, 2);
      assert.equal(bad.stdout, '');
      assert.match(bad.stderr.trim(), message);
    }
  },
);
