/**
 * One netperf run: boots a guest kernel with `init=netserver` on a PC with a DP83820 and a
 * 1 Gb/s link, puts the client machine (src/net/TcpSender.ts) on the far end, streams N payload
 * bytes and the checksum trailer into the guest, and measures, on the simulated clock, the
 * interval from the client's first SYN to the end of netserver's result line (or, if the guest
 * prints none, to the guest's FIN):
 *
 *   throughput      = payload bytes × 8 / interval seconds          (Mb/s, 10^6 bit/s)
 *   CPU utilisation = (all − idle cycles) / all cycles in the interval
 *   cycles per byte = non-idle cycles in the interval / payload bytes
 *
 * as reference/cost-model.md defines them, plus the raw counts behind them over the same
 * interval. The client's own work costs the guest nothing (it is another machine; see
 * TcpSender.ts), so the guest's CPU or the wire limits the throughput, whichever is slower.
 */
import type { BootModule } from '../../loader/multiboot.ts';
import { counterDelta, type CounterTree } from '../../machine/counters.ts';
import type { Dp83820Counters } from '../../machine/devices/dp83820/Dp83820.ts';
import type { FaultConfig } from '../../machine/ethernet/link.ts';
import { describeEnd, type EndReason, type MachineStats } from '../../machine/Machine.ts';
import { closeSync, openSync, writeSync } from 'node:fs';
import { PcapWriter } from '../../net/pcap.ts';
import { TcpSender, type SenderReport } from '../../net/TcpSender.ts';
import { createGuest } from '../../platforms/createGuest.ts';
import type { Guest } from '../../platforms/platform.ts';

export interface NetperfRunOptions {
  /** Row label ("native, raw"). */
  label: string;
  kernel: Uint8Array;
  kernelName: string;
  payloadBytes: number;
  seed: number;
  costModel?: string;
  faults?: FaultConfig;
  /** Extra kernel command-line words after `init=netserver`. */
  append?: string;
  /**
   * The whole kernel command line instead of `init=netserver ...`, and the boot modules (a
   * Linux guest: its command line and its initramfs; see build.ts, LINUX_GUEST).
   */
  cmdline?: string;
  modules?: BootModule[];
  /**
   * The platform (src/platforms): `none` (default) the raw PC; `xen` a domain of the Xen-style
   * hypervisor through the in-place VMM, with the DP83820 passed through (the kernel must be
   * the afterburned one).
   */
  hypervisor?: string;
  /**
   * The NIC's path (xen, afterburned kernel): `passthrough` (default) the real DP83820 given to
   * the guest; `emulated` the VMM's DP83820 model on the wire; `driver-vm` the model forwarding
   * to a driver VM (the same kernel, `driverKernel`) that has the real NIC (issue "reuse").
   */
  nicPath?: 'passthrough' | 'emulated' | 'driver-vm';
  /** The driver VM's kernel (nicPath `driver-vm`); its console lines go to onConsoleLine. */
  driverKernel?: { kernel: Uint8Array; kernelName: string; cmdline?: string };
  /**
   * A fault for the driver VM (nicPath `driver-vm`, the afterburned guest): it crashes when the
   * client machine has had this many bytes acknowledged; the toolstack restarts it and the
   * transfer must still arrive intact (TCP sends again what was lost in the outage). The run
   * then reports the restarts and the outage (NetperfRun.driverVm).
   */
  driverVmCrashAtBytes?: number;
  /**
   * A second client of the driver VM (nicPath `driver-vm`, xen): the same kernel as the driver
   * VM in a VM of its own beside the guest, on a connection of its own (GuestConfig.vms,
   * `clientOfDriverVm`), with this command line and these modules; its console lines go to
   * onConsoleLine as `[second client] ...`. With `readyLine`, the client machine starts only
   * once a line of that client's begins so (the flooding client's first frame has gone: its
   * kernel no longer answers ARP for the guest's address).
   */
  secondClient?: { cmdline: string; modules?: BootModule[]; readyLine?: string };
  /**
   * A file to write the wire's capture to (src/net/pcap.ts): every frame the client machine
   * sent and received, stamped with its simulated time, for tcpdump -r or Wireshark.
   */
  pcap?: string;
  /** Called now and then with the bytes acknowledged so far (from the simulated run loop). */
  onProgress?: (p: NetperfProgress) => void;
  /** Every complete line of the guest's console. */
  onConsoleLine?: (line: string) => void;
}

