/**
 * An afterburned kernel in a VM of previrt's L4-style microkernel: the VM from the resource
 * monitor (its memory one contiguous region, the guest's RAM then the VMM's window pages;
 * optionally the machine's DP83820 with its register page, IRQ 11 and its DMA confined to the
 * region), the kernel loaded and rewritten as on every backend (../../load.ts), the VMM core,
 * the backend (L4Backend.ts) and its threads, and the kernel thread started.
 */
import type { BootModule } from '../../../loader/multiboot.ts';
import type { L4Kernel } from '../../../hypervisor/l4/L4.ts';
import type { Vm, VmDevice } from '../../../hypervisor/l4/resourceMonitor.ts';
import type { DmaMemory } from '../../../machine/device.ts';
import { ClientLink, LINK_IRQ, LINK_SLOT } from '../../devices/clientLink.ts';
import { addEmulatedNic, copyingDma } from '../../devices/emulatedNic.ts';
import { PassthroughPci } from '../../devices/passthrough.ts';
import { loadAfterburned, type AfterburnedKernel } from '../../load.ts';
import { InPlaceVmm } from '../../Vmm.ts';
import { stubPage, STUB_PAGE, WINDOW_BASE } from '../../window.ts';
import { backendStubs, DEVICE_ALIAS, PAGE_CORE_STUBS, PAGE_STUBS, VMM_PAGES } from './layout.ts';
import { L4Backend } from './L4Backend.ts';
import { L4NetBack, L4NetFront, type L4NetConnection } from './netChannel.ts';

export interface L4VmConfig {
  kernel: AfterburnedKernel;
  cmdline: string;
  modules: BootModule[];
  /** Give the VM the machine's DP83820 (PCI 00:03.0; the machine must have a network). */
  passthroughNic?: boolean;
  /**
   * Give the VM the VMM's DP83820 model instead (devices/emulatedNic.ts), on the machine's wire
   * (the machine must have a network): its registers a page at the end of the VM's region.
   */
  emulatedNic?: boolean;
  /**
   * The emulated NIC's far side: a driver VM, through this connection (netChannel.ts), instead
   * of the machine's wire.
   */
  nicThrough?: L4NetConnection;
  /**
   * Make this VM the driver VM of these clients: the client link on its virtual PCI bus
   * (devices/clientLink.ts), served by its translation module (with passthroughNic).
   */
  serveClients?: L4NetConnection[];
  rtcStartSeconds: number;
  /** The VM's memory in MB (default: all the machine's memory left, up to what the alias holds). */
  memoryMb?: number;
  /**
   * A region a destroyed VM gave back, for this VM's memory (its machine address: a driver VM
   * built again in its place, ResourceMonitor.destroyVm); with `memoryMb`. Default: the next
   * free region.
   */
  region?: number;
}

export interface L4Vm {
  vm: Vm;
  vmm: InPlaceVmm;
  backend: L4Backend;
}

/** Where the NIC's BARs are placed (as a PC's firmware would; the xen toolstack's places). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;
const NIC_SLOT = 3;
/** The most guest memory the alias holds (the kernel's one-to-one map, see startL4Vm). */
const ALIAS_MAX = 0x30000000;

/** The VM's RAM as the VMM's emulated devices reach it by DMA: confined to it, counted. */
function ramDma(k: L4Kernel, vm: Vm, backend: L4Backend, guestBytes: number): DmaMemory {
  const machine = k.machine;
  const ram = machine.ram;
  const inside = (gpa: number, n: number): boolean => gpa >= 0 && gpa + n <= guestBytes;
  const counted = (ok: boolean): boolean => {
    if (ok) backend.emulatedDma.dmaTranslated++;
    else backend.emulatedDma.dmaRefused++;
    return ok;
  };
  return {
    read: (gpa, into) => {
      if (!inside(gpa, into.length)) return counted(false);
      into.set(ram.subarray(vm.base + gpa, vm.base + gpa + into.length));
      return counted(true);
    },
    write: (gpa, from) => {
      if (!inside(gpa, from.length)) return counted(false);
      ram.set(from, vm.base + gpa);
      machine.cpu.invalidateCode(vm.base + gpa, from.length);
      return counted(true);
    },
  };
}

/**
 * The VMM's DP83820 model in the VM, on the machine's wire or (`through`) a driver VM's client
 * link: its DMA confined to the VM's RAM and charged as the VMM's copying; or a message.
 */
