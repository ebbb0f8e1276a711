import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMachine, Machine } from '../../src/machine/Machine.ts';
import { P4_2_8GHZ } from '../../src/machine/costModel.ts';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { buildProbe } from './build.ts';

const probe = buildProbe();
const work = mkdtempSync(join(tmpdir(), 'previrt-machine-'));

function previrt(
  args: string[],
  input?: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], {
    encoding: 'utf8',
    input,
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function boot(cmdline: string): { machine: Machine; out: () => string } {
  let text = '';
  const machine = createMachine({
    memoryMb: 32,
    serialOut: (b) => (text += String.fromCharCode(b)),
  });
  assert.ok(machine instanceof Machine);
  const error = bootMultiboot(machine, {
    kernel: readFileSync(probe),
    kernelName: 'probe.elf',
    cmdline,
    modules: [],
  });
  assert.equal(error, undefined);
  return { machine, out: () => text };
}

test('a guest prints on COM1 and exits through isa-debug-exit with (v << 1) | 1', () => {
  const r = previrt(['--kernel', probe, '--append', 'hello']);
  assert.equal(r.stdout, 'hello from the machine test\n');
  assert.equal(r.status, (42 << 1) | 1);
});

test('timer interrupts arrive at the rate the PIT is programmed for, in simulated time', () => {
  for (const hz of [100, 1000]) {
    const { machine, out } = boot(`timer ${hz}`);
    const end = machine.run(2_800_000_000);
    assert.deepEqual(end, { kind: 'exit', value: 0 });
    // hz/10 ticks take 100 ms less at most one period of phase (the first tick needs a period).
    assert.match(out(), new RegExp(`^ticks ${hz / 10} tsc-ms (9[0-9]|100)\\n$`));
    assert.equal(machine.stats().irqs[0], hz / 10);
    const ms = machine.stats().simulatedSeconds * 1000;
    assert.ok(ms > 95 && ms < 105, `simulated ${ms} ms`);
    assert.ok(
      machine.stats().idleCycles > machine.stats().busyCycles,
      'the guest idles in HLT between ticks',
    );
  }
});

test('an event a device schedules mid-slice is taken on time (a one-shot PIT count while the CPU spins)', () => {
  // Programming the PIT schedules its terminal count while the CPU is inside a run slice; the
  // slice must end there, not at the 10 ms slice limit or the next event known before.
  const count = 1000; // 1000 / 1.193182 MHz = 838 µs = 2,346,604 cycles at 2.8 GHz
  const { machine, out } = boot(`oneshot ${count}`);
  const end = machine.run(2_800_000_000);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out());
  const cycles = Number(/^oneshot cycles (\d+)$/m.exec(out())?.[1]);
  const expected = (count * 2_800_000_000) / 1_193_182;
  assert.ok(
    Math.abs(cycles - expected) < 10_000,
    `IRQ 0 after ${cycles} cycles, expected ${expected}`,
  );
});

test('a CPU a hypervisor wakes in the events fired after its slice runs on (no false "halted" end)', () => {
  // What xen's block hypercall does: it charges its cost in one piece and halts the CPU; a timer
  // that fell due inside that cost fires after the slice and wakes the domain.
  const machine = createMachine({ memoryMb: 32 });
  assert.ok(machine instanceof Machine);
  const cpu = machine.cpu;
  let wokenAt: number | undefined;
  const monitor = machine.ports.register(0x90, 1, {
    name: 'monitor',
    ioRead: () => 0xff,
    ioWrite: () => {
      machine.clock.at(cpu.cycles + 10, () => {
        wokenAt = machine.clock.now();
        cpu.halted = false;
      });
      cpu.charge(1000);
      cpu.halted = true;
    },
  });
  assert.notEqual(typeof monitor, 'string');
  // out 0x90, al; mov al, 7; out 0xf4, al — interrupts off, so only the monitor can wake it.
  machine.ram.set([0xe6, 0x90, 0xb0, 0x07, 0xe6, 0xf4], 0x1000);
  cpu.enterFlatProtectedMode();
  cpu.eip = 0x1000;
  const end = machine.run(2_800_000_000);
  assert.deepEqual(end, { kind: 'exit', value: 7 });
  assert.ok(wokenAt !== undefined && wokenAt < cpu.cycles);
  assert.equal(cpu.idleCycles, 0, 'nothing is skipped as idle');
});

test('an interrupt raised by an event that fell due inside HLT wakes the CPU at once', () => {
  // With a cost model where HLT itself costs cycles, an event can fall due while it runs: it
  // fires after the slice and raises the interrupt line. The next event is far away: the CPU
  // must take the interrupt now, not after idling to that event.
  const costModel = { ...P4_2_8GHZ, name: 'test-hlt', cpu: { ...P4_2_8GHZ.cpu, hlt: 100 } };
  const machine = createMachine({ memoryMb: 32, costModel });
  assert.ok(machine instanceof Machine);
  const cpu = machine.cpu;
  // hlt, then (where the interrupt sends it) mov al, 7; out 0xf4, al.
  machine.ram.set([0xf4], 0x1000);
  machine.ram.set([0xb0, 0x07, 0xe6, 0xf4], 0x2000);
  cpu.enterFlatProtectedMode();
  cpu.setEflags(cpu.getEflags() | 0x200);
  cpu.eip = 0x1000;
  let takenAt: number | undefined;
  cpu.attachMonitor({
    onEvent(e) {
      assert.equal(e.kind, 'interrupt');
      takenAt = cpu.cycles;
      cpu.setInterruptLine(false);
      cpu.eip = 0x2000;
    },
  });
  machine.clock.at(cpu.cycles + 50, () => cpu.setInterruptLine(true));
  machine.clock.at(cpu.cycles + 2_000_000_000, () => {});
  const end = machine.run(2_800_000_000);
  assert.deepEqual(end, { kind: 'exit', value: 7 });
  assert.ok(takenAt !== undefined && takenAt < 1000, `interrupt taken at cycle ${takenAt}`);
});