export interface NetperfProgress {
  phase: 'boot' | 'transfer' | 'finish';
  bytesAcked: number;
  streamBytes: number;
  simulatedSeconds: number;
}

/** Counts over the measured interval (differences of the machine's counters). */
export interface IntervalCounters {
  instructions: number;
  /** Hardware interrupts the CPU took (all lines). */
  interrupts: number;
  /** Of those, the NIC's line (IRQ 11). */
  nicInterrupts: number;
  portReads: number;
  portWrites: number;
  mmioReads: number;
  mmioWrites: number;
  /** CPU exceptions (page faults and the like) by any vector. */
  exceptions: number;
  /** INT n (the guest's system calls). */
  softwareInterrupts: number;
  tlbMisses: number;
  pitTicks: number;
  nic: Dp83820Counters;
  /** Under a hypervisor: the counts of the hypervisor and the in-place VMM (same interval). */
  virtualization?: VirtualizationCounters;
}

/**
 * What the hypervisor and the VMM did in the interval (a virtualized run): every counter of
 * each that changed, by the names they give them (the platform's `counterColumns` pick the
 * table's columns from these).
 */
export interface VirtualizationCounters {
  /** The platform's name (`xen`). */
  platform: string;
  hypervisor: CounterTree;
  vmm: CounterTree;
  /** The other VMs' in-place VMMs (a driver VM's), by name; only when there are any. */
  vms?: CounterTree;
}

export interface NetperfRun {
  label: string;
  seed: number;
  payloadBytes: number;
  costModel: string;
  hz: number;
  /** The run produced a verified transfer: netserver said ok and the CRC is the sender's. */
  ok: boolean;
  /** Why it is not ok. */
  error?: string;
  resultLine?: string;
  /** The guest's `net: ...` counter line, when it prints one. */
  guestNetLine?: string;
  /** How the measured interval ended. */
  intervalEnd: 'result-line' | 'guest-fin' | 'none';
  intervalCycles: number;
  busyCycles: number;
  idleCycles: number;
  throughputMbps: number;
  cpuUtilisation: number;
  cyclesPerByte: number;
  counters: IntervalCounters;
  sender: SenderReport;
  machineEnd: string;
  /** Host wall-clock time of the whole run (boot, transfer, exit) and of the interval. */
  hostSeconds: number;
  hostIntervalSeconds: number;
  /** Guest instructions per host second over the whole run, in millions. */
  guestMips: number;
  totalInstructions: number;
  /** With `driverVmCrashAtBytes`: the crash and the restarts after it (DriverVmReport). */
  driverVm?: DriverVmReport;
}

/**
 * A driver VM's crash and restart in a run (simulated time): the outage is from the crash to
 * the client's link coming up again (its front end connected to the new driver VM's back end);
 * the first frame, from the crash to the first frame from the new driver VM reaching the guest.
 */
export interface DriverVmReport {
  crashAtBytes: number;
  /** The simulated ms since power-on at which the driver VM crashed (undefined: it never did). */
  crashedAtMs?: number;
  restarts: number;
  outageMs?: number;
  firstFrameMs?: number;
}

interface Snapshot {
  stats: MachineStats;
  nic: Dp83820Counters;
  host: number;
  virt?: { hypervisor: CounterTree; vmm: CounterTree; vms?: CounterTree };
}

function snapshot(g: Guest): Snapshot {
  const stats = g.stats();
  return {
    stats: stats.machine,
    nic: { ...g.machine.nic!.counters },
    host: performance.now(),
    virt:
      stats.hypervisor === undefined
        ? undefined
        : {
            hypervisor: stats.hypervisor.counters,
            vmm: stats.vmm ?? {},
            ...(stats.vms === undefined
              ? {}
              : { vms: Object.fromEntries(stats.vms.map((v) => [v.name, v.vmm])) }),
          },
  };
}

/** The second client's name (its VMM's counters are `vms[SECOND_CLIENT]`). */
export const SECOND_CLIENT = 'second client';

const RESULT = /^netserver: received (\d+) bytes in (\d+) ms, crc32 ([0-9a-f]{8}) (ok|MISMATCH.*)$/;

/**
 * What is wrong with a transfer, from netserver's result line and the client's report: no line,
 * an unexpected one, a mismatch, a byte count or checksum other than the client's, a failed
 * client. None: [].
 */
