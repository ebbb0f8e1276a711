import { readFileSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from '../command.ts';
import { byteWriter, type ByteWriter } from '../output.ts';
import { describeEnd, exitStatus, EXIT_STATUS, type MachineStats } from '../../machine/Machine.ts';
import { flattenCounters } from '../../machine/counters.ts';
import type { BootModule } from '../../loader/multiboot.ts';
import { createGuest, PLATFORMS } from '../../platforms/createGuest.ts';
import type { ExtraVmConfig, Guest, GuestStats } from '../../platforms/platform.ts';
import { restoreGuest } from '../../platforms/restoreGuest.ts';
import { readSnapshot, writeSnapshot } from '../../snapshot/file.ts';
import { attachNetwork, parseNic, type Network, type NicOption } from '../nic.ts';
import { deflateRaw } from '../snapshotCodec.ts';
import { parseTcp, parseUnix, receiveGuest, runMonitored } from '../migrateNet.ts';

const platformNames = [...PLATFORMS.keys()];

const platformHelp = [...PLATFORMS.values()]
  .map((p) => `                                ${p.name}: ${p.summary}`)
  .join('\n');

const usage = `usage: previrt run --kernel FILE [options]
       previrt run --restore FILE [--stats [--json]] [--serial ...] [--max-cycles N] ...

Boots a multiboot v1 kernel (an ELF32 i386 executable) or a Linux bzImage (the 32-bit boot
protocol, recognised by its setup header) on the emulated PC, as qemu-system-i386 -kernel
does, with COM1 as the console; or continues a snapshot.

options:
  --kernel FILE, -kernel FILE   the kernel (required): multiboot ELF or Linux bzImage
  --append TEXT, -append TEXT   the kernel command line
  --initrd FILE, -initrd FILE   for a bzImage: the initrd (repeatable: the files are
                                concatenated, as the kernel unpacks cpio archives one after
                                another); for a multiboot kernel: the same as --module
  --module FILE[ ARGS]          a multiboot module (repeatable); text after the file name
                                becomes the module's string
  --nic dp83820[,mac=M][,netperf=SIZE][,seed=N][,emulated]
                                a DP83820 NIC at PCI 00:03.0 (IRQ 11) on a 1 Gb/s link whose
                                far end is the host 10.0.2.2 (answers ARP and ping; the guest
                                is 10.0.2.15); netperf=SIZE adds the benchmark's client, which
                                streams SIZE bytes and a CRC-32 trailer to 10.0.2.15:5001;
                                emulated (xen or l4, afterburned guest): the guest's driver runs
                                against the in-place VMM's DP83820 model on the wire instead
                                of the real NIC passed through
  --vm 'FILE[ CMDLINE]'         another VM on the same hypervisor (repeatable; xen or l4): an
                                afterburned kernel with its command line, built before the
                                guest, through its own in-place VMM; its console lines go to
                                the same place as the guest's, prefixed [vm1], [vm2], ...; the
                                guest's end ends the run, console input is the guest's
  --vm-memory MB                each --vm VM's memory (default 32); the guest gets the rest
  --driver-vm 'FILE[ CMDLINE]'  a driver VM (xen or l4, with --nic dp83820): FILE (the
                                afterburned kernel, the same binary) gets the real NIC and the
                                VMM's client link, and its translation module bridges the wire
                                to the guest: an afterburned guest's own unmodified driver runs
                                against the VMM's DP83820 model; a kernel
                                para-virtualized for the hypervisor uses its custom
                                driver, netfront (README "Driver reuse");
                                CMDLINE defaults to init=sh (its shell idles); built first, its
                                console lines prefixed [driver], its counters vm1.vmm.*
  --driver-vm-memory MB         the driver VM's memory (default 32)
  --device pc-testdev           QEMU's pc-testdev on the raw PC (for test kernels such as
                                kvm-unit-tests': ports 0xe0-0xe7 and 0x2000-0x2017, 64 KB of
                                MMIO at 0xff000000; README "kvm-unit-tests")
  --memory MB, -m MB            machine memory (default 256)
  --serial stdio|FILE|none      where COM1 output goes (default stdio); with stdio, piped
                                standard input is typed into COM1
  --max-cycles N                stop after N simulated cycles (exit status 3)
  --stats                       print simulated time, cycles, instructions, guest MIPS and every
                                counter on stderr when the run ends
  --json                        with --stats: as one JSON object
  --cost-model NAME             cost-model preset (default p4-2.8ghz)
  --hypervisor ${platformNames.join('|')}
                                the platform (default none); a hypervisor needs an
                                afterburned kernel; --memory is the machine's:
${platformHelp}
  --interpret                   interpret every instruction: no compiled blocks (the same
                                results, cycles and counters, only slower on the host)
  --snapshot-at CYCLES          run to that simulated cycle (counted from power-on), write a
  --snapshot FILE               snapshot of the whole machine to FILE, say so on stderr and
                                exit 0 (if the guest ends first: no snapshot, its own status)
  --restore FILE                continue a snapshot: the same console output, cycles and
                                counters as the run it came from would have had from there;
                                the kernel, modules and machine come from the file (--kernel,
                                --append, --module, --memory, --cost-model are refused;
                                --hypervisor, if given, must be the snapshot's platform)
  --incoming tcp:HOST:PORT      wait there for a guest migrated from another previrt (its
                                monitor's migrate): built from these options on this
                                --hypervisor (xen or l4, the same --kernel), it continues here,
                                its console on this --serial, its exit status this run's
  --monitor unix:PATH           line commands on that socket (previrt monitor PATH COMMAND):
                                info status, stop, cont [CYCLE] (run on, to that simulated
                                cycle), migrate tcp:HOST:PORT, quit; the guest starts stopped

exit status:
  (v << 1) | 1   the guest wrote v to isa-debug-exit (port 0xf4), as QEMU
  2              bad usage or bad input file (one line on stderr says which)
  3              cycle limit reached
  4              guest halted with interrupts off, or idle with nothing left to wake it
  5              triple fault
  6              guest reset the machine (keyboard controller 0xfe)
Every ending other than isa-debug-exit prints a one-line reason on stderr.`;

interface Options {
  kernel?: string;
  append: string;
  nic?: NicOption;
  modules: string[];
  vms: string[];
  driverVm?: string;
  /** QEMU's test devices (--device pc-testdev). */
  testDevices?: boolean;
  driverVmMemoryMb?: number;
  vmMemoryMb?: number;
  memoryMb: number;
  serial: string;
  maxCycles: number;
  stats: boolean;
  json: boolean;
  costModel?: string;
  hypervisor: string;
  hypervisorGiven: boolean;
  interpret: boolean;
  snapshotAt?: number;
  snapshot?: string;
  restore?: string;
  /** --incoming tcp:HOST:PORT: wait there for a migrated guest. */
  incoming?: string;
  /** --monitor unix:PATH: line commands there. */
  monitor?: string;
  /** Options that build a guest, which a restore takes from the snapshot instead. */
  bootOptions: string[];
}

function parse(argv: string[]): Options | string {
  const o: Options = {
    append: '',
    modules: [],
    vms: [],
    memoryMb: 256,
    serial: 'stdio',
    maxCycles: Number.MAX_SAFE_INTEGER,
    stats: false,
    json: false,
    hypervisor: 'none',
    hypervisorGiven: false,
    interpret: false,
    bootOptions: [],
  };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const value = (): string | undefined => argv[++k];
    const need = (v: string | undefined): string => {
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (
        /^-(-kernel|kernel|-append|append|-module|-?initrd|-memory|m|-cost-model|-nic|-vm|-vm-memory|-driver-vm|-driver-vm-memory|-device)$/.test(
          a,
        )
      )
        o.bootOptions.push(a);
      switch (a) {
        case '--kernel':
        case '-kernel':
          o.kernel = need(value());
          break;
        case '--append':
        case '-append':
          o.append = need(value());
          break;
        case '--module':
        case '--initrd':
        case '-initrd':
          o.modules.push(need(value()));
          break;
        case '--nic':
        case '-nic': {
          const nic = parseNic(need(value()));
          if (typeof nic === 'string') return `--nic: ${nic}`;
          o.nic = nic;
          break;
        }
        case '--vm':
          o.vms.push(need(value()));
          break;
        case '--driver-vm':
          o.driverVm = need(value());
          break;
        case '--device': {
          const d = need(value());
          if (d !== 'pc-testdev') return `--device: unknown device '${d}' (known: pc-testdev)`;
          o.testDevices = true;
          break;
        }
        case '--vm-memory':
        case '--driver-vm-memory': {
          const v = need(value());
          const n = Number(v.replace(/[Mm]$/, ''));
          if (!Number.isInteger(n) || n < 16) return `${a}: '${v}' is not a size of at least 16 MB`;
          if (a === '--vm-memory') o.vmMemoryMb = n;
          else o.driverVmMemoryMb = n;
          break;
        }
        case '--memory':
        case '-m': {
          const v = need(value());
          const n = Number(v.replace(/[Mm]$/, ''));
          if (!Number.isInteger(n) || n <= 0) return `${a}: '${v}' is not a size in MB`;
          o.memoryMb = n;
          break;
        }
        case '--serial':
          o.serial = need(value());
          break;
        case '--max-cycles': {
          const v = need(value());
          const n = Number(v);
          if (!Number.isSafeInteger(n) || n <= 0)
            return `--max-cycles: '${v}' is not a positive whole number`;
          o.maxCycles = n;
          break;
        }
        case '--stats':
          o.stats = true;
          break;
        case '--json':
          o.json = true;
          break;
        case '--interpret':
          o.interpret = true;
          break;
        case '--cost-model':
          o.costModel = need(value());
          break;
        case '--hypervisor': {
          const v = need(value());
          if (!PLATFORMS.has(v))
            return `--hypervisor: '${v}' is not one of ${platformNames.join(', ')}`;
          o.hypervisor = v;
          o.hypervisorGiven = true;
          break;
        }
        case '--snapshot-at': {
          const v = need(value());
          const n = Number(v);
          if (!Number.isSafeInteger(n) || n <= 0)
            return `--snapshot-at: '${v}' is not a positive whole number of cycles`;
          o.snapshotAt = n;
          break;
        }
        case '--snapshot':
          o.snapshot = need(value());
          break;
        case '--incoming':
          o.incoming = need(value());
          break;
        case '--monitor':
          o.monitor = need(value());
          break;
        case '--restore':
          o.restore = need(value());
          break;
        default:
          return `unknown option '${a}' (previrt run --help)`;
      }
    } catch (e) {
      return (e as Error).message;
    }
  }
  if (o.restore !== undefined && o.bootOptions.length > 0)
    return `--restore takes the guest from the snapshot: ${o.bootOptions[0]} cannot go with it`;
  if (o.kernel === undefined && o.restore === undefined)
    return 'no kernel: --kernel FILE (or --restore FILE) is required';
  if (o.json && !o.stats) return '--json needs --stats';
  if (o.vmMemoryMb !== undefined && o.vms.length === 0) return '--vm-memory needs --vm';
  if (o.driverVmMemoryMb !== undefined && o.driverVm === undefined)
    return '--driver-vm-memory needs --driver-vm';
  if (o.driverVm !== undefined && o.nic === undefined)
    return '--driver-vm needs --nic dp83820 (the NIC it drives)';
  if (o.driverVm !== undefined && o.nic?.emulated === true)
    return "--driver-vm: the guest's NIC is the VMM's model already; leave out ',emulated'";
  if ((o.snapshotAt === undefined) !== (o.snapshot === undefined))
    return '--snapshot-at CYCLES and --snapshot FILE go together';
  if (o.snapshot !== undefined && o.nic?.netperf !== undefined)
    return "--snapshot: a run with --nic ...,netperf= cannot be snapshotted (the client's state is not saved)";
  if (o.incoming !== undefined) {
    const t = parseTcp(o.incoming);
    if (typeof t === 'string') return `--incoming: ${t}`;
    if (o.restore !== undefined || o.snapshot !== undefined)
      return '--incoming: a migrated guest is neither restored nor snapshotted';
  }
  if (o.monitor !== undefined) {
    const u = parseUnix(o.monitor);
    if (typeof u === 'string') return `--monitor: ${u}`;
    if (o.snapshot !== undefined) return '--monitor and --snapshot do not go together';
  }
  return o;
}

