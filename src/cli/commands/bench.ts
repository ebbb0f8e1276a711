import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Command } from '../command.ts';
import {
  buildGuest,
  buildLinuxGuest,
  CONFIGS,
  DEFAULT_CONFIGS,
  guestKernelName,
  LINUX_GUEST,
  linuxInitramfs,
  linuxRowRefusal,
  nicPathOptions,
  type NetperfConfig,
} from '../../bench/netperf/build.ts';
import type { BootModule } from '../../loader/multiboot.ts';
import { NetperfWorkerError, runParallel, type NetperfJob } from '../../bench/netperf/parallel.ts';
import { runNetperf, type NetperfProgress, type NetperfRun } from '../../bench/netperf/run.ts';
import {
  formatSize,
  markdownTables,
  setting,
  summarise,
  type NetperfRow,
} from '../../bench/netperf/report.ts';
import { MAX_PAYLOAD } from '../../net/stream.ts';
import { migrateUsage, runBenchMigrate } from './benchMigrate.ts';

const usage = `usage: previrt bench netperf [--guest own|linux]
                             [--config native|nops|l4-para|l4-pre|xen-para|xen-pre|
                                       reuse-custom-l4|reuse-emul-l4|reuse-custom-xen|
                                       reuse-emul-xen|reuse-quiet-xen|reuse-spin-xen|
                                       reuse-flood-xen|reuse-quiet-l4|reuse-flood-l4[,...]]
                             [--bytes SIZE] [--runs N] [--seed S] [--faults SPEC] [--jobs N]
                             [--pcap DIR] [--json] [--console]

The seed's netperf receive benchmark on the emulated PC: raw, on the L4-style microkernel and on
the Xen-style hypervisor.
Builds the guest (make -C guest), boots it with init=netserver on a PC with a DP83820 gigabit
NIC (under xen: in a domain, under l4: in a VM, through the in-place VMM or para-virtualized;
the NIC given to the domain or VM), and streams SIZE bytes of
seeded pseudo-random data plus a CRC-32 trailer into it over TCP from the client machine on
the far end of the simulated 1 Gb/s link. netserver checks the CRC; every run must say ok.

Measured on the simulated clock, from the client's first SYN to netserver's result line:
  Xput         payload Mb/s (10^6 bit/s)
  CPU util     (all − idle cycles) / all cycles
  cycles/byte  non-idle cycles / payload bytes
with the counts behind them (interrupts, port I/O, MMIO, exceptions, system calls, NIC and
client counters; under xen also hypercalls by kind, bounces, upcalls, VMM calls by kind,
page-table updates, pins and base switches, virtual interrupts, NIC DMA translations; under l4
IPC messages by kind, L4 system calls, pages mapped and unmapped, space switches) and the
host's wall-clock time and guest MIPS. A last line compares each pre-virtualized row with the
para-virtualized one on the same hypervisor.

options:
  --guest G      own: the project's kernel (default); linux: Debian's Linux 6.1 with its
                 ns83820 driver and TCP and the project's netserver (npm run guest:linux builds
                 it, the kernel once per configuration), rows native (guest/linux/build/bzImage),
                 nops, l4-pre and xen-pre (the one afterburned guest/linux/build/afterburned/
                 bzImage on the raw PC and through the in-place VMM, the NIC passed through);
                 the para-virtualized rows stay the project's kernel's (there is no
                 para-virtualized Linux). A row whose platform refuses its kernel (the
                 platform's own line) is left out of the default with a note, and is an error
                 when --config asks for it
  --config C     native (guest/build/native/kernel.elf, row "native, raw"),
                 nops (guest/build/afterburned/kernel.elf, row "NOPs, raw"),
                 l4-para (guest/build/l4-para/kernel.elf, para-virtualized for l4, on
                 l4: row "L4Ka::Linux-style (l4-para)"),
                 l4-pre (the afterburned kernel on l4, row "L4Ka in-place VMM"),
                 xen-para (guest/build/xen-para/kernel.elf, para-virtualized for xen, on
                 xen: row "XenoLinux-style (xen-para)"),
                 xen-pre (the afterburned kernel on xen, row "Xen in-place VMM"),
                 reuse-custom-l4 (the seed's second table: a guest reaching the network
                 through a driver VM, the afterburned kernel with the NIC passed through and
                 its translation module; here on l4, the kernel para-virtualized for l4 as
                 the guest with its custom virtual network driver, which talks to the
                 driver VM's VMM by IPC; row "Custom driver (l4)"),
                 reuse-emul-l4 (the same, the afterburned guest's unmodified driver against
                 the in-place VMM's DP83820 model, the two VMMs talking by IPC; row "DP83820
                 emulation (l4)"),
                 reuse-custom-xen (the same on xen, the kernel para-virtualized for xen as
                 the guest with its custom virtual network driver, netfront; row "Custom
                 driver (xen)"),
                 reuse-emul-xen (the same on xen, the afterburned guest against the model;
                 row "DP83820 emulation (xen)"),
                 reuse-quiet-xen, reuse-spin-xen and reuse-flood-xen (isolation:
                 reuse-emul-xen beside a second client of the driver VM, 10.0.2.16,
                 running guest/user/flood.c: quiet, one frame and then idle; spin, one
                 frame and then a loop that takes all the CPU its domain gets; or flooding
                 the wire with full-sized UDP datagrams, its transmit ring always full; a
                 line under the tables gives each client's frames and the times its share
                 of the link was full, and the guest's figures against each earlier row),
                 reuse-quiet-l4 and reuse-flood-l4 (the same on l4, reuse-emul-l4 beside
                 the quiet or the flooding second client),
                 or a comma-separated list (rows in the order above); default the first six,
                 the seed's first table in the seed's order
  --bytes SIZE   payload per run, e.g. 1M, 64M (default), 1G; K/M/G are powers of 1024
  --runs N       runs per configuration (default 1); seeds S, S+1, ...; the table shows means
  --seed S       seed of the payload and the client's sequence numbers (default 1)
  --faults SPEC  make the wire unreliable, both ways: a comma-separated list of drop=P, dup=P,
                 reorder=P, corrupt=P (the chance per frame, 0 to 1) and seed=N (the fault
                 injector's seed, default the run's seed), e.g. drop=0.001,corrupt=0.0005;
                 and/or driver-vm-crash-at=SIZE (--config reuse-emul-xen, reuse-custom-xen,
                 reuse-emul-l4, reuse-custom-l4 only): the driver VM crashes when the client has had
                 SIZE bytes acknowledged, the toolstack
                 restarts it and the guest reconnects; the run reports the restart and the
                 outage (crash to the guest's link up) in simulated ms. Every run must still
                 deliver the stream intact. --fault is the same option
  --jobs N       runs at once, each in a worker thread of its own (default: the host's cores,
                 here ${Math.max(1, availableParallelism())}); 1 runs them one after another. Each run is a simulation of its
                 own, so the figures are the same whatever N; only the host times differ
  --pcap DIR     write each run's wire, as the client machine sent and received it, to
                 DIR/CONFIG-seedS.pcap (pcap with simulated nanosecond timestamps, frames
                 without FCS: tcpdump -r, Wireshark); DIR is made if missing
  --json         print one JSON object (every run, every counter) instead of the tables
  --console      copy the guest's console to stderr
Progress goes to stderr (a bar on a terminal, plain lines otherwise or when runs go on at once);
results to stdout.

exit status: 0 every run verified, 1 a run failed (checksum mismatch, no result, transfer
failed), 2 bad usage or the guest build failed.`;

