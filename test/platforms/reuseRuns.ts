// What the driver reuse tests share (reuse.test.ts on xen, reuseL4.test.ts on l4, reuseRestart):
// a netperf run of a client kernel through a driver VM of the afterburned kernel, the guest so
// built, a counter by its path, the after-a-run check that only the client's ring stays in use
// on xen, and the stalled client.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runNetperf, type NetperfRun } from '../../src/bench/netperf/run.ts';
import type { XenHypervisor } from '../../src/hypervisor/xen/Xen.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { kernelPath } from '../guest/guest.ts';
import { attachSender } from './client.ts';

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

/**
 * The afterburned guest running netserver on `platform` behind a driver VM of the same kernel
 * (its shell idling), its console (and the driver VM's, if asked) to the given callbacks.
 */
export function reuseGuest(
  platform: 'xen' | 'l4',
  console?: (b: number) => void,
  driverConsole?: (b: number) => void,
): Guest {
  const kernel = readFileSync(kernelPath('afterburned'));
  const g = createGuest({
    platform,
    kernel,
    kernelName: 'guest.elf',
    cmdline: 'init=netserver',
    nic: {},
    console,
    driverVm: { kernel, kernelName: 'driver.elf', cmdline: 'init=sh', console: driverConsole },
  });
  assert.ok(typeof g !== 'string', String(g));
  return g;
}

/**
 * A 512 KB transfer into `g` whose client side stops taking frames (`stall`) for 20 simulated
 * ms once 128 KB are acknowledged, then takes them again (`resume`): meanwhile the driver VM's
 * NIC must go on taking frames off the wire and the link must drop those for the client; the
 * transfer must then arrive intact. The guest's console is `out()`.
 */
export function assertStallSlowsOnlyTheClient(
  g: Guest,
  out: () => string,
  stall: () => void,
  resume: () => void,
): void {
  const m = g.machine;
  const hz = m.costModel.hz;
  const sender = attachSender(g, 512 << 10, 5);
  const notDelivered = (): number =>
    (g.stats().vms![0].vmm as Record<string, Record<string, number>>).clientLink.notDelivered;
  let stalled = false;
  const stallWhenDue = (): void => {
    if (sender().bytesAcked < 128 << 10) {
      m.clock.at(m.clock.now() + hz / 10000, stallWhenDue, 'test.stall');
      return;
    }
    stall();
    stalled = true;
    const before = { nic: m.nic!.counters.rxFrames, notDelivered: notDelivered() };
    m.clock.at(
      m.clock.now() + hz / 50,
      () => {
        assert.ok(
          m.nic!.counters.rxFrames > before.nic,
          'the NIC went on while the client stalled',
        );
        assert.ok(notDelivered() > before.notDelivered, 'frames for the client were dropped');
        resume();
      },
      'test.resume',
    );
  };
  m.clock.at(hz / 1000, stallWhenDue, 'test.stall');
  const end = m.run(hz * 30);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out());
  assert.match(out(), /netserver: received 524288 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
  assert.ok(stalled, 'the stall happened');
}
