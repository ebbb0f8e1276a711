// The guest kernel para-virtualized for the L4-style microkernel (guest/arch/l4-para): it builds,
// says what it is in its ELF note, passes the self-test on `previrt run --hypervisor l4` with the
// same test lines as the native kernel on the raw PC, is an L4 task that calls the microkernel
// itself (no VMM, no port I/O: its processes' traps, its page faults and its interrupts are
// IPC), runs the shell on the resource monitor's console input (and continues exactly from a
// snapshot with input waiting), receives a netperf stream with the right CRC through the DP83820 the resource monitor
// gives its VM, and is refused with one line wherever it does not belong.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runNetperf } from '../../src/bench/netperf/run.ts';
import { paraVirtualizedFor } from '../../src/loader/notes.ts';
import { counterTotal, type CounterTree } from '../../src/machine/counters.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
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
const PARA = join(BUILD, 'l4-para', 'kernel.elf');
const XEN_PARA = join(BUILD, 'xen-para', 'kernel.elf');

function previrt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, stdout: r.stdout.replace(/\r/g, ''), stderr: r.stderr };
}

function built(): Uint8Array {
  const m = make('l4-para');
  assert.ok(m.ok, `make -C guest l4-para failed:\n${m.output}`);
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

test('the l4-para kernel builds and its note says l4', { skip }, () => {
  const kernel = built();
  assert.equal(paraVirtualizedFor(kernel), 'l4');
  assert.match(String(readSiteRecords(kernel, 'kernel.elf')), /no \.afterburn section/);
});

test('the port executes no instruction a ring-3 task would trap on: it calls the microkernel', { skip }, () => {
  built();
  const r = previrt(['verify-annotations', PARA, '--json']);
  const found = JSON.parse(r.stdout) as { byKind: Record<string, number> };
  // What is left is legal in ring 3 on the microkernel: int ($0x30-$0x36, its system calls;
  // $0x80 in user code paths), rdtsc (CR4.TSD is clear: the tick), pushf (EFLAGS but IF),
  // segment register reads, and the self-test's sgdt/str. No cli, sti, hlt, in, out, popf,
  // iret, CR or descriptor-table loads, invlpg, ud2.
  const allowed = new Set(['int', 'rdtsc', 'pushf', 'mov_seg', 'sgdt', 'str']);
  assert.deepEqual(
    Object.keys(found.byKind).filter((k) => !allowed.has(k)),
    [],
    JSON.stringify(found.byKind),
  );
  assert.ok(found.byKind.int > 10, 'the system calls are there');
});

test('the self-test passes on --hypervisor l4, with the native kernel’s test lines', { skip }, () => {
  built();
  const r = previrt(['run', '--hypervisor', 'l4', '--kernel', PARA, '--append', 'init=selftest', '--stats', '--json']);
  const shown = `${r.stdout}\n-- stderr:\n${r.stderr}`;
  assert.equal(r.status, 1, `exit status 0 through the resource monitor gives 1\n${shown}`);
  assert.match(r.stdout, /^selftest: PASS$/m, shown);
  assert.doesNotMatch(r.stdout, /^test: FAIL/m, shown);
  assert.ok(make('native').ok);
  const native = runPrevirt(kernelPath('native'), 'init=selftest');
  assert.deepEqual(comparableLines(r.stdout), comparableLines(native.console));

  // An L4 task: every kind of call the port makes, processes' traps and faults as IPC, no VMM,
  // no port I/O, and its threads and spaces made and deleted through the resource monitor.
  const stats = JSON.parse(r.stderr.slice(r.stderr.indexOf('{')));
  assert.equal(stats.hypervisor, 'l4');
  assert.equal(stats.vmm, undefined);
  const h = stats.l4 as CounterTree;
  for (const kind of ['ipc', 'unmap', 'flush', 'exchangeRegisters', 'threadControl', 'spaceControl', 'schedule'])
    assert.ok(count(h, `syscalls.${kind}`) > 0, `no ${kind} system call`);
  for (const kind of ['pageFault', 'exception', 'other'])
    assert.ok(count(h, `ipc.${kind}`) > 0, `no ${kind} message`);
  // The tick is the kernel's receive timeout: the self-test sleeps and waits for ticks.
  assert.ok(count(h, 'timeouts') > 10);
  // A space per process (utest, hello, the bad ones, ...), each deleted when reaped.
  assert.ok(count(h, 'spacesCreated') >= 10 && count(h, 'spacesDeleted') >= 10);
  assert.equal(count(h, 'threadsHalted'), 0);
  assert.equal(stats.cpu.ioReads + stats.cpu.ioWrites, 0);
});

test('the shell runs programs on the console input the resource monitor sends, and exits with the status asked for', { skip }, () => {
  built();
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'previrt.mjs'), 'run', '--hypervisor', 'l4', '--kernel', PARA, '--append', 'init=shell'],
    { encoding: 'utf8', input: 'programs\nhello a b\nno-such\nexit 3\n', timeout: 120_000 },
  );
  const out = r.stdout.replace(/\r/g, '');
  assert.match(out, /hello from pid 2: a b$/m, out);
  assert.match(out, /no-such: no such program/, out);
  assert.match(out, /utest\nsh\nhello\nspin\nbad\n/, out);
  assert.equal(r.status, (3 << 1) | 1, `${out}${r.stderr}`);
});