function emulateNicOnL4(
  k: L4Kernel,
  vm: Vm,
  backend: L4Backend,
  vmm: InPlaceVmm,
  guestBytes: number,
  through: L4NetConnection | undefined,
): string | undefined {
  const machine = k.machine;
  const link = machine.link!;
  const platform = vmm.platform;
  const hz = machine.costModel.hz;
  const front = through === undefined ? undefined : new L4NetFront(backend, through);
  const model = addEmulatedNic({
    platform,
    dma: ramDma(k, vm, backend, guestBytes),
    mac: through?.mac ?? machine.nic!.mac,
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
  });
  if (typeof model === 'string') return model;
  if (front === undefined) link.attach(0, model);
  else {
    front.attach(model);
    backend.netFront = front;
    backend.net.push(front);
    platform.flushers.push(() => front.flush());
  }
  return undefined;
}

/** The client link of a driver VM serving `clients` (one L4NetBack each); or a message. */
function serveClientsOnL4(
  k: L4Kernel,
  vm: Vm,
  backend: L4Backend,
  vmm: InPlaceVmm,
  guestBytes: number,
  clients: L4NetConnection[],
): string | undefined {
  const platform = vmm.platform;
  const backs = clients.map((conn) => {
    conn.driverMonitor = backend.monitorTid;
    conn.driverHelper = backend.helperTid;
    return new L4NetBack(backend, conn);
  });
  const charge = (cycles: number): void => k.machine.cpu.charge(cycles);
  const link = new ClientLink({
    dma: copyingDma(ramDma(k, vm, backend, guestBytes), charge),
    irq: platform.pic.line(LINK_IRQ),
    buses: platform.buses,
    clients: backs,
    control: (up) => {
      if (!up) return;
      for (const b of backs) {
        const failed = b.connect();
        if (failed !== undefined) return backend.crash(`client link: ${failed}`);
      }
    },
  });
  backs.forEach((b, n) =>
    b.serveThrough(
      (parts, id) => link.offer(n, parts, id),
      () => link.roomFor(n),
    ),
  );
  const taken = platform.addEmulated(LINK_SLOT, link, LINK_IRQ);
  if (taken !== undefined) return taken;
  for (const b of backs) {
    backend.net.push(b);
    platform.flushers.push(() => b.flush());
  }
  // Frames waiting for a client go before the NIC writes into the buffers they are in.
  vm.dmaWriteWatch = (address, length) => {
    for (const b of backs) b.dmaWrite(address, length);
  };
  backend.clientLink = { link, backs };
  return undefined;
}