export function transferProblems(
  resultLine: string | undefined,
  payloadBytes: number,
  report: SenderReport,
): string[] {
  const problems: string[] = [];
  const match = resultLine !== undefined ? RESULT.exec(resultLine) : null;
  if (resultLine === undefined) problems.push('netserver printed no result line');
  else if (match === null) problems.push(`netserver: unexpected result line '${resultLine}'`);
  else {
    if (match[4] !== 'ok') problems.push(`netserver reports a mismatch: '${resultLine}'`);
    if (Number(match[1]) !== payloadBytes)
      problems.push(`netserver received ${match[1]} bytes, the client sent ${payloadBytes}`);
    if (parseInt(match[3], 16) !== report.payloadCrc)
      problems.push(
        `netserver's crc32 ${match[3]} is not the client's ${report.payloadCrc.toString(16).padStart(8, '0')}`,
      );
  }
  if (report.state === 'failed') problems.push(`client: ${report.error}`);
  return problems;
}

/** Simulated time the guest gets to exit after its result line before the run is ended. */
const EXIT_GRACE_SECONDS = 0.05;

/** A console that hands on whole lines. */
function lineConsole(onLine: (line: string) => void): (byte: number) => void {
  let line = '';
  return (b) => {
    if (b === 0x0d) return;
    if (b !== 0x0a) line += String.fromCharCode(b);
    else {
      onLine(line);
      line = '';
    }
  };
}

