// The guest kernel para-virtualized for the Xen-style hypervisor (guest/arch/xen-para): it
// builds, says what it is in its ELF note, passes the self-test on `previrt run --hypervisor
// xen` with the same test lines as the native kernel on the raw PC, calls the hypervisor
// itself (no VMM, no port I/O), receives a netperf stream with the right CRC through the DP83820
// given to its domain, and is refused with one line wherever it does not belong.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runNetperf } from '../../src/bench/netperf/run.ts';
import { paraVirtualizedFor } from '../../src/loader/notes.ts';
import { counterTotal, type CounterTree } from '../../src/machine/counters.ts';
import { createGuest, paraRefusal } from '../../src/platforms/createGuest.ts';
import type { Platform } from '../../src/platforms/platform.ts';
import { readSiteRecords } from '../../src/vmm/sections.ts';
import {
  BUILD,
  ROOT,
  buildSkipReason,
  comparableLines,
  kernelPath,
  make,
  runPrevirt,
} from './guest.ts';

const skip = buildSkipReason();
const PARA = join(BUILD, 'xen-para', 'kernel.elf');

function previrt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, stdout: r.stdout.replace(/\r/g, ''), stderr: r.stderr };
}

function built(): Uint8Array {
  const m = make('xen-para');
  assert.ok(m.ok, `make -C guest xen-para failed:\n${m.output}`);
  return readFileSync(PARA);
}

const count = (tree: CounterTree, path: string): number =>
  counterTotal(
    path
      .split('.')
      .reduce<CounterTree | number | undefined>(
        (node, k) => (typeof node === 'object' ? node[k] : undefined),
        tree,
      ) ?? 0,
  );

test('the xen-para kernel builds and its note says xen; native and afterburned have none', { skip }, () => {
  const kernel = built();
  assert.equal(paraVirtualizedFor(kernel), 'xen');
  assert.ok(make('native').ok && make('afterburned').ok);
  assert.equal(paraVirtualizedFor(readFileSync(kernelPath('native'))), undefined);
  assert.equal(paraVirtualizedFor(readFileSync(kernelPath('afterburned'))), undefined);
  // Nothing in it for the in-place VMM: no annotation sections.
  assert.match(String(readSiteRecords(kernel, 'kernel.elf')), /no \.afterburn section/);
});

test('the port executes no instruction that ring 1 would have to trap: the hypervisor is called instead', { skip }, () => {
  built();
  // verify-annotations finds sensitive instructions by opcode, independently of any build.
  const r = previrt(['verify-annotations', PARA, '--json']);
  const found = JSON.parse(r.stdout) as { byKind: Record<string, number> };
  // What is left runs in ring 1 as it would in ring 0 or reads harmless state: int ($0x82
  // hypercalls, $0x80 in user code paths), iret, pushf (EFLAGS but IF), segment register
  // moves, and the self-test's sgdt/sidt/str. No cli, sti, hlt, in, out, popf, CR or
  // descriptor-table loads, invlpg.
  const allowed = new Set(['int', 'iret', 'pushf', 'push_seg', 'pop_seg', 'mov_seg', 'sgdt', 'sidt', 'str']);
  assert.deepEqual(
    Object.keys(found.byKind).filter((k) => !allowed.has(k)),
    [],
    JSON.stringify(found.byKind),
  );
  assert.ok(found.byKind.int > 10, 'the hypercalls are there');
});

test('the self-test passes on --hypervisor xen, with the native kernel’s test lines', { skip }, () => {
  built();
  const r = previrt([
    'run',
    '--hypervisor',
    'xen',
    '--kernel',
    PARA,
    '--append',
    'init=selftest',
    '--stats',
    '--json',
  ]);
  const shown = `${r.stdout}\n-- stderr:\n${r.stderr}`;
  assert.equal(r.status, 1, `exit status 0 through SCHEDOP_shutdown gives 1\n${shown}`);
  assert.match(r.stdout, /^selftest: PASS$/m, shown);
  assert.doesNotMatch(r.stdout, /^test: FAIL/m, shown);
  assert.ok(make('native').ok);
  const native = runPrevirt(kernelPath('native'), 'init=selftest');
  assert.deepEqual(comparableLines(r.stdout), comparableLines(native.console));

  // It calls the hypervisor itself: every kind of hypercall the port makes, no VMM, no
  // instruction that the hypervisor had to emulate, no port I/O.
  const stats = JSON.parse(r.stderr.slice(r.stderr.indexOf('{')));
  assert.equal(stats.hypervisor, 'xen');
  assert.equal(stats.vmm, undefined);
  const h = stats.xen as CounterTree;
  for (const kind of [
    'set_trap_table',
    'set_callbacks',
    'stack_switch',
    'update_va_mapping',
    'mmu_update',
    'mmuext_op',
    'set_timer_op',
    'sched_op',
    'event_channel_op',
    'console_io',
  ])
    assert.ok(count(h, `hypercalls.${kind}`) > 0, `no ${kind} hypercall`);
  assert.ok(count(h, 'upcalls') > 0 && count(h, 'pins') > 0 && count(h, 'pteUpdates') > 0);
  assert.equal(count(h, 'ioEmulated'), 0);
  assert.equal(stats.cpu.ioReads + stats.cpu.ioWrites, 0);
  // The hypercalls the port batches: mmu_update carries several entries per call.
  assert.ok(count(h, 'pteUpdates') > 1.5 * count(h, 'hypercalls.mmu_update'));
});

