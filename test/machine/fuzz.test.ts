// The raw PC's side of DESIGN.md decision 9: the guest kernel boots on previrt's own PC with a
// network (so the DP83820 and its DMA are there too), random bytes go over its code and data,
// and it runs on. Random instructions in ring 0 reach every device with random ports, MMIO and
// DMA descriptors. Each run must
//   - never throw on the host (a failure names the seed: PREVIRT_FUZZ_SEED=S runs just that one,
//     PREVIRT_FUZZ_SEEDS=N seeds 1 to N instead of 40);
//   - end in a way the wrecked kernel explains: an exit the guest wrote (the kernel's own exit
//     code when its last words were a shutdown), a triple fault after a double fault, a halt
//     that nothing can wake, a reset, or the cycle limit only once the clock reached it;
//   - leave a machine whose snapshot restores (through the snapshot file) to the same state, and
//     a guest still running at the limit runs on from its snapshot exactly as it does itself;
// and across the seeds the damage must show: not every run reaches the cycle limit, some
// triple-fault, some exit, some go on running. (250 seeds took 57 s on a busy 2-core machine and
// ended 154 exits, 63 triple faults, 6 halts, 27 still running at the limit.)
// The machine has 16 MB (the kernel needs no more): every seed builds and snapshots a fresh one,
// and the host's cost of that grows with the memory it touches.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { EthernetLink } from '../../src/machine/ethernet/link.ts';
import type { EndReason } from '../../src/machine/Machine.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import {
  assertSameState,
  cycleLimitProblem,
  fuzzSeeds,
  snapshotRoundTrip,
  withSeed,
} from '../guestFuzz.ts';
import { buildSkipReason, kernelPath, loadedRanges, make } from '../guest/guest.ts';
import { scribble, xorshift32, xorshiftStep } from '../random.ts';

const SEEDS = fuzzSeeds(40);
/** After the scribble, the wrecked kernel gets 50 ms; one still running gets 2 ms more twice. */
const WRECKED_MS = 50;
const ON_MS = 2;

/**
 * The far end of the link: answers every frame with random bytes, so the NIC has work. Its
 * generator's state goes into the snapshot beside the machine.
 */
class NoisyPeer {
  constructor(
    private readonly link: EthernetLink,
    public state: number,
  ) {
    link.attach(1, { receive: () => this.answer() });
  }

  private answer(): void {
    const next = (): number => (this.state = xorshiftStep(this.state));
    const f = new Uint8Array(60 + (next() % 1400));
    for (let k = 0; k < f.length; k++) f[k] = next() & 0xff;
    this.link.send(1, f);
  }
}

interface Booted {
  guest: Guest;
  peer: NoisyPeer;
  out: { text: string };
}

function capture(into: { text: string }): (b: number) => void {
  return (b) => {
    if (into.text.length < 100_000) into.text += String.fromCharCode(b);
  };
}

/** Why `end` is not an ending the wrecked kernel can explain, or undefined if it is. */
function unexplained(b: Booted, end: EndReason, limit: number): string | undefined {
  const { machine } = b.guest;
  const stats = b.guest.stats().machine;
  const clock = cycleLimitProblem(b.guest, end, limit);
  if (clock !== undefined) return clock;
  switch (end.kind) {
    case 'exit': {
      if (!Number.isInteger(end.value) || end.value < 0 || end.value > 0xffffffff)
        return `exit value ${end.value}`;
      if (stats.cpu.ioWrites === 0) return 'an exit without a port write';
      // The kernel's shutdown() prints its code, then writes its low byte to isa-debug-exit.
      const last = /kernel: shutdown, exit code (-?\d+)\r?\n$/.exec(b.out.text);
      if (last !== null && end.value !== (Number(last[1]) & 0xff))
        return `the kernel shut down with code ${last[1]}, the run ended with ${end.value}`;
      return undefined;
    }
    case 'triple-fault':
      // The only way the raw CPU shuts down (SDM 3A 6.15, interrupt 8).
      if (!/^triple fault: exception \d+ while delivering a double fault$/.test(end.detail))
        return `triple fault '${end.detail}'`;
      if (stats.cpu.exceptions[8] === 0) return 'a triple fault without a double fault';
      return undefined;
    case 'halted':
      if (!machine.cpu.halted) return 'halted, but the CPU is not';
      if (machine.cpu.interruptsEnabled && machine.clock.next() !== undefined)
        return 'halted with interrupts on and an event to come';
      return undefined;
    case 'reset':
      return stats.cpu.ioWrites === 0 ? 'a reset without a port write' : undefined;
    case 'cycle-limit':
      return undefined;
  }
}

