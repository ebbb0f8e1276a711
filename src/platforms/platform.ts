/**
 * What a platform is to the rest of previrt (DESIGN.md decision 10): one entry per way of
 * running a guest kernel — the raw PC (`none`), or a hypervisor (`xen`, `l4`) with the in-place
 * VMM or a kernel para-virtualized for it.
 * Callers never branch on the platform: they call `createGuest` (createGuest.ts) with a name,
 * and get a `Guest` whose console, counters and memory look the same on every platform. Adding
 * a platform is one entry here (platforms.ts) and its own module.
 *
 * Errors: everything that builds from user input returns `T | string`, the string one line that
 * names the file or option and the problem; the CLI prints it after `previrt <command>: ` and
 * exits with status 2. Nothing a user can pass makes these functions throw.
 */
import type { BootModule } from '../loader/multiboot.ts';
import type { CostModel } from '../machine/costModel.ts';
import type { CounterTree } from '../machine/counters.ts';
import type { FaultConfig } from '../machine/ethernet/link.ts';
import type { Machine, MachineStats } from '../machine/Machine.ts';
import type { Hypervisor } from '../hypervisor/Hypervisor.ts';
import type { SnapshotContents } from '../snapshot/file.ts';
import type { InPlaceVmm } from '../vmm/Vmm.ts';

export interface GuestConfig {
  /** A platform's name: `none` (the raw PC), `xen` or `l4` (createGuest.ts lists them). */
  platform: string;
  /**
   * The kernel file's bytes: a multiboot ELF (afterburned for a hypervisor), or on the raw PC a
   * Linux bzImage (src/loader/linux.ts).
   */
  kernel: Uint8Array;
  /** Its name, for messages and for the boot loader name the guest sees. */
  kernelName: string;
  cmdline?: string;
  /** Multiboot modules; for a Linux bzImage, the initrd (several files: concatenated). */
  modules?: BootModule[];
  /** Machine memory in MB (default 256); a hypervisor's VM gets what the platform leaves it. */
  memoryMb?: number;
  /** Cost-model preset or its name (default p4-2.8ghz). */
  costModel?: CostModel | string;
  /** QEMU's test devices (pc-testdev) on the raw PC, for test kernels (MachineConfig). */
  testDevices?: boolean;
  /**
   * A DP83820 at PCI 00:03.0 on a 1 Gb/s link (`machine.link`, end 1 for the peer). Under a
   * hypervisor it is passed through to the VM (direct device access, the seed's netperf setup).
   */
  nic?: {
    mac?: Uint8Array;
    faults?: FaultConfig;
    /**
     * Under a hypervisor with the in-place VMM: the VMM's DP83820 model on the wire instead of
     * the real NIC passed through (src/vmm/devices/emulatedNic.ts; xen and l4).
     */
    emulated?: boolean;
  };
  /** Every byte the guest writes to its console (COM1). */
  console?: (byte: number) => void;
  /** Seconds since the Unix epoch the RTC shows at simulated time 0 (default 2026-01-01). */
  rtcStartSeconds?: number;
  /**
   * More VMs on the same hypervisor, built and started before the guest's own (a driver VM and
   * its clients share one machine). The guest is the primary VM: its end ends the run, console
   * input is its, and it gets the memory the others leave. Not on the raw PC.
   */
  vms?: ExtraVmConfig[];
  /**
   * A driver VM (issue "reuse"; xen): an afterburned kernel (the same binary) given the
   * machine's DP83820 and the VMM's client link, whose translation module (guest/kernel/bridge.c)
   * bridges the wire to the guest; the guest reaches the network through it with its own
   * unmodified driver against the VMM's DP83820 model (needs `nic`). Built first, shown first
   * among the extra VMs.
   */
  driverVm?: ExtraVmConfig;
}

/** Another VM beside the guest: an afterburned kernel, run through its own in-place VMM. */
export interface ExtraVmConfig {
  kernel: Uint8Array;
  kernelName: string;
  cmdline?: string;
  modules?: BootModule[];
  /** Its memory in MB (default 32). */
  memoryMb?: number;
  /** Every byte it writes to its console. */
  console?: (byte: number) => void;
  /**
   * Its network through the configuration's driver VM too (xen, an afterburned kernel): the
   * VMM's DP83820 model on a connection of its own to the driver VM's client link, its MAC the
   * NIC's with the last byte plus 2, 3, ... (the guest's is plus 1).
   */
  clientOfDriverVm?: boolean;
}

/** An extra VM as built: its name (its kernel file's) and its in-place VMM. */
export interface ExtraVm {
  readonly name: string;
  readonly vmm: InPlaceVmm;
}