test('netperf: the DP83820 given to the domain, its interrupt a pirq event, the CRC right', { skip }, () => {
  const lines: string[] = [];
  const run = runNetperf({
    label: 'xen-para',
    kernel: built(),
    kernelName: 'kernel.elf',
    payloadBytes: 256 * 1024,
    seed: 5,
    hypervisor: 'xen',
    onConsoleLine: (l) => lines.push(l),
  });
  assert.ok(run.ok, `${run.error}\n${lines.join('\n')}`);
  assert.match(run.resultLine ?? '', /^netserver: received 262144 bytes in \d+ ms, crc32 [0-9a-f]{8} ok$/);
  assert.ok(lines.some((l) => /^pci: 00:00\.0 100b:0022 .*\(granted\)/.test(l)), lines.join('\n'));
  const v = run.counters.virtualization!;
  assert.equal(v.platform, 'xen');
  assert.deepEqual(v.vmm, {});
  const pirq = count(v.hypervisor, 'pirqEvents');
  assert.ok(pirq > 0 && pirq === run.counters.nicInterrupts);
  // Each NIC event ends with the driver's EOI: an unmask of the pirq's port.
  assert.ok(count(v.hypervisor, 'hypercalls.event_channel_op') >= pirq);
  assert.ok(count(v.hypervisor, 'dmaTranslated') >= run.counters.nic.rxFrames);
  assert.equal(count(v.hypervisor, 'dmaRefused'), 0);
  assert.equal(run.counters.portReads + run.counters.portWrites, 0);
  assert.ok(run.counters.mmioReads > 0);
});

test('refused with one line on the raw PC; a note for another hypervisor refused on xen too', { skip }, () => {
  built();
  const raw = previrt(['run', '--kernel', PARA, '--append', 'init=selftest']);
  assert.equal(raw.status, 2);
  assert.equal(raw.stdout, '');
  assert.equal(
    raw.stderr,
    `previrt run: ${PARA}: a kernel para-virtualized for xen (its previrt ELF note): it runs only with --hypervisor xen, not on the raw PC\n`,
  );
  const none = previrt(['run', '--hypervisor', 'none', '--kernel', PARA]);
  assert.equal(none.status, 2);
  assert.equal(none.stderr, raw.stderr);

  // The same kernel with its note naming "l4": the rule is the note's, not xen's.
  const bytes = Buffer.from(readFileSync(PARA));
  const at = bytes.indexOf(Buffer.from('previrt\0xen\0', 'latin1'));
  assert.ok(at > 0, 'the note is in the file');
  bytes.write('l4\0\0', at + 8, 'latin1');
  assert.equal(paraVirtualizedFor(bytes), 'l4');
  const dir = mkdtempSync(join(tmpdir(), 'previrt-xenpara-'));
  try {
    const l4 = join(dir, 'l4.elf');
    writeFileSync(l4, bytes);
    for (const [hv, where] of [
      ['xen', '--hypervisor xen'],
      ['none', 'the raw PC'],
    ]) {
      const r = previrt(['run', '--hypervisor', hv, '--kernel', l4]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(
        r.stderr,
        `previrt run: ${l4}: a kernel para-virtualized for l4 (its previrt ELF note): it runs only with --hypervisor l4, not on ${where}\n`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // A platform offering no para-virtualized interface refuses both, naming the port's home.
  const plain: Platform = {
    name: 'other',
    summary: '',
    counterColumns: [],
    prepare: () => 'not built',
  };
  assert.equal(
    paraRefusal(bytes, 'k', plain),
    'k: a kernel para-virtualized for l4 (its previrt ELF note): it runs only with --hypervisor l4, not on --hypervisor other',
  );
  // A note naming an interface no platform offers says so.
  const kvm = Buffer.from(bytes);
  kvm.write('kvm\0', at + 8, 'latin1');
  assert.equal(
    paraRefusal(kvm, 'k', plain),
    'k: a kernel para-virtualized for kvm (its previrt ELF note): which no platform of this previrt offers, not on --hypervisor other',
  );
  assert.equal(
    paraRefusal(readFileSync(PARA), 'k', plain),
    'k: a kernel para-virtualized for xen (its previrt ELF note): it runs only with --hypervisor xen, not on --hypervisor other',
  );
  // createGuest applies it before building anything.
  assert.equal(
    createGuest({ platform: 'none', kernel: readFileSync(PARA), kernelName: 'k' }),
    'k: a kernel para-virtualized for xen (its previrt ELF note): it runs only with --hypervisor xen, not on the raw PC',
  );
});