interface Options {
  guest: 'own' | 'linux';
  configs: NetperfConfig[];
  /**
   * --guest linux with --config: a row its platform refuses is an error (without: the row is
   * left out, with a note).
   */
  linuxRowsGiven?: boolean;
  bytes: number;
  runs: number;
  seed: number;
  /** Fault chances per frame, and the injector's seed (undefined: the run's seed). */
  faults?: WireFaults;
  /** The driver VM crashes when the client has had this many bytes acknowledged. */
  driverVmCrashAt?: number;
  json: boolean;
  console: boolean;
  /** Runs at once, in worker threads (1: one after another in this thread). */
  jobs: number;
  /** A folder for each run's capture of the wire (CONFIG-seedS.pcap). */
  pcap?: string;
}

/** "64M" → 67108864; K, M, G are powers of 1024 (netperf's convention for sizes). */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)([KMG]?)B?$/i.exec(text);
  if (m === null) return undefined;
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2].toUpperCase()] ?? 1;
  return Number(m[1]) * unit;
}

/** An unreliable wire: chances per frame, and the injector's seed (undefined: the run's). */
interface WireFaults {
  drop: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  seed?: number;
}

/**
 * "drop=0.01,corrupt=0.001,seed=7" → the fault chances; "driver-vm-crash-at=256K" → the bytes
 * acknowledged at which the driver VM crashes (`driverVmCrashAt`, only when given); a message
 * for anything else.
 */
