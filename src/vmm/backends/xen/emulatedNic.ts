/**
 * The VMM's emulated devices on xen, in place of real ones passed through: the DP83820 model
 * (../../devices/emulatedNic.ts) of a guest whose unmodified driver drives it, on the machine's
 * wire or through a driver VM (netChannel.ts); and the client link (../../devices/clientLink.ts)
 * of a driver VM serving its clients. The toolstack's part for each is a register page (a frame
 * the domain owns, never a page table, outside its pseudo-physical memory) to which the guest's
 * mapping of the device's memory BAR leads (passthrough.ts translates that frame), and the
 * device's DMA, which reaches the domain's memory through the same confinement a granted
 * device's DMA has (pseudo-physical addresses through the p2m, only the domain's own frames and
 * the grants it mapped).
 */
import { GRANT_WINDOW_PAGES, INVALID_P2M_ENTRY } from '../../../hypervisor/xen/abi.ts';
import { confineDma, type DmaCounters } from '../../../hypervisor/devices.ts';
import { domainDma } from '../../../hypervisor/xen/devices.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import type { DmaMemory } from '../../../machine/device.ts';
import type { Dp83820 } from '../../../machine/devices/dp83820/Dp83820.ts';
import type { VmmCore } from '../../backend.ts';
import { ClientLink, LINK_IRQ, LINK_SLOT } from '../../devices/clientLink.ts';
import { addEmulatedNic, copyingDma } from '../../devices/emulatedNic.ts';
import { NetBack, NetFront, WINDOW_PAGES_PER_CLIENT, type XenNetConnection } from './netChannel.ts';
import type { XenBackend } from './XenBackend.ts';

/** A register page for the domain's emulated device: its machine address; or one line. */
function registerPage(xen: XenHypervisor, dom: Domain, what: string): number | string {
  const page = xen.frames.allocate(dom.id, 1);
  if (page === undefined) return `not enough machine memory for the ${what}'s register page`;
  const mfn = page[0];
  xen.machine.ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
  xen.frames.noPageTable[mfn] = 1;
  xen.setM2p(mfn, INVALID_P2M_ENTRY);
  return mfn * 4096;
}

/** The domain's memory as its emulated device reaches it: confined, counted. */
function confinedDma(xen: XenHypervisor, dom: Domain, counters: DmaCounters): DmaMemory {
  // Machine memory itself: the machine's DMA port may already be a passed-through device's,
  // confined to its own domain (the driver VM's NIC).
  const ram = xen.machine.ram;
  const dma: DmaMemory = {
    read: (address, into) => {
      if (address < 0 || address + into.length > ram.length) return false;
      into.set(ram.subarray(address, address + into.length));
      return true;
    },
    write: (address, from) => {
      if (address < 0 || address + from.length > ram.length) return false;
      ram.set(from, address);
      xen.cpu.invalidateCode(address, from.length);
      return true;
    },
  };
  const owns = (m: number): boolean => xen.frames.ownedBy(dom, m) || dom.grantTable.holds(m);
  confineDma(
    dma,
    domainDma(dom.p2m, owns, (s) => dom.grantTable.windowFrame(s)),
    counters,
  );
  return dma;
}

/**
 * The model, on the machine's wire or (`through`) a driver VM's client link, with its register
 * page's machine address; or one line.
 */
export function emulateNic(
  xen: XenHypervisor,
  backend: XenBackend,
  vmm: VmmCore,
  through?: XenNetConnection,
): { nic: Dp83820; registerPage: number } | string {
  const machine = xen.machine;
  const dom = backend.dom;
  const link = machine.link;
  if (link === undefined || machine.nic === undefined)
    return 'an emulated NIC needs a machine with a network';
  const page = registerPage(xen, dom, 'emulated NIC');
  if (typeof page === 'string') return page;
  const platform = vmm.platform;
  const hz = machine.costModel.hz;
  const front =
    through === undefined ? undefined : new NetFront(xen, dom, backend.channel, through);
  const nic = addEmulatedNic({
    platform,
    dma: confinedDma(xen, dom, backend.emulatedDma),
    mac: through?.mac ?? machine.nic.mac,
    port: {
      send: (frame) => {
        const free = link.send(0, frame);
        if (free === undefined) return undefined;
        // The wire's time (machine cycles) on the virtual devices' clock (ns).
        return platform.clock.now() + Math.ceil(((free - machine.clock.now()) * 1e9) / hz);
      },
    },
    direct: front,
    charge: (cycles) => machine.cpu.charge(cycles),
    holdoffAtVmmPoints: true,
  });
  if (typeof nic === 'string') return nic;
  if (front === undefined) link.attach(0, nic);
  else {
    front.attach(nic);
    front.listen = (port, handler) => backend.onEvent(port, handler);
    backend.netFront = front;
    backend.atStart(() => {
      const failed = front.start();
      if (failed !== undefined) return `network connection: ${failed}`;
      backend.onEvent(front.eventPort, () => front.event());
      return undefined;
    });
    platform.flushers.push(() => front.flush());
    platform.pollers.push(() => front.poll());
    platform.idlers.push(() => front.idle());
  }
  backend.passthrough.emulate(page / 4096);
  return { nic, registerPage: page };
}

/**
 * The client link of a driver VM serving `clients` (one NetBack each), with its register
 * page's machine address; or one line.
 */
export function serveClients(
  xen: XenHypervisor,
  backend: XenBackend,
  vmm: VmmCore,
  clients: XenNetConnection[],
): { link: ClientLink; registerPage: number; backs: NetBack[] } | string {
  const dom = backend.dom;
  const page = registerPage(xen, dom, 'client link');
  if (typeof page === 'string') return page;
  const platform = vmm.platform;
  if (clients.length * WINDOW_PAGES_PER_CLIENT > GRANT_WINDOW_PAGES)
    return `a driver VM serves at most ${Math.floor(GRANT_WINDOW_PAGES / WINDOW_PAGES_PER_CLIENT)} clients on xen (its grant window)`;
  const backs = clients.map((conn, k) => {
    conn.driverDom = dom.id;
    return new NetBack(xen, dom, backend.channel, conn, k * WINDOW_PAGES_PER_CLIENT);
  });
  const charge = (cycles: number): void => xen.machine.cpu.charge(cycles);
  const connect = (b: NetBack): void => {
    const r = b.connect();
    if (r === 'connected') backend.onEvent(b.eventPort, () => b.event());
    else if (r !== 'waiting') backend.crash(`client link: ${r.failed}`);
  };
  for (const b of backs) b.retry = () => connect(b);
  const link = new ClientLink({
    dma: copyingDma(confinedDma(xen, dom, backend.emulatedDma), charge),
    irq: platform.pic.line(LINK_IRQ),
    buses: platform.buses,
    clients: backs,
    control: (up) => {
      if (up) for (const b of backs) connect(b);
    },
  });
  backs.forEach((b, k) =>
    b.serveThrough(
      (parts, id) => link.offer(k, parts, id),
      () => link.roomFor(k),
      () => link.waiting(k),
    ),
  );
  const taken = platform.addEmulated(LINK_SLOT, link, LINK_IRQ);
  if (taken !== undefined) return taken;
  for (const b of backs) platform.flushers.push(() => b.flush());
  backend.passthrough.emulate(page / 4096);
  return { link, registerPage: page, backs };
}
