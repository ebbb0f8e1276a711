/**
 * The one way to build a guest (DESIGN.md decision 10): `previrt run`, the benchmarks, the demo
 * and the tests all start here, and the platform is a name, not a branch. The start-up order:
 *
 *   1. the platform, and whether it can run this kernel — before anything is built, so a kernel
 *      it cannot run costs nothing and gets one line. A kernel para-virtualized for one
 *      hypervisor (its ELF note, src/loader/notes.ts) runs only on the platform that offers that
 *      interface (`Platform.paraVirtualized`), the same rule for every platform;
 *   2. the PC (createMachine): memory, CPU, buses, legacy devices, the simulated clock, and the
 *      DP83820 on its link if the configuration asks for a network;
 *   3. the platform boots the kernel on it: on the raw PC the multiboot loader fills machine
 *      memory and sets up the CPU; under a hypervisor the hypervisor takes ring 0, builds the
 *      VM, loads and rewrites the kernel in the VM's memory and starts the in-place VMM
 *      (platforms/xen.ts, then src/vmm/backends/xen/vm.ts).
 *
 * Then the caller runs `guest.machine.run(...)`: the machine, not the guest, owns time.
 */
import { paraVirtualizedFor } from '../loader/notes.ts';
import { createMachine, type Machine } from '../machine/Machine.ts';
import type { BootedGuest, Guest, GuestConfig, GuestStats, Platform } from './platform.ts';
import { rawPlatform } from './raw.ts';
import { saveGuest } from './snapshot.ts';
import { l4Platform } from './l4.ts';
import { xenPlatform } from './xen.ts';

/** Every platform, by the name `--hypervisor` takes. */
export const PLATFORMS: ReadonlyMap<string, Platform> = new Map(
  [rawPlatform, xenPlatform, l4Platform].map((p) => [p.name, p]),
);

/** Builds the machine and boots the kernel on the platform; or one line saying why not. */
export function createGuest(config: GuestConfig): Guest | string {
  // 1. The platform checks the kernel.
  const prepared = prepareGuest(config);
  if (typeof prepared === 'string') return prepared;
  const { platform, boot } = prepared;

  // 2. The PC.
  const machine = createMachine({
    memoryMb: config.memoryMb,
    costModel: config.costModel,
    serialOut: config.console,
    rtcStartSeconds: config.rtcStartSeconds,
    network: config.nic,
    testDevices: config.testDevices,
  });
  if (typeof machine === 'string') return machine;

  // 3. The kernel on the platform.
  const booted = boot(machine);
  if (typeof booted === 'string') return booted;
  const { hypervisor, vmm } = booted;
  const vms = booted.vms ?? [];
  const guest: Guest = {
    platform: platform.name,
    config,
    machine,
    hypervisor,
    vmm,
    vms,
    driverVm: booted.driverVm,
    input: (bytes) => booted.input(bytes),
    physicalMemory: () => booted.physicalMemory(),
    stats(): GuestStats {
      return {
        machine: machine.stats(),
        ...(hypervisor === undefined
          ? {}
          : { hypervisor: { name: hypervisor.name, counters: hypervisor.stats() } }),
        ...(vmm === undefined ? {} : { vmm: vmm.stats() }),
        ...(vms.length === 0
          ? {}
          : { vms: vms.map((v) => ({ name: v.name, vmm: v.vmm.stats() })) }),
      };
    },
    save: (extra) => saveGuest(guest, extra),
  };
  return guest;
}

/**
 * One line if the kernel is para-virtualized for an interface this platform does not offer
 * (on the raw PC, or on another hypervisor); undefined if the platform may try it.
 */
export function paraRefusal(
  kernel: Uint8Array,
  file: string,
  platform: Platform,
): string | undefined {
  const target = paraVirtualizedFor(kernel);
  if (target === undefined || target === platform.paraVirtualized) return undefined;
  const where = platform.name === 'none' ? 'the raw PC' : `--hypervisor ${platform.name}`;
  const home = [...PLATFORMS.values()].find((p) => p.paraVirtualized === target);
  const runs =
    home === undefined
      ? 'which no platform of this previrt offers'
      : `it runs only with --hypervisor ${home.name}`;
  return `${file}: a kernel para-virtualized for ${target} (its previrt ELF note): ${runs}, not on ${where}`;
}

/**
 * Whether the platform would run this configuration (step 1 alone, nothing built): one line
 * saying why not, or undefined. For a caller with several guests to run that wants every
 * refusal before the first one runs (the benchmark's Linux rows).
 */
export function guestRefusal(config: GuestConfig): string | undefined {
  const prepared = prepareGuest(config);
  return typeof prepared === 'string' ? prepared : undefined;
}

/** Step 1: the platform, its checks of the configuration, and its boot of the kernel to come. */
function prepareGuest(
  config: GuestConfig,
): { platform: Platform; boot: (machine: Machine) => BootedGuest | string } | string {
  const platform = PLATFORMS.get(config.platform);
  if (platform === undefined)
    return `unknown platform '${config.platform}' (known: ${[...PLATFORMS.keys()].join(', ')})`;
  const refusal = paraRefusal(config.kernel, config.kernelName, platform);
  if (refusal !== undefined) return refusal;
  if (
    config.nic?.emulated === true &&
    (platform.name === 'none' || paraVirtualizedFor(config.kernel) !== undefined)
  )
    return "an emulated NIC is the in-place VMM's: it needs --hypervisor xen or l4 and an afterburned kernel";
  if (config.driverVm !== undefined) {
    if (platform.name !== 'xen' && platform.name !== 'l4')
      return 'a driver VM needs a hypervisor (--hypervisor xen or l4)';
    if (config.nic === undefined) return 'a driver VM needs a network (--nic dp83820)';
    const refused = paraRefusal(config.driverVm.kernel, config.driverVm.kernelName, platform);
    if (refused !== undefined) return refused;
  }
  if (config.testDevices === true && platform.name !== 'none')
    return "a test device (pc-testdev) is the raw PC's: leave out --hypervisor";
  if ((config.vms ?? []).some((vm) => vm.clientOfDriverVm === true)) {
    if ((platform.name !== 'xen' && platform.name !== 'l4') || config.driverVm === undefined)
      return "a VM's network through the driver VM needs --hypervisor xen or l4 and a driver VM";
  }
  if ((config.vms ?? []).length > 0 && platform.name === 'none')
    return 'more VMs need a hypervisor (--hypervisor xen or l4), not the raw PC';
  for (const vm of config.vms ?? []) {
    const refused = paraRefusal(vm.kernel, vm.kernelName, platform);
    if (refused !== undefined) return refused;
  }
  const boot = platform.prepare(config);
  if (typeof boot === 'string') return boot;
  return { platform, boot };
}