test('serial input typed on the host reaches the guest through the UART interrupt', () => {
  const r = previrt(['--kernel', probe, '--append', 'echo'], 'typed text.');
  assert.equal(r.stdout, 'typed text\n');
  assert.equal(r.status, 1);
});

test('two runs give identical output, cycles and counters', () => {
  const runs = [0, 1].map(() => {
    const { machine, out } = boot('timer 1000');
    machine.run(2_800_000_000);
    return { out: out(), stats: machine.stats() };
  });
  assert.deepEqual(runs[0], runs[1]);
});

test('other endings have their own exit status and a one-line reason', () => {
  const cases: [string, number, RegExp][] = [
    ['halt', 4, /halted with interrupts off/],
    ['triple', 5, /triple fault/],
    ['reset', 6, /reset the machine/],
  ];
  for (const [probeName, status, reason] of cases) {
    const r = previrt(['--kernel', probe, '--append', probeName]);
    assert.equal(r.status, status, probeName);
    assert.match(r.stderr, reason);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  const limited = previrt(['--kernel', probe, '--append', 'timer 100', '--max-cycles', '1000000']);
  assert.equal(limited.status, 3);
  assert.match(limited.stderr, /cycle limit/);
});

test('--stats prints every counter, as text or JSON', () => {
  const text = previrt(['--kernel', probe, '--append', 'hello', '--stats']);
  assert.match(text.stderr, /simulated time/);
  assert.match(text.stderr, /cpu\.instructions/);
  const json = previrt(['--kernel', probe, '--append', 'hello', '--stats', '--json']);
  const stats = JSON.parse(json.stderr) as {
    instructions: number;
    cpu: { ioWrites: number };
    costModel: string;
  };
  assert.ok(stats.instructions > 0);
  assert.ok(stats.cpu.ioWrites > 0);
  assert.equal(stats.costModel, 'p4-2.8ghz');
});

test('malformed input: one clear line naming the file and the problem, exit status 2', () => {
  const elf = readFileSync(probe);
  const file = (name: string, bytes: Uint8Array): string => {
    const p = join(work, name);
    writeFileSync(p, bytes);
    return p;
  };
  const patched = (offset: number, bytes: number[]): Uint8Array => {
    const b = Uint8Array.from(elf);
    b.set(bytes, offset);
    return b;
  };
  const v = new DataView(elf.buffer, elf.byteOffset);
  const phoff = v.getUint32(28, true);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty.elf', new Uint8Array(0), /empty file/],
    ['text.elf', new TextEncoder().encode('hello, not a kernel'), /not an ELF file/],
    ['elf64.elf', patched(4, [2]), /not ELFCLASS32/],
    ['arm.elf', patched(18, [40, 0]), /not EM_386/],
    ['short.elf', elf.subarray(0, 40), /truncated ELF header/],
    ['noph.elf', elf.subarray(0, phoff + 8), /truncated program headers/],
    ['cut.elf', elf.subarray(0, elf.length >> 1), /truncated segment/],
    ['far.elf', patched(phoff + 12, [0, 0, 0, 0x40]), /outside the machine/],
    ['noentry.elf', patched(24, [0, 0, 0, 0]), /no entry point/],
  ];
  for (const [name, bytes, problem] of cases) {
    const r = previrt(['--kernel', file(name, bytes), '--memory', '32']);
    assert.equal(r.status, 2, name);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
    assert.match(lines[0], new RegExp(name.replace('.', '\\.')));
    assert.match(lines[0], problem);
  }
  const big = file('big.bin', new Uint8Array(40 << 20));
  const r = previrt(['--kernel', probe, '--module', big, '--memory', '32']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /big\.bin: module too large/);
  assert.match(
    previrt(['--kernel', join(work, 'missing.elf')]).stderr,
    /missing\.elf: no such file/,
  );
  assert.match(previrt(['--kernel', probe, '--bogus']).stderr, /unknown option '--bogus'/);
  assert.equal(previrt([]).status, 2);
});

test(
  'with a network, the guest kernel finds the DP83820 on PCI at 00:03.0, IRQ 11',
  { skip: buildSkipReason() },
  () => {
    const r = make('native');
    assert.ok(r.ok, r.output);
    const elf = kernelPath('native');
    let text = '';
    const machine = createMachine({
      memoryMb: 64,
      network: {},
      serialOut: (b) => (text += String.fromCharCode(b)),
    });
    assert.ok(machine instanceof Machine);
    const error = bootMultiboot(machine, {
      kernel: readFileSync(elf),
      kernelName: elf,
      cmdline: 'init=hello',
      modules: [],
    });
    assert.equal(error, undefined);
    machine.run(2_800_000_000);
    assert.match(text, /pci: 00:03\.0 100b:0022 class 02\/00 irq 11/);
    assert.equal(machine.nic?.configRead(0x3c, 1), 11);
  },
);
