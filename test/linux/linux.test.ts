/**
 * Linux as a guest (guest/linux, README "Running Linux"): Debian's Linux 6.1, built from the
 * linux-source-6.1 package by `npm run guest:linux` (once per configuration; later runs reuse
 * the kernel), boots on previrt through the Linux boot protocol as on `qemu-system-i386
 * -kernel`, its /init prints the same lines on both, its ns83820 driver drives previrt's
 * DP83820, ping from the guest is answered, and the netperf benchmark's stream arrives intact
 * through Linux's TCP. These tests build the guest when it is missing; they never skip.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { buildLinuxGuest, LINUX_GUEST } from '../../src/bench/netperf/build.ts';
import { bootLinux, netperfIntoLinux, programLines, qemuLinux } from './common.ts';

const built = buildLinuxGuest();
const work = mkdtempSync(join(tmpdir(), 'previrt-linux-'));
const { kernel, initramfs } = LINUX_GUEST;

function previrt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the Linux guest builds: npm run guest:linux (the kernel once per configuration)', () => {
  assert.ok(built.ok, built.ok ? '' : built.output);
});

test('Linux boots on previrt and on QEMU from the same files, and /init prints the same', (t) => {
  assert.ok(built.ok);
  const append = 'console=ttyS0 check';
  const p = previrt(['--kernel', kernel, '--initrd', initramfs, '--append', append, '--stats']);
  assert.equal(p.status, 1, `previrt: status ${p.status}\n${p.stderr.slice(-2000)}`);
  assert.match(p.stdout, /Run \/init as init process/);
  const q = qemuLinux(kernel, append);
  const mine = programLines(p.stdout);
  assert.deepEqual(mine, programLines(q));
  assert.ok(mine.includes('init: checks passed'), mine.join('\n'));
  assert.ok(mine.includes('init: no eth0'));
  // No kernel warnings on previrt (an unknown MSR, an unclaimed device) that QEMU does not give.
  assert.doesNotMatch(p.stdout, /unchecked MSR access|Call Trace|WARNING/);
  t.diagnostic(mine.join(' | '));
});

test('--nic dp83820: Linux ns83820 finds it at 00:03.0 on IRQ 11, the link comes up, ping is answered', () => {
  assert.ok(built.ok);
  const p = previrt([
    ...['--kernel', kernel, '--initrd', initramfs, '--append', 'console=ttyS0 -- ping 10.0.2.2 3'],
    ...['--nic', 'dp83820,mac=02:00:00:00:00:15', '--stats', '--interpret'],
  ]);
  assert.equal(p.status, 1, p.stderr.slice(-2000));
  assert.match(p.stdout, /ns83820 0000:00:03\.0/);
  assert.match(
    p.stdout,
    /eth0: ns83820 v0\.23: DP83820 v1\.3: 02:00:00:00:00:15 io=0x[0-9a-f]+ irq=11/,
  );
  assert.match(p.stdout, /eth0: link now 1000 mbps, full duplex and up/);
  assert.match(p.stdout, /init: eth0 up, 10\.0\.2\.15\/24/);
  for (const seq of [1, 2, 3])
    assert.match(p.stdout, new RegExp(`64 bytes from 10\\.0\\.2\\.2: icmp_seq=${seq} ttl=64 `));
  assert.match(p.stdout, /ping: 3 packets transmitted, 3 received/);
  assert.match(p.stderr, /net\.host\.echoReplies +3/);
  assert.match(p.stderr, /net\.host\.arpReplies +1/);
});

test('netperf with Linux: its TCP receives the stream, netserver verifies the checksum', () => {
  assert.ok(built.ok);
  const run = netperfIntoLinux(kernel, 'native, raw');
  assert.ok(run.counters.nicInterrupts > 0 && run.counters.softwareInterrupts > 0);
  // Linux's window: the 256 KB receive buffer, with window scaling.
  assert.ok(run.sender.windowScale !== undefined && run.sender.maxWindow >= 128 * 1024);
});

test('an initramfs a user brings boots the same way: gzip-compressed, or two archives one after another', () => {
  assert.ok(built.ok);
  const cpio = readFileSync(initramfs);
  const gz = bootLinux(kernel, 'console=ttyS0 check', [
    { name: 'initramfs.cpio.gz', bytes: gzipSync(cpio) },
  ]);
  assert.deepEqual(gz.end, { kind: 'exit', value: 0 }, gz.out.slice(-2000));
  assert.ok(programLines(gz.out).includes('init: checks passed'));
  // A second archive replaces /init with a copy that is the same program: the kernel unpacks
  // both, the later file wins (it would fail to boot if the second archive were ignored and
  // the first had no /init).
  const empty = new Uint8Array(0);
  const first = bootLinux(kernel, 'console=ttyS0 uname', [
    { name: 'empty', bytes: empty },
    { name: 'initramfs.cpio', bytes: cpio },
  ]);
  assert.deepEqual(first.end, { kind: 'exit', value: 0 }, first.out.slice(-2000));
  assert.ok(programLines(first.out).some((l) => /^init: Linux 6\.1\.\d+ /.test(l)));
});

test('bzImages previrt cannot run are refused with one line and status 2', () => {
  assert.ok(built.ok);
  const xen = previrt(['--hypervisor', 'xen', '--kernel', kernel, '--initrd', initramfs]);
  assert.equal(xen.status, 2);
  assert.match(
    xen.stderr,
    /^previrt run: .*bzImage\)?: (not an afterburned kernel|a Linux bzImage; pre-virtualized Linux runs on --hypervisor l4)/,
  );
  assert.equal(xen.stderr.trim().split('\n').length, 1);
  const args = previrt(['--kernel', kernel, '--module', `${initramfs} root=/dev/ram0`]);
  assert.equal(args.status, 2);
  assert.match(args.stderr, /a Linux initrd takes no arguments/);
  const x64 = Uint8Array.from(readFileSync(kernel));
  new DataView(x64.buffer).setUint16(0x236, 0x1, true); // XLF_KERNEL_64
  writeFileSync(join(work, 'bzImage64'), x64);
  const k64 = previrt(['--kernel', join(work, 'bzImage64')]);
  assert.equal(k64.status, 2);
  assert.match(k64.stderr, /a 64-bit \(x86-64\) kernel; previrt's CPU is IA-32 only/);
  const nic = previrt(['--kernel', kernel, '--nic', 'e1000']);
  assert.equal(nic.status, 2);
  assert.match(
    nic.stderr,
    /^previrt run: --nic: 'e1000' is not a NIC previrt has \(known: dp83820\)$/m,
  );
});
