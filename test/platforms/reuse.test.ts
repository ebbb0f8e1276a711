// Driver reuse on xen (issue "reuse"): the afterburned guest reaches the network through a driver
// VM that runs the same kernel binary with the real DP83820 passed through and its translation
// module (guest/kernel/bridge.c) on the VMM's client link. The guest's unmodified driver runs
// against the VMM's DP83820 model; a netperf transfer arrives intact, every received frame by
// one grant copy into the guest's own buffer, every sent frame from the guest's buffer through
// a grant mapping (no copy), notifications batched, the grant references balanced and the frame
// table's audit clean at the end; the run is deterministic. Configurations it cannot serve get
// one line, from createGuest and from the CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { L4Kernel } from '../../src/hypervisor/l4/L4.ts';
import type { XenHypervisor } from '../../src/hypervisor/xen/Xen.ts';
import type { L4Backend } from '../../src/vmm/backends/l4/L4Backend.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Dp83820 } from '../../src/machine/devices/dp83820/Dp83820.ts';
import { TcpSender } from '../../src/net/TcpSender.ts';
import { REG } from '../../src/machine/devices/dp83820/registers.ts';
import type { XenBackend } from '../../src/vmm/backends/xen/XenBackend.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { attachSender } from './client.ts';
import {
  assertOnlyTheRingStaysGranted,
  assertStallSlowsOnlyTheClient,
  count,
  reuseGuest,
  reuseRun,
} from './reuseRuns.ts';

const skip = buildSkipReason();

