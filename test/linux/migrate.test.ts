/**
 * Live migration of the afterburned Linux to xen (shadow paging, src/vmm/backends/xen/
 * shadow.ts) and to l4 (its spaces faulted in again from the guest's tables), from either,
 * mid-boot: at a safe point in its kernel, by stop-and-copy (src/platforms/migrate.ts) and by
 * pre-copy over a simulated 10 Gb/s link while it runs (the lab's migrateLive: the rounds' dirty
 * logs must see every page written, or the stop-and-copy's check of the destination's copy
 * fails). The moved guest passes its checks
 * with the lines of the run that stayed, and the record's page tables are guest-physical.
 * Builds the afterburned Linux when it is missing (minutes, once).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  buildLinuxGuest,
  LINUX_AFTERBURNED_KERNEL,
  LINUX_GUEST,
} from '../../src/bench/netperf/build.ts';
import { createGuest } from '../../src/platforms/createGuest.ts';
import { MigrationLink, preCopy, stopAndCopy } from '../../src/bench/migrate/precopy.ts';
import {
  captureGuest,
  migrateGuest,
  resumeGuest,
  runToSafePoint,
} from '../../src/platforms/migrate.ts';
import type { Guest } from '../../src/platforms/platform.ts';
import { migrateLive } from '../../src/web/migrate.ts';
import { programLines } from './common.ts';

const built = buildLinuxGuest('afterburned');
const FIVE_SECONDS = 5 * 2_800_000_000;

function boot(platform: string, out: { text: string }): Guest {
  const g = createGuest({
    platform,
    kernel: readFileSync(LINUX_AFTERBURNED_KERNEL),
    kernelName: 'bzImage',
    cmdline: 'console=ttyS0 check',
    modules: [{ name: 'initramfs.cpio', bytes: readFileSync(LINUX_GUEST.initramfs), string: '' }],
    console: (b) => (out.text += String.fromCharCode(b)),
  });
  assert.ok(typeof g !== 'string', g as string);
  // Interpreted: the same results, and faster for one boot here (README "CPU speed").
  g.machine.cpu.blocksEnabled = false;
  return g;
}

/** The lines init prints when the boot runs where it started. */
const stayed = new Map<string, string[]>();
function reference(platform: string): string[] {
  let lines = stayed.get(platform);
  if (lines === undefined) {
    const out = { text: '' };
    const g = boot(platform, out);
    assert.deepEqual(g.machine.run(FIVE_SECONDS), { kind: 'exit', value: 0 });
    lines = programLines(out.text);
    assert.ok(lines.includes('init: checks passed'), lines.join('\n'));
    stayed.set(platform, lines);
  }
  return lines;
}

/**
 * Pre-copy over 10 Gb/s, then the stop-and-copy (its check: the destination's copy is the
 * guest's memory, so the rounds' dirty logs saw every page written), as migrateLive does.
 */
function preCopyMove(
  g: Guest,
  to: string,
  console: (b: number) => void,
): { guest: Guest; report: { rounds: unknown[]; pagesSent: number; downtimeMs: number } } | string {
  const m = g.machine;
  const link = new MigrationLink(10e9, m.costModel.hz);
  const copy = preCopy(g, link, (cycles) => {
    m.resume();
    return m.run(m.cpu.cycles + cycles).kind === 'cycle-limit';
  });
  if (typeof copy === 'string') return copy;
  const c = runToSafePoint(g, m.cpu.cycles + m.costModel.hz);
  if (!('regs' in c)) return `no safe point: ${JSON.stringify(c)}`;
  const record = captureGuest(g);
  if (typeof record === 'string') return record;
  const last = stopAndCopy(copy, record, 0);
  if (typeof last === 'string') return last;
  const moved = resumeGuest({ ...record, memory: copy.dest }, g.config, to, { console });
  if (typeof moved === 'string') return moved;
  const rounds = [...copy.rounds, last];
  return {
    guest: moved,
    report: { rounds, pagesSent: rounds.reduce((n, x) => n + x.pages, 0), downtimeMs: last.ms },
  };
}

