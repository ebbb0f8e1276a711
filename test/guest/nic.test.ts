// The guest's DP83820 driver on previrt's PC with a network: the kernel finds the NIC, gives its
// BARs addresses (there is no firmware), announces itself with a broadcast frame, and receives
// what the far end of the link sends, including after its receive ring has overflowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import { createMachine, type Machine } from '../../src/machine/Machine.ts';
import { withFcs } from '../../src/machine/ethernet/frame.ts';
import { buildSkipReason, kernelPath, make } from './guest.ts';

const PEER_MAC = [0x02, 0, 0, 0, 0, 0x09];

function frameTo(dst: Uint8Array, payload: string): Uint8Array {
  const f = new Uint8Array(64);
  f.set(dst, 0);
  f.set(PEER_MAC, 6);
  f.set([0x88, 0xb5], 12); // IEEE local experimental ethertype
  f.set(new TextEncoder().encode(payload), 14);
  return withFcs(f);
}

interface NetRun {
  machine: Machine;
  console: () => string;
  fromGuest: Uint8Array[];
}

/** Boots `append` with a NIC; the peer answers the guest's first frame with `replies` frames. */
function boot(append: string, replies: number): NetRun {
  assert.ok(make('native').ok);
  let out = '';
  const machine = createMachine({
    serialOut: (b) => (out += String.fromCharCode(b)),
    network: {},
  });
  if (typeof machine === 'string') throw new Error(machine);
  const error = bootMultiboot(machine, {
    kernel: readFileSync(kernelPath('native')),
    kernelName: 'kernel.elf',
    cmdline: append,
    modules: [],
  });
  assert.equal(error, undefined);
  const fromGuest: Uint8Array[] = [];
  machine.link!.attach(1, {
    receive(frame) {
      fromGuest.push(frame.slice());
      if (fromGuest.length === 1)
        for (let i = 0; i < replies; i++) machine.link!.send(1, frameTo(frame.subarray(6, 12), `reply ${i}`));
    },
  });
  return { machine, console: () => out.replace(/\r/g, ''), fromGuest };
}

const noBuild = buildSkipReason();

test('the guest finds the DP83820, announces itself and receives frames', { skip: noBuild }, () => {
  const run = boot('init=sleep -- 5', 3);
  const end = run.machine.run();
  const out = run.console();
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
  assert.match(out, /^pci: 00:03\.0 BAR1 assigned memory [0-9a-f]+ \(4096 bytes\)$/m);
  assert.match(out, /^dp83820: 00:03\.0 irq 11, .*MAC 00:0d:42:00:00:01, link up, 1000 Mb\/s full duplex$/m);
  // The announcement: broadcast, from the NIC's address, ethertype 0x88B5 (60 bytes + FCS).
  assert.equal(run.fromGuest.length, 1);
  const hello = run.fromGuest[0];
  assert.deepEqual([...hello.subarray(0, 14)], [255, 255, 255, 255, 255, 255, 0, 0x0d, 0x42, 0, 0, 1, 0x88, 0xb5]);
  for (let i = 1; i <= 3; i++)
    assert.match(out, new RegExp(`^dp83820: frame ${i}: 64 bytes from 02:00:00:00:00:09 type 88b5$`, 'm'));
  assert.equal(run.machine.nic!.counters.rxFrames, 3);
});

test('after a burst overflows the receive ring, the driver restarts the engine', { skip: noBuild }, () => {
  // 200 minimum-size frames back to back: more than the 32-entry ring and the NIC's FIFO hold.
  const run = boot('init=sleep -- 20', 200);
  run.machine.run(Math.round(run.machine.costModel.hz * 0.01));
  const first = run.machine.nic!.counters.rxFrames;
  assert.ok(first >= 32, `received ${first}`);
  // Later frames must still arrive: the engine went idle on a full ring and was kicked again.
  for (let i = 0; i < 10; i++) run.machine.link!.send(1, frameTo(new Uint8Array([0, 0x0d, 0x42, 0, 0, 1]), `late ${i}`));
  run.machine.resume();
  const end = run.machine.run();
  assert.deepEqual(end, { kind: 'exit', value: 0 }, run.console());
  assert.equal(run.machine.nic!.counters.rxFrames, first + 10);
});
