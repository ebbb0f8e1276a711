// Whole-guest snapshots on every platform (src/platforms/snapshot.ts): "run to N, snapshot,
// restore, run on" gives the same console output, ending, cycles, instructions and every counter
// as the uninterrupted run — the self-test raw and on xen at points in boot, in the middle of the
// test and around timer interrupts, through the snapshot file's bytes (src/snapshot/file.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import { readSnapshot, writeSnapshot, type Codec } from '../../src/snapshot/file.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

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

function boot(platform: string, out: { text: string }): Guest {
  const g = createGuest({
    platform,
    kernel: readFileSync(kernelPath('afterburned')),
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
  for (const platform of ['none', 'xen']) {
    it(`on ${platform}`, () => {
      assert.ok(make('afterburned').ok);
      const whole = { text: '' };
      const reference = finish(boot(platform, whole), whole);
      assert.match(reference.console, /selftest: PASS/);
      const total = (reference.stats as { machine: { cycles: number } }).machine.cycles;
      // Just after a timer interrupt reached the guest (its handler running): found by stepping
      // a run in small slices until the guest has taken a few.
      const probe = boot(platform, { text: '' });
      const taken = (): number =>
        probe.vmm === undefined
          ? probe.machine.cpu.counters.interrupts
          : (probe.vmm.counters.virtualInterrupts[0x20] ?? 0);
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
        const g = boot(platform, part1);
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
