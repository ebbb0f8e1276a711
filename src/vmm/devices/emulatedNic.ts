/**
 * The in-place VMM's DP83820 (issues "reuse" and "migrate"): the guest's unmodified DP83820
 * driver runs against a DP83820 the VMM emulates instead of the real one passed through. The
 * model is the machine's own (src/machine/devices/dp83820), register for register and
 * descriptor for descriptor — the same code Linux's ns83820 and the guest kernel's driver run
 * against on the raw PC — placed in the virtual PC:
 *
 * - its PCI function at 00:03.0 on the virtual bus, its interrupt on line 11 of the virtual
 *   8259s (level-triggered), its BARs on the virtual port bus and the VMM's MMIO bus;
 * - its registers reached from the guest's `ab_mmio_*` sites: the backend maps the page the
 *   guest maps at its memory BAR to a page of its own (`VmmBackend.emulatedRegisterPage`), and a
 *   site whose address lands there is a register access of the model (Vmm.ts), charged as one
 *   access to a virtual device register (cost-model.md: 40 cycles), not as real MMIO;
 * - its descriptors and buffers in the guest's physical memory, through the backend's DMA into
 *   the VM (confined to the VM as a granted device's DMA is); each transfer is the VMM copying
 *   bytes, charged as a REP MOVSD of them;
 * - its engines on the virtual devices' clock (the hypervisor's system time, in ns);
 * - its interrupt hold-off (IHR) as the driver programs it — no interrupt before its end — but,
 *   on xen, without a clock event of its own while the guest runs (`holdoffAtVmmPoints`,
 *   Dp83820Config.holdoffWithoutEvent): a line the hold-off held comes up at the first point
 *   after its end where the VMM runs anyway (`VirtualPlatform.poll`: the guest's `iret` or
 *   idle, the end of taking events, the timer's tick), where a virtual interrupt is delivered in
 *   any case; only a guest that goes idle with an interrupt held gets the hold-off's end as an
 *   event (`VirtualPlatform.idle`), so that it wakes when the chip's interrupt would come. The
 *   original's model had no hold-off at all (its interrupt came with each arrival); a clock
 *   event per hold-off costs the VMM a timer of the hypervisor's (a hypercall, and another to
 *   re-arm its own timer after it);
 * - its wire a `NetPort` of the backend's: the frames it sends and the frames it receives.
 */
import type { DmaMemory } from '../../machine/device.ts';
import { Dp83820, type DirectWire } from '../../machine/devices/dp83820/Dp83820.ts';
import type { VirtualPlatform } from '../platform.ts';

/** Where the emulated NIC sits on the virtual PC (the machine's own NIC's places). */
export const EMULATED_NIC_SLOT = 3;
export const EMULATED_NIC_IRQ = 11;

/** The emulated NIC's wire, as the backend gives it. */
export interface NetPort {
  /**
   * Sends a frame (with FCS); returns the virtual devices' clock time (ns) at which the wire is
   * free again, or undefined if the frame was dropped.
   */
  send(frame: Uint8Array): number | undefined;
}

export interface EmulatedNicConfig {
  platform: VirtualPlatform;
  /** The VM's physical memory as the device reaches it (the backend's confined DMA). */
  dma: DmaMemory;
  mac: Uint8Array;
  port: NetPort;
  /**
   * Instead of the wire, a driver VM (issue "reuse"): the model hands its buffers to this peer
   * and lets it fill the receive buffers (Dp83820Config.direct); `port` is then unused.
   */
  direct?: DirectWire;
  /** Charges the CPU (the VMM's copying of a transfer). */
  charge(cycles: number): void;
  /**
   * The interrupt hold-off without a clock event while the guest runs (see the header), for a
   * backend after each of whose events the VMM runs again before the guest sleeps: on xen an
   * upcall returns to the guest, which idles again through its `hlt`. Not on l4, whose monitor
   * takes events while the guest's thread sleeps and wakes it only for an interrupt: there the
   * model keeps its hold-off timer.
   */
  holdoffAtVmmPoints?: boolean;
}

/** The VM's memory as a VMM device reaches it, each transfer charged as a REP MOVSD of it. */
export function copyingDma(dma: DmaMemory, charge: (cycles: number) => void): DmaMemory {
  const copy = (bytes: number): void => charge(1 + Math.ceil(bytes / 4));
  return {
    read: (address, into) => {
      const ok = dma.read(address, into);
      if (ok) copy(into.length);
      return ok;
    },
    write: (address, from) => {
      const ok = dma.write(address, from);
      if (ok) copy(from.length);
      return ok;
    },
  };
}

/** The VMM's DP83820 on the virtual PC; or one line if its slot is taken. */
export function addEmulatedNic(c: EmulatedNicConfig): Dp83820 | string {
  const copying = copyingDma(c.dma, (cycles) => c.charge(cycles));
  // A migration's dirty log hears of what the model writes into the guest (dirty.ts).
  const dma: DmaMemory = {
    read: (address, into) => copying.read(address, into),
    write: (address, from) => {
      const ok = copying.write(address, from);
      if (ok) c.platform.dmaWritten?.(address, from.length);
      return ok;
    },
  };
  const nic = new Dp83820({
    clock: c.platform.clock,
    dma,
    irq: c.platform.pic.line(EMULATED_NIC_IRQ),
    buses: c.platform.buses,
    mac: c.mac,
    transmit: (frame) => c.port.send(frame),
    direct: c.direct,
    holdoffWithoutEvent: c.holdoffAtVmmPoints,
  });
  nic.configWrite(0x3c, 1, EMULATED_NIC_IRQ);
  const taken = c.platform.addEmulated(EMULATED_NIC_SLOT, nic, EMULATED_NIC_IRQ);
  if (taken !== undefined) return taken;
  if (c.holdoffAtVmmPoints === true) {
    c.platform.pollers.push(() => nic.holdoffCheck());
    c.platform.idlers.push(() => nic.idle());
  }
  return nic;
}
