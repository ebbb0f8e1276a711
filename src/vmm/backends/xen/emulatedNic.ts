/**
 * The VMM's DP83820 model on xen (../../devices/emulatedNic.ts), in place of the real one passed
 * through: the toolstack's part is a register page (a frame the domain owns, never a page table,
 * outside its pseudo-physical memory) to which the guest's mapping of the model's memory BAR
 * leads (passthrough.ts translates that frame), and the model's DMA, which reaches the domain's
 * memory through the same confinement a granted device's DMA has (pseudo-physical addresses
 * through the p2m, only the domain's own frames and the grants it mapped). Its wire is the
 * machine's link: the model takes the link's end from the machine's NIC, which stays unused.
 */
import { INVALID_P2M_ENTRY } from '../../../hypervisor/xen/abi.ts';
import { confineDma, type DmaCounters } from '../../../hypervisor/devices.ts';
import { domainDma } from '../../../hypervisor/xen/devices.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import type { DmaMemory } from '../../../machine/device.ts';
import type { Dp83820 } from '../../../machine/devices/dp83820/Dp83820.ts';
import type { VmmCore } from '../../backend.ts';
import { addEmulatedNic } from '../../devices/emulatedNic.ts';
import type { XenPassthrough } from './passthrough.ts';

/** The model with its register page's machine frame; or one line. */
export function emulateNic(
  xen: XenHypervisor,
  dom: Domain,
  vmm: VmmCore,
  frames: XenPassthrough,
  counters: DmaCounters,
): { nic: Dp83820; registerPage: number } | string {
  const machine = xen.machine;
  const link = machine.link;
  if (link === undefined || machine.nic === undefined)
    return 'an emulated NIC needs a machine with a network';
  const page = xen.frames.allocate(dom.id, 1);
  if (page === undefined) return "not enough machine memory for the emulated NIC's register page";
  const mfn = page[0];
  machine.ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
  xen.frames.noPageTable[mfn] = 1;
  xen.setM2p(mfn, INVALID_P2M_ENTRY);
  const dma: DmaMemory = {
    read: (address, into) => machine.dma.read(address, into),
    write: (address, from) => machine.dma.write(address, from),
  };
  const owns = (m: number): boolean => xen.frames.ownedBy(dom, m) || dom.grantTable.holds(m);
  confineDma(
    dma,
    domainDma(dom.p2m, owns, (s) => dom.grantTable.windowFrame(s)),
    counters,
  );
  const platform = vmm.platform;
  const hz = machine.costModel.hz;
  const nic = addEmulatedNic({
    platform,
    dma,
    mac: machine.nic.mac,
    port: {
      send: (frame) => {
        const free = link.send(0, frame);
        if (free === undefined) return undefined;
        // The wire's time (machine cycles) on the virtual devices' clock (ns).
        return platform.clock.now() + Math.ceil(((free - machine.clock.now()) * 1e9) / hz);
      },
    },
    charge: (cycles) => machine.cpu.charge(cycles),
  });
  if (typeof nic === 'string') return nic;
  link.attach(0, nic);
  frames.emulate(mfn);
  return { nic, registerPage: mfn * 4096 };
}
