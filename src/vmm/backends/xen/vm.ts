/**
 * An afterburned kernel in a domain of previrt's Xen-style hypervisor, as a toolstack builds it
 * (reference/xen-pv.md): the domain and its backend (XenBackend.ts, layout.ts), the kernel and
 * its modules loaded into the domain's memory as the multiboot loader does on the raw PC and
 * every site rewritten (../../load.ts, the same for every backend), the VMM core, optionally the
 * machine's DP83820 passed through (passthrough.ts), and the virtual CPU started at the entry.
 */
import type { BootModule } from '../../../loader/multiboot.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import { loadAfterburned, type AfterburnedKernel } from '../../load.ts';
import { InPlaceVmm } from '../../Vmm.ts';
import { emulateNic, serveClients } from './emulatedNic.ts';
import type { XenNetConnection } from './netChannel.ts';
import { passThroughNic } from './passthrough.ts';
import { XenBackend, type XenPagingMode } from './XenBackend.ts';

export interface XenVmConfig {
  kernel: AfterburnedKernel;
  cmdline: string;
  modules: BootModule[];
  /** Domain memory in MB (default: the machine's memory minus 4 MB). */
  domainMemoryMb?: number;
  /**
   * Give the domain the machine's DP83820 (PCI 00:03.0; the machine must have a network):
   * direct device access, as in the seed's netperf setup.
   */
  passthroughNic?: boolean;
  /**
   * Give the domain the VMM's DP83820 model instead (devices/emulatedNic.ts), on the machine's
   * wire (the machine must have a network).
   */
  emulatedNic?: boolean;
  /**
   * The emulated NIC's far side: a driver VM, through this connection (netChannel.ts), instead
   * of the machine's wire.
   */
  nicThrough?: XenNetConnection;
  /**
   * Make this domain the driver VM of these clients: the client link on its virtual PCI bus
   * (devices/clientLink.ts), served by its translation module (with passthroughNic).
   */
  serveClients?: XenNetConnection[];
  /** Seconds since the Unix epoch the virtual RTC shows at the domain's system time 0. */
  rtcStartSeconds: number;
  /** How the VMM gives the guest's page tables to the hypervisor (default direct). */
  paging?: XenPagingMode;
  /** Shadow paging's pool in frames (default 1/32 of the domain, at least 256; tests: less). */
  shadowPoolPages?: number;
}

export interface XenVm {
  domain: Domain;
  vmm: InPlaceVmm;
  backend: XenBackend;
}

/** Builds the domain with its VMM and starts its virtual CPU at the kernel's entry; or a message. */
export function startXenVm(xen: XenHypervisor, config: XenVmConfig): XenVm | string {
  const machine = xen.machine;
  const file = config.kernel.name;
  const domainMb = config.domainMemoryMb ?? (machine.ram.length >> 20) - 4;
  if (domainMb < 16) return `domain memory must be at least 16 MB (got ${domainMb} MB)`;
  if (config.passthroughNic === true && machine.nic === undefined)
    return 'NIC pass-through needs a machine with a network';
  const backend = XenBackend.create(xen, domainMb, config.paging, config.shadowPoolPages);
  if (typeof backend === 'string') return backend;
  const loaded = loadAfterburned(backend.guestRam(), config.kernel, config.cmdline, config.modules);
  if (typeof loaded === 'string') return loaded;
  // The domain's own bound entries: another domain's VMM may use the same addresses.
  const entries = machine.cpu.createEntryTable(`xen.dom${backend.dom.id}`);
  const vmm = new InPlaceVmm(
    machine.cpu,
    machine.costModel.software,
    backend,
    loaded.calls,
    backend.vcpuBlock(),
    {
      entries,
      kernelOffset: loaded.kernelOffset,
      rtcStartSeconds: config.rtcStartSeconds,
      boot: loaded,
    },
  );
  if (config.passthroughNic === true && config.emulatedNic === true)
    return 'a NIC is either passed through or emulated, not both';
  if (config.passthroughNic === true && machine.nic !== undefined) {
    const passed = passThroughNic(machine.nic, xen, backend.dom, vmm, backend.passthrough);
    if (passed !== undefined) return passed;
  }
  if (config.emulatedNic === true) {
    const e = emulateNic(xen, backend, vmm, config.nicThrough);
    if (typeof e === 'string') return e;
    backend.emulatedRegisterPage = e.registerPage;
  }
  if (config.serveClients !== undefined && config.serveClients.length > 0) {
    if (config.emulatedNic === true) return 'a driver VM serves clients; it has no emulated NIC';
    const served = serveClients(xen, backend, vmm, config.serveClients);
    if (typeof served === 'string') return served;
    backend.emulatedRegisterPage = served.registerPage;
    backend.clientLink = served;
  }
  const entered = backend.start(vmm, entries, loaded);
  if (entered !== undefined) return `${file}: ${entered}`;
  return { domain: backend.dom, vmm, backend };
}
