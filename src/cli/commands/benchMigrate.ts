/**
 * `previrt bench migrate` (issue 16): the netperf transfer on one host, the guest moved to the
 * other hypervisor mid-stream (src/bench/migrate/run.ts), the figures of each move.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGuest, REPO_ROOT } from '../../bench/netperf/build.ts';
import {
  runMigrateBench,
  type MigrateBenchResult,
  type MoveReport,
} from '../../bench/migrate/run.ts';
import { MAX_PAYLOAD } from '../../net/stream.ts';

export const migrateUsage = `usage: previrt bench migrate --from xen|l4 --to l4|xen[,...] [--at-bytes SIZE[,...]]
                             [--bytes SIZE] [--memory MB] [--link RATE] [--stop-and-copy]
                             [--seed S] [--json] [--console]

Live migration of a running guest between the two hypervisors, in one process. The afterburned
kernel boots with init=netserver on host A (--from) with the in-place VMM's DP83820 model on the
wire; the client machine streams SIZE bytes into it through a switch between the hosts; when
the client has had --at-bytes acknowledged, the guest moves to host B (--to): pre-copy rounds
over the migration link while it runs (Xen's: first every page, then what was written meanwhile,
until fewer than 50 pages are left, a round sends more than the one before, 29 rounds or three
times the memory), then the guest stops at a safe point and the rest goes with its CPU and
devices (stop-and-copy); host B builds it and runs it, and the guest's announcement lets the
switch learn its new port. The transfer finishes there; netserver's CRC must be the client's.
--to l4,xen with --at-bytes 8M,160M moves it twice (a round trip).

Printed, on the simulated clock: each round's pages (zero pages: a header only), bytes and time,
the move's total time and downtime (the guest stopped on A to running on B), the throughput
before, during and after the move, the client's retransmissions, and the checksum's verdict.

options:
  --from P         the first host's hypervisor: xen or l4
  --to P[,P...]    the next host's (each move's destination in turn)
  --at-bytes S     client bytes acknowledged at which each move starts (default 8M; one per move)
  --bytes SIZE     payload (default 128M: the first round copies all of memory, 64 MB at
                   1 Gb/s about half a second, and the transfer must outlast the move)
  --memory MB      each host's machine memory (default 64)
  --link RATE      the migration link's bandwidth in bit/s, e.g. 1G (default), 100M, 10G
  --stop-and-copy  no pre-copy: the guest stops at once and all of its memory goes
  --seed S         seed of the payload and the client's sequence numbers (default 1)
  --json           one JSON object (every round, every figure) instead of the text
  --console        copy the guest's console to stderr

exit status: 0 the transfer arrived intact and every move happened, 1 not, 2 bad usage or the
guest build failed.`;

interface MigrateOptions {
  path: string[];
  atBytes: number[];
  bytes: number;
  memoryMb: number;
  link: number;
  preCopy: boolean;
  seed: number;
  json: boolean;
  console: boolean;
}

/** "8M" → 8388608: K, M, G are powers of 1024 (as bench netperf's --bytes). */
function parseSize(text: string): number | undefined {
  const m = /^(\d+)([KMG]?)B?$/i.exec(text);
  if (m === null) return undefined;
  return Number(m[1]) * ({ '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2].toUpperCase()] ?? 1);
}

/** "1G" → 1e9, "100M" → 1e8 (bit rates are powers of 1000). */
function parseRate(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(text);
  if (m === null) return undefined;
  const unit = { '': 1, K: 1e3, M: 1e6, G: 1e9 }[m[2].toUpperCase()] ?? 1;
  const v = Number(m[1]) * unit;
  return v >= 1e6 && v <= 1e12 ? v : undefined;
}

function parse(argv: string[]): MigrateOptions | string {
  let from: string | undefined;
  let to: string[] | undefined;
  let at: number[] | undefined;
  const o: Omit<MigrateOptions, 'path' | 'atBytes'> = {
    bytes: 128 * 2 ** 20,
    memoryMb: 64,
    link: 1e9,
    preCopy: true,
    seed: 1,
    json: false,
    console: false,
  };
  const platforms = ['xen', 'l4'];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const flag = ['--stop-and-copy', '--json', '--console'].includes(a);
    const value = argv[k + 1];
    if (!flag && a.startsWith('--') && value === undefined) return `${a} needs a value`;
    if (a === '--stop-and-copy') o.preCopy = false;
    else if (a === '--json') o.json = true;
    else if (a === '--console') o.console = true;
    else if (a === '--from') {
      if (!platforms.includes(value)) return `--from '${value}' is not xen or l4`;
      from = value;
      k++;
    } else if (a === '--to') {
      to = value.split(',');
      const bad = to.find((p) => !platforms.includes(p));
      if (bad !== undefined) return `--to '${bad}' is not xen or l4`;
      k++;
    } else if (a === '--at-bytes') {
      at = [];
      for (const part of value.split(',')) {
        const n = parseSize(part);
        if (n === undefined || n < 1 || n > MAX_PAYLOAD)
          return `--at-bytes '${part}' is not a size from 1 byte to 1G (e.g. 8M)`;
        at.push(n);
      }
      k++;
    } else if (a === '--bytes') {
      const n = parseSize(value);
      if (n === undefined || n < 1 || n > MAX_PAYLOAD)
        return `--bytes '${value}' is not a size from 1 byte to 1G (e.g. 128M)`;
      o.bytes = n;
      k++;
    } else if (a === '--memory') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 32 || n > 1024)
        return `--memory '${value}' is not a whole number of MB from 32 to 1024`;
      o.memoryMb = n;
      k++;
    } else if (a === '--link') {
      const n = parseRate(value);
      if (n === undefined)
        return `--link '${value}' is not a rate from 1M to 1000G bit/s (e.g. 1G)`;
      o.link = n;
      k++;
    } else if (a === '--seed') {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
        return `--seed '${value}' is not a whole number`;
      o.seed = n;
      k++;
    } else return `unknown option '${a}' (previrt bench migrate --help)`;
  }
  if (from === undefined) return '--from is missing (xen or l4)';
  if (to === undefined) return '--to is missing (l4 or xen)';
  const path = [from, ...to];
  for (let k = 1; k < path.length; k++)
    if (path[k] === path[k - 1])
      return `a move from ${path[k]} to ${path[k]}: previrt moves a guest between the two hypervisors`;
  const atBytes = at ?? [8 * 2 ** 20];
  if (atBytes.length !== to.length)
    return `${to.length} move(s) need as many --at-bytes marks (got ${atBytes.length})`;
  for (let k = 0; k < atBytes.length; k++) {
    if (atBytes[k] >= o.bytes) return `--at-bytes ${atBytes[k]} is not below --bytes ${o.bytes}`;
    if (k > 0 && atBytes[k] <= atBytes[k - 1]) return '--at-bytes marks must increase';
  }
  return { ...o, path, atBytes };
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

