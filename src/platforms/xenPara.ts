/**
 * The Xen-style hypervisor with a para-virtualized kernel (the `xen` platform's second kind of
 * kernel, the seed's XenoLinux row): the guest kernel hand-ported to the hypervisor
 * (guest/arch/xen-para), which runs in ring 1 and calls the hypervisor itself; no in-place VMM,
 * nothing rewritten. It boots as a PV kernel through the hypervisor's domain builder
 * (start_info, mfn_list, the start-of-day page tables: src/hypervisor/xen/builder.ts), not
 * through multiboot, in a domain that gets all of the machine's memory but 4 MB, as the
 * afterburned kernel's does. With a NIC in the configuration, the toolstack gives the domain the
 * machine's DP83820: its BARs placed where a PC's firmware would put them, its register page,
 * interrupt line, PCI function and DMA granted, as for the in-place VMM's pass-through
 * (src/vmm/backends/xen/passthrough.ts); the port's driver then uses them itself.
 */
import { SharedInfo } from '../hypervisor/xen/abi.ts';
import { buildDomain, enterDomain } from '../hypervisor/xen/builder.ts';
import type { Domain } from '../hypervisor/xen/domain.ts';
import { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import { LoadError, parseElf } from '../loader/elf.ts';
import type { Dp83820 } from '../machine/devices/dp83820/Dp83820.ts';
import type { AfterburnedKernel } from '../vmm/load.ts';
import type { XenNetConnection } from '../vmm/backends/xen/netChannel.ts';
import { startBesideGuest } from './driverVm.ts';
import { extraVmsMb } from './extraVms.ts';
import type { BootedGuest, GuestConfig } from './platform.ts';
import type { Machine } from '../machine/Machine.ts';

/** Where the toolstack places the NIC's BARs (as for the in-place VMM's pass-through). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;
/** The custom network driver's ring: its grant reference (guest/arch/xen-para/netfront.c). */
const NETFRONT_RING_REF = 1;

/** The `xen` platform's prepare step for a kernel whose note says it is para-virtualized for xen. */
export function prepareXenPara(
  config: GuestConfig,
  extraKernels: AfterburnedKernel[],
  driverKernel?: AfterburnedKernel,
): ((machine: Machine) => BootedGuest | string) | string {
  const file = config.kernelName;
  const image = parseElf(config.kernel, file);
  if (image instanceof LoadError) return image.message;
  if ((config.modules ?? []).length > 0)
    return `${file}: a para-virtualized kernel takes no boot modules (the domain builder loads the kernel only)`;
  return (machine) => {
    let xen: XenHypervisor;
    try {
      xen = new XenHypervisor(machine, { console: config.console });
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    // The driver VM first, as for the afterburned kernel (xen.ts): its client link serves the
    // connection, which this domain's custom network driver (netfront.c) makes.
    const beside = startBesideGuest(xen, config, extraKernels, driverKernel);
    if (typeof beside === 'string') return beside;
    const { connection, vms } = beside;
    const built = buildDomain(xen, image, {
      memoryMb: (machine.ram.length >> 20) - 4 - extraVmsMb(config),
      cmdline: withNetfront(config.cmdline ?? '', connection),
    });
    if (typeof built === 'string') return `${file}: ${built}`;
    const { domain, layout } = built;
    if (connection !== undefined) findNetfront(domain, connection);
    // The guest's physical memory, for tools, is its pseudo-physical frames in order; the
    // builder takes the free frames in order, so they are machine-contiguous.
    const first = domain.p2m[0];
    if (domain.p2m.some((mfn, pfn) => mfn !== first + pfn))
      return `${file}: the domain's frames are not contiguous`;
    const ram = machine.ram.subarray(first * 4096, (first + domain.p2m.length) * 4096);
    // Xen keeps the wall clock in shared info: the time at system time 0 (the domain's start).
    xen.writeShared32(
      domain,
      SharedInfo.wc_sec,
      config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
    );
    if (config.nic !== undefined && machine.nic !== undefined && connection === undefined)
      grantNic(xen, domain, machine.nic);
    enterDomain(xen, domain, image.entry, layout);
    // A crashed driver VM is restarted and the front end told, as for the afterburned guest.
    const driverVm = beside.guestBuilt(domain);
    return {
      hypervisor: xen,
      vms,
      driverVm,
      input: (bytes) => xen.input(bytes),
      physicalMemory: () => ram,
    };
  };
}

/**
 * The command line with the custom network driver's option (netfront.c): the back end's domain
 * and the domain's MAC address, which xenstore would hold in Xen.
 */
function withNetfront(cmdline: string, conn: XenNetConnection | undefined): string {
  if (conn === undefined) return cmdline;
  const mac = [...conn.mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const option = `netfront=${conn.driverDom},${mac}`;
  return cmdline === '' ? option : `${cmdline} ${option}`;
}

/**
 * How the back end finds the front end's two keys without xenstore (netfront.c): the ring is
 * grant reference 1, and the event channel is the domain's one unbound port for the back end's
 * domain, once the kernel has made it.
 */
function findNetfront(domain: Domain, conn: XenNetConnection): void {
  conn.clientDom = domain.id;
  conn.find = () => {
    const port = domain.channels.findIndex(
      (c) => c.kind === 'unbound' && c.remote === conn.driverDom,
    );
    if (port <= 0) return false;
    conn.ringRef = NETFRONT_RING_REF;
    conn.clientPort = port;
    return true;
  };
}

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
    reset: () => nic.functionReset(),
  });
}
