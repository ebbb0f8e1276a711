// `previrt run --snapshot-at N --snapshot FILE`, then `previrt run --restore FILE` in a new
// process: the self-test raw and on xen gives the console output and `--stats --json` of the
// uninterrupted run (host time aside); a bad snapshot file is one line and status 2.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { buildSkipReason, kernelPath, make, ROOT } from '../guest/guest.ts';

const skip = buildSkipReason();

function previrt(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), 'run', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
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
    it(`continues the self-test on ${platform} as the uninterrupted run`, () => {
      const boot = ['--hypervisor', platform, '--kernel', kernel, '--append', 'init=selftest'];
      const whole = previrt([...boot, '--stats', '--json']);
      assert.equal(whole.status, 1, whole.err); // the self-test writes 0 to isa-debug-exit
      const file = join(dir, `${platform}.snap`);
      const first = previrt([...boot, '--snapshot-at', '50000000', '--snapshot', file]);
      assert.equal(first.status, 0, first.err);
      assert.equal(first.err, `previrt run: snapshot of cycle 50000000 written to ${file}\n`);
      const rest = previrt(['--restore', file, '--stats', '--json']);
      assert.equal(rest.status, whole.status, rest.err);
      assert.equal(first.out + rest.out, whole.out, 'console: part 1 and part 2 are the whole');
      assert.deepEqual(stats(rest.err), stats(whole.err), '--stats --json');
    });
  }

  it('refuses a truncated, damaged, newer or foreign file, and another platform, with one line', () => {
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
    for (const [what, bytes, message] of variants) {
      const bad = join(dir, 'bad.snap');
      writeFileSync(bad, bytes);
      const r = previrt(['--restore', bad]);
      assert.equal(r.status, 2, what);
      assert.match(r.err, message, what);
      assert.equal(r.err.trim().split('\n').length, 1, `${what}: one line`);
    }
    const other = previrt(['--restore', file, '--hypervisor', 'xen']);
    assert.equal(other.status, 2);
    assert.match(other.err, /a snapshot of platform none, not xen/);
    const both = previrt(['--restore', file, '--kernel', kernel]);
    assert.equal(both.status, 2);
    assert.match(both.err, /--kernel cannot go with it/);
  });
});
