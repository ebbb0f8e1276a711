/**
 * The Xen-style hypervisor with the para-virtualized kernel (`xen-para`, the seed's XenoLinux
 * row): the guest kernel hand-ported to the hypervisor (guest/arch/xen-para), which runs in
 * ring 1 and calls the hypervisor itself; no in-place VMM, nothing rewritten. It boots as a PV
 * kernel through the hypervisor's domain builder (start_info, mfn_list, the start-of-day page
 * tables: src/hypervisor/xen/builder.ts), not through multiboot, in a domain that gets all of the
 * machine's memory but 4 MB, as under `xen`. With a NIC in the configuration, the toolstack
 * gives the domain the machine's DP83820: its BARs placed where a PC's firmware would put them,
 * its register page, interrupt line, PCI function and DMA granted (as for `xen`'s pass-through,
 * src/vmm/README.md; the port's driver then uses them itself).
 */
import { LoadError, parseElf } from '../loader/elf.ts';
import type { Dp83820 } from '../machine/devices/dp83820/Dp83820.ts';
import { SharedInfo } from '../hypervisor/xen/abi.ts';
import { buildDomain, enterDomain } from '../hypervisor/xen/builder.ts';
import type { Domain } from '../hypervisor/xen/domain.ts';
import { readXenGuestInfo } from '../hypervisor/xen/guestInfo.ts';
import { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import type { Platform } from './platform.ts';

/** Where the toolstack places the NIC's BARs (as the `xen` platform's does). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;

/** The version of the interface a kernel must name (`XEN_VER=` in its `__xen_guest`). */
const XEN_VER = 'previrt-xen-1.0';

/**
 * One line when `kernel` is a para-virtualized kernel and the platform `name` cannot run it
 * (the raw PC and `xen` boot multiboot kernels); undefined for any other kernel.
 */
export function paraKernelRefusal(kernel: Uint8Array, file: string, name: string): string | undefined {
  if (readXenGuestInfo(kernel) === undefined) return undefined;
  return `${file}: a para-virtualized kernel (section __xen_guest): it runs only with --hypervisor xen-para, not on ${name === 'none' ? 'the raw PC' : `--hypervisor ${name}`}`;
}

export const xenParaPlatform: Platform = {
  name: 'xen-para',
  summary:
    'the Xen-style hypervisor owns ring 0; the para-virtualized kernel (make -C guest xen-para) ' +
    'runs in a domain its domain builder makes, no in-place VMM (all of --memory but 4 MB)',
  counterColumns: [
    { title: 'hypercalls', source: 'hypervisor', paths: ['hypercalls'], show: 'by-kind' },
    { title: 'bounces (vector)', source: 'hypervisor', paths: ['bounces'], show: 'by-vector' },
    { title: 'upcalls', source: 'hypervisor', paths: ['upcalls'], show: 'count' },
    { title: 'page-table updates', source: 'hypervisor', paths: ['pteUpdates'], show: 'count' },
    {
      title: 'pins / base switches',
      source: 'hypervisor',
      paths: ['pins', 'baseSwitches'],
      show: 'pair',
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
    const file = config.kernelName;
    const image = parseElf(config.kernel, file);
    if (image instanceof LoadError) return image.message;
    const info = readXenGuestInfo(config.kernel);
    if (info === undefined)
      return `${file}: not a para-virtualized kernel (no __xen_guest section): xen-para runs guest/build/xen-para/kernel.elf (make -C guest xen-para); an afterburned kernel runs with --hypervisor xen`;
    if (info.get('XEN_VER') !== XEN_VER)
      return `${file}: __xen_guest names XEN_VER=${info.get('XEN_VER') ?? '(none)'}, this hypervisor is ${XEN_VER}`;
    if ((config.modules ?? []).length > 0)
      return `${file}: xen-para takes no boot modules (its domain builder loads the kernel only)`;
    return (machine) => {
      let xen: XenHypervisor;
      try {
        xen = new XenHypervisor(machine, { console: config.console });
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
      const built = buildDomain(xen, image, {
        memoryMb: (machine.ram.length >> 20) - 4,
        cmdline: config.cmdline ?? '',
      });
      if (typeof built === 'string') return `${file}: ${built}`;
      const { domain, layout } = built;
      // Xen keeps the wall clock in shared info: the time at system time 0 (the domain's start).
      xen.writeShared32(
        domain,
        SharedInfo.wc_sec,
        config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      );
      if (config.nic !== undefined && machine.nic !== undefined) grantNic(xen, domain, machine.nic);
      enterDomain(xen, domain, image.entry, layout);
      const first = domain.p2m[0];
      if (domain.p2m.some((mfn, pfn) => mfn !== first + pfn))
        return `${file}: the domain's frames are not contiguous`;
      const ram = machine.ram.subarray(first * 4096, (first + domain.p2m.length) * 4096);
      return { hypervisor: xen, input: (bytes) => xen.input(bytes), physicalMemory: () => ram };
    };
  },
};

/** The toolstack's part of giving the domain the machine's DP83820 (dom0's, in Xen). */
function grantNic(xen: XenHypervisor, domain: Domain, nic: Dp83820): void {
  nic.configWrite(0x10, 4, NIC_IO);
  nic.configWrite(0x14, 4, NIC_MMIO);
  xen.grantDevice(domain, {
    name: 'dp83820',
    ioPorts: [],
    ioMemory: [{ base: NIC_MMIO, length: 4096 }],
    irqs: [nic.configRead(0x3c, 1)],
    pci: { read: (o, n) => nic.configRead(o, n), write: (o, n, v) => nic.configWrite(o, n, v) },
    dma: xen.machine.dma,
  });
}
