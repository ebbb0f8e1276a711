// Whole-machine snapshots are exact (DESIGN.md decision 11): run the guest kernel to N, save the
// machine, take the state through JSON, restore it into a new machine and run on; the console,
// the ending, cycles, instructions and every counter, and the machine's whole state at the end,
// are those of the run that was never interrupted. Self-test with snapshots during boot, with a
// timer interrupt pending and in service, while halted and in the middle of the tests; netserver
// with a peer flooding the link, snapshotted while frames are on the wire both ways, the NIC is
// mid-DMA with its hold-off timer armed and the transmitter busy; the netperf client
// (src/net/TcpSender.ts) snapshotted with the machine mid-transfer. And a state that does not
// fit is one clear message.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bootMultiboot } from '../../src/loader/multiboot.ts';
import type { Timer, TimerState } from '../../src/machine/device.ts';
import { withFcs } from '../../src/machine/ethernet/frame.ts';
import type { FaultConfig } from '../../src/machine/ethernet/link.ts';
import {
  createMachine,
  Machine,
  restoreMachine,
  type MachineConfig,
} from '../../src/machine/Machine.ts';
import type { MachineState } from '../../src/machine/machineState.ts';
import { StateError } from '../../src/machine/state.ts';
import {
  ARP_REQUEST,
  BROADCAST_MAC,
  buildArp,
  buildEthernet,
  ETHERTYPE_ARP,
} from '../../src/net/headers.ts';
import { TcpSender } from '../../src/net/TcpSender.ts';
import { buildSkipReason, kernelPath, make, ROOT } from '../guest/guest.ts';

const noBuild = buildSkipReason();
const kernel = (): Uint8Array => {
  assert.ok(make('native').ok, 'make -C guest native');
  return readFileSync(kernelPath('native'));
};

/** What a snapshot file does to a state. */
const throughJson = <T>(state: T): T => JSON.parse(JSON.stringify(state)) as T;

/** A machine whose console goes to `out.text` (shared by the machines of one chained run). */
function machine(config: MachineConfig, out: { text: string }): Machine {
  const m = createMachine({ ...config, serialOut: (b) => (out.text += String.fromCharCode(b)) });
  assert.ok(m instanceof Machine, String(m));
  return m;
}

function boot(m: Machine, cmdline: string, image: Uint8Array): void {
  const error = bootMultiboot(m, { kernel: image, kernelName: 'kernel.elf', cmdline, modules: [] });
  assert.equal(error, undefined);
}

/** Runs on to `cycle` (a cycle limit), ready to run on afterwards, as a snapshot is taken. */
function runTo(m: Machine, cycle: number): void {
  const end = m.run(cycle);
  assert.deepEqual(end, { kind: 'cycle-limit' }, 'the guest ended before the snapshot point');
  assert.ok(m.resume());
}

/** Everything a run is judged by: console, ending, figures, counters, the whole state. */
function outcome(m: Machine, console: string, end: unknown) {
  return {
    console,
    end,
    stats: m.stats(),
    nic: m.nic === undefined ? null : { ...m.nic.counters },
    link: m.link === undefined ? null : [m.link.counters(0), m.link.counters(1)],
    state: JSON.stringify(m.save()),
  };
}

test(
  'self-test: snapshots during boot, with IRQ 0 pending and in service, halted, mid-test',
  { skip: noBuild },
  () => {
    const image = kernel();
    const refOut = { text: '' };
    const ref = machine({}, refOut);
    boot(ref, 'init=selftest', image);
    const refEnd = ref.run();
    assert.deepEqual(refEnd, { kind: 'exit', value: 0 });
    assert.match(refOut.text, /^selftest: PASS$/m);
    const total = ref.cpu.cycles;

    const out = { text: '' };
    let m = machine({}, out);
    boot(m, 'init=selftest', image);
    const seen: string[] = [];
    /** Snapshot here, and go on in a new machine restored from it. */
    const hop = (why: string): void => {
      const state = throughJson(m.save());
      const next = machine({}, out);
      next.restore(state);
      assert.equal(JSON.stringify(next.save()), JSON.stringify(state), `${why}: restored as saved`);
      seen.push(why);
      m = next;
    };

    runTo(m, 150_000);
    hop('during boot');
    runTo(m, Math.round(total * 0.2));
    // Exactly at a PIT edge: IRQ 0 is in the master's IRR, not yet taken.
    const edge = m.pit.save().channels[0].edge;
    assert.ok(edge !== null, 'the PIT is running');
    runTo(m, edge.cycle);
    assert.equal(m.pic.master.irr & 1, 1, 'IRQ 0 pending');
    assert.equal(m.pic.master.isr & 1, 0);
    hop('timer interrupt pending');
    for (let k = 0; k < 10_000 && (m.pic.master.isr & 1) === 0; k++) runTo(m, m.cpu.cycles + 20);
    assert.equal(m.pic.master.isr & 1, 1, 'IRQ 0 in service');
    hop('timer interrupt in service');
    for (let k = 0; k < 100_000 && !m.cpu.halted; k++) runTo(m, m.cpu.cycles + 200);
    assert.ok(m.cpu.halted, 'the guest idles in HLT');
    hop('halted');
    runTo(m, Math.round(total * 0.5));
    hop('in the middle of the self-test');
    runTo(m, Math.round(total * 0.93));
    hop('near the end');
    const end = m.run();

    assert.equal(seen.length, 6);
    assert.deepEqual(outcome(m, out.text, end), outcome(ref, refOut.text, refEnd));
  },
);