export function parseFaults(text: string): (WireFaults & { driverVmCrashAt?: number }) | string {
  const f: WireFaults & { driverVmCrashAt?: number } = {
    drop: 0,
    duplicate: 0,
    reorder: 0,
    corrupt: 0,
  };
  const names = { drop: 'drop', dup: 'duplicate', reorder: 'reorder', corrupt: 'corrupt' } as const;
  const known = 'drop, dup, reorder, corrupt, seed, driver-vm-crash-at';
  for (const part of text.split(',')) {
    const m = /^([a-z-]+)=(.+)$/.exec(part.trim());
    if (m === null) return `'${part}' is not name=value (${known})`;
    const n = Number(m[2]);
    if (m[1] === 'driver-vm-crash-at') {
      const bytes = parseSize(m[2].trim());
      if (bytes === undefined || bytes < 1 || bytes > MAX_PAYLOAD)
        return `driver-vm-crash-at '${m[2]}' is not a size from 1 byte to 1G (e.g. 256K)`;
      f.driverVmCrashAt = bytes;
    } else if (m[1] === 'seed') {
      if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
        return `seed '${m[2]}' is not a whole number`;
      f.seed = n;
    } else if (m[1] in names) {
      if (!Number.isFinite(n) || n < 0 || n > 1 || m[2].trim() === '')
        return `${m[1]} '${m[2]}' is not a chance from 0 to 1`;
      f[names[m[1] as keyof typeof names]] = n;
    } else return `unknown fault '${m[1]}' (${known})`;
  }
  return f;
}

