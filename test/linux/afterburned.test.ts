/**
 * Linux afterburned (`bash guest/linux/build.sh afterburned`): the default configuration built
 * through Kbuild with gcc -B the afterburner's `as` wrapper, from the source tree with
 * guest/linux/patches applied. Its vmlinux carries the afterburner's sites and the annotation
 * header's; the bzImage boots on the raw PC to init and runs its checks with the same lines as
 * on QEMU. Builds the variant when it is missing (minutes, once); never skips.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { verifyAnnotations } from '../../src/afterburner/verify.ts';
import {
  buildLinuxGuest,
  LINUX_AFTERBURNED_KERNEL,
  LINUX_GUEST,
} from '../../src/bench/netperf/build.ts';
import { deflateRaw } from '../../src/cli/snapshotCodec.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { migrationRefusal } from '../../src/platforms/migrate.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import { readSnapshot, writeSnapshot } from '../../src/snapshot/file.ts';
import { bootLinux, programLines, qemuLinux } from './common.ts';

const built = buildLinuxGuest('afterburned');
const kernel = LINUX_AFTERBURNED_KERNEL;
const vmlinux = kernel.replace(/bzImage$/, 'vmlinux');

test('the afterburned vmlinux: every sensitive instruction the afterburner saw is a site', (t) => {
  assert.ok(built.ok, built.ok ? '' : built.output);
  const r = verifyAnnotations(vmlinux, readFileSync(vmlinux));
  t.diagnostic(
    `${r.sensitive} sensitive, ${r.annotated} annotated, ${r.offenders.length} offenders, ` +
      `${r.sites} sites; ${JSON.stringify(r.byKind)}; header ${JSON.stringify(r.headerSites)}`,
  );
  // Nothing the afterburner missed: every sensitive instruction is a site or in a region the
  // patch marks as data.
  assert.deepEqual(r.offenders.slice(0, 5), []);
  // Linux's entry code and its interrupt flag helpers went through the afterburner.
  assert.ok(r.sites > 1000, `sites in .afterburn: ${r.sites}`);
  for (const kind of ['cli', 'sti', 'popf', 'pushf', 'iret', 'out', 'in'] as const)
    assert.ok((r.byKind[kind] ?? 0) > 0, `no ${kind} in ${JSON.stringify(r.byKind)}`);
  // The annotation patch's sites: page-table entries and the ns83820's MMIO.
  for (const section of [
    '.afterburn.pte_set',
    '.afterburn.pte_read',
    '.afterburn.pte_test_clear',
    '.afterburn.pgd_set',
    '.afterburn.mmio_read',
    '.afterburn.mmio_write',
  ])
    assert.ok((r.headerSites[section] ?? 0) > 0, `no ${section}: ${JSON.stringify(r.headerSites)}`);
});

test('the afterburned bzImage boots raw to init and passes check, with the same lines as QEMU', () => {
  assert.ok(built.ok);
  const append = 'console=ttyS0 check';
  const initrd = [{ name: 'initramfs.cpio', bytes: readFileSync(LINUX_GUEST.initramfs) }];
  const p = bootLinux(kernel, append, initrd, false);
  assert.deepEqual(p.end, { kind: 'exit', value: 0 }, p.out.slice(-3000));
  const mine = programLines(p.out);
  assert.ok(mine.includes('init: checks passed'), mine.join('\n'));
  assert.deepEqual(mine, programLines(qemuLinux(kernel, append)));
  assert.doesNotMatch(p.out, /Call Trace|WARNING|BUG/);
});

test('the afterburned kernel drives the DP83820 through its annotated MMIO: ping is answered', () => {
  assert.ok(built.ok);
  const initrd = [{ name: 'initramfs.cpio', bytes: readFileSync(LINUX_GUEST.initramfs) }];
  const p = bootLinux(kernel, 'console=ttyS0 -- ping 10.0.2.2 3', initrd, true);
  assert.deepEqual(p.end, { kind: 'exit', value: 0 }, p.out.slice(-3000));
  assert.match(p.out, /eth0: ns83820 v0\.23: DP83820 v1\.3: /);
  assert.match(p.out, /ping: 3 packets transmitted, 3 received/);
});

// The raw run's lines, once, for both hypervisors' runs to match.
let rawLines: string[] | undefined;
function virtualized(platform: 'l4' | 'xen'): ReturnType<typeof bootLinux> {
  assert.ok(built.ok);
  const append = 'console=ttyS0 check';
  const initrd = [{ name: 'initramfs.cpio', bytes: readFileSync(LINUX_GUEST.initramfs) }];
  rawLines ??= programLines(bootLinux(kernel, append, initrd, false).out);
  const p = bootLinux(kernel, append, initrd, false, platform);
  // init powers off through isa-debug-exit from user mode (ioperm): the VMM honours the TSS bitmap.
  assert.deepEqual(p.end, { kind: 'exit', value: 0 }, p.out.slice(-3000));
  const mine = programLines(p.out);
  assert.ok(mine.includes('init: checks passed'), mine.join('\n'));
  assert.deepEqual(mine, rawLines);
  assert.doesNotMatch(p.out, /Call Trace|WARNING|BUG:|Oops|Kernel panic|unchecked MSR/);
  const vmm = p.guest.stats().vmm as { calls: Record<string, number>; userPortAccesses?: number };
  // The kernel reached the VMM through its rewritten sites, and init's power-off was a user OUT.
  for (const kind of ['iret', 'pte_set', 'mov-to-cr'])
    assert.ok((vmm.calls[kind] ?? 0) > 0, `no ${kind}: ${JSON.stringify(vmm.calls)}`);
  assert.equal(vmm.userPortAccesses, 1);
  return p;
}

test("the same bzImage runs its init on l4 through the in-place VMM: check passes, the lines are the raw run's", () => {
  virtualized('l4');
});

let onXen: ReturnType<typeof bootLinux> | undefined;
test("the same bzImage runs its init on xen through the in-place VMM and shadow paging: check passes, the raw run's lines", (t) => {
  const p = (onXen = virtualized('xen'));
  // Linux's tables stayed its own: the hypervisor validated the VMM's shadows of them.
  const stats = p.guest.stats();
  const paging = (stats.vmm as { paging: Record<string, number> }).paging;
  assert.ok(paging.tablesMade > 0 && paging.pageTableUpdates > 0, JSON.stringify(paging));
  // It may move (test/linux/migrate.test.ts moves it).
  assert.equal(migrationRefusal(p.guest), undefined);
  t.diagnostic(
    `xen: ${p.guest.machine.cpu.cycles} cycles, shadow paging ${JSON.stringify(paging)}`,
  );
});

test('a snapshot of Linux on xen mid-boot continues exactly as the run it came from (the shadows in it)', () => {
  assert.ok(onXen !== undefined, 'the xen run above');
  let out = '';
  const g = createGuest({
    platform: 'xen',
    kernel: readFileSync(kernel),
    kernelName: 'bzImage',
    cmdline: 'console=ttyS0 check',
    modules: [{ name: 'initramfs.cpio', bytes: readFileSync(LINUX_GUEST.initramfs), string: '' }],
    console: (b) => (out += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', g as string);
  g.machine.cpu.blocksEnabled = false;
  // After init's fork-and-pipe check (processes' directories and tables shadowed), in its
  // loopback TCP check.
  assert.equal(g.machine.run(95_000_000).kind, 'cycle-limit');
  const contents = readSnapshot(writeSnapshot(g.save(), deflateRaw), deflateRaw);
  assert.ok(typeof contents !== 'string', String(contents));
  let after = '';
  const r = restoreGuest(contents, { console: (b) => (after += String.fromCharCode(b)) });
  assert.ok(typeof r !== 'string', r as string);
  r.machine.cpu.blocksEnabled = false;
  r.machine.resume();
  assert.deepEqual(r.machine.run(r.machine.costModel.hz * 5), onXen.end);
  assert.equal(out + after, onXen.out);
  assert.equal(r.machine.cpu.cycles, onXen.guest.machine.cpu.cycles);
  assert.deepEqual(r.stats().vmm, onXen.guest.stats().vmm);
});
