/**
 * Linux with the local APIC and the I/O APIC (guest/linux/kernel-apic.config: X86_UP_APIC,
 * X86_UP_IOAPIC, X86_MPPARSE): the kernel finds both through the MP table the loader writes
 * (src/loader/mpTable.ts), switches from the 8259 pair to symmetric I/O mode, checks that the
 * timer reaches it through I/O APIC pin 2, runs its local APIC timer, and takes the DP83820's
 * level-triggered PCI interrupt through the I/O APIC — on previrt as on QEMU (SeaBIOS's MP
 * table), from the same files. Builds the variant when it is missing (minutes, once); never skips.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { buildLinuxGuest, LINUX_APIC_KERNEL, LINUX_GUEST } from '../../src/bench/netperf/build.ts';
import { bootLinux, netperfIntoLinux, programLines, qemuLinux } from './common.ts';

const built = buildLinuxGuest('apic');
const kernel = LINUX_APIC_KERNEL;
const { initramfs } = LINUX_GUEST;

const boot = (cmdline: string, network: boolean) =>
  bootLinux(kernel, cmdline, [{ name: 'initramfs.cpio', bytes: readFileSync(initramfs) }], network);

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
  const q = qemuLinux(kernel, append);
  const mine = programLines(p.out);
  assert.deepEqual(mine, programLines(q));
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
    assert.match(q, line, `QEMU: ${line}`);
  }
  assert.match(p.out, /IOAPIC\[0\]: apic_id 1, version 17, address 0xfec00000, GSI 0-23/);
  for (const absent of [/APIC: ACPI MADT or MP tables are not detected/, /Call Trace|WARNING/])
    assert.doesNotMatch(p.out, absent);
  // The interrupts came through the APICs: the I/O APIC sent messages (the PIT on pin 2), and
  // the local APIC's timer ran (its LVT timer entry unmasked, an initial count set).
  const io = p.guest.machine.ioApic.save();
  assert.ok(io.sent > 0, `I/O APIC messages: ${io.sent}`);
  const lapic = p.guest.machine.apic.save();
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
  const entry = p.guest.machine.ioApic.save().entries[11 * 2];
  assert.equal(entry & (1 << 16), 0, `pin 11 masked: ${entry.toString(16)}`);
  assert.notEqual(entry & (1 << 15), 0, `pin 11 edge-triggered: ${entry.toString(16)}`);
});

test('netperf with the APIC variant: the stream arrives intact, every NIC interrupt through the I/O APIC', () => {
  assert.ok(built.ok);
  const run = netperfIntoLinux(kernel, 'native, raw (APIC)');
  // IRQ 11 counted through the I/O APIC (Machine.stats: a line's interrupts by either path).
  assert.ok(run.counters.nicInterrupts > 0, `NIC interrupts: ${run.counters.nicInterrupts}`);
});
