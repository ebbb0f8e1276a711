/**
 * The in-place VMM on previrt's Xen-style hypervisor (src/hypervisor/xen): the guest as a
 * toolstack builds it for an afterburned multiboot kernel. The machine and the hypervisor, a
 * domain with its backend (xen/XenBackend.ts, the only VMM code that knows the hypervisor), the
 * kernel and its modules loaded into the domain's memory as the multiboot loader does on the raw
 * PC, every afterburner site rewritten in the loaded image, the VMM core, optionally the NIC
 * passed through (xen/passthrough.ts), and the virtual CPU started at the kernel's entry.
 */
import { placeMultiboot, type BootModule } from '../../loader/multiboot.ts';
import { LoadError, parseElf } from '../../loader/elf.ts';
import type { Machine, MachineConfig } from '../../machine/Machine.ts';
import type { Domain } from '../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../hypervisor/xen/Xen.ts';
import { createHypervisorMachine } from '../../hypervisor/xen/machine.ts';
import { rewriteSites } from '../rewriter.ts';
import { readSiteRecords } from '../sections.ts';
import { InPlaceVmm } from '../Vmm.ts';
import { passThroughNic } from './xen/passthrough.ts';
import { XenBackend } from './xen/XenBackend.ts';

export { XenBackend } from './xen/XenBackend.ts';
export type { XenBackendCounters } from './xen/paging.ts';

export interface XenGuestConfig {
  kernel: Uint8Array;
  kernelName: string;
  cmdline: string;
  modules: BootModule[];
  /** Domain memory in MB (default: the machine's memory minus 4 MB). */
  domainMemoryMb?: number;
  machine?: Omit<MachineConfig, 'serialOut'>;
  console?: (byte: number) => void;
  /**
   * Give the domain the machine's DP83820 (PCI 00:03.0; the machine config must ask for a
   * network): direct device access, as in the seed's netperf setup.
   */
  passthroughNic?: boolean;
}

export interface XenGuest {
  machine: Machine;
  xen: XenHypervisor;
  domain: Domain;
  vmm: InPlaceVmm;
  backend: XenBackend;
  /** Host input for the guest's console (COM1). */
  input(bytes: Uint8Array): void;
}

/** Builds the machine, the hypervisor and the afterburned guest with its VMM; or a message. */
export function createXenGuest(config: XenGuestConfig): XenGuest | string {
  const file = config.kernelName;
  const records = readSiteRecords(config.kernel, file);
  if (typeof records === 'string') return records;
  const image = parseElf(config.kernel, file);
  if (image instanceof LoadError) return image.message;
  const host = createHypervisorMachine(config.machine, config.console);
  if (typeof host === 'string') return host;
  const { machine, xen } = host;
  const machineMb = machine.ram.length >> 20;
  const domainMb = config.domainMemoryMb ?? machineMb - 4;
  if (domainMb < 16) return `domain memory must be at least 16 MB (got ${domainMb} MB)`;
  const backend = XenBackend.create(xen, domainMb);
  if (typeof backend === 'string') return backend;
  const nic = machine.nic;
  if (config.passthroughNic === true && nic === undefined)
    return 'NIC pass-through needs a machine with a network';

  // The kernel, its modules and the multiboot information in the guest's physical memory.
  const ram = backend.guestRam();
  const start = placeMultiboot(ram, {
    kernel: config.kernel,
    kernelName: file,
    cmdline: config.cmdline,
    modules: config.modules,
  });
  if (start instanceof LoadError) return start.message;

  // Rewrite every site in place (in the loaded image; the ELF file stays as it is).
  const segments = image.segments;
  const kernelOffset = (segments[0].vaddr - segments[0].paddr) >>> 0;
  const toPhys = (link: number): number | undefined => {
    const s = segments.find((g) => link >= g.vaddr && link < g.vaddr + g.memsz);
    return s === undefined ? undefined : link - s.vaddr + s.paddr;
  };
  const rewritten = rewriteSites(records, (link, length) => {
    const pa = toPhys(link);
    return pa === undefined || pa + length > ram.length ? undefined : ram.slice(pa, pa + length);
  });
  if (typeof rewritten === 'string') return `${file}: ${rewritten}`;
  for (const p of rewritten.patches) ram.set(p.bytes, toPhys(p.at)!);

  const vmm = new InPlaceVmm(
    machine.cpu,
    machine.costModel.software,
    backend,
    rewritten.calls,
    backend.vcpuBlock(),
    { kernelOffset, rtcStartSeconds: Date.UTC(2026, 0, 1) / 1000 },
  );
  if (config.passthroughNic === true && nic !== undefined) {
    const passed = passThroughNic(nic, xen, backend.dom, vmm, backend.passthrough);
    if (passed !== undefined) return passed;
  }
  const entered = backend.start(vmm, start.entry, start.magic, start.mbi, kernelOffset);
  if (entered !== undefined) return `${file}: ${entered}`;
  return {
    machine,
    xen,
    domain: backend.dom,
    vmm,
    backend,
    input: (bytes) => xen.input(bytes),
  };
}