/**
 * The far end of the link for the network test: every 20 µs a burst of three frames for the
 * guest (an ARP request, which it answers, a full-size frame of another type, which its driver
 * takes in and drops, and a padded ARP request), on the machine's clock. Its state is its own,
 * saved beside the machine's, its pending burst included (owner 'peer').
 */
interface PeerState {
  bursts: number;
  received: number;
  /** A digest of every frame received and the cycle it arrived at. */
  digest: number;
  next: TimerState | null;
}

const PEER_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x09]);
const GUEST_MAC = Uint8Array.from([0x00, 0x0d, 0x42, 0x00, 0x00, 0x01]);

class FloodPeer {
  private state: Omit<PeerState, 'next'> = { bursts: 0, received: 0, digest: 0 };
  private timer: Timer | undefined;

  constructor(private readonly m: Machine) {
    m.link!.attach(1, this);
  }

  start(cycle: number): void {
    this.timer = this.m.clock.at(cycle, () => this.burst(), 'peer');
  }

  receive(frame: Uint8Array): void {
    let d = this.state.digest;
    for (const b of frame) d = (Math.imul(d, 31) + b) >>> 0;
    this.state.digest = (d + this.m.clock.now()) >>> 0;
    this.state.received++;
  }

  private burst(): void {
    const n = this.state.bursts++;
    const request = buildArp({
      op: ARP_REQUEST,
      senderMac: PEER_MAC,
      senderIp: 0x0a000202,
      targetMac: new Uint8Array(6),
      targetIp: 0x0a00020f,
    });
    const arp = buildEthernet(
      n % 2 === 0 ? BROADCAST_MAC : GUEST_MAC,
      PEER_MAC,
      ETHERTYPE_ARP,
      request,
    );
    const big = new Uint8Array(1514).fill(n & 0xff);
    big.set(GUEST_MAC, 0);
    big.set(PEER_MAC, 6);
    big.set([0x88, 0xb5], 12);
    const padded = new Uint8Array(800);
    padded.set(arp);
    for (const f of [arp, big, padded]) this.m.link!.send(1, withFcs(f));
    this.timer = this.m.clock.at(this.m.clock.now() + 56_000, () => this.burst(), 'peer');
  }

  save(): PeerState {
    const t = this.timer;
    return { ...this.state, next: t === undefined ? null : { cycle: t.cycle, seq: t.seq } };
  }

  restore(s: PeerState): void {
    this.state = { bursts: s.bursts, received: s.received, digest: s.digest };
    this.timer =
      s.next === null ? undefined : this.m.clock.restoreAt(s.next, () => this.burst(), 'peer');
  }
}

const FAULTS: FaultConfig = { seed: 5, drop: 0.01, duplicate: 0.02, reorder: 0.05, corrupt: 0.01 };

