// The README's main job: `previrt demo` builds the guest, runs its self-test raw in both variants
// and the afterburned one on xen and on l4, each para-virtualized port on its hypervisor, the
// netperf benchmark on the six and on the driver reuse rows, and prints the tables.
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { buildSkipReason } from '../guest/guest.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const previrt = (args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'previrt.mjs'), 'demo', ...args], {
    encoding: 'utf8',
    cwd: tmpdir(), // the demo finds the repository from its own path, not the working directory
    timeout: 300_000,
  });

test(
  'previrt demo: self-test rows pass (raw, xen and l4) and the netperf rows are verified',
  { skip: buildSkipReason() },
  () => {
    const r = previrt(['--quiet', '--bytes', '256K']);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    // The driver reuse rows, in their own table, really through a driver VM (two domains' counts).
    assert.match(r.stdout, /^Device driver reuse: /m);
    assert.match(
      r.stdout,
      /^\| DP83820 emulation \(xen\) \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m,
    );
    assert.match(r.stdout, /^\| DP83820 emulation \(xen\) \| \d+: dom1 \d+, dom0 \d+ \|/m);
    assert.match(r.stdout, /^\| Custom driver \(xen\) \| \d+: dom1 \d+, dom0 \d+ \|/m);
    assert.match(r.stdout, /^\| DP83820 emulation \(l4\) \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| Custom driver \(l4\) \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| native, raw \| PASS \|/m);
    assert.match(r.stdout, /^\| NOPs \(afterburned\), raw \| PASS \|/m);
    assert.match(r.stdout, /^\| System \| Xput \[Mb\/s\] \| CPU util \| cycles\/byte \|$/m);
    assert.match(r.stdout, /^\| native, raw \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| NOPs, raw \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| afterburned, Xen in-place VMM \| PASS \|/m);
    assert.match(r.stdout, /^\| Xen in-place VMM \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| afterburned, L4Ka in-place VMM \| PASS \|/m);
    assert.match(r.stdout, /^\| L4Ka in-place VMM \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m);
    assert.match(r.stdout, /^\| para-virtualized for xen \(xen-para\) \| PASS \|/m);
    assert.match(
      r.stdout,
      /^\| XenoLinux-style \(xen-para\) \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m,
    );
    assert.match(r.stdout, /^\| para-virtualized for l4 \(l4-para\) \| PASS \|/m);
    assert.match(
      r.stdout,
      /^\| L4Ka::Linux-style \(l4-para\) \| \d+\.\d \| \d+\.\d% \| \d+\.\d\d \|$/m,
    );
    assert.match(r.stdout, /^Pre- vs para-virtualized on xen: /m);
    assert.match(r.stdout, /^Pre- vs para-virtualized on l4: /m);
    assert.match(r.stdout, /TCP stream of 256 KB/);
  },
);

test('previrt demo: bad options are one line and status 2', () => {
  for (const args of [['--bytes', 'lots'], ['--bytes'], ['--frobnicate']]) {
    const r = previrt(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^previrt demo: /);
  }
});