/**
 * A driver VM as its toolstack keeps it (`Guest.driverVm`): restarted when it crashes, its
 * client reconnected (platforms/driverVm.ts, xen with the afterburned guest).
 */
export interface DriverVmControl {
  /** Crashes the running driver VM now (a test's injected fault); false if none is running. */
  crash(message: string): boolean;
  /** Each crash and the restart after it, in order. */
  readonly restarts: readonly DriverVmRestart[];
}

/** One crash of the driver VM and what the toolstack made of it (machine cycles). */
export interface DriverVmRestart {
  /** The crash, and the domain that crashed. */
  crashCycle: number;
  crashedDomain: number;
  /** The domain built in its place (undefined until built, or if building it failed). */
  domain?: number;
  /** The client's link up again: its front end connected to the new back end. */
  connectedCycle?: number;
  /** The first frame from the new back end reached the client's guest. */
  firstFrameCycle?: number;
  /** Why the restart failed, if it did. */
  failed?: string;
}

/** The counters of a run, the same shape on every platform. */
export interface GuestStats {
  machine: MachineStats;
  /** Under a hypervisor: its name and every counter it keeps. */
  hypervisor?: { name: string; counters: CounterTree };
  /** Under the in-place VMM: the core's counters and its backend's. */
  vmm?: CounterTree;
  /** The extra VMs' in-place VMMs' counters, in the order of `GuestConfig.vms` (when there are any). */
  vms?: { name: string; vmm: CounterTree }[];
}

/** A guest kernel booted on a platform, ready to run (`machine.run`). */
export interface Guest {
  readonly platform: string;
  /** What it was built from (a snapshot keeps it, with the kernel and module files). */
  readonly config: Readonly<GuestConfig>;
  readonly machine: Machine;
  readonly hypervisor: Hypervisor | undefined;
  readonly vmm: InPlaceVmm | undefined;
  /**
   * The extra VMs: the driver VM first, then `GuestConfig.vms` in their order, then a driver VM
   * the toolstack built after a crash (named `<kernel> (restart N)`).
   */
  readonly vms: readonly ExtraVm[];
  /** The driver VM's toolstack, where it restarts a crashed driver VM (DriverVmControl). */
  readonly driverVm: DriverVmControl | undefined;
  /** Host input for the guest's console (COM1). */
  input(bytes: Uint8Array): void;
  /** The guest's physical memory, index = guest-physical address (a VM's, under a hypervisor). */
  physicalMemory(): Uint8Array;
  stats(): GuestStats;
  /**
   * A snapshot of the whole guest, between runs (snapshot.ts); `extra` is the caller's own
   * state that belongs with it (JSON data), given back by `restoreGuest`.
   */
  save(extra?: unknown): SnapshotContents;
}

/** What a platform's boot step gives back; createGuest makes the Guest of it. */
export interface BootedGuest {
  hypervisor?: Hypervisor;
  vmm?: InPlaceVmm;
  vms?: ExtraVm[];
  driverVm?: DriverVmControl;
  input(bytes: Uint8Array): void;
  physicalMemory(): Uint8Array;
}

/**
 * A column of the benchmark's table of virtualization counters: what a platform's rows show
 * (the counts behind the cycles that differ from the raw PC's).
 */
export interface CounterColumn {
  title: string;
  /** The hypervisor's counters, the VMM's, or the other VMs' VMMs' (summed over them). */
  source: 'hypervisor' | 'vmm' | 'vms';
  /** Dotted paths into the tree; `pair` takes two, `list` any number. */
  paths: string[];
  /**
   * count: a number; by-kind: "total: a 3, b 2"; by-vector: "0x80 618, 0xe 2"; pair: "a / b";
   * list: "a / b / c".
   */
  show: 'count' | 'by-kind' | 'by-vector' | 'pair' | 'list';
}

export interface Platform {
  readonly name: string;
  /** One line for --help. */
  readonly summary: string;
  /**
   * Checks the configuration and the kernel before anything is built (a kernel this platform
   * cannot run is refused here, with one line); returns the step that boots it on a machine
   * built from the same configuration.
   */
  prepare(config: GuestConfig): ((machine: Machine) => BootedGuest | string) | string;
  /**
   * The interface a para-virtualized kernel's ELF note names for this platform to run it
   * (src/loader/notes.ts; 'xen'); any other para-virtualized kernel is refused before
   * `prepare` with one line (createGuest.ts, `paraRefusal`). Undefined: it runs none.
   */
  readonly paraVirtualized?: string;
  /** The columns of its rows in the benchmark's virtualization table (none for the raw PC). */
  readonly counterColumns: CounterColumn[];
  /** The columns of its driver reuse rows (the guest's network through a driver VM). */
  readonly reuseColumns?: CounterColumn[];
}