test(
  'netserver under a flood: a snapshot with frames in flight, the NIC mid-DMA and held off',
  { skip: noBuild },
  () => {
    const image = kernel();
    const config: MachineConfig = { network: { faults: FAULTS } };
    const hz = 2_800_000_000;
    const start = hz * 0.01; // the driver is up by then
    const stop = hz * 0.05;

    const refOut = { text: '' };
    const ref = machine(config, refOut);
    const refPeer = new FloodPeer(ref);
    boot(ref, 'init=netserver', image);
    refPeer.start(start);
    const refEnd = ref.run(stop);
    assert.match(refOut.text, /^dp83820: .* link up, 1000 Mb\/s full duplex$/m);
    assert.ok(ref.nic!.counters.rxFrames > 1000 && ref.nic!.counters.txFrames > 500);

    const out = { text: '' };
    let m = machine(config, out);
    let peer = new FloodPeer(m);
    boot(m, 'init=netserver', image);
    peer.start(start);
    runTo(m, start + 100_000);
    const busy = (): boolean => {
      const nic = m.nic!.save();
      const link = m.link!.save();
      return (
        nic.rxDma !== null &&
        nic.holdoff !== null &&
        nic.tx.length > 0 &&
        nic.rxFifo.length > 0 &&
        link.directions.every((d) => d.inFlight.length > 0)
      );
    };
    for (let k = 0; k < 20_000 && !busy(); k++) runTo(m, m.cpu.cycles + 1000);
    assert.ok(busy(), 'frames on the wire both ways, RX DMA, hold-off, TX and FIFO all under way');
    const held = (): boolean => m.link!.save().directions.some((d) => d.held !== null);

    for (const why of ['busy', 'a frame held back']) {
      if (why === 'a frame held back') {
        for (let k = 0; k < 20_000 && !held(); k++) runTo(m, m.cpu.cycles + 1000);
        assert.ok(held(), 'the fault injector holds a frame back to reorder it');
      }
      const state = throughJson({ machine: m.save(), peer: peer.save() });
      const next = machine(config, out);
      const nextPeer = new FloodPeer(next);
      next.restore(state.machine, () => nextPeer.restore(state.peer));
      m = next;
      peer = nextPeer;
    }
    const end = m.run(stop);
    assert.deepEqual(outcome(m, out.text, end), outcome(ref, refOut.text, refEnd));
    assert.deepEqual(
      peer.save(),
      refPeer.save(),
      'the peer saw the same frames at the same cycles',
    );
  },
);

/** The netperf client (src/net/TcpSender.ts) on the link's far end, as `bench netperf` has it. */
function netperfWorld(out: { text: string }): { m: Machine; sender: TcpSender } {
  const m = machine({ network: {} }, out);
  const sender = new TcpSender({
    clock: m.clock,
    transmit: (frame) => m.link!.send(1, frame),
    payloadBytes: 1 << 20,
    seed: 3,
  });
  // The client starts when the guest's NIC shows signs of life (the driver's announcement).
  m.link!.attach(1, {
    receive(frame) {
      sender.start();
      sender.receive(frame);
    },
  });
  return { m, sender };
}

test(
  'netperf: the real client, snapshotted mid-transfer with the NIC busy, finishes alike',
  { skip: noBuild },
  () => {
    const image = kernel();
    const limit = 2_800_000_000 * 5;
    const refOut = { text: '' };
    const ref = netperfWorld(refOut);
    boot(ref.m, 'init=netserver', image);
    const refEnd = ref.m.run(limit);
    assert.deepEqual(refEnd, { kind: 'exit', value: 0 });
    assert.match(
      refOut.text,
      /^netserver: received 1048576 bytes in \d+ ms, crc32 [0-9a-f]{8} ok\r?$/m,
    );

    const out = { text: '' };
    let w = netperfWorld(out);
    boot(w.m, 'init=netserver', image);
    const busy = (): boolean => {
      const nic = w.m.nic!.save();
      return (
        w.sender.bytesAcked > 300_000 &&
        nic.rxDma !== null &&
        nic.holdoff !== null &&
        nic.tx.length > 0 &&
        w.m.link!.save().directions.every((d) => d.inFlight.length > 0)
      );
    };
    for (let k = 0; k < 100_000 && !busy(); k++) runTo(w.m, w.m.cpu.cycles + 1000);
    assert.ok(busy(), 'mid-transfer: segments and ACKs on the wire, RX DMA, hold-off and TX');
    const state = throughJson({ machine: w.m.save(), sender: w.sender.save() });
    const next = netperfWorld(out);
    next.m.restore(state.machine, () => next.sender.restore(state.sender));
    w = next;
    const end = w.m.run(limit);
    assert.deepEqual(outcome(w.m, out.text, end), outcome(ref.m, refOut.text, refEnd));
    assert.deepEqual(w.sender.report(), ref.sender.report());
  },
);

