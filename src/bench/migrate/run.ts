/**
 * `previrt bench migrate` (issue 16): the netperf receive test (bench/netperf/run.ts) on host A,
 * the guest moved to host B mid-stream — and on, for a round trip — and the transfer finished
 * there. The guest is the afterburned kernel with the VMM's DP83820 model on the wire (a guest
 * with a passed-through NIC cannot move); the client machine and a learning switch sit between
 * the hosts (network.ts). Each move:
 *
 *   1. when the client has had `atBytes` acknowledged, migration starts: with pre-copy, rounds
 *      of memory go over the migration link while the guest runs on (precopy.ts);
 *   2. the guest is stopped at its next safe point and what is left goes with its CPU and
 *      device state (stop-and-copy): the downtime is that copy's time on the link;
 *   3. host B builds the guest from the record and runs it; the source's copy is dropped only
 *      then (the commit); the guest announces itself and the switch learns its new port.
 *
 * Everything is on the simulated clock: the link's time per byte (default 1 Gb/s), the rounds,
 * the downtime (the guest stopped on A to running on B), the throughput before, during and after
 * each move, the client's retransmissions, and the checksum netserver computes.
 */
import { TcpSender, type SenderReport } from '../../net/TcpSender.ts';
import { createGuest } from '../../platforms/createGuest.ts';
import { transferProblems } from '../netperf/run.ts';
import {
  announce,
  captureGuest,
  migrationRefusal,
  resumeGuest,
  runToSafePoint,
} from '../../platforms/migrate.ts';
import type { Guest } from '../../platforms/platform.ts';
import { LearningSwitch, RelayClock } from './network.ts';
import { MigrationLink, noPreCopy, preCopy, stopAndCopy, type Round } from './precopy.ts';

export interface MigrateBenchOptions {
  /** The first host's platform, then each destination in turn (xen, l4). */
  path: string[];
  kernel: Uint8Array;
  kernelName: string;
  payloadBytes: number;
  /** Client bytes acknowledged at which each move starts (one per move, increasing). */
  atBytes: number[];
  seed: number;
  /** Machine memory of each host in MB (default 256). */
  memoryMb?: number;
  /**
   * The destination hosts' machine memory in MB (default: as the source's, more if their
   * hypervisor leaves the guest less; a test's way to make a destination refuse the guest).
   */
  destinationMemoryMb?: number;
  /** The migration link's bandwidth (default 1 Gb/s). */
  linkBitsPerSecond?: number;
  /** Pre-copy rounds before the stop (default true); false: stop-and-copy only. */
  preCopy?: boolean;
  onConsoleLine?: (line: string) => void;
}

/** One move. Times are simulated ms (the client's clock, which runs on). */
export interface MoveReport {
  from: string;
  to: string;
  /** Bytes the client had acknowledged when the move started. */
  atBytes: number;
  /** Where the guest stopped: in its kernel or idle. */
  safePoint: 'kernel' | 'idle';
  /** The pre-copy rounds and the stop-and-copy round (the last). */
  rounds: Round[];
  /** Start of the move to the guest running on the destination. */
  totalMs: number;
  /** The guest stopped on the source to running on the destination. */
  downtimeMs: number;
  pagesSent: number;
  bytesSent: number;
  /** Throughput of the transfer (Mb/s) before the move, during it, and after it. */
  throughputMbps: { before: number; during: number; after: number };
}

export interface MigrateBenchResult {
  /** The transfer arrived intact (netserver's crc32 is the client's) and every move happened. */
  ok: boolean;
  error?: string;
  resultLine?: string;
  payloadBytes: number;
  moves: MoveReport[];
  /** The client's retransmissions, timeouts and fast retransmits over the whole transfer. */
  retransmissions: number;
  timeouts: number;
  fastRetransmits: number;
  /** Frames the switch sent to a host the guest had left (lost). */
  framesToOldHost: number;
  sender: SenderReport;
  /** Host wall-clock seconds of the whole run. */
  hostSeconds: number;
}