test(
  'a raw guest kernel with random bytes over its code and data: no host exception, an ending it explains, a snapshot that restores',
  { skip: buildSkipReason() },
  () => {
    assert.ok(make('native').ok);
    const kernel = readFileSync(kernelPath('native'));
    const ranges = loadedRanges(kernel); // code first, then data
    const endings = new Map<string, number>();
    let ranOn = 0;
    for (const seed of SEEDS) {
      withSeed(import.meta.filename, seed, () => {
        const rand = xorshift32(seed * 104729);
        const out = { text: '' };
        const guest = createGuest({
          platform: 'none',
          kernel,
          kernelName: 'kernel.elf',
          cmdline: 'init=selftest',
          memoryMb: 16,
          nic: {},
          console: capture(out),
        });
        assert.ok(typeof guest !== 'string', String(guest));
        const b: Booted = { guest, peer: new NoisyPeer(guest.machine.link!, seed), out };
        const { machine } = guest;
        const hz = machine.costModel.hz;
        // Boot part of the way (the point differs by seed), then wreck the kernel.
        const first = machine.run(Math.round(hz * (0.002 + (rand() % 20) / 1000)));
        assert.equal(first.kind, 'cycle-limit', out.text);
        machine.resume();
        scribble(ranges, rand, 64, (at, byte) => (machine.ram[at] = byte));
        // The CPU caches decoded code: the host wrote guest memory behind its back.
        machine.cpu.invalidateAllCode();
        const limit = machine.cpu.cycles + Math.round((hz * WRECKED_MS) / 1000);
        const end = machine.run(limit);
        const why = unexplained(b, end, limit);
        assert.equal(why, undefined, `${JSON.stringify(end)}\n${out.text.slice(-2000)}`);
        endings.set(end.kind, (endings.get(end.kind) ?? 0) + 1);

        // The snapshot of the wrecked machine, with the peer's generator beside it.
        const copy: Booted = { guest, peer: b.peer, out: { text: '' } };
        copy.guest = snapshotRoundTrip(guest, b.peer.state, {
          console: capture(copy.out),
          restoreExtra: (extra, g) => (copy.peer = new NoisyPeer(g.machine.link!, extra as number)),
        });
        if (end.kind !== 'cycle-limit') {
          assert.deepEqual(
            copy.guest.machine.run(limit),
            end,
            'the restored machine ends as it did',
          );
          return;
        }
        // Still running: both go on, and must stay the same.
        ranOn++;
        out.text = '';
        const onLimit = limit + Math.round((hz * ON_MS) / 1000);
        const ends = [b, copy].map((x) => x.guest.machine.run(onLimit));
        assert.deepEqual(ends[1], ends[0], 'the restored guest ends as the original');
        assert.equal(copy.peer.state, b.peer.state, 'the peer got the same frames');
        assert.equal(copy.out.text, out.text, 'the restored guest prints the same');
        assert.deepEqual(copy.guest.stats(), guest.stats(), 'the same counters');
        assertSameState(copy.guest, guest, `run on ${ON_MS} ms from the snapshot`);
      });
    }
    const summary = JSON.stringify({ ...Object.fromEntries(endings), ranOn });
    if (SEEDS.length >= 20) {
      // The damage is real and varied: the kernel panics or writes the exit port, the CPU
      // triple-faults, and some runs go on (so the snapshot was checked running, too).
      assert.ok((endings.get('cycle-limit') ?? 0) < SEEDS.length, summary);
      assert.ok((endings.get('triple-fault') ?? 0) > 0, summary);
      assert.ok((endings.get('exit') ?? 0) > 0, summary);
      assert.ok(ranOn > 0, summary);
    }
    console.log(`endings: ${summary}`);
  },
);