test('a snapshot with console input still waiting continues exactly', { skip }, () => {
  const kernel = built();
  const boot = (out: { text: string }) => {
    const g = createGuest({
      platform: 'l4',
      kernel,
      kernelName: 'kernel.elf',
      cmdline: 'init=shell',
      console: (b) => (out.text += String.fromCharCode(b)),
    });
    assert.ok(typeof g !== 'string', String(g));
    g.input(new TextEncoder().encode('hello x\nsleep 20\nhello y\nexit 4\n'));
    return g;
  };
  const whole = { text: '' };
  const ref = boot(whole);
  const refEnd = ref.machine.run(2_000_000_000);
  assert.deepEqual(refEnd, { kind: 'exit', value: 4 }, whole.text);
  assert.match(whole.text, /hello from pid 2: x[\s\S]*hello from pid 4: y/);
  const total = ref.machine.cpu.cycles;
  // Before the kernel asked for the input, and while `sleep 20` runs with the rest waiting.
  for (const n of [1_000_000, Math.round(total * 0.6)]) {
    const part1 = { text: '' };
    const g = boot(part1);
    assert.equal(g.machine.run(n).kind, 'cycle-limit');
    const part2 = { text: '' };
    const restored = restoreGuest(g.save(), { console: (b) => (part2.text += String.fromCharCode(b)) });
    assert.ok(typeof restored !== 'string', String(restored));
    assert.deepEqual(restored.machine.run(2_000_000_000), refEnd, `ending, snapshot at ${n}`);
    assert.equal(part1.text + part2.text, whole.text, `console, snapshot at ${n}`);
    assert.deepEqual(restored.stats(), ref.stats(), `counters, snapshot at ${n}`);
  }
});

test('netperf: the DP83820 from the resource monitor, its interrupt as IPC, the CRC right', { skip }, () => {
  const lines: string[] = [];
  const run = runNetperf({
    label: 'l4-para',
    kernel: built(),
    kernelName: 'kernel.elf',
    payloadBytes: 256 * 1024,
    seed: 5,
    hypervisor: 'l4',
    onConsoleLine: (l) => lines.push(l),
  });
  assert.ok(run.ok, `${run.error}\n${lines.join('\n')}`);
  assert.match(run.resultLine ?? '', /^netserver: received 262144 bytes in \d+ ms, crc32 [0-9a-f]{8} ok$/);
  assert.ok(lines.some((l) => /^pci: 00:00\.0 100b:0022 .*\(given by the resource monitor\)/.test(l)), lines.join('\n'));
  const v = run.counters.virtualization!;
  assert.equal(v.platform, 'l4');
  assert.deepEqual(v.vmm, {});
  const irqs = count(v.hypervisor, 'ipc.interrupt');
  assert.ok(irqs > 0 && irqs === run.counters.nicInterrupts);
  assert.ok(count(v.hypervisor, 'dmaTranslated') >= run.counters.nic.rxFrames);
  assert.equal(count(v.hypervisor, 'dmaRefused'), 0);
  assert.equal(run.counters.portReads + run.counters.portWrites, 0);
  assert.ok(run.counters.mmioReads > 0);
});

test('refused with one line on the raw PC and on xen; the xen port refused on l4', { skip }, () => {
  built();
  assert.ok(make('xen-para').ok);
  for (const [hv, where] of [
    ['none', 'the raw PC'],
    ['xen', '--hypervisor xen'],
  ]) {
    const r = previrt(['run', '--hypervisor', hv, '--kernel', PARA, '--append', 'init=selftest']);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `previrt run: ${PARA}: a kernel para-virtualized for l4 (its previrt ELF note): it runs only with --hypervisor l4, not on ${where}\n`,
    );
  }
  const x = previrt(['run', '--hypervisor', 'l4', '--kernel', XEN_PARA]);
  assert.equal(x.status, 2);
  assert.equal(
    x.stderr,
    `previrt run: ${XEN_PARA}: a kernel para-virtualized for xen (its previrt ELF note): it runs only with --hypervisor xen, not on --hypervisor l4\n`,
  );
  // Bad input to the platform itself: one line each, nothing built.
  const m = createGuest({ platform: 'l4', kernel: readFileSync(PARA), kernelName: 'k', modules: [{ name: 'm', bytes: new Uint8Array(4), string: 'm' }] });
  assert.equal(m, 'k: a para-virtualized kernel takes no boot modules (the resource monitor loads the kernel only)');
  const long = createGuest({ platform: 'l4', kernel: readFileSync(PARA), kernelName: 'k', cmdline: 'x'.repeat(300) });
  assert.equal(long, 'k: the command line is longer than 255 bytes');
});