describe('driver reuse on xen', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
  });

  it('carries a netperf transfer through the driver VM: RX by grant copy, TX by grant map', () => {
    const lines: string[] = [];
    const r = reuseRun('xen', 1 << 20, lines);
    assert.ok(r.ok, r.error);
    assert.ok(
      lines.some((l) => /^\[driver VM\] bridge: .* 1 client 00:0d:42:00:00:02$/.test(l)),
      lines.join('\n'),
    );
    const v = r.counters.virtualization!;
    const rx = r.counters.nic.rxFrames;
    const tx = r.counters.nic.txFrames;
    // Every frame off the wire reached the guest by one grant copy of its bytes (over the
    // interval: the frame the NIC took last may not be copied yet when it ends).
    const copies = count(v.hypervisor, 'grants.copies');
    assert.ok(copies >= rx - 1 && copies <= rx, `copies ${copies}, NIC received ${rx}`);
    const bytes = count(v.hypervisor, 'grants.copiedBytes');
    const rxBytes = r.counters.nic.rxBytes;
    assert.ok(bytes <= rxBytes && bytes >= rxBytes - 1514, `copied ${bytes} of ${rxBytes}`);
    const driver = (v.vms ?? {})['driver.elf'];
    assert.equal(count(driver, 'clientLink.delivered'), copies);
    assert.equal(count(driver, 'clientLink.notDelivered'), 0);
    // Every frame the guest sent went out of its own buffer: mapped once, sent by the NIC.
    const mapped = count(v.hypervisor, 'grants.maps');
    assert.ok(mapped >= tx - 1 && mapped <= tx + 1, `maps ${mapped}, NIC sent ${tx}`);
    assert.equal(count(v.vmm, 'netFront.frames'), mapped);
    assert.equal(count(v.vmm, 'netFront.dropped'), 0);
    // Batched and suppressed notifications: far fewer events than frames.
    const sent = count(v.vmm, 'netFront.notifications');
    assert.ok(sent > 0 && count(v.vmm, 'netFront.suppressed') > sent);
    assert.ok(count(v.hypervisor, 'interdomainEvents') < (rx + tx) / 2);
    // The two domains' busy cycles make up the machine's.
    const busy =
      count(v.hypervisor, 'scheduler.busyCycles.dom0') +
      count(v.hypervisor, 'scheduler.busyCycles.dom1');
    assert.equal(busy, r.busyCycles);
  });

  it('is deterministic, and leaves the frame table and the grants consistent', () => {
    const a = reuseRun('xen', 256 << 10);
    const b = reuseRun('xen', 256 << 10);
    assert.ok(a.ok && b.ok, `${a.error} ${b.error}`);
    assert.equal(a.intervalCycles, b.intervalCycles);
    assert.equal(a.busyCycles, b.busyCycles);
    assert.deepEqual(a.counters, b.counters);

    // After a run: only the ring and what is in flight stay granted; the audit is clean.
    assertOnlyTheRingStaysGranted(kernelPath('afterburned'));
  });

  it("a client's bad requests are errors for the client, not the driver VM", () => {
    // A client VMM that gets some grants wrong (every 7th TX buffer not granted): the driver VM
    // cannot map those, answers them with an error, and goes on; the client's driver sees a
    // transmit error for them, TCP recovers, and the transfer arrives intact.
    let out = '';
    const g = reuseGuest('xen', (b) => (out += String.fromCharCode(b)));
    const front = (g.vmm!.backend as XenBackend).netFront!;
    const real = front as unknown as { grant(ref: number, mfn: number, ro: boolean): void };
    const grant = real.grant.bind(front);
    let txGrants = 0;
    real.grant = (ref, mfn, ro) => {
      if (ro && ++txGrants % 7 === 0) return; // the entry stays empty: no access granted
      grant(ref, mfn, ro);
    };
    const m = g.machine;
    attachSender(g, 256 << 10, 5);
    const end = m.run(2_800_000_000 * 20);
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
    assert.match(out, /netserver: received 262144 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
    const stats = g.stats();
    const driver = stats.vms![0].vmm as Record<string, Record<string, Record<string, number>>>;
    const dropped = driver.netBack['0'].dropped;
    assert.ok(dropped > 0 && dropped === Math.floor(txGrants / 7), `${dropped} of ${txGrants}`);
    const xen = g.hypervisor as XenHypervisor;
    assert.ok(xen.grantCounters.errors >= dropped);
    assert.deepEqual(xen.frames.audit(xen.domains), []);
    // The driver VM did not crash: it is still there, serving.
    assert.ok(xen.domains[0].alive);
  });

  it('a client that stalls its receive ring slows only itself: the driver VM goes on', () => {
    // The client's VMM posts no receive buffers for 20 simulated ms mid-transfer: frames for it
    // are dropped at the driver VM (its link has nowhere to put them), whose NIC and module go on
    // taking frames off the wire; when the client posts again, TCP recovers.
    let out = '';
    const g = reuseGuest('xen', (b) => (out += String.fromCharCode(b)));
    const front = (g.vmm!.backend as XenBackend).netFront!;
    const patched = front as unknown as { postRx(): void };
    const postRx = patched.postRx.bind(front);
    assertStallSlowsOnlyTheClient(
      g,
      () => out,
      () => (patched.postRx = () => {}),
      () => {
        patched.postRx = postRx;
        front.rxKick();
      },
    );
    assert.ok((g.hypervisor as XenHypervisor).domains[0].alive);
  });

  it("keeps the hold-off the guest's driver programs, and lets a client sleep through it", () => {
    // The guest's driver sets IHR to 200 µs (as Linux's ns83820): after each ISR read no
    // interrupt for 200 µs, then at once if the chip has one. The VMM's model has no clock event
    // for it while the guest runs, and a client asleep in a hold-off asks the driver VM for no
    // events; neither may move an interrupt before the hold-off's end, nor (the guest asleep)
    // after it.
    let out = '';
    const g = reuseGuest('xen', (b) => (out += String.fromCharCode(b)));
    const model = g.vmm!.platform.emulated[0] as Dp83820;
    const clock = g.vmm!.platform.clock;
    const HOLDOFF_NS = 200_000;
    const chip = model as unknown as {
      read(offset: number, size: 4): number;
      updateLine(): void;
      lineLevel: boolean;
      holdoffUntil: number;
      get(reg: number): number;
    };
    let lastIsrRead = -Infinity;
    let waitingSince: number | undefined;
    const early: number[] = [];
    const late: number[] = [];
    const read = chip.read.bind(model);
    chip.read = (offset, size) => {
      if ((offset & ~3) === REG.ISR) lastIsrRead = clock.now();
      return read(offset, size);
    };
    const updateLine = chip.updateLine.bind(model);
    chip.updateLine = () => {
      const was = chip.lineLevel;
      updateLine();
      const waiting = (chip.get(REG.ISR) & chip.get(REG.IMR)) !== 0;
      if (!was && chip.lineLevel) {
        const now = clock.now();
        if (now < lastIsrRead + HOLDOFF_NS) early.push(now - lastIsrRead);
        late.push(now - Math.max(chip.holdoffUntil, waitingSince ?? now));
        waitingSince = undefined;
      } else if (!chip.lineLevel && waiting && waitingSince === undefined)
        waitingSince = clock.now();
    };
    // The driver VM's events for the client while it sleeps in a hold-off: there are none.
    const xen = g.hypervisor as XenHypervisor;
    const front = (g.vmm!.backend as XenBackend).netFront!;
    const client = xen.domains[1];
    let wokenInHoldoff = 0;
    const setPending = xen.setPending.bind(xen);
    xen.setPending = (dom, port) => {
      const asleep = dom === client && dom.state === 'blocked';
      if (asleep && port === front.eventPort && model.holdoffEnd() !== undefined) wokenInHoldoff++;
      setPending(dom, port);
    };
    attachSender(g, 512 << 10, 5);
    const end = g.machine.run(2_800_000_000 * 20);
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
    assert.match(out, /netserver: received 524288 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
    assert.deepEqual(early, [], 'no interrupt inside a hold-off');
    assert.ok(late.length > 20, `${late.length} interrupts`);
    // Where the chip would raise it, give or take the VMM's own work (a few µs); at the latest
    // the guest's next timer tick (1 ms).
    const onTime = late.filter((ns) => ns < 5_000).length;
    assert.ok(onTime >= late.length * 0.9, `${onTime} of ${late.length} on time: ${late}`);
    assert.ok(Math.max(...late) <= 1_000_000, `${Math.max(...late)} ns late`);
    assert.equal(wokenInHoldoff, 0);
  });

  it('says why it cannot serve a configuration', () => {
    const kernel = readFileSync(kernelPath('afterburned'));
    const driverVm = { kernel, kernelName: 'driver.elf' };
    const base = { kernel, kernelName: 'guest.elf', driverVm };
    assert.match(String(createGuest({ ...base, platform: 'xen' })), /needs a network/);
    assert.match(
      String(createGuest({ ...base, platform: 'none', nic: {} })),
      /driver VM needs a hypervisor \(--hypervisor xen or l4\)/,
    );
    const cli = (args: string[]): { status: number | null; stderr: string } => {
      const r = spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], {
        encoding: 'utf8',
      });
      return { status: r.status, stderr: r.stderr };
    };
    const k = kernelPath('afterburned');
    let r = cli(['--hypervisor', 'xen', '--kernel', k, '--driver-vm', k]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--driver-vm needs --nic dp83820/);
    r = cli(['--hypervisor', 'xen', '--kernel', k, '--nic', 'dp83820', '--driver-vm', '/no/such']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /\/no\/such/);
  });
});

