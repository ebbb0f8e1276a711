/**
 * The Xen-style hypervisor with the in-place VMM (`xen`): the hypervisor owns ring 0, the
 * afterburned kernel runs in ring 1 of a domain that gets all of the machine's memory but 4 MB,
 * and the VMM (src/vmm, its xen backend) gives it the PC it was written for. With a NIC in the
 * configuration, the machine's DP83820 is passed through to the domain.
 */
import { isLinuxKernel } from '../loader/linux.ts';
import { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import { startXenVm } from '../vmm/backends/xen/vm.ts';
import { readAfterburned } from '../vmm/load.ts';
import type { Platform } from './platform.ts';

export const xenPlatform: Platform = {
  name: 'xen',
  summary:
    'the Xen-style hypervisor owns ring 0; the afterburned kernel runs in a domain through the ' +
    'in-place VMM (the domain gets all of --memory but 4 MB)',
  counterColumns: [
    { title: 'hypercalls', source: 'hypervisor', paths: ['hypercalls'], show: 'by-kind' },
    { title: 'bounces (vector)', source: 'hypervisor', paths: ['bounces'], show: 'by-vector' },
    { title: 'upcalls', source: 'hypervisor', paths: ['upcalls'], show: 'count' },
    { title: 'VMM calls', source: 'vmm', paths: ['calls'], show: 'by-kind' },
    {
      title: 'page-table updates',
      source: 'vmm',
      paths: ['paging.pageTableUpdates'],
      show: 'count',
    },
    {
      title: 'virtual interrupts (vector)',
      source: 'vmm',
      paths: ['virtualInterrupts'],
      show: 'by-vector',
    },
    { title: 'NIC pirq events', source: 'hypervisor', paths: ['pirqEvents'], show: 'count' },
    {
      title: 'NIC DMA translated / refused',
      source: 'hypervisor',
      paths: ['dmaTranslated', 'dmaRefused'],
      show: 'pair',
    },
  ],
  prepare(config) {
    if (isLinuxKernel(config.kernel))
      return `${config.kernelName}: a Linux bzImage; the xen platform boots afterburned multiboot kernels only (pre-virtualized Linux is not supported yet: use --hypervisor none)`;
    const kernel = readAfterburned(config.kernel, config.kernelName);
    if (typeof kernel === 'string') return kernel;
    return (machine) => {
      let xen: XenHypervisor;
      try {
        xen = new XenHypervisor(machine, { console: config.console });
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      const vm = startXenVm(xen, {
        kernel,
        cmdline: config.cmdline ?? '',
        modules: config.modules ?? [],
        passthroughNic: config.nic !== undefined,
        rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      });
      if (typeof vm === 'string') return vm;
      return {
        hypervisor: xen,
        vmm: vm.vmm,
        input: (bytes) => xen.input(bytes),
        physicalMemory: () => vm.backend.guestRam(),
      };
    };
  },
};
