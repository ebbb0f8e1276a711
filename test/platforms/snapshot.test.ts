// Whole-guest snapshots on every platform (src/platforms/snapshot.ts): "run to N, snapshot,
// restore, run on" gives the same console output, ending, cycles, instructions and every counter
// as the uninterrupted run — the self-test raw, on xen and on l4, each through the in-place VMM
// and para-virtualized, at points in boot, in the middle of the test and in a timer interrupt
// (the l4 port's receive timeout), and a netperf transfer (the client machine's state saved with
// the guest) before it starts and mid-stream, through the snapshot
// file's bytes (src/snapshot/file.ts).
//
// Each case runs the guest three ways. The reference runs uninterrupted to its end. The snapshot
// run boots the same guest, stops at every point, writes a snapshot file there, and goes on to
// the same end as the reference (so stopping and saving changed nothing). Then each file is read
// and restored, and the restored guest runs to the next point, where it must be the snapshot run
// again — the same state and memory, console output so far and counters — and the last one runs
// to the end, which must be the reference's. Every stretch of the run is so run once from a
// restored snapshot, instead of the whole rest of the run once per point.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { EndReason } from '../../src/machine/Machine.ts';
import type { TcpSender } from '../../src/net/TcpSender.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import {
  readSnapshot,
  writeSnapshot,
  type Codec,
  type SnapshotContents,
} from '../../src/snapshot/file.ts';
import { BUILD, buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { attachSender } from './client.ts';

const codec: Codec = {
  name: 'deflate-raw',
  compress: (b) => deflateRawSync(b),
  decompress: (b) => inflateRawSync(b),
};
const skip = buildSkipReason();
const LIMIT = 2_800_000_000;
/**
 * The machine's memory: a quarter of the default 256 MB. Each snapshot written, read and
 * restored costs time in proportion to it (every page is packed, unpacked and copied, and a
 * hypervisor clears its domain's when the restored guest is built), and the size adds nothing to
 * what is checked here: the same code saves and restores every page, and a booted guest has
 * written to all of them (its free list). (At 32 MB the guests boot so fast that some points
 * below no longer fall where they are meant to, and the checks on them fail: xen's first SYN
 * comes before 2,000,000 cycles.)
 * Snapshots of the default size: test/cli/snapshot.test.ts (none, xen, through the
 * file) and test/guest/l4Para.test.ts (l4).
 */
const MEMORY_MB = 64;

/** The kernel each case boots: the afterburned one, or a port para-virtualized for xen or l4. */
const AFTERBURNED = kernelPath('afterburned');
const PARA = join(BUILD, 'xen-para', 'kernel.elf');
const L4_PARA = join(BUILD, 'l4-para', 'kernel.elf');

/** The kernels, built once for the whole file (make is incremental, but each call is a spawn). */
let built: Map<string, Uint8Array> | undefined;
function kernel(path: string): Uint8Array {
  if (built === undefined) {
    for (const variant of ['afterburned', 'xen-para', 'l4-para'] as const) {
      const r = make(variant);
      assert.ok(r.ok, r.output);
    }
    built = new Map([AFTERBURNED, PARA, L4_PARA].map((p) => [p, readFileSync(p)]));
  }
  return built.get(path)!;
}

/** How a run ended and what it showed: its console output, its ending, every counter. */
interface Outcome {
  console: string;
  end: EndReason;
  stats: unknown;
  /** The netperf client's report (the netperf cases). */
  report?: unknown;
}

/**
 * A point of the snapshot run: the cycle it stopped at, the file written there, and the run's
 * console output, counters and client's report by then.
 */
interface Mark {
  cycle: number;
  file: Uint8Array;
  console: string;
  stats: unknown;
  report?: unknown;
}

/** A guest restored from a file, its console output since, and its client (netperf). */
interface Restored {
  guest: Guest;
  out: { text: string };
  sender?: () => TcpSender;
}

function read(file: Uint8Array): SnapshotContents {
  const contents = readSnapshot(file, codec);
  assert.ok(typeof contents !== 'string', String(contents));
  return contents;
}

/** The guest's state as the file holds it (JSON text), its memory aside. */
function stateOf(r: Restored): string {
  return JSON.stringify(r.guest.save(r.sender?.().save() ?? null).state);
}

/** The same state as a file's (compared as JSON text, and field by field for the message). */
function sameState(json: string, state: unknown, what: string): void {
  if (json !== JSON.stringify(state)) assert.deepEqual(JSON.parse(json), state, what);
}

/** Where two memories first differ, for the message. */
function firstDifference(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `${a.length} bytes against ${b.length}`;
  let k = 0;
  while (k < a.length && a[k] === b[k]) k++;
  return `first at 0x${k.toString(16)} (page 0x${(k >>> 12).toString(16)})`;
}

/**
 * Restores each mark's file in turn (in this process, through the file's bytes) and runs the
 * restored guest to the next mark, where it must be the snapshot run as that mark's file holds
 * it: its whole state and memory, the console output so far, every counter (and the client's
 * report). The last one runs to the end, which must be the uninterrupted run's. `resumed`: the
 * snapshot run saved after it resumed from its cycle limit, so the restored guest does too before
 * it is compared.
 */
function continueEach(
  marks: Mark[],
  reference: Outcome,
  restore: (contents: SnapshotContents, out: { text: string }) => Restored,
  resumed: boolean,
): void {
  let previous: Restored | undefined;
  for (const [k, mark] of marks.entries()) {
    const contents = read(mark.file);
    if (previous !== undefined) {
      const { guest, out, sender } = previous;
      const what = `restored at ${marks[k - 1].cycle}, run to ${mark.cycle}`;
      assert.equal(marks[k - 1].console + out.text, mark.console, `${what}: console`);
      assert.deepEqual(guest.stats(), mark.stats, `${what}: counters`);
      assert.deepEqual(sender?.().report(), mark.report, `${what}: the client's report`);
      sameState(stateOf(previous), contents.state, `${what}: state`);
      if (Buffer.compare(guest.machine.ram, contents.ram) !== 0)
        assert.fail(`${what}: memory, ${firstDifference(guest.machine.ram, contents.ram)}`);
    }
    const restored = restore(contents, { text: '' });
    const m = restored.guest.machine;
    const next = marks[k + 1];
    if (next !== undefined) {
      assert.equal(m.run(next.cycle).kind, 'cycle-limit');
      assert.equal(m.cpu.cycles, next.cycle, `restored at ${mark.cycle}: stops where the run did`);
      if (resumed) m.resume();
      previous = restored;
      continue;
    }
    const end = m.run(LIMIT * 5);
    const what = `snapshot at ${mark.cycle}`;
    assert.equal(mark.console + restored.out.text, reference.console, `${what}: console`);
    assert.deepEqual(end, reference.end, `${what}: ending`);
    assert.deepEqual(restored.guest.stats(), reference.stats, `${what}: counters`);
    assert.deepEqual(
      restored.sender?.().report(),
      reference.report,
      `${what}: the client's report`,
    );
  }
}

function boot(platform: string, out: { text: string }, path: string): Guest {
  const g = createGuest({
    platform,
    kernel: kernel(path),
    kernelName: 'kernel.elf',
    cmdline: 'init=selftest',
    memoryMb: MEMORY_MB,
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', String(g));
  return g;
}

function finish(g: Guest, out: { text: string }): Outcome {
  const end = g.machine.run(LIMIT);
  return { console: out.text, end, stats: g.stats() };
}

/** Timer interrupts the guest has taken (the l4 port's tick is its receive timeout). */
function timerInterrupts(g: Guest): () => number {
  return () =>
    g.vmm !== undefined
      ? (g.vmm.counters.virtualInterrupts[0x20] ?? 0)
      : g.hypervisor?.name === 'l4'
        ? Number(g.hypervisor.stats().timeouts)
        : g.hypervisor !== undefined
          ? Number(g.hypervisor.stats().upcalls)
          : g.machine.cpu.counters.interrupts;
}

describe('whole-guest snapshots: the self-test continues exactly', { skip }, () => {
  for (const [platform, path, name] of [
    ['none', AFTERBURNED, 'none'],
    ['xen', AFTERBURNED, 'xen'],
    ['xen', PARA, 'xen, the para-virtualized kernel'],
    ['l4', AFTERBURNED, 'l4'],
    ['l4', L4_PARA, 'l4, the para-virtualized kernel'],
  ]) {
    it(`on ${name}`, () => {
      const whole = { text: '' };
      const reference = finish(boot(platform, whole, path), whole);
      assert.match(reference.console, /selftest: PASS/);
      const total = (reference.stats as { machine: { cycles: number } }).machine.cycles;

      // The snapshot run: it stops at each point and is saved there (at its cycle limit).
      const out = { text: '' };
      const g = boot(platform, out, path);
      const m = g.machine;
      const marks: Mark[] = [];
      const save = (): void => {
        const stats = structuredClone(g.stats());
        marks.push({
          cycle: m.cpu.cycles,
          file: writeSnapshot(g.save(), codec),
          console: out.text,
          stats,
        });
      };
      // During boot, early in the test (its kernel part), in the middle, near the end; and just
      // after a timer interrupt reached the guest (its handler running): found by stepping the
      // run in small slices until the guest has taken a few.
      const taken = timerInterrupts(g);
      let inInterrupt = false;
      const shown: string[] = [];
      for (const n of [1_000_000, 8_000_000, Math.round(total / 2), total - 5_000_000]) {
        while (!inInterrupt && m.cpu.cycles + 2_000 < n) {
          assert.equal(m.run(m.cpu.cycles + 2_000).kind, 'cycle-limit');
          if (taken() >= 5) {
            inInterrupt = true;
            save();
          }
          m.resume();
        }
        assert.equal(m.run(n).kind, 'cycle-limit');
        save();
        m.resume();
        shown.push(out.text);
      }
      assert.doesNotMatch(shown[0], /selftest:/, 'the first point is in boot');
      assert.match(shown[1], /selftest: kernel tests/, 'the second is in the kernel tests');
      assert.doesNotMatch(shown[1], /selftest: kernel: \d+ passed/, 'the second is in them');
      assert.doesNotMatch(shown[3], /selftest: PASS/, 'the last is before the end');
      assert.ok(inInterrupt, 'a timer interrupt before the middle of the test');
      assert.deepEqual(finish(g, out), reference, 'the snapshot run ends as the uninterrupted one');

      continueEach(
        marks,
        reference,
        (contents, part) => {
          const restored = restoreGuest(contents, {
            console: (b) => (part.text += String.fromCharCode(b)),
          });
          assert.ok(typeof restored !== 'string', String(restored));
          return { guest: restored, out: part };
        },
        false,
      );
    });
  }
});

/** The netperf payload: big enough that the stream is in full flow at its quarter and half. */
const PAYLOAD = 256 * 1024;

/** A guest with the NIC and the netperf client on its link, as `bench netperf` builds them. */
function netperfGuest(
  platform: string,
  out: { text: string },
  emulated = false,
): { guest: Guest; sender: () => TcpSender } {
  const guest = createGuest({
    platform,
    kernel: kernel(AFTERBURNED),
    kernelName: 'kernel.elf',
    cmdline: 'init=netserver',
    memoryMb: MEMORY_MB,
    nic: emulated ? { emulated: true } : {},
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  assert.ok(typeof guest !== 'string', String(guest));
  return { guest, sender: attachSender(guest, PAYLOAD) };
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
      const refOut = { text: '' };
      const ref = netperfGuest(platform, refOut, emulated);
      const refEnd = ref.guest.machine.run(LIMIT * 5);
      assert.deepEqual(refEnd, { kind: 'exit', value: 0 }, refOut.text);
      const received = new RegExp(
        `netserver: received ${PAYLOAD} bytes in \\d+ ms, crc32 [0-9a-f]{8} ok`,
      );
      assert.match(refOut.text, received);
      const reference: Outcome = {
        console: refOut.text,
        end: refEnd,
        stats: ref.guest.stats(),
        report: ref.sender().report(),
      };

      // The snapshot run, stopped every 100,000 cycles; saved (after it resumed) before the
      // first SYN, a quarter of the way and half way through the stream.
      const out = { text: '' };
      const w = netperfGuest(platform, out, emulated);
      const m = w.guest.machine;
      const marks: Mark[] = [];
      for (const acked of [0, PAYLOAD / 4, PAYLOAD / 2]) {
        do {
          assert.equal(m.run(m.cpu.cycles + 100_000).kind, 'cycle-limit');
          m.resume();
        } while (w.sender().bytesAcked < acked || (acked === 0 && m.cpu.cycles < 2_000_000));
        const report = w.sender().report();
        if (acked === 0) assert.equal(report.times.firstSyn, undefined, 'before the first SYN');
        // Mid-stream, segments are in flight: sent and not yet acknowledged.
        else assert.ok(report.counters.bytesSent > report.counters.bytesAcked, 'bytes in flight');
        marks.push({
          cycle: m.cpu.cycles,
          file: writeSnapshot(w.guest.save(w.sender().save()), codec),
          console: out.text,
          stats: structuredClone(w.guest.stats()),
          report: structuredClone(report),
        });
      }
      const end = m.run(LIMIT * 5);
      assert.deepEqual(
        { console: out.text, end, stats: w.guest.stats(), report: w.sender().report() },
        reference,
        'the snapshot run ends as the uninterrupted one',
      );

      continueEach(
        marks,
        reference,
        (contents, part) => {
          let sender: (() => TcpSender) | undefined;
          const restored = restoreGuest(contents, {
            console: (b) => (part.text += String.fromCharCode(b)),
            restoreExtra: (extra, guest) => {
              sender = attachSender(guest, PAYLOAD);
              sender().restore(extra as ReturnType<TcpSender['save']>);
            },
          });
          assert.ok(typeof restored !== 'string', String(restored));
          return { guest: restored, out: part, sender };
        },
        true,
      );
    });
  }
});

describe('whole-guest snapshots that do not fit', { skip }, () => {
  it('a platform this previrt lacks, another state version, a state of another shape: one line', () => {
    const g = boot('xen', { text: '' }, AFTERBURNED);
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
        changed(() => {}, { ...good.header, stateVersion: 4 }),
        /state version 4 is not supported/,
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
        changed((s) => ((s.config as { memoryMb: number }).memoryMb = 2 * MEMORY_MB)),
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
