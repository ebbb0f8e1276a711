// Driver reuse on l4 (issue "reuse", the seed's platform): the afterburned guest reaches the
// network through a driver VM of the resource monitor that runs the same kernel binary with the
// real DP83820 passed through and its translation module on the VMM's client link. The two VMMs
// talk by IPC (src/vmm/backends/l4/netChannel.ts): a netperf transfer arrives intact, received
// frames in IPCs of up to 16 string items into the guest's own buffers, every sent frame read
// by the driver VM's NIC from the guest's buffer through the resource monitor's DMA window (no
// copy), transmit requests and completions batched at iret or idle; the run is deterministic;
// only a driver VM the toolstack named gets a client's memory; a client that relays bad buffer
// addresses gets errors for those frames only.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { RmOp } from '../../src/hypervisor/l4/abi.ts';
import type { L4Kernel } from '../../src/hypervisor/l4/L4.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { L4Backend } from '../../src/vmm/backends/l4/L4Backend.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { attachSender } from './client.ts';
import { assertStallSlowsOnlyTheClient, count, reuseGuest, reuseRun } from './reuseRuns.ts';

const skip = buildSkipReason();

describe('driver reuse on l4', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
  });

  it('carries a netperf transfer through the driver VM: RX by string IPCs, TX by the DMA window', () => {
    const lines: string[] = [];
    const r = reuseRun('l4', 1 << 20, lines);
    assert.ok(r.ok, r.error);
    assert.ok(
      lines.some((l) => /^\[driver VM\] bridge: .* 1 client 00:0d:42:00:00:02$/.test(l)),
      lines.join('\n'),
    );
    const v = r.counters.virtualization!;
    const rx = r.counters.nic.rxFrames;
    const tx = r.counters.nic.txFrames;
    const driver = (v.vms ?? {})['driver.elf'];
    // Every frame off the wire went to the guest (over the interval: the frame the NIC took
    // last may not be delivered yet when it ends), several in one message: the driver VM's
    // messages (frames and completions) are far fewer than the frames.
    const delivered = count(driver, 'clientLink.delivered');
    assert.ok(delivered >= rx - 1 && delivered <= rx, `delivered ${delivered}, NIC received ${rx}`);
    assert.equal(count(driver, 'clientLink.notDelivered'), 0);
    const sent = count(driver, 'netBack.0.messages');
    assert.ok(sent > 0 && sent < delivered / 2, `${sent} messages for ${delivered} frames`);
    // Every frame the guest sent went out of its own buffer: offered once, sent by the NIC.
    const offered = count(driver, 'clientLink.offered');
    assert.ok(offered >= tx - 1 && offered <= tx + 1, `offered ${offered}, NIC sent ${tx}`);
    assert.equal(count(driver, 'netBack.0.frames'), offered);
    assert.equal(count(driver, 'netBack.0.dropped'), 0);
    // Batched: far fewer transmit messages than frames sent.
    const messages = count(v.vmm, 'netFront.messages');
    assert.ok(messages > 0 && messages < tx / 2, `${messages} messages for ${tx} frames`);
    assert.equal(count(v.vmm, 'netFront.dropped'), 0);
    assert.equal(count(v.hypervisor, 'dmaRefused'), 0);
  });

  it('is deterministic', () => {
    const a = reuseRun('l4', 256 << 10);
    const b = reuseRun('l4', 256 << 10);
    assert.ok(a.ok && b.ok, `${a.error} ${b.error}`);
    assert.equal(a.intervalCycles, b.intervalCycles);
    assert.equal(a.busyCycles, b.busyCycles);
    assert.deepEqual(a.counters, b.counters);
  });

  it('sends a waiting frame before the NIC writes into its buffer', () => {
    // A frame for the client waits in the driver VM's NIC buffer for more to go with it; the
    // NIC's next write there (it got the buffer back) sends it first, intact.
    const g = reuseGuest('l4');
    const client = g.vmm!.backend as L4Backend;
    const driver = g.vms![0].vmm.backend as L4Backend;
    g.machine.run(50_000_000);
    const back = driver.clientLink!.backs[0];
    const waiting = {
      get length(): number {
        return (back as unknown as { pending: unknown[] }).pending.length;
      },
    };
    const frame = Uint8Array.from({ length: 60 }, (_, k) => (k < 6 ? [2, 0, 0, 0, 0, 9][k] : k));
    const at = 0x100000;
    g.machine.ram.set(frame, driver.vm.base + at);
    const before = client.netFront!.counters.frames;
    assert.ok(back.deliver(at, frame.length));
    assert.equal(waiting.length, 1);
    back.dmaWrite(at + 16, 4);
    assert.equal(waiting.length, 0);
    assert.equal(client.netFront!.counters.frames, before + 1);
    // A write elsewhere sends nothing early.
    assert.ok(back.deliver(at, frame.length));
    back.dmaWrite(at + 4096, 64);
    assert.equal(waiting.length, 1);
  });

  it("gives a client's memory only to the driver VM the toolstack named", () => {
    const g = reuseGuest('l4');
    const client = g.vmm!.backend as L4Backend;
    const driver = g.vms![0].vmm.backend as L4Backend;
    g.machine.run(50_000_000);
    // The client asking for the driver VM's memory, or the driver VM for a VM it does not
    // serve (itself, one that does not exist): refused.
    assert.equal(client.rmCall(RmOp.clientDma, [driver.vm.id]), undefined);
    assert.equal(driver.rmCall(RmOp.clientDma, [driver.vm.id]), undefined);
    assert.equal(driver.rmCall(RmOp.clientDma, [7]), undefined);
    const window = driver.rmCall(RmOp.clientDma, [client.vm.id]);
    assert.ok(window !== undefined && window[0] >= driver.vm.size && window[0] % 0x10000000 === 0);
  });

  it("a client's bad buffer addresses are errors for those frames, not the driver VM's", () => {
    // A client VMM that relays every 7th packet with an address outside its memory: the driver
    // VM's VMM fails that packet (its NIC never sees the address), TCP recovers, and the
    // transfer arrives intact; the driver VM goes on serving.
    let out = '';
    const g = reuseGuest('l4', (b) => (out += String.fromCharCode(b)));
    const front = (g.vmm!.backend as L4Backend).netFront!;
    type Packet = { id: number; parts: { address: number }[] };
    const queued = (front as unknown as { queued: Packet[] }).queued;
    const push = queued.push.bind(queued);
    let packets = 0;
    queued.push = (...items: Packet[]) => {
      for (const p of items) if (++packets % 7 === 0) p.parts[0].address = 0x7ff00000;
      return push(...items);
    };
    attachSender(g, 256 << 10, 5);
    const end = g.machine.run(2_800_000_000 * 20);
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
    assert.match(out, /netserver: received 262144 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
    // The driver VM's side refused those packets before its NIC saw them.
    const l4 = g.hypervisor as L4Kernel;
    assert.equal(l4.counters.dmaRefused, 0);
    const stats = g.stats();
    const driver = stats.vms![0].vmm as unknown as {
      netBack: Record<string, Record<string, number>>;
      clientLink: Record<string, number>;
    };
    // (Its dropped frames also count the frames for the client it could not deliver.)
    const dropped = driver.netBack['0'].dropped - driver.clientLink.notDelivered;
    assert.ok(dropped > 0 && dropped === Math.floor(packets / 7), `${dropped} of ${packets}`);
    assert.equal((g.vms![0].vmm.backend as L4Backend).vm.state, 'running');
  });

  it('a client that stalls its receive buffers slows only itself: the driver VM goes on', () => {
    // The client's VMM holds out no receive buffer for 20 simulated ms mid-transfer: frames for
    // it are dropped at the driver VM (the IPC finds no string buffer), whose NIC and module go
    // on; when the client takes buffers again, TCP recovers.
    let out = '';
    const g = reuseGuest('l4', (b) => (out += String.fromCharCode(b)));
    const front = (g.vmm!.backend as L4Backend).netFront!;
    const patched = front as unknown as { claim(): void };
    const claim = patched.claim.bind(front);
    assertStallSlowsOnlyTheClient(
      g,
      () => out,
      () => (patched.claim = () => {}),
      () => {
        patched.claim = claim;
        front.rxKick();
      },
    );
    assert.equal((g.vms![0].vmm.backend as L4Backend).vm.state, 'running');
  });
});