function parse(argv: string[]): Options | string {
  let configsGiven = false;
  const o: Options = {
    guest: 'own',
    configs: [...DEFAULT_CONFIGS],
    bytes: 64 * 2 ** 20,
    runs: 1,
    seed: 1,
    json: false,
    console: false,
    jobs: Math.max(1, availableParallelism()),
  };
  if (argv[0] !== 'netperf')
    return argv[0] === undefined
      ? 'which benchmark? (previrt bench netperf --help, previrt bench migrate --help)'
      : `unknown benchmark '${argv[0]}' (known: netperf, migrate)`;
  for (let k = 1; k < argv.length; k++) {
    const a = argv[k];
    const value = argv[k + 1];
    const needsValue = [
      '--guest',
      '--config',
      '--bytes',
      '--runs',
      '--seed',
      '--faults',
      '--fault',
      '--jobs',
      '--pcap',
    ].includes(a);
    if (needsValue && value === undefined) return `${a} needs a value`;
    if (needsValue) k++;
    switch (a) {
      case '--guest':
        if (value !== 'own' && value !== 'linux')
          return `--guest: '${value}' is not one of own, linux`;
        o.guest = value;
        break;
      case '--config': {
        configsGiven = true;
        const names = value.split(',');
        const bad = names.find((n) => !(n in CONFIGS));
        if (bad !== undefined || names.length === 0)
          return `--config: unknown configuration '${bad ?? value}' (known: ${Object.keys(CONFIGS).join(', ')})`;
        // The rows come in the seed's order, whatever the order asked for.
        o.configs = (Object.keys(CONFIGS) as NetperfConfig[]).filter((n) => names.includes(n));
        break;
      }
      case '--bytes': {
        const n = parseSize(value);
        if (n === undefined || n < 1 || n > MAX_PAYLOAD)
          return `--bytes: '${value}' is not a size from 1 byte to 1G (e.g. 64M)`;
        o.bytes = n;
        break;
      }
      case '--pcap':
        o.pcap = value;
        break;
      case '--jobs': {
        const n = Number(value);
        if (!Number.isSafeInteger(n) || n < 1 || n > 256)
          return `--jobs: '${value}' is not a whole number from 1 to 256`;
        o.jobs = n;
        break;
      }
      case '--runs':
      case '--seed': {
        const n = Number(value);
        const min = a === '--runs' ? 1 : 0;
        if (!Number.isSafeInteger(n) || n < min || n > 0xffffffff)
          return `${a}: '${value}' is not a whole number${a === '--runs' ? ' of at least 1' : ''}`;
        if (a === '--runs') o.runs = n;
        else o.seed = n;
        break;
      }
      case '--faults':
      case '--fault': {
        const faults = parseFaults(value);
        if (typeof faults === 'string') return `${a}: ${faults}`;
        const { driverVmCrashAt, ...wire } = faults;
        if (driverVmCrashAt !== undefined) o.driverVmCrashAt = driverVmCrashAt;
        // The wire is unreliable only if the spec says something about it.
        if (value.split(',').some((p) => !p.trim().startsWith('driver-vm-crash-at=')))
          o.faults = wire;
        break;
      }
      case '--json':
        o.json = true;
        break;
      case '--console':
        o.console = true;
        break;
      default:
        return `unknown option '${a}' (previrt bench netperf --help)`;
    }
  }
  if (o.driverVmCrashAt !== undefined) {
    const crash = '--faults driver-vm-crash-at';
    // The driver VM is restarted on xen and l4, for both front ends (the VMM's and netfront.c).
    const restarted = ['reuse-emul-xen', 'reuse-custom-xen', 'reuse-emul-l4', 'reuse-custom-l4'];
    const other = o.configs.find((c) => !restarted.includes(c));
    const hint = '(--config reuse-emul-xen, reuse-custom-xen, reuse-emul-l4 or reuse-custom-l4)';
    if (o.guest === 'linux' || !o.configs.some((c) => c.startsWith('reuse-')))
      return `${crash} needs a driver VM row ${hint}`;
    if (other?.startsWith('reuse-') === true)
      return `${crash}: row '${other}' has a second client of the driver VM, and a restart beside one is not measured yet ${hint}`;
    if (other !== undefined) return `${crash}: row '${other}' has no driver VM ${hint}`;
    if (o.driverVmCrashAt >= o.bytes)
      return `${crash} (${formatSize(o.driverVmCrashAt)}) is not below --bytes (${formatSize(o.bytes)}): the driver VM would never crash`;
  }
  if (o.guest === 'linux') {
    const rows = Object.keys(LINUX_GUEST.configs);
    const other = o.configs.find((c) => !rows.includes(c));
    if (configsGiven && other !== undefined)
      return (
        `--guest linux: no row '${other}' with Linux (its rows: ${rows.join(', ')}; ` +
        "the para-virtualized and driver reuse rows are the project's kernel's)"
      );
    if (!configsGiven) o.configs = o.configs.filter((c) => rows.includes(c));
    o.linuxRowsGiven = configsGiven;
  }
  return o;
}

/**
 * What a Linux table ran (under it): the kernel of each row, the rows left out and why, and that
 * the para-virtualized rows are not Linux's.
 */
