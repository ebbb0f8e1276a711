/**
 * What the Linux tests share (linux.test.ts, apic.test.ts): booting a bzImage on the raw PC
 * through createGuest, the same files on QEMU, the lines init prints, and the benchmark's 1 MB
 * stream into Linux's netserver with its checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LINUX_GUEST } from '../../src/bench/netperf/build.ts';
import { runNetperf, type NetperfRun } from '../../src/bench/netperf/run.ts';
import { attachNetwork, parseNic } from '../../src/cli/nic.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';

/** The lines the guest's programs print (init's, ping's, netserver's), not the kernel's. */
export function programLines(console: string): string[] {
  return console.split(/\r?\n/).filter((l) => /^(init|ping|netserver): |^\d+ bytes from /.test(l));
}

/**
 * Boots `kernel` with `initrd` on the raw PC (or `platform`), interpreting (the same results, faster here), for
 * at most 5 simulated seconds. `network`: a DP83820 on the wire with the host 10.0.2.2, as
 * `previrt run --nic dp83820`.
 */
export function bootLinux(
  kernel: string,
  cmdline: string,
  initrd: { name: string; bytes: Uint8Array }[],
  network = false,
  platform: 'none' | 'xen' | 'l4' = 'none',
) {
  let out = '';
  const g = createGuest({
    platform,
    kernel: readFileSync(kernel),
    kernelName: 'bzImage',
    cmdline,
    modules: initrd.map((m) => ({ ...m, string: m.name })),
    nic: network ? {} : undefined,
    console: (b) => (out += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', g as string);
  if (network) {
    const option = parseNic('dp83820');
    assert.ok(typeof option !== 'string', option as string);
    attachNetwork(g, option);
  }
  g.machine.cpu.blocksEnabled = false;
  const end = g.machine.run(g.machine.costModel.hz * 5);
  return { end, out, guest: g };
}

/** The same files on `qemu-system-i386 -kernel`, powered off through isa-debug-exit. */
export function qemuLinux(kernel: string, append: string): string {
  // The serial port goes to a file, not to a pipe on stdout: QEMU's 16550 drops a byte when a
  // write to a full pipe would block (seen under load), a file write never does.
  const serial = join(mkdtempSync(join(tmpdir(), 'previrt-qemu-')), 'serial');
  const q = spawnSync(
    'qemu-system-i386',
    [
      ...['-m', '256', '-display', 'none', '-no-reboot', '-monitor', 'none', '-nic', 'none'],
      ...['-serial', `file:${serial}`],
      ...['-kernel', kernel, '-initrd', LINUX_GUEST.initramfs, '-append', append],
      ...['-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(q.error, undefined, `qemu-system-i386: ${q.error?.message} (bash scripts/setup.sh)`);
  const out = existsSync(serial) ? readFileSync(serial, 'latin1') : '';
  rmSync(dirname(serial), { recursive: true, force: true });
  assert.equal(q.status, 1, `QEMU: status ${q.status}\n${q.stderr}\n${out.slice(-2000)}`);
  return out;
}

/**
 * 1 MB of the benchmark into `kernel`'s netserver (on the raw PC, or `hypervisor` with the NIC
 * passed through): the checksum verified, nothing lost.
 */
export function netperfIntoLinux(kernel: string, label: string, hypervisor = 'none'): NetperfRun {
  const run = runNetperf({
    label,
    hypervisor,
    kernel: readFileSync(kernel),
    kernelName: 'bzImage',
    cmdline: LINUX_GUEST.cmdline,
    modules: [
      {
        name: 'initramfs.cpio',
        bytes: readFileSync(LINUX_GUEST.initramfs),
        string: 'initramfs.cpio',
      },
    ],
    payloadBytes: 1 << 20,
    seed: 3,
  });
  assert.ok(run.ok, run.error);
  assert.match(
    run.resultLine ?? '',
    /^netserver: received 1048576 bytes in \d+ ms, crc32 [0-9a-f]{8} ok$/,
  );
  assert.equal(run.sender.counters.retransmissions, 0);
  assert.equal(run.counters.nic.rxDropped, 0);
  return run;
}