/** Builds the VM with its VMM and starts the kernel thread at the kernel's entry; or a message. */
export function startL4Vm(k: L4Kernel, config: L4VmConfig): L4Vm | string {
  const machine = k.machine;
  const mapAt = config.kernel.kernelOffset;
  const nic = config.passthroughNic === true ? machine.nic : undefined;
  if (config.passthroughNic === true && nic === undefined)
    return 'NIC pass-through needs a machine with a network';
  const emulated = config.emulatedNic === true;
  const serving = (config.serveClients ?? []).length > 0;
  if (serving && nic === undefined) return 'a driver VM needs the NIC passed through';
  if (emulated && config.passthroughNic === true)
    return 'a NIC is either passed through or emulated, not both';
  if (emulated && (machine.nic === undefined || machine.link === undefined))
    return 'an emulated NIC needs a machine with a network';
  if (mapAt === 0 || mapAt >= WINDOW_BASE)
    return `${config.kernel.name}: the l4 backend needs a kernel linked above its load address (its one-to-one map of RAM is the VMM's alias) for the l4 backend's alias`;
  // The VM's region starts at the first 4 MB boundary above the kernel's memory, or above the
  // VMs made before it.
  const regionStart = config.region ?? k.resourceMonitor.freeRegion;
  // All of it, up to what the kernel's one-to-one map holds: the alias must not reach the
  // kernel's other mappings above it (the project's kernel maps at most 768 MB there, guest
  // memlayout.h PHYS_MAX, and its MMIO window after; Linux's lowmem is 896 MB).
  const most = Math.min(machine.ram.length - regionStart, ALIAS_MAX, WINDOW_BASE - mapAt);
  if (config.memoryMb !== undefined && config.memoryMb * 2 ** 20 > most)
    return `not enough machine memory left for a VM of ${config.memoryMb} MB (${Math.max(0, most >> 20)} MB free)`;
  const vmBytes = config.memoryMb === undefined ? most : config.memoryMb * 2 ** 20;
  // The emulated device's register page (the NIC model's, or a driver VM's client link's): the
  // region's last page, after the VMM's.
  const modelled = emulated || serving;
  const guestBytes = vmBytes - VMM_PAGES * 4096 - (modelled ? 4096 : 0);
  if (guestBytes < 16 << 20) return `VM memory must be at least 16 MB (got ${guestBytes >> 20} MB)`;
  // The NIC's register page as guest-physical beyond the VM's memory (the resource monitor's
  // device window), so that its alias is DEVICE_ALIAS.
  const deviceGpa = (DEVICE_ALIAS - mapAt) >>> 0;
  const devices: VmDevice[] = [];
  if (nic !== undefined) {
    nic.configWrite(0x10, 4, NIC_IO);
    nic.configWrite(0x14, 4, NIC_MMIO);
    devices.push({
      name: 'dp83820',
      ioMemory: [{ machine: NIC_MMIO, length: 4096, guestPhysical: deviceGpa }],
      irqs: [nic.configRead(0x3c, 1)],
      dma: machine.dma,
      reset: () => nic.functionReset(),
    });
  }
  const registerPage = regionStart + guestBytes + VMM_PAGES * 4096;
  // Shown a page after the passed-through NIC's, if the VM has both (a driver VM).
  const modelGpa = nic === undefined ? deviceGpa : deviceGpa + 4096;
  if (modelled)
    devices.push({
      name: emulated ? 'dp83820 (emulated)' : 'client link',
      ioMemory: [{ machine: registerPage, length: 4096, guestPhysical: modelGpa }],
    });
  const vm = k.resourceMonitor.createVm({
    name: `vm${k.resourceMonitor.vms.length}`,
    memoryBytes: vmBytes,
    mapAt,
    devices,
    ...(config.region === undefined ? {} : { region: config.region }),
  });
  if (typeof vm === 'string') return vm;
  const backend = new L4Backend({
    k,
    vm,
    guestBytes,
    mapAt,
    devices: [
      ...(nic === undefined ? [] : [{ machineFrame: NIC_MMIO >>> 12, gpa: deviceGpa }]),
      ...(modelled ? [{ machineFrame: registerPage >>> 12, gpa: modelGpa, emulated: true }] : []),
    ],
  });
  const loaded = loadAfterburned(backend.guestRam(), config.kernel, config.cmdline, config.modules);
  if (typeof loaded === 'string') return loaded;
  backend.windowBytes(PAGE_CORE_STUBS).set(stubPage(STUB_PAGE));
  backend.windowBytes(PAGE_STUBS).set(backendStubs());
  machine.cpu.invalidateAllCode();
  const entries = machine.cpu.createEntryTable(`l4.${vm.name}`);
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
  backend.cr0Source = () => vmm.cr0;
  if (nic !== undefined) {
    // The resource monitor's PCI service: the function's configuration space, the BARs virtual.
    const f = new PassthroughPci(
      'dp83820 (passed through)',
      { read: (o, n) => nic.configRead(o, n), write: (o, n, v) => nic.configWrite(o, n, v) },
      [
        { index: 0, io: true, machine: NIC_IO, size: 256, flags: nic.configRead(0x10, 1) & 3 },
        { index: 1, io: false, machine: NIC_MMIO, size: 4096, flags: nic.configRead(0x14, 1) & 15 },
      ],
    );
    const irq = nic.configRead(0x3c, 1);
    const taken = vmm.platform.addPassthrough(NIC_SLOT, f, irq);
    if (taken !== undefined) return taken;
  }
  if (emulated) {
    const e = emulateNicOnL4(k, vm, backend, vmm, guestBytes, config.nicThrough);
    if (e !== undefined) return e;
    backend.emulatedRegisterPage = registerPage;
  }
  const started = backend.start(vmm, entries, loaded);
  if (started !== undefined) return `${config.kernel.name}: ${started}`;
  // After the start: the monitor's thread exists now.
  if (serving) {
    const e = serveClientsOnL4(k, vm, backend, vmm, guestBytes, config.serveClients ?? []);
    if (e !== undefined) return e;
    backend.emulatedRegisterPage = registerPage;
  }
  backend.netFront?.start();
  if (nic !== undefined) {
    const irq = nic.configRead(0x3c, 1);
    const e = vm.associateIrq(irq, backend.monitorTid);
    if (e !== 0) return `the NIC's IRQ ${irq} could not be associated (${e})`;
  }
  return { vm, vmm, backend };
}
