/**
 * `previrt run --nic`: the DP83820 and the network on its wire with the project's own kernel
 * (the Linux guest's use of it is in test/linux): the netperf client streams into netserver and
 * the run reports its transfer; bad --nic values get one line and status 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { buildGuest } from '../../src/bench/netperf/build.ts';
import { kernelPath } from '../guest/guest.ts';

function previrt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/previrt.mjs', 'run', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--nic dp83820,netperf=SIZE: the client streams into netserver, which verifies it', () => {
  const built = buildGuest();
  assert.ok(built.ok, built.ok ? '' : built.output);
  const r = previrt([
    ...['--kernel', kernelPath('native'), '--append', 'init=netserver'],
    ...['--nic', 'dp83820,netperf=256K,seed=5', '--stats', '--json'],
  ]);
  assert.equal(r.status, 1, r.stderr.slice(-2000));
  const line = /netserver: received 262144 bytes in \d+ ms, crc32 ([0-9a-f]{8}) ok/.exec(r.stdout);
  assert.ok(line !== null, r.stdout.slice(-2000));
  assert.match(
    r.stderr,
    new RegExp(
      `^previrt run: netperf client 10\\.0\\.2\\.2 → 10\\.0\\.2\\.15:5001: 262144 bytes \\+ trailer, crc32 ${line[1]}, 262156 of 262156 acknowledged, done$`,
      'm',
    ),
  );
  const stats = JSON.parse(r.stderr.slice(r.stderr.indexOf('{')));
  assert.equal(stats.network.netperf.state, 'done');
  assert.ok(stats.network.nic.rxFrames > 180);
  assert.equal(stats.network.responder.passedOn, stats.network.responder.framesReceived);
});

test('bad --nic values: one line, status 2', () => {
  for (const [nic, why] of [
    ['dp83820,mac=01:00:00:00:00:01', /is a multicast address/],
    ['dp83820,mac=zz', /is not six hex bytes/],
    ['dp83820,netperf=2G', /is not a size from 1 byte to 1G/],
    ['dp83820,speed=10', /unknown NIC setting 'speed'/],
    ['rtl8139', /'rtl8139' is not a NIC previrt has/],
  ] as const) {
    const r = previrt(['--kernel', kernelPath('native'), '--nic', nic]);
    assert.equal(r.status, 2, nic);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const snap = previrt([
    ...['--kernel', kernelPath('native'), '--nic', 'dp83820,netperf=1M'],
    ...['--snapshot-at', '1000', '--snapshot', '/tmp/x.snap'],
  ]);
  assert.equal(snap.status, 2);
  assert.match(snap.stderr, /cannot be snapshotted/);
});