export function runMigrateBench(o: MigrateBenchOptions): MigrateBenchResult | string {
  if (o.path.length < 2) return 'a migration needs a source and a destination platform';
  if (o.atBytes.length !== o.path.length - 1)
    return `${o.path.length - 1} moves need as many --at-bytes marks (got ${o.atBytes.length})`;
  const t0 = performance.now();
  let resultLine: string | undefined;
  let line = '';
  const console = (b: number): void => {
    if (b === 0x0d) return;
    if (b !== 0x0a) {
      line += String.fromCharCode(b);
      return;
    }
    o.onConsoleLine?.(line);
    if (line.startsWith('netserver: ') && resultLine === undefined) resultLine = line;
    line = '';
  };
  const config = {
    platform: o.path[0],
    kernel: o.kernel,
    kernelName: o.kernelName,
    cmdline: 'init=netserver',
    memoryMb: o.memoryMb ?? 256,
    nic: { emulated: true },
    console,
  };
  let guest: Guest | string = createGuest(config);
  if (typeof guest === 'string') return guest;
  const refused = migrationRefusal(guest);
  if (refused !== undefined) return refused;
  const hz = guest.machine.costModel.hz;
  const relay = new RelayClock(guest.machine.clock);
  const client: { sender?: TcpSender } = {};
  const net = new LearningSwitch(relay, {
    receive(frame) {
      client.sender!.start();
      client.sender!.receive(frame);
    },
  });
  const sender = new TcpSender({
    clock: relay,
    transmit: (frame) => net.fromClient(frame),
    payloadBytes: o.payloadBytes,
    seed: o.seed,
  });
  client.sender = sender;
  net.live = net.addPort(guest.machine.link!);
  relay.at(hz, () => sender.start(), 'netperf.client-start');
  const link = new MigrationLink(o.linkBitsPerSecond ?? 1e9, hz);
  const ms = (cycles: number): number => (cycles / hz) * 1000;
  const rate = (bytes: number, cycles: number): number =>
    cycles > 0 ? (bytes * 8) / (cycles / hz) / 1e6 : 0;

  /** Runs the current guest until `until()` or the run's end; false if it ended. */
  const runUntil = (g: Guest, until: () => boolean, limitCycles: number): boolean => {
    const m = g.machine;
    while (!until()) {
      if (m.cpu.cycles >= limitCycles) return false;
      m.resume();
      const end = m.run(Math.min(limitCycles, m.cpu.cycles + hz / 1000));
      if (end.kind !== 'cycle-limit') return false;
    }
    return true;
  };
  const limit = (g: Guest): number =>
    g.machine.cpu.cycles + Math.round(hz * (30 + (o.payloadBytes * 8) / 1e7));

  const moves: MoveReport[] = [];
  const problems: string[] = [];
  let lastResume = { at: 0, acked: 0 };
  for (let k = 0; k < o.path.length - 1; k++) {
    const g: Guest = guest;
    const mark = o.atBytes[k];
    if (!runUntil(g, () => sender.bytesAcked >= mark || resultLine !== undefined, limit(g))) {
      problems.push(`the transfer did not reach ${mark} bytes before the move to ${o.path[k + 1]}`);
      break;
    }
    if (k === 0) lastResume = { at: sender.report().times.firstSyn ?? 0, acked: 0 };
    const start = { at: relay.now(), acked: sender.bytesAcked };
    const to = o.path[k + 1];
    /** The guest runs on for `cycles`; false if its run ended. */
    const runFor = (cycles: number): boolean => {
      const target = g.machine.cpu.cycles + cycles;
      runUntil(g, () => g.machine.cpu.cycles >= target, target);
      return g.machine.end === undefined || g.machine.end.kind === 'cycle-limit';
    };
    const copy = o.preCopy === false ? noPreCopy(g, link) : preCopy(g, link, runFor);
    if (typeof copy === 'string') {
      problems.push(copy);
      break;
    }
    const context = runToSafePoint(g, g.machine.cpu.cycles + hz, 2_000);
    if (!('regs' in context)) {
      copy.log?.stop();
      problems.push(`no safe point for the move to ${to}: ${JSON.stringify(context)}`);
      break;
    }
    const record = captureGuest(g);
    if (typeof record === 'string') {
      copy.log?.stop();
      problems.push(record);
      break;
    }
    const stop = relay.now();
    // The CPU and device state as JSON, the virtual-CPU block, and the page-table map as words
    // (a frame number each, an address and level per single entry).
    const t = record.pageTables;
    const stateBytes =
      JSON.stringify(record.vmm).length +
      JSON.stringify(record.context).length +
      record.vcpuBlock.length +
      4 * (t.directories.length + t.tables.length) +
      8 * t.entries.length;
    const last = stopAndCopy(copy, record, stateBytes);
    if (typeof last === 'string') {
      problems.push(`the move to ${to}: ${last}`);
      break;
    }
    const rounds = [...copy.rounds, last];
    const moved = resumeGuest({ ...record, memory: copy.dest }, g.config, to, {
      console,
      elapsedNs: Math.round((last.cycles * 1e9) / hz),
      memoryMb: o.destinationMemoryMb,
    });
    if (typeof moved === 'string') {
      // Before the commit: the source runs on (it is the guest still).
      problems.push(`the move to ${to} failed: ${moved}`);
      break;
    }
    // The commit: the destination runs; the source's copy is dropped (it is never run again).
    net.live = net.addPort(moved.machine.link!);
    relay.move(moved.machine.clock, stop + last.cycles);
    announce(moved);
    const resumed = { at: relay.now(), acked: sender.bytesAcked };
    moves.push({
      from: g.platform,
      to: moved.platform,
      atBytes: start.acked,
      safePoint: context.kind,
      rounds,
      totalMs: ms(resumed.at - start.at),
      downtimeMs: ms(resumed.at - stop),
      pagesSent: rounds.reduce((n, r) => n + r.pages, 0),
      bytesSent: rounds.reduce((n, r) => n + r.bytes, 0),
      throughputMbps: {
        before: rate(start.acked - lastResume.acked, start.at - lastResume.at),
        during: rate(resumed.acked - start.acked, resumed.at - start.at),
        after: 0,
      },
    });
    if (k > 0) {
      const prev = moves[k - 1];
      prev.throughputMbps.after = moves[k].throughputMbps.before;
    }
    lastResume = resumed;
    guest = moved;
  }
  // The rest of the transfer on the last host, and a little time for the guest to exit.
  const g: Guest = guest;
  runUntil(g, () => resultLine !== undefined, limit(g));
  const end = { at: relay.now(), acked: sender.bytesAcked };
  if (moves.length > 0)
    moves[moves.length - 1].throughputMbps.after = rate(
      end.acked - lastResume.acked,
      end.at - lastResume.at,
    );
  runUntil(
    g,
    () => g.machine.end !== undefined && g.machine.end.kind !== 'cycle-limit',
    g.machine.cpu.cycles + hz / 20,
  );

  const report = sender.report();
  problems.push(...transferProblems(resultLine, o.payloadBytes, report));
  if (moves.length !== o.path.length - 1 && problems.length === 0)
    problems.push('a move did not happen');
  return {
    ok: problems.length === 0,
    ...(problems.length === 0 ? {} : { error: problems.join('; ') }),
    resultLine,
    payloadBytes: o.payloadBytes,
    moves,
    retransmissions: report.counters.retransmissions,
    timeouts: report.counters.timeouts,
    fastRetransmits: report.counters.fastRetransmits,
    framesToOldHost: net.counters.toStoppedHost,
    sender: report,
    hostSeconds: (performance.now() - t0) / 1000,
  };
}
