// Live migration mid-netperf (src/bench/migrate): the afterburned guest with the VMM's DP83820
// model receives a stream from the client machine; mid-stream it moves to the other hypervisor —
// pre-copy rounds while it runs, then stop-and-copy — and the transfer finishes there with
// netserver's CRC the client's. Also: the pre-copy's check catches a dirty log that misses
// writes; a move the destination refuses leaves the source running, and the transfer completes
// there; `previrt bench migrate` refuses bad options with one line and status 2.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { runMigrateBench } from '../../src/bench/migrate/run.ts';
import { MigrationLink, preCopy, stopAndCopy } from '../../src/bench/migrate/precopy.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { captureGuest, resumeGuest, runToSafePoint } from '../../src/platforms/migrate.ts';
import { buildSkipReason, kernelPath, make, previrtAsync } from '../guest/guest.ts';

const skip = buildSkipReason();
const MB = 2 ** 20;

function kernel(): Uint8Array {
  const r = make('afterburned');
  assert.ok(r.ok, r.output);
  return readFileSync(kernelPath('afterburned'));
}

describe('live migration mid-netperf', { skip }, () => {
  it('xen -> l4 with pre-copy: the transfer arrives intact, downtime under 30 ms', () => {
    const r = runMigrateBench({
      path: ['xen', 'l4'],
      kernel: kernel(),
      kernelName: 'kernel.elf',
      payloadBytes: 96 * MB,
      atBytes: [8 * MB],
      seed: 1,
      memoryMb: 64,
    });
    if (typeof r === 'string') assert.fail(r);
    assert.equal(r.ok, true, r.error);
    assert.match(r.resultLine ?? '', /crc32 [0-9a-f]{8} ok$/);
    assert.equal(r.moves.length, 1);
    const m = r.moves[0];
    assert.equal(m.to, 'l4');
    // Round 1 is all of memory, the later ones the working set, the last the stop-and-copy.
    assert.ok(m.rounds.length >= 3, `${m.rounds.length} rounds`);
    assert.ok(m.rounds[0].pages > 15_000);
    assert.ok(m.rounds[1].pages < 1000, `round 2: ${m.rounds[1].pages} pages`);
    assert.equal(m.rounds.at(-1)!.final, true);
    assert.ok(m.downtimeMs > 0 && m.downtimeMs < 30, `downtime ${m.downtimeMs} ms`);
    assert.ok(m.totalMs > 400, `total ${m.totalMs} ms`);
    assert.ok(m.throughputMbps.during > 500 && m.throughputMbps.after > 500);
    // The frames lost in the downtime came again.
    assert.ok(r.retransmissions > 0);
  });

  it('l4 -> xen stop-and-copy: the transfer arrives intact', () => {
    const r = runMigrateBench({
      path: ['l4', 'xen'],
      kernel: kernel(),
      kernelName: 'kernel.elf',
      payloadBytes: 4 * MB,
      atBytes: [1 * MB],
      seed: 2,
      memoryMb: 64,
      preCopy: false,
    });
    if (typeof r === 'string') assert.fail(r);
    assert.equal(r.ok, true, r.error);
    const m = r.moves[0];
    assert.equal(m.rounds.length, 1);
    // All of memory in the downtime: about 60 MB at 1 Gb/s.
    assert.ok(m.downtimeMs > 300, `downtime ${m.downtimeMs} ms`);
  });

  it('a move the destination refuses leaves the source running: the transfer completes there', () => {
    const r = runMigrateBench({
      path: ['xen', 'l4'],
      kernel: kernel(),
      kernelName: 'kernel.elf',
      payloadBytes: 4 * MB,
      atBytes: [1 * MB],
      seed: 3,
      memoryMb: 64,
      preCopy: false,
      destinationMemoryMb: 32,
    });
    if (typeof r === 'string') assert.fail(r);
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /^the move to l4 failed: the destination gives the guest/);
    assert.equal(r.moves.length, 0);
    // netserver, still on xen, got every byte.
    assert.match(r.resultLine ?? '', /received 4194304 bytes in \d+ ms, crc32 [0-9a-f]{8} ok$/);
  });

  it('the pre-copy catches a dirty log that misses writes', () => {
    const g = createGuest({
      platform: 'l4',
      kernel: kernel(),
      kernelName: 'kernel.elf',
      cmdline: 'init=selftest',
      memoryMb: 64,
    });
    if (typeof g === 'string') assert.fail(g);
    g.machine.run(4_000_000);
    const m = g.vmm!.backend.migration!;
    // A source that never reports a page: every page written after round 1 is missed.
    (m as { dirtySource: () => unknown }).dirtySource = () => ({
      start() {},
      collect() {},
      stop() {},
    });
    // A fast link: round 1 (all of memory) takes 5 ms, the self-test runs on meanwhile.
    const link = new MigrationLink(100e9, g.machine.costModel.hz);
    const run = (cycles: number): boolean => {
      g.machine.resume();
      return g.machine.run(g.machine.cpu.cycles + cycles).kind === 'cycle-limit';
    };
    const p = preCopy(g, link, run);
    if (typeof p === 'string') assert.fail(p);
    assert.ok('regs' in runToSafePoint(g, g.machine.cpu.cycles + 1e9));
    const record = captureGuest(g);
    if (typeof record === 'string') assert.fail(record);
    assert.match(String(stopAndCopy(p, record, 0)), /^the pre-copy missed \d+ written pages/);
  });

  for (const [from, to] of [
    ['xen', 'l4'],
    ['l4', 'xen'],
  ])
    it(`the self-test pre-copied from ${from} to ${to} misses no written page and reaches its PASS`, () => {
      let out = '';
      const g = createGuest({
        platform: from,
        kernel: kernel(),
        kernelName: 'kernel.elf',
        cmdline: 'init=selftest',
        memoryMb: 64,
        console: (b) => (out += String.fromCharCode(b)),
      });
      if (typeof g === 'string') assert.fail(g);
      g.machine.run(3_000_000);
      // A fast link: the rounds are short against the self-test, which runs on through them
      // (processes, page tables, timers).
      const link = new MigrationLink(20e9, g.machine.costModel.hz);
      const run = (cycles: number): boolean => {
        g.machine.resume();
        return g.machine.run(g.machine.cpu.cycles + cycles).kind === 'cycle-limit';
      };
      const p = preCopy(g, link, run);
      if (typeof p === 'string') assert.fail(p);
      assert.ok(p.rounds.length >= 1);
      assert.ok('regs' in runToSafePoint(g, g.machine.cpu.cycles + 1e9));
      const record = captureGuest(g);
      if (typeof record === 'string') assert.fail(record);
      const last = stopAndCopy(p, record, 0);
      if (typeof last === 'string') assert.fail(last);
      assert.ok(
        p.sent.every((s) => s === 1),
        'every page went',
      );
      const moved = resumeGuest({ ...record, memory: p.dest }, g.config, to, {
        console: (b) => (out += String.fromCharCode(b)),
      });
      if (typeof moved === 'string') assert.fail(moved);
      assert.deepEqual(moved.machine.run(moved.machine.cpu.cycles + 3e9), {
        kind: 'exit',
        value: 0,
      });
      assert.match(out, /selftest: PASS/);
      assert.doesNotMatch(out, /failed: [1-9]|FAIL/);
    });

  it('previrt bench migrate --json: the move, its downtime and the verdict', async () => {
    kernel();
    const r = await previrtAsync(
      [
        'bench',
        'migrate',
        '--from',
        'l4',
        '--to',
        'xen',
        '--bytes',
        '4M',
        '--at-bytes',
        '1M',
        '--stop-and-copy',
        '--link',
        '10G',
        '--json',
      ],
      { timeout: 300_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      ok: boolean;
      downtimeMs: number[];
      moves: { from: string; to: string; rounds: unknown[] }[];
      retransmissions: number;
    };
    assert.equal(j.ok, true);
    assert.equal(j.moves.length, 1);
    assert.deepEqual([j.moves[0].from, j.moves[0].to], ['l4', 'xen']);
    // About 56 MB of memory at 10 Gb/s.
    assert.ok(j.downtimeMs[0] > 30 && j.downtimeMs[0] < 80, `downtime ${j.downtimeMs[0]} ms`);
  });

  it('previrt bench migrate refuses bad options with one line and status 2', async () => {
    const cases = [
      [['--to', 'l4'], '--from is missing (xen or l4)'],
      [['--from', 'xen', '--to', 'xen'], 'a move from xen to xen'],
      [['--from', 'xen', '--to', 'kvm'], "--to 'kvm' is not xen or l4"],
      [['--from', 'xen', '--to', 'l4,xen'], '2 move(s) need as many --at-bytes marks (got 1)'],
      [['--from', 'l4', '--to', 'xen', '--at-bytes', '64M', '--bytes', '32M'], 'is not below'],
      [['--from', 'l4', '--to', 'xen', '--link', 'fast'], "--link 'fast' is not a rate"],
    ] as const;
    const runs = await Promise.all(
      cases.map(([args]) => previrtAsync(['bench', 'migrate', ...args])),
    );
    for (const [k, [, message]] of cases.entries()) {
      const r = runs[k];
      assert.equal(r.status, 2, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0].startsWith('previrt bench: ') && lines[0].includes(message), lines[0]);
    }
  });
});