test('a snapshot restored in a new process runs on to the same end', { skip: noBuild }, () => {
  const image = kernel();
  const refOut = { text: '' };
  const ref = machine({}, refOut);
  boot(ref, 'init=selftest', image);
  const refEnd = ref.run();

  const out = { text: '' };
  const m = machine({}, out);
  boot(m, 'init=selftest', image);
  runTo(m, Math.round(ref.cpu.cycles * 0.4));
  const dir = mkdtempSync(join(tmpdir(), 'previrt-snapshot-'));
  const file = join(dir, 'state.json');
  writeFileSync(file, JSON.stringify(m.save()));
  const child = `
    import { readFileSync } from 'node:fs';
    import { restoreMachine } from ${JSON.stringify(join(ROOT, 'src/machine/Machine.ts'))};
    let console = '';
    const m = restoreMachine({ serialOut: (b) => (console += String.fromCharCode(b)) },
      JSON.parse(readFileSync(${JSON.stringify(file)}, 'utf8')));
    if (typeof m === 'string') throw new Error(m);
    const end = m.run();
    process.stdout.write(JSON.stringify({ console, end, stats: m.stats() }));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
    encoding: 'utf8',
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { console: string; end: unknown; stats: unknown };
  assert.deepEqual(
    { console: out.text + got.console, end: got.end, stats: got.stats },
    { console: refOut.text, end: refEnd, stats: ref.stats() },
  );
});

/** A state as these tests break it, field by field, without the compiler's help. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately untyped
type Loose = Record<string, any>;

/** A state with one field changed by `edit` (on a deep copy). */
function broken(state: MachineState, edit: (s: Loose) => void): MachineState {
  const copy = throughJson(state) as unknown as Loose;
  edit(copy);
  return copy as unknown as MachineState;
}

test('a state that does not fit is one clear message, never a crash', () => {
  const config: MachineConfig = { memoryMb: 8, network: {} };
  const m = createMachine(config);
  assert.ok(m instanceof Machine);
  m.ram.set([1, 2, 3], 0x100000);
  const state = throughJson(m.save());
  assert.ok(restoreMachine(config, state) instanceof Machine, 'the unbroken state restores');
  const cases: [string, (s: Loose) => void, RegExp][] = [
    [
      'wrong version',
      (s) => (s.version = 2),
      /^machine state version 2 is not supported \(expected 1\)$/,
    ],
    [
      'missing device',
      (s) => delete s.devices.pit,
      /^devices\.pit: expected a versioned state \(an object\), got nothing \(missing\)$/,
    ],
    [
      'device version',
      (s) => (s.devices.pit.version = 9),
      /^devices\.pit: 8254 state version 9 is not supported \(expected 1\)$/,
    ],
    [
      'device field',
      (s) => delete s.devices.nic.holdoffUntil,
      /^devices\.nic\.holdoffUntil: expected a number, got nothing \(missing\)$/,
    ],
    [
      'bytes',
      (s) => (s.devices.nic.config = 'not base64!'),
      /^devices\.nic\.config: expected base64 bytes/,
    ],
    [
      'RAM page',
      (s) => (s.ram.pages[0].page = 1e9),
      /^ram\.pages\[0\]\.page: 1000000000 is outside memory$/,
    ],
    [
      'RAM size',
      (s) => (s.ram.bytes = 1 << 20),
      /^ram: the state has 1 MB of memory, this machine 8 MB$/,
    ],
    ['clock', (s) => (s.clock.seq = 'x'), /^clock\.seq: expected a number, got a string$/],
    ['CPU', (s) => delete s.cpu.tlb, /^cpu: malformed CPU state/],
    [
      'end',
      (s) => (s.machine.end = { kind: 'exploded' }),
      /^machine\.end\.kind: expected one of exit/,
    ],
    [
      'config',
      (s) => (s.config.memoryMb = 16),
      /saved from a machine with memoryMb 16, this one has 8/,
    ],
    ['network', (s) => (s.devices.nic = null), /devices\.nic does not match the network/],
  ];
  for (const [what, edit, message] of cases) {
    const r = restoreMachine(config, broken(state, edit));
    assert.equal(typeof r, 'string', what);
    assert.match(r as string, message, what);
  }
  // An event nobody brings back: the peer's, when the caller forgets to restore the peer.
  const withPeer = createMachine(config);
  assert.ok(withPeer instanceof Machine);
  withPeer.clock.at(1234, () => {}, 'peer');
  const saved = throughJson(withPeer.save());
  const again = createMachine(config);
  assert.ok(again instanceof Machine);
  assert.throws(
    () => again.restore(saved),
    (e) => e instanceof StateError && /not restored: peer@1234#0/.test(e.message),
  );
});
