/**
 * The benchmark's Linux rows (`previrt bench netperf --guest linux`, build.ts LINUX_GUEST):
 * the afterburned bzImage on the raw PC (row nops), and on l4 and xen through the in-place VMM
 * with the NIC passed through (rows l4-pre, xen-pre), 1 MB each with the checksum verified. The
 * native row's run is linux.test.ts's. Builds the afterburned variant when it is missing; never
 * skips.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildLinuxGuest,
  CONFIGS,
  LINUX_AFTERBURNED_KERNEL,
  LINUX_GUEST,
  linuxRowRefusal,
} from '../../src/bench/netperf/build.ts';
import { netperfIntoLinux } from './common.ts';

const built = buildLinuxGuest('afterburned');

test('the Linux rows: native the plain bzImage, the others the one afterburned file', () => {
  assert.ok(built.ok, built.ok ? '' : built.output);
  assert.deepEqual(Object.keys(LINUX_GUEST.configs), ['native', 'nops', 'l4-pre', 'xen-pre']);
  assert.equal(LINUX_GUEST.configs.native, LINUX_GUEST.kernel);
  for (const row of ['nops', 'l4-pre', 'xen-pre'] as const)
    assert.equal(LINUX_GUEST.configs[row], LINUX_AFTERBURNED_KERNEL);
  // No platform refuses its row's kernel (a refused row would be left out of the default).
  for (const row of ['native', 'nops', 'l4-pre', 'xen-pre'] as const)
    assert.equal(linuxRowRefusal(row), undefined);
  assert.match(linuxRowRefusal('l4-para') ?? '', /no Linux row 'l4-para'/);
});

test('row nops: the afterburned Linux on the raw PC receives the stream, no VMM in sight', () => {
  assert.ok(built.ok);
  const run = netperfIntoLinux(LINUX_AFTERBURNED_KERNEL, CONFIGS.nops.label);
  assert.equal(run.counters.virtualization, undefined);
  // The NOPs' kernel drives the real PICs and the NIC itself.
  assert.ok(run.counters.portWrites > 0 && run.counters.mmioReads > 0);
  assert.ok(run.counters.nicInterrupts > 0);
});

test('row l4-pre: the same file through the in-place VMM on l4, its ns83820 through the annotated MMIO', () => {
  assert.ok(built.ok);
  const run = netperfIntoLinux(
    LINUX_AFTERBURNED_KERNEL,
    CONFIGS['l4-pre'].label,
    CONFIGS['l4-pre'].hypervisor,
  );
  const v = run.counters.virtualization;
  assert.ok(v !== undefined && v.platform === 'l4');
  const calls = v.vmm.calls as Record<string, number>;
  // The driver's readl/writel are the patch's mmio sites: a VMM call each, then the real access.
  assert.ok(calls.mmio_read > 0 && calls.mmio_write > 0, JSON.stringify(calls));
  assert.equal(calls.mmio_read, run.counters.mmioReads);
  assert.equal(calls.mmio_write, run.counters.mmioWrites);
  // The PICs are the VMM's: no real port I/O; the kernel's OUTs to them are VMM calls.
  assert.equal(run.counters.portReads + run.counters.portWrites, 0);
  assert.ok(calls.out > 0 && calls.iret > 0 && calls.hlt > 0);
  // One interrupt per NIC interrupt: Linux masks its line before the EOI, and the real line is
  // re-enabled only at the unmask (src/vmm/platform.ts, checkEoi).
  const ipc = v.hypervisor.ipc as Record<string, number>;
  assert.ok(run.counters.nic.interrupts > 0);
  assert.equal(run.counters.nicInterrupts, run.counters.nic.interrupts);
  assert.equal(ipc.interrupt, run.counters.nic.interrupts);
});

test('row xen-pre: the same file through the in-place VMM on xen, the NIC passed through', () => {
  assert.ok(built.ok);
  const run = netperfIntoLinux(
    LINUX_AFTERBURNED_KERNEL,
    CONFIGS['xen-pre'].label,
    CONFIGS['xen-pre'].hypervisor,
  );
  const v = run.counters.virtualization;
  assert.ok(v !== undefined && v.platform === 'xen');
  const calls = v.vmm.calls as Record<string, number>;
  assert.equal(calls.mmio_read, run.counters.mmioReads);
  assert.equal(calls.mmio_write, run.counters.mmioWrites);
  assert.equal(run.counters.portReads + run.counters.portWrites, 0);
  // One pirq event, and one unmask of it (event_channel_op), per NIC interrupt.
  const hypercalls = v.hypervisor.hypercalls as Record<string, number>;
  assert.ok(run.counters.nic.interrupts > 0);
  assert.equal(v.hypervisor.pirqEvents, run.counters.nic.interrupts);
  assert.equal(hypercalls.event_channel_op, run.counters.nic.interrupts);
});
