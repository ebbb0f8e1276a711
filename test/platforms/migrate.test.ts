// Live migration between the two hypervisors, stop-and-copy (src/platforms/migrate.ts): the
// afterburned kernel's self-test started on one, stopped at a safe point — in its kernel at
// boot, idle in the kernel tests, idle in the user tests — moved to the other in the same
// process, and run on there to its PASS; xen -> l4, l4 -> xen and xen -> l4 -> xen. The console
// of the source up to the move and of the destination after it is the uninterrupted run's, line
// for line. The record's page tables are guest-physical (a machine frame left in one fails the
// check), and a guest that cannot migrate is refused with one line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { migrateGuest, migrationRefusal, runToSafePoint } from '../../src/platforms/migrate.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import type { MigrationRecord } from '../../src/vmm/migration.ts';
import { buildSkipReason, kernelPath, make } from '../guest/guest.ts';

const skip = buildSkipReason();
const MEMORY_MB = 64;
const LIMIT = 3_000_000_000;

let kernelBytes: Uint8Array | undefined;
function kernel(): Uint8Array {
  if (kernelBytes === undefined) {
    const r = make('afterburned');
    assert.ok(r.ok, r.output);
    kernelBytes = readFileSync(kernelPath('afterburned'));
  }
  return kernelBytes;
}

function boot(platform: string, out: { text: string }, extra: object = {}): Guest {
  const g = createGuest({
    platform,
    kernel: kernel(),
    kernelName: 'kernel.elf',
    cmdline: 'init=selftest',
    memoryMb: MEMORY_MB,
    console: (b) => (out.text += String.fromCharCode(b)),
    ...extra,
  });
  if (typeof g === 'string') assert.fail(g);
  return g;
}

/** The self-test uninterrupted on a platform: its console. */
const references = new Map<string, string>();
function reference(platform: string): string {
  let text = references.get(platform);
  if (text === undefined) {
    const out = { text: '' };
    const g = boot(platform, out);
    assert.deepEqual(g.machine.run(LIMIT), { kind: 'exit', value: 0 });
    text = out.text;
    references.set(platform, text);
  }
  return text;
}

/** Every present entry of the record's page tables names a guest frame (or the device's). */
function assertGuestPhysical(record: MigrationRecord): void {
  const view = new DataView(record.memory.buffer, record.memory.byteOffset);
  const { directories, tables } = record.pageTables;
  assert.ok(directories.includes(record.vmm.cr3 >>> 12), 'CR3 is among the directories');
  for (const [frames, slots] of [
    [directories, 1008],
    [tables, 1024],
  ] as const)
    for (const f of frames)
      for (let k = 0; k < slots; k++) {
        const e = view.getUint32(f * 4096 + k * 4, true);
        if ((e & 1) !== 0)
          assert.ok(
            e >>> 12 < record.guestPages,
            `entry ${k} of frame 0x${f.toString(16)} names frame 0x${(e >>> 12).toString(16)}`,
          );
      }
}

/**
 * Boots on `path[0]`, moves at each cycle in `at` (run to the next safe point from there) to
 * the next platform of `path`, and runs to the end: the console and the contexts moved at.
 */
function migrateRun(path: string[], at: number[]): { console: string; kinds: string[] } {
  const out = { text: '' };
  let g = boot(path[0], out);
  const kinds: string[] = [];
  at.forEach((cycle, k) => {
    g.machine.run(cycle);
    const c = runToSafePoint(g, cycle + 200_000_000);
    assert.ok('regs' in c, `no safe point after cycle ${cycle}: ${JSON.stringify(c)}`);
    kinds.push(c.kind);
    const moved = migrateGuest(g, path[k + 1], {
      console: (b) => (out.text += String.fromCharCode(b)),
    });
    if (typeof moved === 'string') assert.fail(moved);
    assert.equal(moved.guest.platform, path[k + 1]);
    assertGuestPhysical(moved.record);
    g = moved.guest;
  });
  assert.deepEqual(g.machine.run(g.machine.cpu.cycles + LIMIT), { kind: 'exit', value: 0 });
  return { console: out.text, kinds };
}

describe('live migration between xen and l4 (stop-and-copy)', { skip }, () => {
  for (const [from, to] of [
    ['xen', 'l4'],
    ['l4', 'xen'],
  ])
    it(`the self-test moved from ${from} to ${to} at boot, in the kernel tests and in the user tests reaches its PASS there`, () => {
      const want = reference(from);
      assert.match(want, /selftest: PASS/);
      const seen = new Set<string>();
      for (const cycle of [3_000_000, 8_000_000, 14_000_000]) {
        const r = migrateRun([from, to], [cycle]);
        assert.equal(r.console, want, `moved after cycle ${cycle}`);
        seen.add(r.kinds[0]);
      }
      assert.deepEqual([...seen].sort(), ['idle', 'kernel']);
    });

  it('the self-test moved xen -> l4 -> xen reaches its PASS', () => {
    const r = migrateRun(['xen', 'l4', 'xen'], [3_000_000, 10_000_000]);
    assert.equal(r.console, reference('xen'));
  });

  it('a guest that cannot migrate is refused with one line', () => {
    const out = { text: '' };
    const raw = boot('none', out, { kernel: readFileSync(kernelPath('afterburned')) });
    assert.match(migrationRefusal(raw) ?? '', /only the afterburned kernel with the in-place VMM/);
    const passed = boot('xen', out, { nic: {} });
    assert.equal(
      migrationRefusal(passed),
      "a guest with a passed-through device cannot migrate (the device stays with its machine): give it the VMM's model (--nic dp83820,emulated)",
    );
    assert.match(
      String(migrateGuest(passed, 'l4')),
      /^a guest with a passed-through device cannot migrate/,
    );
    const early = boot('l4', out);
    assert.equal(migrateGuest(early, 'xen'), 'the guest has not turned paging on yet');
  });
});
