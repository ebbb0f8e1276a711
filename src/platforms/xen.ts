/**
 * The Xen-style hypervisor (`xen`): the hypervisor owns ring 0 and the kernel runs in ring 1 of
 * a domain that gets all of the machine's memory but 4 MB. It runs two kinds of kernel:
 *
 * - the afterburned kernel, through the in-place VMM (src/vmm, its xen backend), which gives it
 *   the PC it was written for (the seed's "Xen in-place VMM");
 * - a kernel para-virtualized for xen (its ELF note says so, src/loader/notes.ts; the port in
 *   guest/arch/xen-para), built by the hypervisor's own domain builder and calling the
 *   hypervisor itself, with no VMM (the seed's "XenoLinux"; xenPara.ts).
 *
 * With a NIC in the configuration, the machine's DP83820 is given to the domain either way.
 */
import { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import { paraVirtualizedFor } from '../loader/notes.ts';
import { startXenVm } from '../vmm/backends/xen/vm.ts';
import { extraVmsMb, readDriverKernel, readExtraKernels } from './extraVms.ts';
import { startBesideGuest } from './driverVm.ts';
import type { Platform } from './platform.ts';
import { readVmmKernel } from './vmmKernel.ts';
import { prepareXenPara } from './xenPara.ts';

export const xenPlatform: Platform = {
  name: 'xen',
  summary:
    'the Xen-style hypervisor owns ring 0; the afterburned kernel runs in a domain through the ' +
    'in-place VMM, a kernel para-virtualized for xen (make -C guest xen-para) on its own (the ' +
    'domain gets all of --memory but 4 MB)',
  paraVirtualized: 'xen',
  counterColumns: [
    { title: 'hypercalls', source: 'hypervisor', paths: ['hypercalls'], show: 'by-kind' },
    { title: 'bounces (vector)', source: 'hypervisor', paths: ['bounces'], show: 'by-vector' },
    { title: 'upcalls', source: 'hypervisor', paths: ['upcalls'], show: 'count' },
    { title: 'VMM calls', source: 'vmm', paths: ['calls'], show: 'by-kind' },
    { title: 'page-table updates', source: 'hypervisor', paths: ['pteUpdates'], show: 'count' },
    {
      title: 'pins / base switches',
      source: 'hypervisor',
      paths: ['pins', 'baseSwitches'],
      show: 'pair',
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
  reuseColumns: [
    {
      title: 'busy cycles by domain',
      source: 'hypervisor',
      paths: ['scheduler.busyCycles'],
      show: 'by-kind',
    },
    {
      title: 'hypercalls by domain',
      source: 'hypervisor',
      paths: ['scheduler.hypercalls'],
      show: 'by-kind',
    },
    {
      title: 'grant maps / unmaps / copies',
      source: 'hypervisor',
      paths: ['grants.maps', 'grants.unmaps', 'grants.copies'],
      show: 'list',
    },
    {
      title: 'interdomain events',
      source: 'hypervisor',
      paths: ['interdomainEvents'],
      show: 'count',
    },
    {
      title: 'client: frames sent / dropped, events sent / suppressed',
      source: 'vmm',
      paths: [
        'netFront.frames',
        'netFront.dropped',
        'netFront.notifications',
        'netFront.suppressed',
      ],
      show: 'list',
    },
    {
      title: 'driver VM: frames bridged / dropped, events sent / suppressed',
      source: 'vms',
      paths: [
        'netBack.0.frames',
        'netBack.0.dropped',
        'netBack.0.notifications',
        'netBack.0.suppressed',
      ],
      show: 'list',
    },
    {
      title: 'client link: offered / sent / delivered / not delivered',
      source: 'vms',
      paths: [
        'clientLink.offered',
        'clientLink.sent',
        'clientLink.delivered',
        'clientLink.notDelivered',
      ],
      show: 'list',
    },
    { title: 'VMM calls (client)', source: 'vmm', paths: ['calls'], show: 'by-kind' },
    { title: 'VMM calls (driver VM)', source: 'vms', paths: ['calls'], show: 'by-kind' },
  ],
  prepare(config) {
    const extraKernels = readExtraKernels(config, 'xen');
    if (typeof extraKernels === 'string') return extraKernels;
    const driverKernel = readDriverKernel(config, 'xen');
    if (typeof driverKernel === 'string') return driverKernel;
    if (paraVirtualizedFor(config.kernel) === 'xen')
      return prepareXenPara(config, extraKernels, driverKernel);
    const kernel = readVmmKernel(config);
    if (typeof kernel === 'string') return kernel;
    return (machine) => {
      let xen: XenHypervisor;
      try {
        xen = new XenHypervisor(machine, { console: config.console });
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      // The driver VM first: its client link names the guest's connection, which the guest's
      // VMM fills in at its start of day.
      const beside = startBesideGuest(xen, config, extraKernels, driverKernel);
      if (typeof beside === 'string') return beside;
      const { connection, vms } = beside;
      const rtcStartSeconds = config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000;
      const vm = startXenVm(xen, {
        kernel,
        cmdline: config.cmdline ?? '',
        modules: config.modules ?? [],
        domainMemoryMb: (machine.ram.length >> 20) - 4 - extraVmsMb(config),
        passthroughNic:
          config.nic !== undefined && config.nic.emulated !== true && connection === undefined,
        emulatedNic: config.nic?.emulated === true || connection !== undefined,
        nicThrough: connection,
        rtcStartSeconds,
        // A kernel of the Linux boot protocol takes frame numbers from page-table entries it
        // reads without annotation (Linux's pmd_page_vaddr, pte_pfn on *pte): the VMM keeps
        // its tables as written and gives the hypervisor shadows (shadow.ts). A multiboot kernel
        // reads them through annotated sites: its tables are the real ones (paging.ts).
        paging: kernel.bzImage !== undefined ? 'shadow' : 'direct',
      });
      if (typeof vm === 'string') return vm;
      // A crashed driver VM is restarted and the guest's connection made again (driverVm.ts).
      const driverVm = beside.guestBuilt(vm.domain);
      return {
        hypervisor: xen,
        vmm: vm.vmm,
        vms,
        driverVm,
        input: (bytes) => xen.input(bytes),
        physicalMemory: () => vm.backend.guestRam(),
      };
    };
  },
};
