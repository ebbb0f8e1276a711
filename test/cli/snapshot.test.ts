// `previrt run --snapshot-at N --snapshot FILE`, then `previrt run --restore FILE` in a new
// process: the self-test raw and on xen gives the console output and `--stats --json` of the
// uninterrupted run (host time aside), and so does a run with a driver VM on xen; a bad
// snapshot file is one line and status 2.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { buildSkipReason, kernelPath, make, previrtAsync } from '../guest/guest.ts';

const skip = buildSkipReason();

/** `previrt run ARGS`, in a process of its own; runs that do not depend on each other go at once. */
async function previrt(
  args: string[],
): Promise<{ status: number | null; out: string; err: string }> {
  const r = await previrtAsync(['run', ...args]);
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** The --stats --json object on stderr, without host time. */
function stats(stderr: string): Record<string, unknown> {
  const s = JSON.parse(stderr.slice(stderr.indexOf('{'))) as Record<string, unknown>;
  delete s.hostMs;
  delete s.guestMips;
  return s;
}

describe('previrt run --snapshot-at / --restore', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'previrt-snap-'));
  const kernel = kernelPath('afterburned');
  before(() => assert.ok(make('afterburned').ok));

  for (const platform of ['none', 'xen']) {
    it(`continues the self-test on ${platform} as the uninterrupted run`, async () => {
      const boot = ['--hypervisor', platform, '--kernel', kernel, '--append', 'init=selftest'];
      const file = join(dir, `${platform}.snap`);
      // The uninterrupted run and the run to the snapshot at once.
      const [whole, first] = await Promise.all([
        previrt([...boot, '--stats', '--json']),
        previrt([...boot, '--snapshot-at', '50000000', '--snapshot', file]),
      ]);
      assert.equal(whole.status, 1, whole.err); // the self-test writes 0 to isa-debug-exit
      assert.equal(first.status, 0, first.err);
      assert.equal(first.err, `previrt run: snapshot of cycle 50000000 written to ${file}\n`);
      const rest = await previrt(['--restore', file, '--stats', '--json']);
      assert.equal(rest.status, whole.status, rest.err);
      assert.equal(first.out + rest.out, whole.out, 'console: part 1 and part 2 are the whole');
      assert.deepEqual(stats(rest.err), stats(whole.err), '--stats --json');
    });
  }

  it('continues a run with a driver VM on xen as the uninterrupted run', async () => {
    const boot = [
      ...['--hypervisor', 'xen', '--kernel', kernel, '--append', 'init=netserver'],
      ...['--nic', 'dp83820', '--driver-vm', kernel],
    ];
    const file = join(dir, 'driver-vm.snap');
    const [whole, first] = await Promise.all([
      previrt([...boot, '--max-cycles', '40000000', '--stats', '--json']),
      previrt([...boot, '--snapshot-at', '20000000', '--snapshot', file]),
    ]);
    assert.equal(first.status, 0, first.err);
    const rest = await previrt([
      '--restore',
      file,
      '--max-cycles',
      '40000000',
      '--stats',
      '--json',
    ]);
    assert.equal(rest.status, whole.status, rest.err);
    assert.match(whole.out, /\[driver\] /);
    assert.equal(first.out + rest.out, whole.out, 'console: part 1 and part 2 are the whole');
    // The wire's responder is a new one in the restored run (run.ts): its counters start at 0
    // there, with or without a driver VM; everything else is the machine's and the same.
    const machineOnly = (err: string): Record<string, unknown> => {
      const s = stats(err);
      delete (s.network as Record<string, unknown>).responder;
      return s;
    };
    assert.deepEqual(machineOnly(rest.err), machineOnly(whole.err), '--stats --json');
  });

  it('refuses a truncated, damaged, newer or foreign file, and another platform, with one line', async () => {
    const file = join(dir, 'none.snap');
    const good = readFileSync(file);
    const variants: [string, Uint8Array, RegExp][] = [
      ['truncated', good.subarray(0, good.length >> 1), /damaged or truncated/],
      ['a flipped byte', Uint8Array.from(good, (b, k) => (k === 1000 ? b ^ 1 : b)), /damaged/],
      [
        'a newer container',
        Uint8Array.from(good, (b, k) => (k === 8 ? 2 : b)),
        /version 2 is not supported/,
      ],
      [
        'a text file',
        new TextEncoder().encode('not a snapshot, just some text here'),
        /not a previrt snapshot/,
      ],
    ];
    // Every refusal at once, each bad file under its own name.
    const [other, both, ...refused] = await Promise.all([
      previrt(['--restore', file, '--hypervisor', 'xen']),
      previrt(['--restore', file, '--kernel', kernel]),
      ...variants.map(([, bytes], k) => {
        const bad = join(dir, `bad-${k}.snap`);
        writeFileSync(bad, bytes);
        return previrt(['--restore', bad]);
      }),
    ]);
    variants.forEach(([what, , message], k) => {
      const r = refused[k];
      assert.equal(r.status, 2, what);
      assert.match(r.err, message, what);
      assert.equal(r.err.trim().split('\n').length, 1, `${what}: one line`);
    });
    assert.equal(other.status, 2);
    assert.match(other.err, /a snapshot of platform none, not xen/);
    assert.equal(both.status, 2);
    assert.match(both.err, /--kernel cannot go with it/);
  });
});
