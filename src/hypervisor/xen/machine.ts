/**
 * A machine running previrt's `xen` with one para-virtual domain: the API `previrt run
 * --hypervisor xen` will use, and the tests use now.
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

/**
 * The machine with the hypervisor owning it (no domain yet): what every way of running a guest
 * on xen starts from. A message if the configuration cannot work.
 */
export function createHypervisorMachine(
  machineConfig: Omit<MachineConfig, 'serialOut'> | undefined,
  console: ((byte: number) => void) | undefined,
): { machine: Machine; xen: XenHypervisor } | string {
  const machine = createMachine({ ...machineConfig, serialOut: console });
  if (typeof machine === 'string') return machine;
  try {
    return { machine, xen: new XenHypervisor(machine, { console }) };
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Builds the machine, the hypervisor and domain 0, ready to `machine.run()`. */
export function createXenMachine(config: XenMachineConfig): XenMachine | string {
  const name = config.kernelName ?? 'kernel';
  const image = parseElf(config.kernel, name);
  if (image instanceof LoadError) return image.message;
  const host = createHypervisorMachine(config.machine, config.console);
  if (typeof host === 'string') return host;
  const { machine, xen } = host;
  const built = buildDomain(xen, image, {
    memoryMb: config.domainMemoryMb ?? 16,
    cmdline: config.cmdline,
  });
  if (typeof built === 'string') return `${name}: ${built}`;
  enterDomain(xen, built.domain, image.entry, built.layout);
  return { machine, xen, domain: built.domain, layout: built.layout };
}