function linuxLines(
  configs: NetperfConfig[],
  leftOut: { config: NetperfConfig; reason: string }[],
): string {
  const byKernel = new Map<string, string[]>();
  for (const c of configs) {
    const kernel = guestKernelName(LINUX_GUEST.configs[c] ?? LINUX_GUEST.kernel);
    byKernel.set(kernel, [...(byKernel.get(kernel) ?? []), `"${CONFIGS[c].label}"`]);
  }
  const kernels = [...byKernel].map(([k, labels]) => `${k} in ${labels.join(', ')}`);
  const lines = [
    `Guest: Debian's Linux 6.1 (${kernels.join('; ')}; its ns83820 driver and TCP, the ` +
      `socket's receive buffer 256 KB) running the project's netserver from ` +
      `${guestKernelName(LINUX_GUEST.initramfs)}.`,
    ...leftOut.map((l) => `Left out: "${CONFIGS[l.config].label}" (${l.config}): ${l.reason}.`),
    "The para-virtualized rows (the seed's L4Ka::Linux and XenoLinux) stay the project's " +
      "kernel's, hand-ported to each hypervisor; previrt has no para-virtualized Linux: " +
      'previrt bench netperf --config l4-para,xen-para.',
  ];
  return lines.join('\n');
}

/** The driver VM's crash and restart, in simulated ms (means over the runs that had one). */
function driverVmLine(rows: NetperfRow[], crashAt: number): string {
  const reports = rows.flatMap((r) => r.runs.flatMap((run) => run.driverVm ?? []));
  const mean = (xs: (number | undefined)[]): string => {
    const known = xs.filter((x): x is number => x !== undefined);
    return known.length === 0 ? '—' : (known.reduce((a, b) => a + b, 0) / known.length).toFixed(2);
  };
  const restarts = reports.reduce((n, r) => n + r.restarts, 0);
  return (
    `Driver VM crashed at ${formatSize(crashAt)} acknowledged and restarted by the toolstack ` +
    `(${restarts} restart${restarts === 1 ? '' : 's'} in ${reports.length} run${reports.length === 1 ? '' : 's'}): ` +
    `outage ${mean(reports.map((r) => r.outageMs))} ms simulated (crash to the guest's link up), ` +
    `first frame to the guest after ${mean(reports.map((r) => r.firstFrameMs))} ms.`
  );
}

/**
 * Progress on stderr: a redrawn bar on a terminal, a line per quarter otherwise (and always
 * lines when runs go on at once).
 */
