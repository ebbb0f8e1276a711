// Snapshots of a machine with a driver VM (README, "Snapshots" and "Driver reuse"): a netperf
// transfer into the afterburned guest behind a driver VM of the same kernel, saved mid-transfer
// (segments in flight, both ends of the net channel at work) through the snapshot file, restored
// and run to its end, ends exactly as the uninterrupted run: the same cycles, console (the
// guest's and the driver VM's), counters of every VM and the client machine's report; for
// DP83820 emulation and the custom driver, on xen and on l4. A snapshot after a driver VM
// restart is refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { TcpSender } from '../../src/net/TcpSender.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { restoreGuest } from '../../src/platforms/restoreGuest.ts';
import { deflateRaw as nodeCodec } from '../../src/cli/snapshotCodec.ts';
import { readSnapshot, writeSnapshot } from '../../src/snapshot/file.ts';
import { buildSkipReason, kernelPath } from '../guest/guest.ts';
import { attachSender } from './client.ts';

const skip = buildSkipReason();

const PAYLOAD = 256 * 1024;
const LIMIT = 2_800_000_000 * 5;

interface Outcome {
  console: string;
  driver: string;
  cycles: number;
  end: unknown;
  stats: unknown;
  report: unknown;
}

/** The guest and its driver VM (netserver in the guest, a shell idling in the driver VM). */
function build(
  platform: 'xen' | 'l4',
  client: string,
  out: { text: string; driver: string },
): Guest {
  const g = createGuest({
    platform,
    kernel: readFileSync(client),
    kernelName: 'guest.elf',
    cmdline: 'init=netserver',
    nic: {},
    console: (b) => (out.text += String.fromCharCode(b)),
    driverVm: {
      kernel: readFileSync(kernelPath('afterburned')),
      kernelName: 'driver.elf',
      cmdline: 'init=sh',
      console: (b) => (out.driver += String.fromCharCode(b)),
    },
  });
  assert.ok(typeof g !== 'string', String(g));
  return g;
}

function outcome(g: Guest, out: { text: string; driver: string }, end: unknown, s: TcpSender) {
  return {
    console: out.text,
    driver: out.driver,
    cycles: g.machine.cpu.cycles,
    end,
    stats: g.stats(),
    report: s.report(),
  } satisfies Outcome;
}

function roundTrip(platform: 'xen' | 'l4', client: string): void {
  const refOut = { text: '', driver: '' };
  const ref = build(platform, client, refOut);
  const refSender = attachSender(ref, PAYLOAD);
  const refEnd = ref.machine.run(LIMIT);
  assert.deepEqual(refEnd, { kind: 'exit', value: 0 }, refOut.text);
  assert.match(refOut.text, /netserver: received 262144 bytes in \d+ ms, crc32 [0-9a-f]{8} ok/);
  const reference = outcome(ref, refOut, refEnd, refSender());

  // The same run, stopped every 100,000 cycles, saved once half the stream is acknowledged.
  const out = { text: '', driver: '' };
  const g = build(platform, client, out);
  const sender = attachSender(g, PAYLOAD);
  const m = g.machine;
  do {
    assert.equal(m.run(m.cpu.cycles + 100_000).kind, 'cycle-limit');
    m.resume();
  } while (sender().bytesAcked < PAYLOAD / 2);
  const report = sender().report();
  assert.ok(report.counters.bytesSent > report.counters.bytesAcked, 'bytes in flight');
  const file = writeSnapshot(g.save(sender().save()), nodeCodec);
  const saved = { text: out.text, driver: out.driver };
  const end = m.run(LIMIT);
  assert.deepEqual(
    outcome(g, out, end, sender()),
    reference,
    'the run that was saved ends as the uninterrupted one',
  );

  const contents = readSnapshot(file, nodeCodec);
  assert.ok(typeof contents !== 'string', String(contents));
  const part = { text: saved.text, driver: saved.driver };
  let restoredSender: (() => TcpSender) | undefined;
  const r = restoreGuest(contents, {
    console: (b) => (part.text += String.fromCharCode(b)),
    driverConsole: (b) => (part.driver += String.fromCharCode(b)),
    restoreExtra: (extra, guest) => {
      restoredSender = attachSender(guest, PAYLOAD);
      restoredSender().restore(extra as ReturnType<TcpSender['save']>);
    },
  });
  assert.ok(typeof r !== 'string', String(r));
  const rEnd = r.machine.run(LIMIT);
  assert.deepEqual(
    outcome(r, part, rEnd, restoredSender!()),
    reference,
    'the restored run ends as the uninterrupted one',
  );
}

describe('snapshots with a driver VM', { skip }, () => {
  it('xen, DP83820 emulation', () => roundTrip('xen', kernelPath('afterburned')));
  it('l4, DP83820 emulation', () => roundTrip('l4', kernelPath('afterburned')));
  it('xen, custom driver', () => roundTrip('xen', kernelPath('xen-para')));
  it('l4, custom driver', () => roundTrip('l4', kernelPath('l4-para')));
  it('a state without the connection, and after a driver VM crash: refused, one line', () => {
    const out = { text: '', driver: '' };
    const g = build('xen', kernelPath('afterburned'), out);
    assert.equal(g.machine.run(20_000_000).kind, 'cycle-limit');
    g.machine.resume();
    // A snapshot whose driver VM lacks its side of the connection does not fit: one line.
    const good = readSnapshot(writeSnapshot(g.save(), nodeCodec), nodeCodec);
    assert.ok(typeof good !== 'string');
    const state = structuredClone(good.state) as { vmVmms: { backend: { netBacks: unknown[] } }[] };
    assert.equal(state.vmVmms[0].backend.netBacks.length, 1);
    state.vmVmms[0].backend.netBacks = [];
    const bad = restoreGuest({ ...good, state });
    assert.equal(typeof bad, 'string');
    assert.match(
      String(bad),
      /^the snapshot does not fit: vmVmms\[0\]\.backend: the saved network connections are not this VM's$/,
    );
    assert.ok(g.driverVm!.crash('test: crashed'));
    assert.throws(() => g.save(), /^Error: a guest whose driver VM crashed cannot be snapshotted/);
  });
});
