// Isolation between clients of one driver VM (xen; README, "Isolation"): the guest's netperf
// transfer through the driver VM beside a second client that runs guest/user/flood.c — quiet
// (one frame, then idle) or flooding the wire with full-sized UDP datagrams of its own address,
// its transmit ring always full — or a control that sends one frame and then only computes.
// Both transfers must arrive intact; the flood must really go out
// (the driver VM bridges it to the wire, where the client machine ignores it), and the client
// link's counters must tell the two clients apart. The flood slows only itself: beside it the
// guest loses none of its frames and keeps the throughput it has beside the control (1 MB), the
// driver domain's work for the flooder charged to the flooder in the scheduler's share.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { CONFIGS, nicPathOptions } from '../../src/bench/netperf/build.ts';
import { runNetperf, SECOND_CLIENT, type NetperfRun } from '../../src/bench/netperf/run.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';
import { count } from './reuseRuns.ts';

const skip = buildSkipReason();

function run(
  config:
    'reuse-quiet-xen' | 'reuse-spin-xen' | 'reuse-flood-xen' | 'reuse-quiet-l4' | 'reuse-flood-l4',
  lines: string[],
  bytes = 64 << 10,
): NetperfRun {
  return runNetperf({
    label: config,
    kernel: readFileSync(kernelPath('afterburned')),
    kernelName: 'guest.elf',
    payloadBytes: bytes,
    seed: 1,
    hypervisor: CONFIGS[config].hypervisor,
    ...nicPathOptions(CONFIGS[config]),
    onConsoleLine: (l) => lines.push(l),
  });
}

/** The driver VM's client link counters (its name is a path, with dots: not one for `count`). */
function link(r: NetperfRun, client: number, what: string): number {
  const vms = r.counters.virtualization?.vms ?? {};
  const driver = Object.values(vms).find((t) => typeof t === 'object' && 'clientLink' in t);
  return count(driver, `clientLink.clients.${client}.${what}`);
}

