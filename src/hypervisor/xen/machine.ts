/**
 * A machine running previrt's `xen` with one para-virtual domain built from a PV kernel (the
 * domain builder, builder.ts): what the hypervisor's own tests run. Afterburned kernels go
 * through the in-place VMM instead (src/platforms, `createGuest({ platform: 'xen' })`).
 */
import { parseElf, LoadError } from '../../loader/elf.ts';
import { createMachine, type Machine, type MachineConfig } from '../../machine/Machine.ts';
import { buildDomain, enterDomain, type DomainLayout } from './builder.ts';
import type { Domain } from './domain.ts';
import { XenHypervisor } from './Xen.ts';

export interface XenMachineConfig {
  /** The para-virtual kernel (ELF32, linked at its virtual addresses). */
  kernel: Uint8Array;
  /** Its name, for messages. */
  kernelName?: string;
  /** The guest's command line (start_info.cmd_line). */
  cmdline?: string;
  /** Domain memory in MB (default 16). */
  domainMemoryMb?: number;
  /** The machine under the hypervisor (memory, cost model); its serial sink is `console`. */
  machine?: Omit<MachineConfig, 'serialOut'>;
  /** Console output of the hypervisor and the domain. */
  console?: (byte: number) => void;
}

export interface XenMachine {
  machine: Machine;
  xen: XenHypervisor;
  domain: Domain;
  layout: DomainLayout;
}

/** Builds the machine, the hypervisor and domain 0, ready to `machine.run()`. */
export function createXenMachine(config: XenMachineConfig): XenMachine | string {
  const name = config.kernelName ?? 'kernel';
  const image = parseElf(config.kernel, name);
  if (image instanceof LoadError) return image.message;
  const machine = createMachine({ ...config.machine, serialOut: config.console });
  if (typeof machine === 'string') return machine;
  let xen: XenHypervisor;
  try {
    xen = new XenHypervisor(machine, { console: config.console });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const built = buildDomain(xen, image, {
    memoryMb: config.domainMemoryMb ?? 16,
    cmdline: config.cmdline,
  });
  if (typeof built === 'string') return `${name}: ${built}`;
  enterDomain(xen, built.domain, image.entry, built.layout);
  return { machine, xen, domain: built.domain, layout: built.layout };
}