function progressReporter(
  title: string,
  tty = process.stderr.isTTY === true,
): {
  update(p: NetperfProgress): void;
  done(r: NetperfRun): void;
} {
  const t0 = performance.now();
  let lastDraw = 0;
  let lastQuarter = -1;
  let phase = '';
  return {
    update(p) {
      const fraction = p.streamBytes > 0 ? p.bytesAcked / p.streamBytes : 0;
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && p.phase !== 'finish') return;
        lastDraw = now;
        const width = 30;
        const full = Math.round(fraction * width);
        const bar = '#'.repeat(full) + '-'.repeat(width - full);
        process.stderr.write(
          `\r${title} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
            `${p.phase.padEnd(8)} simulated ${p.simulatedSeconds.toFixed(3)} s, ` +
            `host ${((now - t0) / 1000).toFixed(0)} s `,
        );
        return;
      }
      if (p.phase !== phase && p.phase !== 'finish') {
        phase = p.phase;
        console.error(`${title}: ${p.phase === 'boot' ? 'booting' : 'transferring'}`);
      }
      const quarter = Math.floor(fraction * 4);
      if (p.phase === 'transfer' && quarter > lastQuarter && quarter < 4) {
        lastQuarter = quarter;
        if (quarter > 0) console.error(`${title}: ${quarter * 25}% acknowledged`);
      }
    },
    done(r) {
      if (tty) process.stderr.write('\n');
      console.error(
        `${title}: ${r.ok ? 'ok' : `FAILED: ${r.error}`}; ${r.throughputMbps.toFixed(1)} Mb/s, ` +
          `CPU ${(r.cpuUtilisation * 100).toFixed(1)}%, ${r.cyclesPerByte.toFixed(2)} cycles/byte, ` +
          (r.driverVm === undefined
            ? ''
            : `driver VM restarts ${r.driverVm.restarts}, outage ${r.driverVm.outageMs?.toFixed(2) ?? '—'} ms, `) +
          `host ${r.hostSeconds.toFixed(1)} s`,
      );
    },
  };
}

export const bench: Command = {
  name: 'bench',
  summary:
    'benchmarks: `bench netperf`, the seed netperf receive test, raw and on xen; `bench migrate`, a guest moved between xen and l4 mid-transfer',
  usage: `${usage}\n\n${migrateUsage}`,
  async run(argv) {
    if (argv[0] === 'migrate') return runBenchMigrate(argv.slice(1));
    const o = parse(argv);
    if (typeof o === 'string') {
      console.error(`previrt bench: ${o}`);
      return 2;
    }
    console.error(
      o.guest === 'linux'
        ? 'netperf: building the Linux guest (npm run guest:linux; the kernel takes minutes the first time)'
        : 'netperf: building the guest (make -C guest)',
    );
    const linux = o.guest === 'linux';
    // The afterburned Linux too when a row runs it (nops and the in-place VMM rows).
    const afterburned =
      linux && o.configs.some((c) => LINUX_GUEST.configs[c] !== LINUX_GUEST.kernel);
    const builds = linux
      ? [() => buildLinuxGuest(), ...(afterburned ? [() => buildLinuxGuest('afterburned')] : [])]
      : [buildGuest];
    for (const build of builds) {
      const built = build();
      if (!built.ok) {
        console.error(built.output.trimEnd());
        console.error('previrt bench: the guest build failed (output above)');
        return 2;
      }
    }
    // A Linux row whose platform does not run Linux yet (its own line): an error when asked
    // for, left out of the default with a note.
    const leftOut: { config: NetperfConfig; reason: string }[] = [];
    if (linux) {
      for (const config of o.configs) {
        const reason = linuxRowRefusal(config);
        if (reason === undefined) continue;
        if (o.linuxRowsGiven === true) {
          console.error(`previrt bench: --guest linux --config ${config}: ${reason}`);
          return 2;
        }
        leftOut.push({ config, reason });
        console.error(`netperf: left out ${config} (${reason})`);
      }
      o.configs = o.configs.filter((c) => !leftOut.some((l) => l.config === c));
      if (o.configs.length === 0) {
        console.error('previrt bench: --guest linux: no platform runs a Linux row (above)');
        return 2;
      }
    }
    if (o.pcap !== undefined) {
      try {
        mkdirSync(o.pcap, { recursive: true });
      } catch (e) {
        console.error(`previrt bench: --pcap: cannot make ${o.pcap}: ${(e as Error).message}`);
        return 2;
      }
    }
    // Every run in order (row by row, seed by seed), then run one after another or at once.
    const rows: NetperfRow[] = [];
    const runs: {
      row: NetperfRow;
      title: string;
      header: string;
      config: string;
      job: NetperfJob;
    }[] = [];
    for (const config of o.configs) {
      const linuxKernel = LINUX_GUEST.configs[config];
      const c =
        linux && linuxKernel !== undefined
          ? { ...CONFIGS[config], kernel: linuxKernel }
          : CONFIGS[config];
      const kernel = readFileSync(c.kernel);
      const modules: BootModule[] | undefined = linux ? [linuxInitramfs()] : undefined;
      const cmdline = linux ? LINUX_GUEST.cmdline : undefined;
      const row: NetperfRow = {
        label: c.label,
        runs: [],
        hypervisor: c.hypervisor,
        virtualization: c.virtualization,
      };
      rows.push(row);
      for (let k = 0; k < o.runs; k++) {
        const seed = o.seed + k;
        const title = `netperf ${config}${o.runs > 1 ? ` run ${k + 1}/${o.runs}` : ''}`;
        const header =
          `${title}: ${guestKernelName(c.kernel)} ${cmdline ?? 'init=netserver'}, ` +
          `${formatSize(o.bytes)}, seed ${seed}`;
        const job: NetperfJob = {
          label: c.label,
          kernel,
          kernelName: guestKernelName(c.kernel),
          payloadBytes: o.bytes,
          seed,
          faults: o.faults === undefined ? undefined : { ...o.faults, seed: o.faults.seed ?? seed },
          ...(o.driverVmCrashAt === undefined ? {} : { driverVmCrashAtBytes: o.driverVmCrashAt }),
          hypervisor: c.hypervisor,
          cmdline,
          modules,
          ...nicPathOptions(c),
          ...(o.pcap === undefined ? {} : { pcap: join(o.pcap, `${config}-seed${seed}.pcap`) }),
        };
        runs.push({ row, title, header, config, job });
      }
    }
    if (o.jobs === 1 || runs.length === 1) {
      for (const r of runs) {
        console.error(r.header);
        const progress = progressReporter(r.title);
        let run: NetperfRun;
        try {
          run = runNetperf({
            ...r.job,
            onProgress: (p) => progress.update(p),
            onConsoleLine: o.console
              ? (line) => console.error(`  [${r.config}] ${line}`)
              : undefined,
          });
        } catch (e) {
          // The same one line as a worker thread's failure (below): which run, and why.
          console.error(
            `previrt bench: ${r.title} (row "${r.row.label}", seed ${r.job.seed}) failed: ${e instanceof Error ? e.message : String(e)}`,
          );
          return 1;
        }
        progress.done(run);
        r.row.runs.push(run);
      }
    } else {
      const reporters = runs.map((r) => progressReporter(r.title, false));
      console.error(
        `netperf: ${runs.length} runs, ${Math.min(o.jobs, runs.length)} at once (--jobs ${o.jobs})`,
      );
      let done: NetperfRun[];
      try {
        done = await runParallel(
          runs.map((r) => r.job),
          o.jobs,
          {
            onStart: (k) => console.error(runs[k].header),
            onProgress: (k, p) => reporters[k].update(p),
            onConsoleLine: o.console
              ? (k, line) => console.error(`  [${runs[k].config}] ${line}`)
              : undefined,
            onDone: (k, run) => reporters[k].done(run),
          },
        );
      } catch (e) {
        if (!(e instanceof NetperfWorkerError)) throw e;
        const r = runs[e.index];
        console.error(
          `previrt bench: ${r.title} (row "${r.row.label}", seed ${r.job.seed}) failed in its worker thread: ${e.message}`,
        );
        return 1;
      }
      done.forEach((run, k) => runs[k].row.runs.push(run));
    }
    const ok = rows.every((r) => r.runs.every((run) => run.ok));
    if (o.json) {
      console.log(
        JSON.stringify(
          {
            benchmark: 'netperf',
            ...(linux ? { guest: 'linux', leftOut } : {}),
            payloadBytes: o.bytes,
            runsPerConfig: o.runs,
            seed: o.seed,
            faults: o.faults,
            ...(o.driverVmCrashAt === undefined ? {} : { driverVmCrashAt: o.driverVmCrashAt }),
            ok,
            rows: rows.map((r) => ({ label: r.label, runs: r.runs, summary: summarise(r) })),
          },
          null,
          2,
        ),
      );
    } else {
      console.log(markdownTables(rows));
      console.log('');
      console.log(setting(rows));
      if (linux) console.log(linuxLines(o.configs, leftOut));
      if (o.driverVmCrashAt !== undefined) console.log(driverVmLine(rows, o.driverVmCrashAt));
      if (o.faults !== undefined) {
        const f = o.faults;
        console.log(
          `Unreliable wire, both ways, chances per frame: drop ${f.drop}, duplicate ${f.duplicate}, ` +
            `reorder ${f.reorder}, corrupt ${f.corrupt}; injector seed ${f.seed ?? "the run's seed"}.`,
        );
      }
    }
    if (!ok) {
      for (const r of rows)
        for (const run of r.runs)
          if (!run.ok) console.error(`previrt bench: ${r.label}, seed ${run.seed}: ${run.error}`);
    }
    return ok ? 0 : 1;
  },
};
