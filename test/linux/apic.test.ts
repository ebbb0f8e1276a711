/**
 * Linux with the local APIC and the I/O APIC (guest/linux/kernel-apic.config: X86_UP_APIC,
 * X86_UP_IOAPIC, X86_MPPARSE): the kernel finds both through the MP table the loader writes
 * (src/loader/mpTable.ts), switches from the 8259 pair to symmetric I/O mode, checks that the
 * timer reaches it through I/O APIC pin 2, runs its local APIC timer, and takes the DP83820's
 * level-triggered PCI interrupt through the I/O APIC — on previrt as on QEMU (SeaBIOS's MP
 * table), from the same files. Builds the variant when it is missing (minutes, once); never skips.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { buildLinuxGuest, LINUX_APIC_KERNEL, LINUX_GUEST } from '../../src/bench/netperf/build.ts';
import { attachNetwork, parseNic } from '../../src/cli/nic.ts';
import { runNetperf } from '../../src/bench/netperf/run.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';

const built = buildLinuxGuest('apic');
const kernel = LINUX_APIC_KERNEL;
const { initramfs } = LINUX_GUEST;

/** The lines the guest's programs print (init's, ping's), not the kernel's. */
function programLines(console: string): string[] {
  return console.split(/\r?\n/).filter((l) => /^(init|ping): |^\d+ bytes from /.test(l));
}

/** Boots the variant on the raw PC, interpreting; returns the console and the machine. */
function boot(cmdline: string, nic: boolean) {
  let out = '';
  const g = createGuest({
    platform: 'none',
    kernel: readFileSync(kernel),
    kernelName: 'bzImage',
    cmdline,
    modules: [{ name: 'initramfs.cpio', bytes: readFileSync(initramfs), string: 'initramfs.cpio' }],
    nic: nic ? {} : undefined,
    console: (b) => (out += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', g as string);
  if (nic) {
    const option = parseNic('dp83820');
    assert.ok(typeof option !== 'string', option as string);
    attachNetwork(g, option); // the host 10.0.2.2 on the wire, as `previrt run --nic dp83820`
  }
  g.machine.cpu.blocksEnabled = false;
  const end = g.machine.run(g.machine.costModel.hz * 5);
  return { end, out, machine: g.machine };
}

test('the APIC variant builds: guest/linux/build.sh apic', () => {
  assert.ok(built.ok, built.ok ? '' : built.output);
  const config = readFileSync(kernel.replace(/bzImage$/, 'kernel.full-config'), 'utf8');
  for (const option of ['CONFIG_X86_UP_APIC=y', 'CONFIG_X86_UP_IOAPIC=y', 'CONFIG_X86_MPPARSE=y'])
    assert.ok(config.split('\n').includes(option), option);
});

test('Linux takes the APICs from the MP table and runs on them, on previrt as on QEMU', (t) => {
  assert.ok(built.ok);
  const append = 'console=ttyS0 check';
  const p = boot(append, false);
  assert.deepEqual(p.end, { kind: 'exit', value: 0 }, p.out.slice(-3000));
  const q = spawnSync(
    'qemu-system-i386',
    [
      ...['-m', '256', '-nographic', '-no-reboot', '-monitor', 'none', '-nic', 'none'],
      ...['-kernel', kernel, '-initrd', initramfs, '-append', append],
      ...['-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'],
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(q.error, undefined, `qemu-system-i386: ${q.error?.message} (bash scripts/setup.sh)`);
  assert.equal(q.status, 1, `QEMU: status ${q.status}\n${q.stdout.slice(-2000)}`);
  const mine = programLines(p.out);
  assert.deepEqual(mine, programLines(q.stdout));
  assert.ok(mine.includes('init: checks passed'), mine.join('\n'));
  // The same steps on both machines: the MP table read, one I/O APIC with 24 pins, symmetric
  // I/O mode, the timer through pin 2 of the I/O APIC, the local APIC timer calibrated.
  for (const line of [
    /Intel MultiProcessor Specification v1\.4/,
    /Processors: 1/,
    /IOAPIC\[0\]: apic_id \d+, version \d+, address 0xfec00000, GSI 0-23/,
    /Enabling APIC mode: {2}Flat\. {2}Using 1 I\/O APICs/,
    /\.\.TIMER: vector=0x30 apic1=0 pin1=2 apic2=-1 pin2=-1/,
  ]) {
    assert.match(p.out, line, `previrt: ${line}`);
    assert.match(q.stdout, line, `QEMU: ${line}`);
  }
  assert.match(p.out, /IOAPIC\[0\]: apic_id 1, version 17, address 0xfec00000, GSI 0-23/);
  for (const absent of [/APIC: ACPI MADT or MP tables are not detected/, /Call Trace|WARNING/])
    assert.doesNotMatch(p.out, absent);
  // The interrupts came through the APICs: the I/O APIC sent messages (the PIT on pin 2), and
  // the local APIC's timer ran (its LVT timer entry unmasked, an initial count set).
  const io = p.machine.ioApic.save();
  assert.ok(io.sent > 0, `I/O APIC messages: ${io.sent}`);
  const lapic = p.machine.apic.save();
  assert.ok(lapic.timerFires > 0, `local APIC timer expiries: ${lapic.timerFires}`);
  assert.notEqual(lapic.svr & 0x100, 0, 'the local APIC is software-enabled');
  t.diagnostic(`I/O APIC messages ${io.sent}, local APIC timer expiries ${lapic.timerFires}`);
});

test('the DP83820 interrupt through the I/O APIC: ns83820 on IRQ 11 level-triggered, ping is answered', () => {
  assert.ok(built.ok);
  const p = boot('console=ttyS0 -- ping 10.0.2.2 3', true);
  assert.deepEqual(p.end, { kind: 'exit', value: 0 }, p.out.slice(-3000));
  assert.match(p.out, /eth0: ns83820 v0\.23: DP83820 v1\.3: [0-9a-f:]+ io=0x[0-9a-f]+ irq=11/);
  assert.match(p.out, /ping: 3 packets transmitted, 3 received/);
  // Pin 11's entry: unmasked and level-triggered, as the MP table's PCI entry says.
  const entry = p.machine.ioApic.save().entries[11 * 2];
  assert.equal(entry & (1 << 16), 0, `pin 11 masked: ${entry.toString(16)}`);
  assert.notEqual(entry & (1 << 15), 0, `pin 11 edge-triggered: ${entry.toString(16)}`);
});

test('netperf with the APIC variant: the stream arrives intact, every NIC interrupt through the I/O APIC', () => {
  assert.ok(built.ok);
  const run = runNetperf({
    label: 'native, raw (APIC)',
    kernel: readFileSync(kernel),
    kernelName: 'bzImage',
    cmdline: LINUX_GUEST.cmdline,
    modules: [{ name: 'initramfs.cpio', bytes: readFileSync(initramfs), string: 'initramfs.cpio' }],
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
  // IRQ 11 counted through the I/O APIC (Machine.stats: a line's interrupts by either path).
  assert.ok(run.counters.nicInterrupts > 0, `NIC interrupts: ${run.counters.nicInterrupts}`);
});