function readInput(path: string): Uint8Array | string {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return `${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? 'error'})`}`;
  }
}

function formatStats(s: MachineStats, hostMs: number): string {
  const lines = [
    `cost model        ${s.costModel} (${s.hz / 1e9} GHz)`,
    `simulated time    ${(s.simulatedSeconds * 1000).toFixed(3)} ms`,
    `cycles            ${s.cycles} (busy ${s.busyCycles}, idle ${s.idleCycles})`,
    `instructions      ${s.instructions}`,
    `host time         ${hostMs.toFixed(0)} ms, guest ${(s.instructions / Math.max(hostMs, 1) / 1000).toFixed(1)} MIPS`,
  ];
  const counters: [string, number][] = Object.entries(s.cpu).filter(
    (e): e is [string, number] => typeof e[1] === 'number',
  );
  for (const [k, v] of counters) lines.push(`cpu.${k.padEnd(14)} ${v}`);
  s.cpu.exceptions.forEach((n, v) => {
    if (n > 0) lines.push(`cpu.exception[${v}]`.padEnd(18) + ` ${n}`);
  });
  s.irqs.forEach((n, irq) => {
    if (n > 0) lines.push(`irq${irq}`.padEnd(18) + ` ${n}`);
  });
  lines.push(`spurious irqs      ${s.spuriousIrqs}`, `pit ticks          ${s.pitTicks}`);
  lines.push(`serial bytes       out ${s.serialBytesOut}, in ${s.serialBytesIn}`);
  lines.push(`unclaimed ports    reads ${s.unclaimedPortReads}, writes ${s.unclaimedPortWrites}`);
  return lines.join('\n');
}

/** The NIC's counters and those of the network on its wire, a line each. */
function formatNetwork(guest: Guest, network: Network): string {
  const r = network.report();
  const lines = Object.entries(guest.machine.nic!.counters).map(
    ([k, v]) => `${`nic.${k}`.padEnd(18)} ${v}`,
  );
  for (const [k, v] of Object.entries(r.responder))
    lines.push(`${`net.host.${k}`.padEnd(18)} ${v}`);
  return lines.join('\n');
}

/** The hypervisor's and the VMM's counters, a line each (DESIGN.md decision 4). */
function formatVirtualization(stats: GuestStats): string {
  const lines: string[] = [];
  const add = (prefix: string, tree: GuestStats['vmm']): void => {
    if (tree === undefined) return;
    for (const [name, n] of flattenCounters(tree, prefix)) lines.push(`${name.padEnd(32)} ${n}`);
  };
  add(stats.hypervisor?.name ?? 'hypervisor', stats.hypervisor?.counters);
  add('vmm', stats.vmm);
  (stats.vms ?? []).forEach((v, k) => add(`vm${k + 1}.vmm`, v.vmm));
  return lines.join('\n');
}

/** A console whose lines start with `[vmN] ` (an extra VM's, beside the guest's own). */
export function prefixedConsole(
  prefix: string,
  out: (byte: number) => void,
): (byte: number) => void {
  let lineStart = true;
  return (b) => {
    if (lineStart) for (const c of prefix) out(c.charCodeAt(0));
    out(b);
    lineStart = b === 0x0a;
  };
}

/** The guest the options describe, built; or a message. */
function build(o: Options, console: (byte: number) => void): Guest | string {
  const kernel = readInput(o.kernel as string);
  if (typeof kernel === 'string') return kernel;
  const modules: BootModule[] = [];
  for (const spec of o.modules) {
    const [path, ...args] = spec.split(' ');
    const bytes = readInput(path);
    if (typeof bytes === 'string') return bytes;
    modules.push({ name: path, bytes, string: [basename(path), ...args].join(' ') });
  }
  const vms: ExtraVmConfig[] = [];
  for (const [k, spec] of o.vms.entries()) {
    const [path, ...args] = spec.split(' ');
    const bytes = readInput(path);
    if (typeof bytes === 'string') return bytes;
    vms.push({
      kernel: bytes,
      kernelName: path,
      cmdline: args.join(' '),
      memoryMb: o.vmMemoryMb,
      console: prefixedConsole(`[vm${k + 1}] `, console),
    });
  }
  let driverVm: ExtraVmConfig | undefined;
  if (o.driverVm !== undefined) {
    const [path, ...args] = o.driverVm.split(' ');
    const bytes = readInput(path);
    if (typeof bytes === 'string') return bytes;
    driverVm = {
      kernel: bytes,
      kernelName: path,
      cmdline: args.length === 0 ? 'init=sh' : args.join(' '),
      memoryMb: o.driverVmMemoryMb,
      console: prefixedConsole('[driver] ', console),
    };
  }
  return createGuest({
    platform: o.hypervisor,
    kernel,
    kernelName: o.kernel as string,
    cmdline: o.append,
    modules,
    memoryMb: o.memoryMb,
    costModel: o.costModel,
    nic:
      o.nic === undefined
        ? undefined
        : { mac: o.nic.mac, ...(o.nic.emulated === true ? { emulated: true } : {}) },
    console,
    ...(vms.length === 0 ? {} : { vms }),
    ...(driverVm === undefined ? {} : { driverVm }),
    ...(o.testDevices === true ? { testDevices: true } : {}),
  });
}

/** The guest of a snapshot file, ready to go on; or a message naming the file. */
function restore(o: Options, console: (byte: number) => void): Guest | string {
  const file = o.restore as string;
  const bytes = readInput(file);
  if (typeof bytes === 'string') return bytes;
  const contents = readSnapshot(bytes, deflateRaw);
  if (typeof contents === 'string') return `${file}: ${contents}`;
  if (o.hypervisorGiven && contents.header.platform !== o.hypervisor)
    return `${file}: a snapshot of platform ${contents.header.platform}, not ${o.hypervisor}`;
  const guest = restoreGuest(contents, {
    console,
    vmConsole: (k) => prefixedConsole(`[vm${k + 1}] `, console),
    driverConsole: prefixedConsole('[driver] ', console),
  });
  return typeof guest === 'string' ? `${file}: ${guest}` : guest;
}

export const run: Command = {
  name: 'run',
  summary:
    'boot a multiboot kernel or a Linux bzImage on the emulated PC (like qemu-system-i386 -kernel)',
  usage,
  async run(argv) {
    const o = parse(argv);
    if (typeof o === 'string') {
      console.error(`previrt run: ${o}`);
      return EXIT_STATUS.usage;
    }
    // The console's destination is opened only once the guest is built, so bad input leaves
    // no file behind.
    let writer: ByteWriter | undefined;
    const console_ = (b: number): void => writer?.byte(b);
    let guest = o.restore !== undefined ? restore(o, console_) : build(o, console_);
    if (typeof guest === 'string') {
      console.error(`previrt run: ${guest}`);
      return EXIT_STATUS.usage;
    }
    const say = (line: string): void => console.error(`previrt run: ${line}`);
    if (o.incoming !== undefined) {
      // The guest built from the options is the destination's configuration; the one that runs
      // is the migrated guest, put into a guest built from it.
      const received = await receiveGuest(o.incoming, guest.config, o.hypervisor, console_, say);
      if (typeof received === 'string') {
        say(received);
        return EXIT_STATUS.usage;
      }
      guest = received;
    }
    // The far end of the NIC's wire: the responder (and the netperf client). A restored guest with
    // a NIC gets a new responder, which has nothing to restore but its counters.
    let network: Network | undefined;
    if (guest.machine.link !== undefined)
      network = attachNetwork(guest, o.nic ?? { model: 'dp83820' });
    if (o.snapshotAt !== undefined && o.snapshotAt <= guest.machine.cpu.cycles) {
      console.error(
        `previrt run: --snapshot-at ${o.snapshotAt}: the guest is at cycle ${guest.machine.cpu.cycles} already`,
      );
      return EXIT_STATUS.usage;
    }
    let fd: number | undefined;
    if (o.serial === 'stdio') writer = byteWriter(1);
    else if (o.serial !== 'none') {
      try {
        fd = openSync(o.serial, 'w');
      } catch (e) {
        console.error(
          `previrt run: ${o.serial}: cannot open for writing (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        );
        return EXIT_STATUS.usage;
      }
      writer = byteWriter(fd);
    }
    const machine = guest.machine;
    if (o.serial === 'stdio' && !process.stdin.isTTY) {
      try {
        guest.input(readFileSync(0));
      } catch {
        // No readable standard input (closed): nothing to type.
      }
    }
    const t0 = performance.now();
    machine.cpu.blocksEnabled = !o.interpret;
    const until = Math.min(o.maxCycles, o.snapshotAt ?? Number.MAX_SAFE_INTEGER);
    let end;
    if (o.monitor === undefined) end = machine.run(until);
    else {
      const r = await runMonitored(guest, until, o.monitor, say);
      if (r.kind === 'error') {
        say(r.message);
        return EXIT_STATUS.usage;
      }
      if (r.kind !== 'end') {
        writer?.flush();
        if (fd !== undefined) closeSync(fd);
        return 0;
      }
      end = r.end;
    }
    const hostMs = performance.now() - t0;
    writer?.flush();
    if (fd !== undefined) closeSync(fd);
    if (o.snapshotAt !== undefined && end.kind === 'cycle-limit' && until === o.snapshotAt) {
      // Stopped at the cycle asked for: the whole machine goes to the file, the run ends here.
      let file: Uint8Array;
      try {
        file = writeSnapshot(guest.save(), deflateRaw);
      } catch (e) {
        // A guest the snapshot cannot hold (saveGuest says why: a restarted driver VM).
        console.error(`previrt run: --snapshot: ${e instanceof Error ? e.message : String(e)}`);
        return EXIT_STATUS.usage;
      }
      try {
        writeFileSync(o.snapshot!, file);
      } catch (e) {
        console.error(
          `previrt run: ${o.snapshot}: cannot write the snapshot (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        );
        return EXIT_STATUS.usage;
      }
      console.error(
        `previrt run: snapshot of cycle ${machine.cpu.cycles} written to ${o.snapshot}`,
      );
      return 0;
    }
    if (o.snapshotAt !== undefined)
      console.error(
        `previrt run: the run ended at cycle ${machine.cpu.cycles}, before --snapshot-at ${o.snapshotAt}: no snapshot written`,
      );
    if (end.kind !== 'exit') console.error(`previrt run: ${describeEnd(end)}`);
    const netperf = network?.summary();
    if (netperf !== undefined) console.error(`previrt run: ${netperf}`);
    if (o.stats) {
      const stats = guest.stats();
      const s = stats.machine;
      const virtualized = stats.hypervisor !== undefined;
      if (o.json)
        console.error(
          JSON.stringify(
            {
              ...s,
              ...(virtualized
                ? {
                    hypervisor: stats.hypervisor!.name,
                    [stats.hypervisor!.name]: stats.hypervisor!.counters,
                    vmm: stats.vmm,
                    ...(stats.vms === undefined ? {} : { vms: stats.vms }),
                  }
                : {}),
              ...(network === undefined
                ? {}
                : { network: { nic: { ...machine.nic!.counters }, ...network.report() } }),
              end,
              hostMs,
              guestMips: s.instructions / Math.max(hostMs, 1) / 1000,
            },
            null,
            2,
          ),
        );
      else
        console.error(
          formatStats(s, hostMs) +
            (network === undefined ? '' : `\n${formatNetwork(guest, network)}`) +
            (virtualized ? `\n${formatVirtualization(stats)}` : ''),
        );
    }
    return exitStatus(end);
  },
};