// The custom driver (guest/arch/l4-para/netfront.c): the kernel para-virtualized for l4 talks
// to the driver VM's VMM itself, by IPC: its transmit messages at its waits, frames into its
// receiver threads' buffers by string items, completions to its kernel thread.
describe('driver reuse on l4, custom driver', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok && make('l4-para').ok);
  });

  it("carries a netperf transfer through the driver VM from the para-virtualized kernel's own driver", () => {
    const lines: string[] = [];
    const r = reuseRun('l4', 1 << 20, lines, kernelPath('l4-para'));
    assert.ok(r.ok, r.error);
    const text = lines.join('\n');
    const option =
      /boot: command line 'init=netserver l4net=([0-9a-f]+),([0-9a-f]+),00:0d:42:00:00:02'/;
    const [, monitor, helper] = option.exec(text) ?? assert.fail(text);
    assert.match(
      text,
      new RegExp(
        `^netfront: driver VM monitor ${monitor}, helper ${helper}, 4 receivers, MAC 00:0d:42:00:00:02$`,
        'm',
      ),
    );
    assert.match(text, /^\[driver VM\] bridge: .* 1 client 00:0d:42:00:00:02$/m);
    const v = r.counters.virtualization!;
    assert.deepEqual(v.vmm, {}, 'the client has no VMM');
    const rx = r.counters.nic.rxFrames;
    const tx = r.counters.nic.txFrames;
    const driver = (v.vms ?? {})['driver.elf'];
    // Every frame off the wire reached a receiver thread, and in order: nothing was sent twice.
    const delivered = count(driver, 'clientLink.delivered');
    assert.ok(delivered >= rx - 1 && delivered <= rx, `delivered ${delivered}, NIC received ${rx}`);
    assert.equal(count(driver, 'clientLink.notDelivered'), 0);
    assert.equal(r.sender.counters.retransmissions, 0);
    // Several frames in one message to a receiver thread.
    const sent = count(driver, 'netBack.0.messages');
    assert.ok(sent > 0 && sent < delivered / 2, `${sent} messages for ${delivered} frames`);
    // Every frame the guest sent went out of its own buffer through the DMA window.
    const offered = count(driver, 'clientLink.offered');
    assert.ok(offered >= tx - 1 && offered <= tx + 1, `offered ${offered}, NIC sent ${tx}`);
    assert.equal(count(driver, 'netBack.0.frames'), offered);
    assert.equal(count(driver, 'netBack.0.dropped'), 0);
    assert.equal(count(v.hypervisor, 'dmaRefused'), 0);
    // Its transmit messages are batched: fewer IPCs of all kinds than frames both ways, twice.
    const ipc = count(v.hypervisor, 'syscalls.ipc');
    assert.ok(ipc < 2 * (rx + tx) * 2, `${ipc} IPCs for ${rx + tx} frames`);
  });

  it('is deterministic', () => {
    const a = reuseRun('l4', 256 << 10, undefined, kernelPath('l4-para'));
    const b = reuseRun('l4', 256 << 10, undefined, kernelPath('l4-para'));
    assert.ok(a.ok && b.ok, `${a.error} ${b.error}`);
    assert.equal(a.intervalCycles, b.intervalCycles);
    assert.deepEqual(a.counters, b.counters);
  });

  it('says why in one line when its option is wrong, and the kernel goes on without a network', () => {
    for (const [option, message] of [
      ['l4net=zz', /^netfront: bad option 'l4net=zz' \(want MONITOR,HELPER,aa:bb:cc:dd:ee:ff\)$/m],
      ['l4net=4008001,4004001,00:0d:42', /^netfront: bad option 'l4net=4008001,4004001,00:0d:42'/m],
      // A driver VM that is not there: its messages never come, the kernel's go nowhere.
      [
        'l4net=1234001,1238001,00:0d:42:00:00:09',
        /^netfront: no driver VM thread 1234001\/1238001: no network$/m,
      ],
    ] as const) {
      let out = '';
      const g = createGuest({
        platform: 'l4',
        kernel: readFileSync(kernelPath('l4-para')),
        kernelName: 'guest.elf',
        cmdline: `init=selftest ${option}`,
        console: (b) => (out += String.fromCharCode(b)),
      });
      assert.ok(typeof g !== 'string', String(g));
      const end = g.machine.run(2_800_000_000 * 5);
      assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
      assert.match(out, message);
      assert.match(out, /selftest: PASS/);
    }
  });
});