export function runNetperf(o: NetperfRunOptions): NetperfRun {
  let line = '';
  let resultLine: string | undefined;
  let guestNetLine: string | undefined;
  let startSnap: Snapshot | undefined;
  let lineStartSnap: Snapshot | undefined;
  let finSnap: Snapshot | undefined;
  let endSnap: Snapshot | undefined;
  let intervalEnd: NetperfRun['intervalEnd'] = 'none';
  // The machine is needed inside its own console callback; it exists before any byte is written.
  const ref: { guest?: Guest } = {};
  const serialOut = (b: number): void => {
    if (b === 0x0d) return;
    if (b !== 0x0a) {
      // The interval ends where the result line starts: printing it is not receiving.
      if (line === '' && startSnap !== undefined && ref.guest !== undefined)
        lineStartSnap = snapshot(ref.guest);
      line += String.fromCharCode(b);
      return;
    }
    o.onConsoleLine?.(line);
    if (line.startsWith('netserver: ') && resultLine === undefined) {
      resultLine = line;
      if (lineStartSnap !== undefined) {
        endSnap = lineStartSnap;
        intervalEnd = 'result-line';
      }
    } else if (line.startsWith('net: ')) guestNetLine = line;
    line = '';
  };
  const append = o.cmdline ?? `init=netserver${o.append !== undefined ? ` ${o.append}` : ''}`;
  const second = o.nicPath === 'driver-vm' ? o.secondClient : undefined;
  // The client machine waits for the second client's line, if there is one to wait for.
  let secondReady = second?.readyLine === undefined;
  let startWanted = false;
  const start = (): void => {
    startWanted = true;
    if (secondReady) sender.start();
  };
  // Under a hypervisor the console is its console_io; the machine's own UART is not used.
  const guest = createGuest({
    platform: o.hypervisor ?? 'none',
    kernel: o.kernel,
    kernelName: o.kernelName,
    cmdline: append,
    modules: o.modules,
    costModel: o.costModel,
    nic: { faults: o.faults, ...(o.nicPath === 'emulated' ? { emulated: true } : {}) },
    console: serialOut,
    ...(o.nicPath === 'driver-vm' && o.driverKernel !== undefined
      ? {
          driverVm: {
            kernel: o.driverKernel.kernel,
            kernelName: o.driverKernel.kernelName,
            cmdline: o.driverKernel.cmdline ?? 'init=sh',
            console: lineConsole((l) => o.onConsoleLine?.(`[driver VM] ${l}`)),
          },
        }
      : {}),
    ...(second === undefined || o.driverKernel === undefined
      ? {}
      : {
          vms: [
            {
              kernel: o.driverKernel.kernel,
              kernelName: SECOND_CLIENT,
              cmdline: second.cmdline,
              modules: second.modules,
              clientOfDriverVm: true,
              console: lineConsole((l) => {
                if (second.readyLine !== undefined && l.startsWith(second.readyLine)) {
                  secondReady = true;
                  if (startWanted) sender.start();
                }
                o.onConsoleLine?.(`[second client] ${l}`);
              }),
            },
          ],
        }),
  });
  if (typeof guest === 'string') throw new Error(guest);
  ref.guest = guest;
  const machine = guest.machine;
  const crashAt = o.driverVmCrashAtBytes;
  const driverVm = guest.driverVm;
  if (crashAt !== undefined && driverVm === undefined)
    throw new Error(
      o.nicPath === 'driver-vm'
        ? 'driver-vm-crash-at: this driver VM is not restarted (only on xen and l4)'
        : 'driver-vm-crash-at needs a driver VM (nicPath driver-vm: reuse-emul-xen, reuse-custom-xen, reuse-emul-l4, reuse-custom-l4)',
    );
  let crashed = false;

  const link = machine.link!;
  const capture = o.pcap === undefined ? undefined : openCapture(o.pcap, machine.costModel.hz);
  const sender = new TcpSender({
    clock: machine.clock,
    transmit: (frame) => {
      capture?.add(machine.cpu.cycles, frame);
      return link.send(1, frame);
    },
    payloadBytes: o.payloadBytes,
    seed: o.seed,
    onEvent: (e) => {
      if (e.kind === 'syn') startSnap = snapshot(guest);
      if (e.kind === 'guest-fin') finSnap = snapshot(guest);
    },
  });
  // The client starts when the guest's NIC shows signs of life (its first frame, the driver's
  // announcement or an ARP), or after a simulated second if it stays silent.
  link.attach(1, {
    receive(frame) {
      start();
      capture?.add(machine.cpu.cycles, frame);
      sender.receive(frame);
      // The fault: at the ACK that takes the client to the mark, in this wire event.
      if (crashAt !== undefined && !crashed && sender.bytesAcked >= crashAt) {
        crashed = true;
        driverVm?.crash(`injected fault (driver-vm-crash-at=${crashAt})`);
      }
    },
  });
  machine.clock.at(machine.costModel.hz, start, 'netperf.client-start');

  const hz = machine.costModel.hz;
  // Generous: boot, then at least 10 Mb/s, then time for retransmission backoff.
  const limit = Math.round(hz * (30 + (o.payloadBytes * 8) / 1e7));
  const t0 = performance.now();
  let end: EndReason;
  let graceUntil: number | undefined;
  try {
    for (;;) {
      const step = Math.min(limit, machine.cpu.cycles + hz / 100);
      end = machine.run(step, () =>
        o.onProgress?.({
          phase: sender.state === 'idle' || sender.state === 'resolving' ? 'boot' : 'transfer',
          bytesAcked: sender.bytesAcked,
          streamBytes: sender.streamBytes,
          simulatedSeconds: machine.cpu.cycles / hz,
        }),
      );
      if (end.kind !== 'cycle-limit' || machine.cpu.cycles >= limit) break;
      if (resultLine !== undefined) {
        graceUntil ??= machine.cpu.cycles + EXIT_GRACE_SECONDS * hz;
        if (machine.cpu.cycles >= graceUntil) break;
      }
      machine.resume();
    }
  } finally {
    capture?.close();
  }
  const hostSeconds = (performance.now() - t0) / 1000;
  o.onProgress?.({
    phase: 'finish',
    bytesAcked: sender.bytesAcked,
    streamBytes: sender.streamBytes,
    simulatedSeconds: machine.cpu.cycles / hz,
  });
  if (endSnap === undefined && finSnap !== undefined) {
    endSnap = finSnap;
    intervalEnd = 'guest-fin';
  }

  const report = sender.report();
  const problems = transferProblems(resultLine, o.payloadBytes, report);
  if (startSnap === undefined) problems.push('the client never sent a SYN');
  if (end.kind === 'exit' && end.value !== 0) problems.push(`guest exit status ${end.value}`);
  if (end.kind === 'triple-fault' || end.kind === 'reset') problems.push(describeEnd(end));
  if (end.kind === 'cycle-limit' && resultLine === undefined)
    problems.push(`no result after ${(limit / hz).toFixed(0)} simulated seconds`);
  let driverReport: DriverVmReport | undefined;
  if (crashAt !== undefined && driverVm !== undefined) {
    const ms = (cycles: number | undefined, from = 0): number | undefined =>
      cycles === undefined ? undefined : ((cycles - from) / hz) * 1000;
    const first = driverVm.restarts[0];
    driverReport = {
      crashAtBytes: crashAt,
      crashedAtMs: ms(first?.crashCycle),
      restarts: driverVm.restarts.filter((r) => r.domain !== undefined).length,
      outageMs: first === undefined ? undefined : ms(first.connectedCycle, first.crashCycle),
      firstFrameMs: first === undefined ? undefined : ms(first.firstFrameCycle, first.crashCycle),
    };
    if (first === undefined) problems.push(`the driver VM never crashed (at ${crashAt} bytes)`);
    else if (first.failed !== undefined)
      problems.push(`the driver VM was not restarted: ${first.failed}`);
    else if (first.connectedCycle === undefined)
      problems.push('the restarted driver VM never connected to the guest');
  }

  const total = machine.stats();
  const a = startSnap ?? snapshot(guest);
  const b = endSnap ?? snapshot(guest);
  const intervalCycles = b.stats.cycles - a.stats.cycles;
  const busyCycles = b.stats.busyCycles - a.stats.busyCycles;
  const idleCycles = b.stats.idleCycles - a.stats.idleCycles;
  const seconds = intervalCycles / hz;
  const sum = (v: number[]): number => v.reduce((x, y) => x + y, 0);
  const nic = Object.fromEntries(
    Object.entries(b.nic).map(([k, v]) => [k, v - a.nic[k as keyof Dp83820Counters]]),
  ) as unknown as Dp83820Counters;
  const counters: IntervalCounters = {
    instructions: b.stats.instructions - a.stats.instructions,
    interrupts: b.stats.cpu.interrupts - a.stats.cpu.interrupts,
    nicInterrupts: (b.stats.irqs[11] ?? 0) - (a.stats.irqs[11] ?? 0),
    portReads: b.stats.cpu.ioReads - a.stats.cpu.ioReads,
    portWrites: b.stats.cpu.ioWrites - a.stats.cpu.ioWrites,
    mmioReads: b.stats.cpu.mmioReads - a.stats.cpu.mmioReads,
    mmioWrites: b.stats.cpu.mmioWrites - a.stats.cpu.mmioWrites,
    exceptions: sum(b.stats.cpu.exceptions) - sum(a.stats.cpu.exceptions),
    softwareInterrupts: b.stats.cpu.softwareInterrupts - a.stats.cpu.softwareInterrupts,
    tlbMisses: b.stats.cpu.tlbMisses - a.stats.cpu.tlbMisses,
    pitTicks: b.stats.pitTicks - a.stats.pitTicks,
    nic,
    virtualization:
      a.virt !== undefined && b.virt !== undefined
        ? {
            platform: guest.platform,
            hypervisor: counterDelta(a.virt.hypervisor, b.virt.hypervisor),
            vmm: counterDelta(a.virt.vmm, b.virt.vmm),
            ...(a.virt.vms === undefined || b.virt.vms === undefined
              ? {}
              : { vms: counterDelta(a.virt.vms, b.virt.vms) }),
          }
        : undefined,
  };
  return {
    label: o.label,
    seed: o.seed,
    payloadBytes: o.payloadBytes,
    costModel: total.costModel,
    hz,
    ok: problems.length === 0,
    error: problems.length > 0 ? problems.join('; ') : undefined,
    resultLine,
    guestNetLine,
    intervalEnd,
    intervalCycles,
    busyCycles,
    idleCycles,
    throughputMbps: seconds > 0 ? (o.payloadBytes * 8) / seconds / 1e6 : 0,
    cpuUtilisation: intervalCycles > 0 ? busyCycles / intervalCycles : 0,
    cyclesPerByte: o.payloadBytes > 0 ? busyCycles / o.payloadBytes : 0,
    counters,
    sender: report,
    machineEnd: end.kind === 'exit' ? `exit ${end.value}` : describeEnd(end),
    hostSeconds,
    hostIntervalSeconds: (b.host - a.host) / 1000,
    guestMips: total.instructions / Math.max(hostSeconds, 1e-3) / 1e6,
    totalInstructions: total.instructions,
    ...(driverReport === undefined ? {} : { driverVm: driverReport }),
  };
}

/** The wire's capture into `path` (NetperfRunOptions.pcap), frames stamped by machine cycles. */
function openCapture(
  path: string,
  hz: number,
): { add(cycles: number, frame: Uint8Array): void; close(): void } {
  const fd = openSync(path, 'w');
  const writer = new PcapWriter((chunk) => writeSync(fd, chunk));
  const perSecond = BigInt(hz);
  return {
    add: (cycles, frame) => writer.add((BigInt(cycles) * 1_000_000_000n) / perSecond, frame),
    close: () => closeSync(fd),
  };
}
