/**
 * The one way to build a guest (DESIGN.md decision 10): `previrt run`, the benchmarks, the demo
 * and the tests all start here, and the platform is a name, not a branch. The start-up order:
 *
 *   1. the platform, and whether it can run this kernel — before anything is built, so a kernel
 *      it cannot run costs nothing and gets one line;
 *   2. the PC (createMachine): memory, CPU, buses, legacy devices, the simulated clock, and the
 *      DP83820 on its link if the configuration asks for a network;
 *   3. the platform boots the kernel on it: on the raw PC the multiboot loader fills machine
 *      memory and sets up the CPU; under a hypervisor the hypervisor takes ring 0, builds the
 *      VM, loads and rewrites the kernel in the VM's memory and starts the in-place VMM
 *      (platforms/xen.ts, then src/vmm/backends/xen/vm.ts).
 *
 * Then the caller runs `guest.machine.run(...)`: the machine, not the guest, owns time.
 */
import { createMachine } from '../machine/Machine.ts';
import type { Guest, GuestConfig, GuestStats, Platform } from './platform.ts';
import { rawPlatform } from './raw.ts';
import { saveGuest } from './snapshot.ts';
import { xenPlatform } from './xen.ts';
import { xenParaPlatform } from './xenPara.ts';

/** Every platform, by the name `--hypervisor` takes. */
export const PLATFORMS: ReadonlyMap<string, Platform> = new Map(
  [rawPlatform, xenPlatform, xenParaPlatform].map((p) => [p.name, p]),
);

/** Builds the machine and boots the kernel on the platform; or one line saying why not. */
export function createGuest(config: GuestConfig): Guest | string {
  // 1. The platform checks the kernel.
  const platform = PLATFORMS.get(config.platform);
  if (platform === undefined)
    return `unknown platform '${config.platform}' (known: ${[...PLATFORMS.keys()].join(', ')})`;
  const boot = platform.prepare(config);
  if (typeof boot === 'string') return boot;

  // 2. The PC.
  const machine = createMachine({
    memoryMb: config.memoryMb,
    costModel: config.costModel,
    serialOut: config.console,
    rtcStartSeconds: config.rtcStartSeconds,
    network: config.nic,
  });
  if (typeof machine === 'string') return machine;

  // 3. The kernel on the platform.
  const booted = boot(machine);
  if (typeof booted === 'string') return booted;
  const { hypervisor, vmm } = booted;
  const guest: Guest = {
    platform: platform.name,
    config,
    machine,
    hypervisor,
    vmm,
    input: (bytes) => booted.input(bytes),
    physicalMemory: () => booted.physicalMemory(),
    stats(): GuestStats {
      return {
        machine: machine.stats(),
        ...(hypervisor === undefined
          ? {}
          : { hypervisor: { name: hypervisor.name, counters: hypervisor.stats() } }),
        ...(vmm === undefined ? {} : { vmm: vmm.stats() }),
      };
    },
    save: (extra) => saveGuest(guest, extra),
  };
  return guest;
}