/** Boots on `from`, moves to `to` after `cycle` (pre-copy or stop-and-copy), runs to the end. */
function moved(from: string, to: string, cycle: number, preCopy: boolean): string {
  const out = { text: '' };
  const g = boot(from, out);
  assert.equal(g.machine.run(cycle).kind, 'cycle-limit');
  const console = (b: number): void => void (out.text += String.fromCharCode(b));
  let dest: Guest;
  let note: string;
  if (preCopy) {
    // The lab's move (migrateLive) between two hosts; to the same kind of host, its steps here.
    let r: ReturnType<typeof preCopyMove>;
    if (from !== to) r = migrateLive(g, { to, preCopy: true, linkBitsPerSecond: 10e9, console });
    else r = preCopyMove(g, to, console);
    if (typeof r === 'string') assert.fail(`${from} -> ${to} after cycle ${cycle}: ${r}`);
    assert.ok(r.report.rounds.length >= 2, JSON.stringify(r.report.rounds));
    dest = r.guest;
    note = `${r.report.rounds.length} rounds, ${r.report.pagesSent} pages, downtime ${r.report.downtimeMs.toFixed(3)} ms`;
  } else {
    const c = runToSafePoint(g, cycle + 200_000_000);
    assert.ok('regs' in c, `no safe point after cycle ${cycle}: ${JSON.stringify(c)}`);
    const m = migrateGuest(g, to, { console });
    if (typeof m === 'string') assert.fail(`${from} -> ${to} after cycle ${cycle}: ${m}`);
    // Guest-physical tables: CR3's directory is among them, every entry names a guest frame.
    const { memory, pageTables, guestPages } = m.record;
    assert.ok(pageTables.directories.includes(m.record.vmm.cr3 >>> 12));
    const view = new DataView(memory.buffer, memory.byteOffset);
    for (const d of pageTables.directories)
      for (let k = 0; k < 1024; k++) {
        const e = view.getUint32(d * 4096 + k * 4, true);
        if ((e & 1) !== 0) assert.ok(e >>> 12 < guestPages, `directory 0x${d.toString(16)}[${k}]`);
      }
    dest = m.guest;
    note = `stop-and-copy at a ${c.kind} safe point`;
  }
  assert.equal(dest.platform, to);
  dest.machine.cpu.blocksEnabled = false;
  const end = dest.machine.run(dest.machine.cpu.cycles + FIVE_SECONDS);
  assert.deepEqual(end, { kind: 'exit', value: 0 }, out.text.slice(-3000));
  assert.doesNotMatch(out.text, /Call Trace|WARNING|BUG:|Oops|Kernel panic/);
  assert.deepEqual(programLines(out.text), reference(from), note);
  return note;
}

describe('Linux migrates while it boots', { skip: !built.ok && built.output }, () => {
  // Early in init (about 30 M cycles), after its first checks (60 M: its x87 line), and in its
  // loopback TCP check (88 M); xen's boot is some 115 M cycles, l4's some 75 M.
  it('xen to xen (the shadows made again there): stop-and-copy, and pre-copy during the TCP check', (t) => {
    t.diagnostic(`stop-and-copy: ${moved('xen', 'xen', 60_000_000, false)}`);
    t.diagnostic(`pre-copy: ${moved('xen', 'xen', 88_000_000, true)}`);
  });
  it('l4 to xen (its shadows made from the guest tables): stop-and-copy, and pre-copy', (t) => {
    t.diagnostic(`stop-and-copy: ${moved('l4', 'xen', 60_000_000, false)}`);
    t.diagnostic(`pre-copy: ${moved('l4', 'xen', 30_000_000, true)}`);
  });
  // Two points that each met a VMM entry not made again whole after a fault on a page the
  // destination's space had not mapped yet (src/vmm/Vmm.ts enterInterrupt, onDeliver): 40 M
  // (the PIC acknowledged before the IDT's gate was read: the timer's IRQ 0 stayed in service,
  // and init's console output never came) and 45 M (the frame pushed over the return address:
  // EIP 0x247, EFLAGS taken for it).
  it('l4 to l4 (its spaces re-faulted from the guest tables): stop-and-copy, and pre-copy', (t) => {
    t.diagnostic(`stop-and-copy at 40 M: ${moved('l4', 'l4', 40_000_000, false)}`);
    t.diagnostic(`stop-and-copy at 45 M: ${moved('l4', 'l4', 45_000_000, false)}`);
    t.diagnostic(`pre-copy: ${moved('l4', 'l4', 45_000_000, true)}`);
  });
  it('xen to l4: stop-and-copy, and pre-copy', (t) => {
    t.diagnostic(`stop-and-copy: ${moved('xen', 'l4', 88_000_000, false)}`);
    t.diagnostic(`pre-copy: ${moved('xen', 'l4', 80_000_000, true)}`);
  });
});