// Several clients of one driver VM (xen and l4): an extra VM of the configuration on a
// connection of its own, served by the same client link and module beside the guest.
describe('driver reuse, two clients', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
    assert.ok(make('user').ok);
  });

  for (const platform of ['xen', 'l4'] as const)
    it(`serves a second client VM beside the guest on ${platform}: each its own MAC, memory window and connection`, () => {
      twoClients(platform);
    });

  function twoClients(platform: 'xen' | 'l4'): void {
    const kernel = readFileSync(kernelPath('afterburned'));
    let out = '';
    let driverOut = '';
    let secondOut = '';
    // The second client must not answer the client machine's ARP for 10.0.2.15 (both kernels
    // have that address): it runs flood quietly (one frame, then idle; its kernel's stack then
    // takes no frames), and the client machine starts once that frame has gone.
    let start = (): void => {};
    const g = createGuest({
      platform,
      kernel,
      kernelName: 'guest.elf',
      cmdline: 'init=netserver',
      nic: {},
      console: (b) => (out += String.fromCharCode(b)),
      driverVm: {
        kernel,
        kernelName: 'driver.elf',
        cmdline: 'init=sh',
        console: (b) => (driverOut += String.fromCharCode(b)),
      },
      vms: [
        {
          kernel,
          kernelName: 'second.elf',
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
            if (secondOut.includes('flood: sending')) start();
          },
        },
      ],
    });
    assert.ok(typeof g !== 'string', String(g));
    const m = g.machine;
    const sender = new TcpSender({
      clock: m.clock,
      transmit: (frame) => m.link!.send(1, frame),
      payloadBytes: 1 << 20,
      seed: 5,
    });
    m.link!.attach(1, { receive: (frame) => sender.receive(frame) });
    start = () => sender.start();
    const end = g.machine.run(2_800_000_000 * 10);
    assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
    assert.match(out, /netserver: received 1048576 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
    assert.match(driverOut, /bridge: .* 2 clients 00:0d:42:00:00:02 00:0d:42:00:00:03/);
    // The second client connected too: its announcement went out through the driver VM.
    const backend = g.vms[1].vmm.backend as XenBackend | L4Backend;
    const second = backend.netFront!;
    assert.ok(second.counters.frames >= 1, JSON.stringify(second.counters));
    if (platform === 'xen') {
      const xen = g.hypervisor as XenHypervisor;
      assert.deepEqual(xen.frames.audit(xen.domains), []);
    } else {
      const l4 = g.hypervisor as L4Kernel;
      assert.deepEqual(l4.audit(), []);
      // The driver VM reaches both clients' memory, each through a window of its own.
      const rm = l4.resourceMonitor;
      const driver = rm.vms[0];
      assert.deepEqual([...driver.serves].sort(), [rm.vms[1].id, rm.vms[2].id].sort());
    }
  }

  it('says why it cannot', () => {
    const kernel = readFileSync(kernelPath('afterburned'));
    const vms = [{ kernel, kernelName: 'second.elf', clientOfDriverVm: true }];
    for (const platform of ['none', 'xen', 'l4']) {
      const g = createGuest({ platform, kernel, kernelName: 'guest.elf', nic: {}, vms });
      assert.match(
        String(g),
        /^a VM's network through the driver VM needs --hypervisor xen or l4 and a driver VM$/,
      );
    }
  });
});

