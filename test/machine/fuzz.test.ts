// The raw PC's side of DESIGN.md decision 9: the guest kernel boots on previrt's own PC with a
// network (so the DP83820 and its DMA are there too), random bytes go over its code and data,
// and it runs on. Random instructions in ring 0 reach every device with random ports, MMIO and
// DMA descriptors; the run must end as a guest-level outcome, never a host exception.
// PREVIRT_FUZZ_SEEDS=N runs N seeds instead of 40.
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import { createMachine } from '../../src/machine/Machine.ts';
import { scribble, xorshift32 } from '../random.ts';
import { buildSkipReason, kernelPath, loadedRanges, make } from '../guest/guest.ts';

const SEEDS = Number(process.env.PREVIRT_FUZZ_SEEDS ?? 40);

test(
  'a raw guest kernel with random bytes over its code and data never crashes the host',
  { skip: buildSkipReason() },
  () => {
    assert.ok(make('native').ok);
    const kernel = readFileSync(kernelPath('native'));
    const ranges = loadedRanges(kernel); // code first, then data
    const endings = new Map<string, number>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const rand = xorshift32(seed * 104729);
      const machine = createMachine({ memoryMb: 32, network: {}, serialOut: () => {} });
      assert.ok(typeof machine !== 'string', String(machine));
      // The far end of the link answers every frame with random bytes, so the NIC has work.
      machine.link!.attach(1, {
        receive() {
          const f = new Uint8Array(60 + (rand() % 1400));
          for (let k = 0; k < f.length; k++) f[k] = rand() & 0xff;
          machine.link!.send(1, f);
        },
      });
      const error = bootMultiboot(machine, {
        kernel,
        kernelName: 'kernel.elf',
        cmdline: 'init=selftest',
        modules: [],
      });
      assert.equal(error, undefined);
      const hz = machine.costModel.hz;
      const first = machine.run(Math.round(hz * (0.002 + (rand() % 20) / 1000)));
      assert.equal(first.kind, 'cycle-limit');
      machine.resume();
      scribble(ranges, rand, 64, (at, byte) => (machine.ram[at] = byte));
      machine.cpu.invalidateAllCode();
      const end = machine.run(machine.cpu.cycles + Math.round(hz * 0.05));
      assert.ok(
        ['exit', 'triple-fault', 'halted', 'cycle-limit', 'reset'].includes(end.kind),
        `seed ${seed}: ${JSON.stringify(end)}`,
      );
      endings.set(end.kind, (endings.get(end.kind) ?? 0) + 1);
    }
    assert.ok(
      (endings.get('cycle-limit') ?? 0) < SEEDS,
      JSON.stringify(Object.fromEntries(endings)),
    );
    console.log(`endings: ${JSON.stringify(Object.fromEntries(endings))}`);
  },
);
