/**
 * The L4 X.2-style microkernel with the in-place VMM (`l4`): the microkernel owns ring 0, the
 * afterburned kernel runs in ring 3 as a thread of a VM the resource monitor builds (all of the
 * machine's memory above the microkernel's), its processes in L4 spaces of their own, and the
 * VMM (src/vmm, its l4 backend) gives it the PC it was written for. With a NIC in the
 * configuration, the machine's DP83820 is passed through to the VM. A kernel whose ELF note says
 * it is para-virtualized for l4 (guest/arch/l4-para) boots without the VMM instead (l4Para.ts).
 */
import { L4Kernel } from '../hypervisor/l4/L4.ts';
import { paraVirtualizedFor } from '../loader/notes.ts';
import { startL4Vm } from '../vmm/backends/l4/vm.ts';
import { startBesideGuest } from './driverVm.ts';
import { readDriverKernel, readExtraKernels } from './extraVms.ts';
import type { Platform } from './platform.ts';
import { prepareL4Para } from './l4Para.ts';
import { readVmmKernel } from './vmmKernel.ts';

export const l4Platform: Platform = {
  name: 'l4',
  paraVirtualized: 'l4',
  summary:
    'the L4 X.2-style microkernel owns ring 0; the afterburned kernel runs as an L4 thread of a ' +
    'VM through the in-place VMM, its processes in L4 spaces of their own (the VM gets all of ' +
    "--memory above the microkernel's); a kernel para-virtualized for l4 runs as an L4 task of its own",
  counterColumns: [
    { title: 'IPC messages', source: 'hypervisor', paths: ['ipc'], show: 'by-kind' },
    { title: 'L4 system calls', source: 'hypervisor', paths: ['syscalls'], show: 'by-kind' },
    {
      title: 'pages mapped / unmapped',
      source: 'hypervisor',
      paths: ['pages.mapped', 'pages.unmapped'],
      show: 'pair',
    },
    { title: 'space switches', source: 'hypervisor', paths: ['spaceSwitches'], show: 'count' },
    { title: 'VMM calls', source: 'vmm', paths: ['calls'], show: 'by-kind' },
    {
      title: 'virtual interrupts (vector)',
      source: 'vmm',
      paths: ['virtualInterrupts'],
      show: 'by-vector',
    },
    { title: 'NIC interrupts (L4)', source: 'hypervisor', paths: ['interrupts'], show: 'count' },
    {
      title: 'NIC DMA translated / refused',
      source: 'hypervisor',
      paths: ['dmaTranslated', 'dmaRefused'],
      show: 'pair',
    },
  ],
  reuseColumns: [
    { title: 'IPC messages', source: 'hypervisor', paths: ['ipc'], show: 'by-kind' },
    { title: 'L4 system calls', source: 'hypervisor', paths: ['syscalls'], show: 'by-kind' },
    { title: 'space switches', source: 'hypervisor', paths: ['spaceSwitches'], show: 'count' },
    {
      title: 'client: frames sent+received / dropped, messages sent / deferred',
      source: 'vmm',
      paths: ['netFront.frames', 'netFront.dropped', 'netFront.messages', 'netFront.deferred'],
      show: 'list',
    },
    {
      title: 'driver VM: frames bridged / dropped, messages sent / deferred',
      source: 'vms',
      paths: ['netBack.0.frames', 'netBack.0.dropped', 'netBack.0.messages', 'netBack.0.deferred'],
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
    {
      title: 'NIC DMA translated / refused',
      source: 'hypervisor',
      paths: ['dmaTranslated', 'dmaRefused'],
      show: 'pair',
    },
    { title: 'VMM calls (client)', source: 'vmm', paths: ['calls'], show: 'by-kind' },
    { title: 'VMM calls (driver VM)', source: 'vms', paths: ['calls'], show: 'by-kind' },
  ],
  prepare(config) {
    const extraKernels = readExtraKernels(config, 'l4');
    if (typeof extraKernels === 'string') return extraKernels;
    const driverKernel = readDriverKernel(config, 'l4');
    if (typeof driverKernel === 'string') return driverKernel;
    if (paraVirtualizedFor(config.kernel) === 'l4')
      return prepareL4Para(config, extraKernels, driverKernel);
    const kernel = readVmmKernel(config);
    if (typeof kernel === 'string') return kernel;
    return (machine) => {
      let l4: L4Kernel;
      try {
        l4 = new L4Kernel(machine, { console: config.console, pagerExregs: true });
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      // The driver VM first: its client link serves the guest's connection.
      const beside = startBesideGuest(l4, config, extraKernels, driverKernel);
      if (typeof beside === 'string') return beside;
      const { connection, vms } = beside;
      const vm = startL4Vm(l4, {
        kernel,
        cmdline: config.cmdline ?? '',
        modules: config.modules ?? [],
        passthroughNic:
          config.nic !== undefined && config.nic.emulated !== true && connection === undefined,
        emulatedNic: config.nic?.emulated === true || connection !== undefined,
        nicThrough: connection,
        rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      });
      if (typeof vm === 'string') return vm;
      // A crashed driver VM is restarted and the guest's connection made again (driverVm.ts).
      const driverVm = beside.guestBuilt(vm.vm);
      return {
        hypervisor: l4,
        vmm: vm.vmm,
        vms,
        driverVm,
        input: (bytes) => vm.backend.input(bytes),
        physicalMemory: () => vm.backend.guestRam(),
      };
    };
  },
};
