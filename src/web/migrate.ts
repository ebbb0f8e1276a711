// The lab's migrate button (issue 20): the running guest moves between the two hosts of the
// worker — one xen, one l4, both in this realm — the way `previrt bench migrate` moves its guest
// (src/bench/migrate/run.ts) and `previrt run`'s monitor sends one (src/cli/migrateNet.ts):
// pre-copy rounds over a simulated migration link while the guest runs on
// (src/bench/migrate/precopy.ts), a stop at its next safe point, the stop-and-copy of what is
// left with its CPU and device state (src/platforms/migrate.ts captureGuest), and the guest
// resumed on the destination from the copy the rounds delivered. Nothing here computes a figure:
// the rounds, pages and downtime are the pre-copy's own.
import {
  captureGuest,
  migrationRefusal,
  resumeGuest,
  runToSafePoint,
} from '../platforms/migrate.ts';
import type { Guest } from '../platforms/platform.ts';
import { MigrationLink, noPreCopy, preCopy, stopAndCopy } from '../bench/migrate/precopy.ts';
import type { MigrationReport } from './protocol.ts';

/** How far past the pre-copy's end (simulated seconds) the guest may run to a safe point. */
const SAFE_POINT_WINDOW_S = 1;

export interface LiveMigrateOptions {
  to: string;
  preCopy: boolean;
  linkBitsPerSecond: number;
  /** The destination guest's console (the same terminal). */
  console: (byte: number) => void;
}

/**
 * Moves `guest` to platform `options.to`: the destination guest and the migration's figures, or
 * one line why not — then the source is the guest still, stopped between two of its runs (the
 * caller runs it on, or reports its end if it ended during the pre-copy).
 */
export function migrateLive(
  guest: Guest,
  options: LiveMigrateOptions,
): { guest: Guest; report: MigrationReport } | string {
  if (options.to === guest.platform) return `the guest is on ${options.to} already`;
  const refused = migrationRefusal(guest);
  if (refused !== undefined) return refused;
  const m = guest.machine;
  const hz = m.costModel.hz;
  const link = new MigrationLink(options.linkBitsPerSecond, hz);
  // The guest runs on while a round is on the wire (as migrateNet.ts's sendGuestPreCopy).
  const runFor = (cycles: number): boolean => {
    m.resume();
    return m.run(m.cpu.cycles + cycles).kind === 'cycle-limit';
  };
  const startCycle = m.cpu.cycles;
  const copy = options.preCopy ? preCopy(guest, link, runFor) : noPreCopy(guest, link);
  if (typeof copy === 'string') return copy;
  const context = runToSafePoint(guest, m.cpu.cycles + SAFE_POINT_WINDOW_S * hz, 2_000);
  if (!('regs' in context)) {
    copy.log?.stop();
    return context.kind === 'cycle-limit'
      ? `no safe point within ${SAFE_POINT_WINDOW_S} simulated s`
      : 'the guest stopped before it reached a safe point (its run ended)';
  }
  const record = captureGuest(guest);
  if (typeof record === 'string') {
    copy.log?.stop();
    return record;
  }
  const stopCycle = m.cpu.cycles;
  // The CPU and device state's size on the link, as the in-process bench counts it.
  const t = record.pageTables;
  const stateBytes =
    JSON.stringify(record.vmm).length +
    JSON.stringify(record.context).length +
    record.vcpuBlock.length +
    4 * (t.directories.length + t.tables.length) +
    8 * t.entries.length;
  const last = stopAndCopy(copy, record, stateBytes);
  if (typeof last === 'string') return last;
  const moved = resumeGuest({ ...record, memory: copy.dest }, guest.config, options.to, {
    console: options.console,
    elapsedNs: Math.round((last.cycles * 1e9) / hz),
  });
  if (typeof moved === 'string') return moved;
  const rounds = [...copy.rounds, last];
  return {
    guest: moved,
    report: {
      from: guest.platform,
      to: moved.platform,
      safePoint: context.kind,
      preCopy: options.preCopy,
      linkBitsPerSecond: options.linkBitsPerSecond,
      rounds,
      pagesSent: rounds.reduce((n, r) => n + r.pages, 0),
      bytesSent: rounds.reduce((n, r) => n + r.bytes, 0),
      // The guest ran on the source for the rounds and to its safe point, then the stop-and-copy.
      totalMs: ((stopCycle - startCycle + last.cycles) / hz) * 1000,
      downtimeMs: last.ms,
    },
  };
}
