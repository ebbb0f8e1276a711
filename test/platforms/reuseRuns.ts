// What the driver reuse tests share (reuse.test.ts on xen, reuseL4.test.ts on l4): a netperf run
// of a client kernel through a driver VM of the afterburned kernel, a counter by its path, and
// the after-a-run check that only the client's ring stays in use on xen.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runNetperf, type NetperfRun } from '../../src/bench/netperf/run.ts';
import type { XenHypervisor } from '../../src/hypervisor/xen/Xen.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { kernelPath } from '../guest/guest.ts';

/** `bytes` of netperf into `client` (a kernel file) on `platform`, through a driver VM. */
export function reuseRun(
  platform: 'xen' | 'l4',
  bytes: number,
  lines?: string[],
  client = kernelPath('afterburned'),
): NetperfRun {
  const kernel = readFileSync(kernelPath('afterburned'));
  return runNetperf({
    label: `reuse-${platform}`,
    kernel: readFileSync(client),
    kernelName: 'guest.elf',
    payloadBytes: bytes,
    seed: 3,
    hypervisor: platform,
    nicPath: 'driver-vm',
    driverKernel: { kernel, kernelName: 'driver.elf' },
    onConsoleLine: lines === undefined ? undefined : (l) => lines.push(l),
  });
}

/** A number in a counter tree by its dotted path (0 if it is not there). */
export function count(tree: unknown, path: string): number {
  let node = tree;
  for (const p of path.split('.')) node = (node as Record<string, unknown> | undefined)?.[p];
  return typeof node === 'number' ? node : 0;
}

/**
 * `client` on xen beside a driver VM, sleeping for two simulated seconds: afterwards the frame
 * table's audit is clean and the client's one grant in use is its ring, mapped by the driver VM.
 */
export function assertOnlyTheRingStaysGranted(client: string): void {
  const g = createGuest({
    platform: 'xen',
    kernel: readFileSync(client),
    kernelName: 'guest.elf',
    cmdline: 'init=sleep -- 300',
    nic: {},
    driverVm: {
      kernel: readFileSync(kernelPath('afterburned')),
      kernelName: 'driver.elf',
      cmdline: 'init=sh',
    },
  });
  assert.ok(typeof g !== 'string', String(g));
  const end = g.machine.run(2_800_000_000 * 2);
  assert.equal(end.kind, 'exit', JSON.stringify(end));
  const xen = g.hypervisor as XenHypervisor;
  assert.deepEqual(xen.frames.audit(xen.domains), []);
  const [driver, guest] = xen.domains;
  assert.equal(guest.grantTable.active.size, 1);
  assert.equal(driver.grantTable.maps.filter((m) => m !== undefined).length, 1);
}