describe('driver reuse on xen, a flooding second client', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
    assert.ok(make('user').ok);
  });

  it("carries the guest's transfer intact beside a quiet and a flooding client", () => {
    const quietLines: string[] = [];
    const floodLines: string[] = [];
    const quiet = run('reuse-quiet-xen', quietLines);
    const flood = run('reuse-flood-xen', floodLines);
    assert.ok(quiet.ok, quiet.error);
    assert.ok(flood.ok, flood.error);
    for (const lines of [quietLines, floodLines]) {
      assert.ok(lines.includes('[second client] kernel: starting init: flood'), lines.join('\n'));
      assert.ok(
        lines.some((l) => l.startsWith('[second client] flood: sending ')),
        lines.join('\n'),
      );
    }
    assert.ok(
      quietLines.includes('[second client] flood: sent 1 frames, transmit ring full 0 times'),
    );

    // The quiet client sent nothing in the interval; the flooding one dozens of frames in these
    // 64 KB (the CPU the guest leaves it), all of them taken off the ring by the driver VM and
    // put on the wire, where the client machine counts them as not its connection's.
    assert.equal(link(quiet, 1, 'sent'), 0);
    const flooded = link(flood, 1, 'sent');
    assert.ok(flooded > 50, `the flood: ${flooded} frames`);
    assert.ok(flood.sender.counters.ignored >= flooded - 64, JSON.stringify(flood.sender.counters));
    // Nothing of the flood reached the guest: it was for the wire, not broadcast.
    assert.equal(link(flood, 1, 'delivered'), 0);
    // The guest's own frames went both ways on its own part of the link.
    for (const r of [quiet, flood]) {
      assert.ok(link(r, 0, 'sent') > 0 && link(r, 0, 'delivered') > 0);
      assert.equal(count(r.counters.virtualization?.vms, `${SECOND_CLIENT}.netFront.dropped`), 0);
    }
    // The flood's CPU is its own domain's, and the guest's domain did no more than a few times
    // its quiet work for the same bytes.
    const busy = (r: NetperfRun, dom: number): number =>
      count(r.counters.virtualization?.hypervisor, `scheduler.busyCycles.dom${dom}`);
    assert.ok(busy(flood, 1) > 0, `${busy(flood, 1)}`);
    assert.ok(busy(flood, 2) < 4 * busy(quiet, 2), `${busy(flood, 2)} ${busy(quiet, 2)}`);
  });

  it('slows only itself: the guest keeps the throughput it has beside a client that computes', () => {
    // 1 MB: the transfer starts about 1.5 ms after the guest's boot (3.3 ms of its CPU), which
    // the scheduler's "least CPU lately" still remembers; before the preempted domain got the
    // CPU back after a boost, the flood's frames had the driver domain preempt the guest again
    // and again, the flooder came next each time, and the guest fell 5% behind the control
    // with 93 of its frames dropped.
    const spin = run('reuse-spin-xen', [], 1 << 20);
    const flood = run('reuse-flood-xen', [], 1 << 20);
    assert.ok(spin.ok, spin.error);
    assert.ok(flood.ok, flood.error);
    assert.ok(link(flood, 1, 'sent') > 500, `the flood: ${link(flood, 1, 'sent')} frames`);
    assert.equal(link(flood, 0, 'notDelivered'), 0);
    assert.equal(flood.sender.counters.retransmissions, 0);
    assert.ok(
      flood.throughputMbps >= spin.throughputMbps * 0.98,
      `${flood.throughputMbps} against ${spin.throughputMbps} Mb/s`,
    );
    // The driver domain's work for each client went to that client's share: more for the
    // flooder than for the guest, together about all of the driver domain's busy cycles (it
    // does nothing else; a span that began before the interval counts where it ends).
    const hv = (r: NetperfRun, path: string): number =>
      count(r.counters.virtualization?.hypervisor, `scheduler.${path}`);
    const [forFlood, forGuest] = [hv(flood, 'chargedCycles.dom1'), hv(flood, 'chargedCycles.dom2')];
    assert.ok(forFlood > forGuest && forGuest > 0, `${forFlood} ${forGuest}`);
    const driver = hv(flood, 'busyCycles.dom0');
    const charged = forFlood + forGuest;
    assert.ok(charged > 0.8 * driver && charged < 1.02 * driver, `${charged} of ${driver}`);
  });

  it('keeps the guest at its speed beside a client that computes (4 MB): the back end runs first', () => {
    // The driver domain, runnable with frames for the guest, runs before the domain a boost
    // preempted gets the CPU back: without that rule the spinning client, preempted by the
    // driver domain's boosts, came back each time while the driver domain waited behind it
    // (731.2 against 936.7 Mb/s, 53 of the guest's frames dropped). The last stop's scheduler
    // gave 911.6 (97.3%).
    const quiet = run('reuse-quiet-xen', [], 4 << 20);
    const spin = run('reuse-spin-xen', [], 4 << 20);
    assert.ok(quiet.ok, quiet.error);
    assert.ok(spin.ok, spin.error);
    assert.equal(link(spin, 0, 'notDelivered'), 0);
    assert.ok(
      spin.throughputMbps >= quiet.throughputMbps * 0.98,
      `${spin.throughputMbps} against ${quiet.throughputMbps} Mb/s`,
    );
  });

  it('runs the control client that computes and sends nothing after its first frame', () => {
    const lines: string[] = [];
    const spin = run('reuse-spin-xen', lines);
    assert.ok(spin.ok, spin.error);
    assert.ok(lines.includes('[second client] flood: spinning'), lines.join('\n'));
    const busy = (dom: number): number =>
      count(spin.counters.virtualization?.hypervisor, `scheduler.busyCycles.dom${dom}`);
    // It wants all the CPU it gets (no idle cycles left), and puts nothing on the link.
    assert.ok(busy(1) > busy(2), `${busy(1)} ${busy(2)}`);
    assert.equal(spin.idleCycles, 0);
    assert.equal(link(spin, 1, 'sent'), 0);
  });
});

describe('driver reuse on l4, a flooding second client', { skip }, () => {
  before(() => {
    assert.ok(make('afterburned').ok);
    assert.ok(make('user').ok);
  });

  it('slows only itself: the guest keeps its throughput and its own work per byte', () => {
    const quiet = run('reuse-quiet-l4', [], 256 << 10);
    const flood = run('reuse-flood-l4', [], 256 << 10);
    assert.ok(quiet.ok, quiet.error);
    assert.ok(flood.ok, flood.error);
    // The flood went out through the driver VM, none of it to the guest.
    assert.ok(link(flood, 1, 'sent') > 100, `the flood: ${link(flood, 1, 'sent')} frames`);
    assert.equal(link(flood, 1, 'delivered'), 0);
    // Each VM's busy cycles (the kernel's by VM: vm0 driver, vm1 second client, vm2 guest)
    // make up the machine's; the flooder took more than the guest, the guest what it did alone.
    const busy = (r: NetperfRun): Record<string, number> =>
      r.counters.virtualization?.hypervisor.busyCycles as Record<string, number>;
    const sum = (r: NetperfRun): number => Object.values(busy(r)).reduce((a, b) => a + b, 0);
    assert.equal(sum(flood), flood.busyCycles);
    assert.equal(sum(quiet), quiet.busyCycles);
    assert.ok(busy(flood).vm1 > busy(flood).vm2, JSON.stringify(busy(flood)));
    const own = (r: NetperfRun): number => busy(r).vm2 / r.payloadBytes;
    assert.ok(own(flood) < own(quiet) * 1.05, `${own(flood)} ${own(quiet)} cycles/byte`);
    assert.ok(
      flood.throughputMbps > quiet.throughputMbps * 0.95,
      `${flood.throughputMbps} ${quiet.throughputMbps} Mb/s`,
    );
  });
});
