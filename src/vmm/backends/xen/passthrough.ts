/**
 * Device pass-through on xen (src/vmm/README.md, "Pass-through"): the toolstack's part (real
 * BARs placed, the device granted to the domain with its registers, interrupt line and DMA) and
 * the backend's (the function's configuration space through physdev_op, its interrupt as a pirq
 * event channel, frames of its virtual memory BAR translated to the real BAR's and back). DMA is
 * translated by the hypervisor, which interposes on the device's bus-master port when granting it.
 */
import { EvtchnOp, Hypercall, PhysdevOp } from '../../../hypervisor/xen/abi.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
import type { Dp83820 } from '../../../machine/devices/dp83820/Dp83820.ts';
import { PassthroughPci, type PciConfigPort } from '../../devices/passthrough.ts';
import type { VirtualPlatform } from '../../platform.ts';
import type { VmmCore } from '../../backend.ts';
import type { HypercallChannel } from './channel.ts';
import { ARGS_PAGE } from './layout.ts';
import type { DeviceFrames } from './paging.ts';

/** Where the toolstack places the passed-through NIC's BARs (as a PC's firmware would). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;
const NIC_SLOT = 3;

/** The backend's side of a passed-through device. */
export class XenPassthrough implements DeviceFrames {
  /** The device's line (-1: none) and its pirq event channel (0: none). */
  private irq = -1;
  private port = 0;
  private platform: VirtualPlatform | undefined;
  /** The machine frame the guest's emulated memory BAR maps to (emulatedNic.ts), if any. */
  private emulatedPage: number | undefined;

  constructor(private readonly channel: HypercallChannel) {}

  /** An emulated device's register page: where the guest's mapping of its BAR leads. */
  emulate(mfn: number): void {
    this.emulatedPage = mfn;
  }

  save(): { irq: number; port: number } {
    return { irq: this.irq, port: this.port };
  }

  restore(s: { irq: number; port: number }): void {
    this.irq = s.irq;
    this.port = s.port;
  }

  get deviceIrq(): number {
    return this.irq;
  }

  get pirqPort(): number {
    return this.port;
  }

  /** The virtual platform whose passed-through functions map device frames (set at start). */
  attach(platform: VirtualPlatform): void {
    this.platform = platform;
  }

  /** The passed-through device interrupts on this line (bound at start). */
  passIrq(irq: number): void {
    this.irq = irq;
  }

  /** Binds the device's line to an event channel, if there is one; or a message. */
  bind(): string | undefined {
    if (this.irq < 0) return undefined;
    const c = this.channel;
    c.argWrite(0, 4, this.irq);
    c.argWrite(4, 4, 0);
    if (c.hypercall(Hypercall.event_channel_op, [EvtchnOp.bind_pirq, ARGS_PAGE]) !== 0)
      return `cannot bind the passed-through device's IRQ ${this.irq}`;
    this.port = c.argRead(8);
    return undefined;
  }

  /** The passed-through function's configuration space, through physdev_op. */
  readonly pciConfig: PciConfigPort = {
    read: (offset, size) => {
      const c = this.channel;
      c.argWrite(0, 4, offset);
      c.argWrite(4, 4, size);
      c.argWrite(8, 4, 0);
      const r = c.hypercall(Hypercall.physdev_op, [PhysdevOp.pci_config_read, ARGS_PAGE]);
      return r === 0 ? c.argRead(8) : 0xffffffff >>> (32 - size * 8);
    },
    write: (offset, size, value) => {
      const c = this.channel;
      c.argWrite(0, 4, offset);
      c.argWrite(4, 4, size);
      c.argWrite(8, 4, value);
      c.hypercall(Hypercall.physdev_op, [PhysdevOp.pci_config_write, ARGS_PAGE]);
    },
  };

  /** The guest ended the device's interrupt: unmask its event channel (and so the real line). */
  eoi(irq: number): void {
    if (irq !== this.irq || this.port === 0) return;
    this.channel.argWrite(0, 4, this.port);
    this.channel.hypercall(Hypercall.event_channel_op, [EvtchnOp.unmask, ARGS_PAGE]);
  }

  machineFrame(guestFrame: number): number | undefined {
    for (const f of this.platform!.passthrough) {
      const m = f.machineFrame(guestFrame);
      if (m !== undefined) return m;
    }
    if (this.emulatedPage !== undefined && guestFrame === this.platform!.emulatedMemoryFrame())
      return this.emulatedPage;
    return undefined;
  }

  guestFrame(machineFrame: number): number | undefined {
    for (const f of this.platform!.passthrough) {
      const g = f.guestFrame(machineFrame);
      if (g !== undefined) return g;
    }
    if (this.emulatedPage !== undefined && machineFrame === this.emulatedPage)
      return this.platform!.emulatedMemoryFrame();
    return undefined;
  }
}

/**
 * The toolstack's part (dom0's, in Xen) of giving the domain the machine's DP83820: place the
 * real BARs, grant the device with its registers, its interrupt line and its DMA, confined to
 * the domain; then show it on the VMM's virtual PCI bus. Or a message.
 */
export function passThroughNic(
  nic: Dp83820,
  xen: XenHypervisor,
  dom: Domain,
  vmm: VmmCore,
  devices: XenPassthrough,
): string | undefined {
  nic.configWrite(0x10, 4, NIC_IO);
  nic.configWrite(0x14, 4, NIC_MMIO);
  const irq = nic.configRead(0x3c, 1);
  xen.grantDevice(dom, {
    name: 'dp83820',
    ioPorts: [],
    ioMemory: [{ base: NIC_MMIO, length: 4096 }],
    irqs: [irq],
    pci: { read: (o, n) => nic.configRead(o, n), write: (o, n, v) => nic.configWrite(o, n, v) },
    dma: xen.machine.dma,
    reset: () => nic.functionReset(),
  });
  const f = new PassthroughPci('dp83820 (passed through)', devices.pciConfig, [
    { index: 0, io: true, machine: NIC_IO, size: 256, flags: nic.configRead(0x10, 1) & 3 },
    { index: 1, io: false, machine: NIC_MMIO, size: 4096, flags: nic.configRead(0x14, 1) & 15 },
  ]);
  const taken = vmm.platform.addPassthrough(NIC_SLOT, f, irq);
  if (taken !== undefined) return taken;
  devices.passIrq(irq);
  return undefined;
}
