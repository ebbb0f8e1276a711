// Isolation between two clients of one driver VM, the receive side (xen and l4; README,
// "Isolation"): the guest's netperf transfer beside a second client that stops consuming its
// receive ring while frames for it keep arriving from the wire. Its VMM gives the driver VM no
// receive buffer any more (as a client whose guest takes no frame off its ring), so each frame
// for it is dropped at the driver VM; the guest's transfer must complete intact, lose none of
// its own frames and keep its speed: at least 95% of the same run with the second client
// consuming its frames.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { withFcs } from '../../src/machine/ethernet/frame.ts';
import { TcpSender } from '../../src/net/TcpSender.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { L4Backend } from '../../src/vmm/backends/l4/L4Backend.ts';
import type { XenBackend } from '../../src/vmm/backends/xen/XenBackend.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();

const PAYLOAD = 1 << 20;
/** The second client's MAC (the NIC's plus 2: README, "Several clients"). */
const SECOND_MAC = [0x00, 0x0d, 0x42, 0x00, 0x00, 0x03];
/**
 * Frames for the second client: one full-sized frame every 50 µs (about a quarter of the wire),
 * so that, in the transfer's 10 ms or so, they fill every buffer it had given the driver VM
 * before it stalled (64 on xen, 16 on l4) and more.
 */
const EVERY_NS = 50_000;
/** The most receive buffers a client's VMM has given the driver VM (xen's ring). */
const POSTED = 64;

interface StallRun {
  console: string;
  /** Simulated Mb/s from the client machine's start to netserver's result line. */
  mbps: number;
  /** The client link's counts by client (0 the guest, 1 the second client). */
  clients: Record<string, Record<string, number>>;
  /** Frames the driver VM's NIC took off the wire. */
  nicRx: number;
  framesForSecond: number;
}

/** A UDP datagram of the client machine's for the second client (10.0.2.16, port 9). */
function frameForSecond(seq: number): Uint8Array {
  const f = new Uint8Array(1514);
  f.set(SECOND_MAC, 0);
  f.set([0x02, 0, 0, 0, 0, 0x02], 6);
  f.set([0x08, 0x00], 12);
  f.set(
    [0x45, 0, 0x05, 0xdc, seq >> 8, seq & 0xff, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 16],
    14,
  );
  f.set([0x30, 0x39, 0, 9, 0x05, 0xc8, 0, 0], 34);
  return withFcs(f);
}

function run(platform: 'xen' | 'l4', stall: boolean): StallRun {
  const kernel = readFileSync(kernelPath('afterburned'));
  let out = '';
  let secondOut = '';
  let start = (): void => {};
  const g = createGuest({
    platform,
    kernel,
    kernelName: 'guest.elf',
    cmdline: 'init=netserver',
    nic: {},
    console: (b) => (out += String.fromCharCode(b)),
    driverVm: { kernel, kernelName: 'driver.elf', cmdline: 'init=sh' },
    vms: [
      {
        kernel,
        kernelName: 'second.elf',
        // One frame, then idle (its kernel's stack then takes no frame: only the guest answers
        // the client machine for 10.0.2.15).
        cmdline: 'init=flood -- 10.0.2.16 10.0.2.2 02:00:00:00:00:02 18 1',
        modules: [
          {
            name: 'flood.elf',
            bytes: readFileSync(join(dirname(kernelPath('afterburned')), '../user/flood.elf')),
            string: 'flood.elf',
          },
        ],
        clientOfDriverVm: true,
        console: (b) => {
          secondOut += String.fromCharCode(b);
          if (secondOut.endsWith('\n') && secondOut.includes('flood: sending')) start();
        },
      },
    ],
  });
  assert.ok(typeof g !== 'string', String(g));
  const m = g.machine;
  const hz = m.costModel.hz;
  const sender = new TcpSender({
    clock: m.clock,
    transmit: (frame) => m.link!.send(1, frame),
    payloadBytes: PAYLOAD,
    seed: 5,
  });
  m.link!.attach(1, { receive: (frame) => sender.receive(frame) });
  const second = (g.vms[1].vmm.backend as XenBackend | L4Backend).netFront!;
  let startedAt: number | undefined;
  let endedAt: number | undefined;
  let framesForSecond = 0;
  const feed = (): void => {
    if (endedAt !== undefined) return;
    m.link!.send(1, frameForSecond(framesForSecond++));
    m.clock.at(m.clock.now() + (EVERY_NS * hz) / 1e9, feed, 'test.feed');
  };
  start = () => {
    if (startedAt !== undefined) return;
    startedAt = m.clock.now();
    if (stall) {
      // Its receive side stops: the VMM claims no buffer of its model any more (xen: posts
      // none to the ring; l4: holds none out to the driver VM).
      const front = second as unknown as Record<'postRx' | 'claim', () => void>;
      front[platform === 'xen' ? 'postRx' : 'claim'] = () => {};
    }
    sender.start();
    feed();
  };
  const watch = (): void => {
    if (out.includes('netserver: received')) endedAt ??= m.clock.now();
    else m.clock.at(m.clock.now() + hz / 100_000, watch, 'test.watch');
  };
  m.clock.at(hz / 1000, watch, 'test.watch');
  const end = m.run(hz * 20);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
  assert.ok(startedAt !== undefined && endedAt !== undefined, out);
  const stats = g.stats();
  const link = (stats.vms![0].vmm as Record<string, Record<string, unknown>>).clientLink;
  return {
    console: out,
    mbps: (PAYLOAD * 8) / ((endedAt - startedAt) / hz) / 1e6,
    clients: link.clients as Record<string, Record<string, number>>,
    nicRx: m.nic!.counters.rxFrames,
    framesForSecond,
  };
}

describe('driver reuse, a client that stalls its receive ring beside a transfer', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
    assert.ok(make('user').ok);
  });

  for (const platform of ['xen', 'l4'] as const)
    it(`on ${platform}: the other client's transfer completes intact at full speed`, () => {
      const consuming = run(platform, false);
      const stalled = run(platform, true);
      for (const r of [consuming, stalled])
        assert.match(
          r.console,
          new RegExp(`netserver: received ${PAYLOAD} bytes in \\d+ ms, crc32 [0-9a-f]{8} ok`),
        );
      // Frames for the second client kept coming and the driver VM's NIC took them off the
      // wire; with the stall it dropped them (nowhere to put them), without it delivered them.
      assert.ok(stalled.framesForSecond > 2 * POSTED, `${stalled.framesForSecond} frames`);
      assert.ok(stalled.nicRx >= stalled.framesForSecond, `${stalled.nicRx}`);
      const [s, c] = [stalled.clients['1'], consuming.clients['1']];
      assert.ok(s.delivered <= POSTED, JSON.stringify(stalled.clients));
      assert.ok(
        s.notDelivered >= stalled.framesForSecond - POSTED - 4,
        JSON.stringify(stalled.clients),
      );
      assert.ok(c.delivered >= consuming.framesForSecond - 4, JSON.stringify(consuming.clients));
      assert.equal(c.notDelivered, 0, JSON.stringify(consuming.clients));
      // None of the guest's frames was lost, and its speed is what it was without the stall.
      assert.equal(stalled.clients['0'].notDelivered, 0, JSON.stringify(stalled.clients));
      assert.ok(
        stalled.mbps >= 0.95 * consuming.mbps,
        `${stalled.mbps.toFixed(1)} against ${consuming.mbps.toFixed(1)} Mb/s`,
      );
    });
});
