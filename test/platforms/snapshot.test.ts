// Whole-guest snapshots on every platform (src/platforms/snapshot.ts): "run to N, snapshot,
// restore, run on" gives the same console output, ending, cycles, instructions and every counter
// as the uninterrupted run — the self-test raw, on xen and on l4, each through the in-place VMM
// and para-virtualized, at points in boot, in the middle of the test and in a timer interrupt
// (the l4 port's receive timeout), and a netperf transfer (the client machine's state saved with
// the guest) before it starts and mid-stream, through the snapshot
// file's bytes (src/snapshot/file.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { TcpSender } from '../../src/net/TcpSender.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import { readSnapshot, writeSnapshot, type Codec } from '../../src/snapshot/file.ts';
import { join } from 'node:path';
import { BUILD, buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { attachSender } from './client.ts';

const codec: Codec = {
  name: 'deflate-raw',
  compress: (b) => deflateRawSync(b),
  decompress: (b) => inflateRawSync(b),
};
const skip = buildSkipReason();
const LIMIT = 2_800_000_000;

interface Outcome {
  console: string;
  end: unknown;
  stats: unknown;
}

/** The kernel each case boots: the afterburned one, or a port para-virtualized for xen or l4. */
const PARA = join(BUILD, 'xen-para', 'kernel.elf');
const L4_PARA = join(BUILD, 'l4-para', 'kernel.elf');

function boot(platform: string, out: { text: string }, kernel = kernelPath('afterburned')): Guest {
  const g = createGuest({
    platform,
    kernel: readFileSync(kernel),
    kernelName: 'kernel.elf',
    cmdline: 'init=selftest',
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', String(g));
  return g;
}

function finish(g: Guest, out: { text: string }): Outcome {
  const end = g.machine.run(LIMIT);
  return { console: out.text, end, stats: g.stats() };
}

describe('whole-guest snapshots: the self-test continues exactly', { skip }, () => {
  for (const [platform, kernel, name] of [
    ['none', kernelPath('afterburned'), 'none'],
    ['xen', kernelPath('afterburned'), 'xen'],
    ['xen', PARA, 'xen, the para-virtualized kernel'],
    ['l4', kernelPath('afterburned'), 'l4'],
    ['l4', L4_PARA, 'l4, the para-virtualized kernel'],
  ]) {
    it(`on ${name}`, () => {
      assert.ok(make('afterburned').ok && make('xen-para').ok && make('l4-para').ok);
      const whole = { text: '' };
      const reference = finish(boot(platform, whole, kernel), whole);
      assert.match(reference.console, /selftest: PASS/);
      const total = (reference.stats as { machine: { cycles: number } }).machine.cycles;
      // Just after a timer interrupt reached the guest (its handler running): found by stepping
      // a run in small slices until the guest has taken a few.
      const probe = boot(platform, { text: '' }, kernel);
      // (The l4 port's tick is its receive timeout.)
      const taken = (): number =>
        probe.vmm !== undefined
          ? (probe.vmm.counters.virtualInterrupts[0x20] ?? 0)
          : probe.hypervisor?.name === 'l4'
            ? Number(probe.hypervisor.stats().timeouts)
            : probe.hypervisor !== undefined
              ? Number(probe.hypervisor.stats().upcalls)
              : probe.machine.cpu.counters.interrupts;
      while (taken() < 5) {
        assert.equal(probe.machine.run(probe.machine.cpu.cycles + 2_000).kind, 'cycle-limit');
        probe.machine.resume();
      }
      const midInterrupt = probe.machine.cpu.cycles;
      // During boot, early in the test, in a timer interrupt, in the middle, near the end.
      const points = [
        3_000_000,
        20_000_000,
        midInterrupt,
        Math.round(total / 2),
        total - 5_000_000,
      ];
      for (const n of points) {
        const part1 = { text: '' };
        const g = boot(platform, part1, kernel);
        assert.equal(g.machine.run(n).kind, 'cycle-limit');
        const bytes = writeSnapshot(g.save(), codec);
        const contents = readSnapshot(bytes, codec);
        assert.ok(typeof contents !== 'string', String(contents));
        const part2 = { text: '' };
        const restored = restoreGuest(contents, {
          console: (b) => (part2.text += String.fromCharCode(b)),
        });
        assert.ok(typeof restored !== 'string', String(restored));
        const end = restored.machine.run(LIMIT);
        assert.equal(part1.text + part2.text, reference.console, `console, snapshot at ${n}`);
        assert.deepEqual(end, reference.end, `ending, snapshot at ${n}`);
        assert.deepEqual(restored.stats(), reference.stats, `counters, snapshot at ${n}`);
      }
    });
  }
});

/** A guest with the NIC and the netperf client on its link, as `bench netperf` builds them. */
function netperfGuest(
  platform: string,
  out: { text: string },
  emulated = false,
): { guest: Guest; sender: () => TcpSender } {
  const guest = createGuest({
    platform,
    kernel: readFileSync(kernelPath('afterburned')),
    kernelName: 'kernel.elf',
    cmdline: 'init=netserver',
    nic: emulated ? { emulated: true } : {},
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  assert.ok(typeof guest !== 'string', String(guest));
  return { guest, sender: attachSender(guest) };
}

describe('whole-guest snapshots: a netperf transfer continues exactly', { skip }, () => {
  for (const [platform, emulated] of [
    ['none', false],
    ['xen', false],
    ['l4', false],
    ['xen', true],
    ['l4', true],
  ] as const) {
    const nic = platform === 'none' ? 'the PC’s' : emulated ? "the VMM's model" : 'passed through';
    it(`on ${platform}, the NIC ${nic}`, () => {
      assert.ok(make('afterburned').ok);
      const refOut = { text: '' };
      const ref = netperfGuest(platform, refOut, emulated);
      const refEnd = ref.guest.machine.run(LIMIT * 5);
      assert.deepEqual(refEnd, { kind: 'exit', value: 0 }, refOut.text);
      assert.match(
        refOut.text,
        /netserver: received 1048576 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/,
      );
      // Before the first SYN, a quarter of the way, and half way through the stream.
      for (const acked of [0, 256 * 1024, 512 * 1024]) {
        const part1 = { text: '' };
        const w = netperfGuest(platform, part1, emulated);
        const m = w.guest.machine;
        do {
          assert.equal(m.run(m.cpu.cycles + 100_000).kind, 'cycle-limit');
          m.resume();
        } while (w.sender().bytesAcked < acked || (acked === 0 && m.cpu.cycles < 2_000_000));
        const bytes = writeSnapshot(w.guest.save(w.sender().save()), codec);
        const contents = readSnapshot(bytes, codec);
        assert.ok(typeof contents !== 'string', String(contents));
        const part2 = { text: '' };
        let sender: (() => TcpSender) | undefined;
        const restored = restoreGuest(contents, {
          console: (b) => (part2.text += String.fromCharCode(b)),
          restoreExtra: (extra, guest) => {
            sender = attachSender(guest);
            sender().restore(extra as ReturnType<TcpSender['save']>);
          },
        });
        assert.ok(typeof restored !== 'string', String(restored));
        const end = restored.machine.run(LIMIT * 5);
        const what = `snapshot after ${acked} bytes acknowledged`;
        assert.equal(part1.text + part2.text, refOut.text, `${what}: console`);
        assert.deepEqual(end, refEnd, `${what}: ending`);
        assert.deepEqual(restored.stats(), ref.guest.stats(), `${what}: counters`);
        assert.deepEqual(sender!().report(), ref.sender().report(), `${what}: the client's report`);
      }
    });
  }
});

describe('whole-guest snapshots that do not fit', { skip }, () => {
  it('a platform this previrt lacks, another state version, a state of another shape: one line', () => {
    assert.ok(make('afterburned').ok);
    const g = boot('xen', { text: '' });
    g.machine.run(5_000_000);
    const good = readSnapshot(writeSnapshot(g.save(), codec), codec);
    assert.ok(typeof good !== 'string');
    const changed = (f: (state: Record<string, unknown>) => void, header = good.header) => {
      const state = structuredClone(good.state) as Record<string, unknown>;
      f(state);
      // Written again, so its checksums are right: only the content is wrong.
      const c = readSnapshot(writeSnapshot({ ...good, header, state }, codec), codec);
      assert.ok(typeof c !== 'string');
      return restoreGuest(c);
    };
    const cases: [string, string | Guest, RegExp][] = [
      [
        'a platform it lacks',
        changed((s) => (s.platform = 'sel4')),
        /platform 'sel4', which this previrt does not have/,
      ],
      [
        'a newer state',
        changed(() => {}, { ...good.header, stateVersion: 3 }),
        /state version 3 is not supported/,
      ],
      [
        'the VMM state of another version',
        changed((s) => ((s.vmm as { version: number }).version = 9)),
        /vmm: VMM state version 9 is not supported/,
      ],
      [
        'a hypervisor field of the wrong type',
        changed((s) => ((s.hypervisor as { picReady: unknown }).picReady = 'yes')),
        /hypervisor\.picReady: expected true or false/,
      ],
      [
        'a machine of another size',
        changed((s) => ((s.config as { memoryMb: number }).memoryMb = 64)),
        /does not fit|ram/,
      ],
    ];
    for (const [what, r, message] of cases) {
      assert.equal(typeof r, 'string', what);
      assert.match(r as string, message, what);
      assert.ok(!(r as string).includes('\n'), `${what}: one line`);
    }
  });
});
