/**
 * The guest kernel's self-test with compiled blocks and with `--interpret`, on the raw PC and on
 * the Xen-style hypervisor: the console and every figure of `--stats` (simulated time, cycles,
 * instructions, every counter) must be the same; only host time may differ.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, buildSkipReason, kernelPath, make } from './guest.ts';

function selftest(hypervisor: string, interpret: boolean): { console: string; stats: unknown } {
  const args = [join(ROOT, 'bin', 'previrt.mjs'), 'run', '--hypervisor', hypervisor];
  args.push('--kernel', kernelPath('afterburned'), '--append', 'init=selftest', '--stats', '--json');
  if (interpret) args.push('--interpret');
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr); // isa-debug-exit 0
  assert.match(r.stdout, /selftest: PASS/);
  const stats = JSON.parse(r.stderr.slice(r.stderr.indexOf('{'))) as Record<string, unknown>;
  delete stats.hostMs;
  delete stats.guestMips;
  return { console: r.stdout, stats };
}

for (const hypervisor of ['none', 'xen']) {
  test(`self-test on ${hypervisor}: blocks and --interpret give the same run`, { skip: buildSkipReason() }, () => {
    assert.ok(make('afterburned').ok);
    const compiled = selftest(hypervisor, false);
    const interpreted = selftest(hypervisor, true);
    assert.equal(compiled.console, interpreted.console);
    assert.deepEqual(compiled.stats, interpreted.stats);
  });
}