// The custom driver (guest/arch/xen-para/netfront.c): the para-virtualized kernel's own front
// end on the same ring page, served by the same back end in the driver VM's VMM.
describe('driver reuse on xen, custom driver', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok && make('xen-para').ok);
  });

  it("carries a netperf transfer through the driver VM from the para-virtualized kernel's front end", () => {
    const lines: string[] = [];
    const r = reuseRun('xen', 1 << 20, lines, kernelPath('xen-para'));
    assert.ok(r.ok, r.error);
    const text = lines.join('\n');
    assert.match(text, /boot: command line 'init=netserver netfront=0,00:0d:42:00:00:02'/);
    assert.match(
      text,
      /^netfront: back end domain 0, ring ref 1, port \d+, MAC 00:0d:42:00:00:02$/m,
    );
    assert.match(text, /^netfront: back end in domain 0 connected$/m);
    assert.match(text, /^\[driver VM\] bridge: .* 1 client 00:0d:42:00:00:02$/m);
    const v = r.counters.virtualization!;
    assert.deepEqual(v.vmm, {}, 'the client has no VMM');
    const rx = r.counters.nic.rxFrames;
    const tx = r.counters.nic.txFrames;
    const copies = count(v.hypervisor, 'grants.copies');
    assert.ok(copies >= rx - 1 && copies <= rx, `copies ${copies}, NIC received ${rx}`);
    const mapped = count(v.hypervisor, 'grants.maps');
    assert.ok(mapped >= tx - 1 && mapped <= tx + 1, `maps ${mapped}, NIC sent ${tx}`);
    const driver = (v.vms ?? {})['driver.elf'];
    assert.equal(count(driver, 'netBack.0.dropped'), 0);
    assert.equal(count(driver, 'clientLink.notDelivered'), 0);
    // The front end's events are thresholded too: fewer than the frames it sent.
    const events = count(v.hypervisor, 'interdomainEvents');
    assert.ok(events > 0 && events < (rx + tx) / 2, `${events} events for ${rx + tx} frames`);
    const busy =
      count(v.hypervisor, 'scheduler.busyCycles.dom0') +
      count(v.hypervisor, 'scheduler.busyCycles.dom1');
    assert.equal(busy, r.busyCycles);
  });

  it('leaves only the ring in use after a run, and the frame table consistent', () => {
    assertOnlyTheRingStaysGranted(kernelPath('xen-para'));
  });

  it('says why in one line when its option is wrong, and the kernel goes on without a network', () => {
    for (const [option, message] of [
      ['netfront=zz', /^netfront: bad option 'netfront=zz' \(want DOMID,aa:bb:cc:dd:ee:ff\)$/m],
      ['netfront=7,00:0d:42:00:00:09', /^netfront: no event channel for domain 7$/m],
    ] as const) {
      let out = '';
      const g = createGuest({
        platform: 'xen',
        kernel: readFileSync(kernelPath('xen-para')),
        kernelName: 'guest.elf',
        cmdline: `init=selftest ${option}`,
        console: (b) => (out += String.fromCharCode(b)),
      });
      assert.ok(typeof g !== 'string', String(g));
      const end = g.machine.run(2_800_000_000 * 5);
      assert.deepEqual(end, { kind: 'exit', value: 0 }, out);
      assert.match(out, message);
    }
  });
});
