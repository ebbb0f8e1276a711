/**
 * Shadow paging on the xen backend (src/vmm/backends/xen/shadow.ts) when its pool runs out:
 * the afterburned Linux on xen with a pool of 72 frames, fewer than the 76 tables its `check`
 * boot shadows with the default pool (a directory and its kernel tables alone need about 66):
 * every shadow is dropped and made again as used, and the boot
 * still passes its checks with the lines of a run with the default pool, the hypervisor's
 * frame-table audit clean. Needs the afterburned Linux guest (built when missing).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { XenHypervisor } from '../../src/hypervisor/xen/Xen.ts';
import {
  buildLinuxGuest,
  LINUX_AFTERBURNED_KERNEL,
  LINUX_GUEST,
} from '../../src/bench/netperf/build.ts';
import { createMachine } from '../../src/machine/Machine.ts';
import { startXenVm } from '../../src/vmm/backends/xen/vm.ts';
import { readAfterburned } from '../../src/vmm/load.ts';
import { programLines } from '../linux/common.ts';

const built = buildLinuxGuest('afterburned');

function boot(shadowPoolPages: number | undefined) {
  let out = '';
  const machine = createMachine({ serialOut: (b) => (out += String.fromCharCode(b)) });
  assert.ok(typeof machine !== 'string', machine as string);
  const kernel = readAfterburned(readFileSync(LINUX_AFTERBURNED_KERNEL), 'bzImage');
  assert.ok(typeof kernel !== 'string', kernel as string);
  const xen = new XenHypervisor(machine, { console: (b) => (out += String.fromCharCode(b)) });
  const initrd = readFileSync(LINUX_GUEST.initramfs);
  const vm = startXenVm(xen, {
    kernel,
    cmdline: 'console=ttyS0 check',
    modules: [{ name: 'initramfs.cpio', bytes: initrd, string: 'initramfs.cpio' }],
    rtcStartSeconds: Date.UTC(2026, 0, 1) / 1000,
    paging: 'shadow',
    shadowPoolPages,
  });
  assert.ok(typeof vm !== 'string', vm as string);
  machine.cpu.blocksEnabled = false;
  const end = machine.run(machine.costModel.hz * 5);
  return { end, out, paging: vm.vmm.stats().paging as Record<string, number>, xen };
}

test('a shadow pool too small for the boot: dropped and made again, the checks pass as with the default pool', (t) => {
  assert.ok(built.ok);
  const full = boot(undefined);
  const small = boot(72);
  assert.deepEqual(small.end, { kind: 'exit', value: 0 }, small.out.slice(-3000));
  assert.equal(full.paging.poolFlushes, 0);
  assert.ok(small.paging.poolFlushes > 0, JSON.stringify(small.paging));
  const lines = programLines(small.out);
  assert.ok(lines.includes('init: checks passed'), lines.join('\n'));
  assert.deepEqual(lines, programLines(full.out));
  assert.deepEqual(small.xen.frames.audit(small.xen.domains), []);
  t.diagnostic(
    `72 frames: ${JSON.stringify(small.paging)}; default: ${JSON.stringify(full.paging)}`,
  );
});

test('a shadow pool too small for one address space: the domain stops with a line that says so', () => {
  assert.ok(built.ok);
  const tiny = boot(16);
  assert.notDeepEqual(tiny.end, { kind: 'exit', value: 0 });
  assert.match(
    tiny.out + JSON.stringify(tiny.end),
    /the shadow page-table pool is too small: its 16 frames do not hold the shadows of one address space/,
  );
});