function moveText(m: MoveReport): string[] {
  const out = [
    `${m.from} -> ${m.to} at ${mb(m.atBytes)} acknowledged (safe point: ${m.safePoint === 'kernel' ? 'in the kernel' : 'idle'})`,
    '  round   pages    zero  skipped       bytes        ms',
  ];
  m.rounds.forEach((r, k) => {
    const name = r.final ? 'stop' : String(k + 1);
    out.push(
      `  ${name.padEnd(5)} ${String(r.pages).padStart(7)} ${String(r.zeroPages).padStart(7)} ${String(r.skipped).padStart(8)} ${mb(r.bytes).padStart(11)} ${r.ms.toFixed(1).padStart(9)}`,
    );
  });
  const t = m.throughputMbps;
  out.push(
    `  total ${m.totalMs.toFixed(1)} ms, downtime ${m.downtimeMs.toFixed(1)} ms, ${m.rounds.length - 1} pre-copy rounds, ${m.pagesSent} pages, ${mb(m.bytesSent)} sent`,
    `  throughput before ${t.before.toFixed(1)}, during ${t.during.toFixed(1)}, after ${t.after.toFixed(1)} Mb/s`,
  );
  return out;
}

function resultText(r: MigrateBenchResult): string[] {
  return [
    `transfer: ${r.payloadBytes} bytes, ${r.ok ? 'checksum ok' : `FAILED: ${r.error}`}${r.resultLine === undefined ? '' : ` (${r.resultLine})`}`,
    `client: ${r.retransmissions} retransmissions (${r.timeouts} timeouts, ${r.fastRetransmits} fast retransmits); ${r.framesToOldHost} frames went to a host the guest had left`,
  ];
}

export async function runBenchMigrate(argv: string[]): Promise<number> {
  const o = parse(argv);
  if (typeof o === 'string') {
    console.error(`previrt bench: ${o}`);
    return 2;
  }
  console.error('migrate: building the guest (make -C guest)');
  const built = buildGuest();
  if (!built.ok) {
    console.error(built.output.trimEnd());
    console.error('previrt bench: the guest build failed (output above)');
    return 2;
  }
  const path = join(REPO_ROOT, 'guest/build/afterburned/kernel.elf');
  const r = runMigrateBench({
    path: o.path,
    kernel: readFileSync(path),
    kernelName: 'kernel.elf',
    payloadBytes: o.bytes,
    atBytes: o.atBytes,
    seed: o.seed,
    memoryMb: o.memoryMb,
    linkBitsPerSecond: o.link,
    preCopy: o.preCopy,
    onConsoleLine: o.console ? (l) => console.error(l) : undefined,
  });
  if (typeof r === 'string') {
    console.error(`previrt bench: ${r}`);
    return 2;
  }
  if (o.json) {
    const { sender, ...rest } = r;
    console.log(
      JSON.stringify(
        {
          benchmark: 'migrate',
          path: o.path,
          memoryMb: o.memoryMb,
          linkBitsPerSecond: o.link,
          preCopy: o.preCopy,
          seed: o.seed,
          ...rest,
          downtimeMs: r.moves.map((m) => m.downtimeMs),
          client: sender.counters,
        },
        null,
        2,
      ),
    );
  } else {
    for (const m of r.moves) console.log(moveText(m).join('\n'));
    console.log(resultText(r).join('\n'));
    console.log(
      `Setting: ${o.memoryMb} MB hosts, the migration link ${o.link / 1e9} Gb/s, ${o.preCopy ? 'pre-copy' : 'stop-and-copy'}, seed ${o.seed}; host time ${r.hostSeconds.toFixed(1)} s.`,
    );
  }
  if (!r.ok) console.error(`previrt bench: ${r.error}`);
  return r.ok ? 0 : 1;
}
