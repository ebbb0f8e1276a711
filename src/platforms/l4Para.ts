/**
 * The L4 X.2-style microkernel with a para-virtualized kernel (the `l4` platform's second kind
 * of kernel, the seed's L4Ka::Linux row): the guest kernel hand-ported to L4 (guest/arch/l4-para),
 * an L4 task of its own — its main thread, a pager thread, an L4 space and thread per process —
 * with no in-place VMM and nothing rewritten. The resource monitor builds its VM (all of the
 * machine's memory above the microkernel's, up to what the kernel's one-to-one map holds),
 * guest-physical 0 at KERNBASE, so that the image, linked at 0xC0100000, is loaded at its
 * virtual address less KERNBASE and the resource monitor's page faults map the kernel's own
 * layout. The platform leaves the boot information at guest-physical 0x1000 (the port's
 * l4para.h: memory, wall clock, the device, the command line) and starts the main thread at the
 * entry with its address on the stack; the resource monitor offers it the console's input. With a NIC in the configuration, the resource monitor
 * gives the VM the machine's DP83820: its register page in the device window beyond RAM, its
 * interrupt line, its DMA confined to the VM's memory; the platform sets the function's BARs and
 * command register, as the xen toolstack does for the xen port.
 */
import { L4Kernel } from '../hypervisor/l4/L4.ts';
import type { Vm, VmDevice } from '../hypervisor/l4/resourceMonitor.ts';
import { LoadError, parseElf } from '../loader/elf.ts';
import type { Machine } from '../machine/Machine.ts';
import type { AfterburnedKernel } from '../vmm/load.ts';
import type { L4NetConnection } from '../vmm/backends/l4/netChannel.ts';
import { startBesideGuest } from './driverVm.ts';
import type { BootedGuest, GuestConfig } from './platform.ts';

const KERNBASE = 0xc0000000;
/** The most memory the kernel's one-to-one map holds (guest memlayout.h PHYS_MAX). */
const PHYS_MAX = 0x30000000;
/** Where the NIC's BARs are placed (the xen toolstack's and the in-place VMM's places). */
const NIC_MMIO = 0xe0000000;
const NIC_IO = 0xc000;
/** The register page's guest-physical address: beyond RAM, at KERNBASE + it 0xFC000000. */
const NIC_GPA = 0x3c000000;
const BOOTINFO_GPA = 0x1000;
const BOOT_STACK_TOP_GPA = 0x2000;
const BOOTINFO_MAGIC = 0x56503434;
const CMDLINE_BYTES = 256;

/** The `l4` platform's prepare step for a kernel whose note says it is para-virtualized for l4. */
export function prepareL4Para(
  config: GuestConfig,
  extraKernels: AfterburnedKernel[],
  driverKernel?: AfterburnedKernel,
): ((machine: Machine) => BootedGuest | string) | string {
  const file = config.kernelName;
  const image = parseElf(config.kernel, file);
  if (image instanceof LoadError) return image.message;
  if ((config.modules ?? []).length > 0)
    return `${file}: a para-virtualized kernel takes no boot modules (the resource monitor loads the kernel only)`;
  for (const s of image.segments)
    if (s.vaddr < KERNBASE + 0x100000 || s.vaddr + s.memsz > KERNBASE + PHYS_MAX)
      return `${file}: a segment at 0x${s.vaddr.toString(16)} is outside the kernel's map (0xc0100000 up)`;
  return (machine) => {
    let l4: L4Kernel;
    try {
      l4 = new L4Kernel(machine, { console: config.console, pagerExregs: true });
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    // The driver VM first, as for the afterburned kernel (l4.ts): its client link serves the
    // connection, which this VM's custom network driver (netfront.c) makes.
    const beside = startBesideGuest(l4, config, extraKernels, driverKernel);
    if (typeof beside === 'string') return beside;
    const { connection, vms } = beside;
    const cmdline = new TextEncoder().encode(withL4Net(config.cmdline ?? '', connection));
    if (cmdline.length >= CMDLINE_BYTES)
      return `${file}: the command line is longer than ${CMDLINE_BYTES - 1} bytes`;
    const regionStart = l4.resourceMonitor.freeRegion;
    const bytes =
      Math.floor(Math.min(machine.ram.length - regionStart, PHYS_MAX) / 0x400000) * 0x400000;
    if (bytes < 16 << 20)
      return `VM memory must be at least 16 MB (got ${Math.max(0, bytes) >> 20} MB)`;
    const end = Math.max(...image.segments.map((s) => s.vaddr + s.memsz)) - KERNBASE;
    if (end > bytes)
      return `${file}: the image (${end} bytes) does not fit the VM's ${bytes >> 20} MB`;
    const nic = config.nic !== undefined && connection === undefined ? machine.nic : undefined;
    const devices: VmDevice[] = [];
    if (nic !== undefined) {
      nic.configWrite(0x10, 4, NIC_IO);
      nic.configWrite(0x14, 4, NIC_MMIO);
      nic.configWrite(0x04, 2, 0x7); // I/O and memory decoding, bus mastering
      devices.push({
        name: 'dp83820',
        ioMemory: [{ machine: NIC_MMIO, length: 4096, guestPhysical: NIC_GPA }],
        irqs: [nic.configRead(0x3c, 1)],
        dma: machine.dma,
      });
    }
    l4.resourceMonitor.enableConsoleInput();
    const vm = l4.resourceMonitor.createVm({
      name: 'vm0',
      memoryBytes: bytes,
      mapAt: KERNBASE,
      devices,
    });
    if (typeof vm === 'string') return vm;
    if (connection !== undefined) connectL4Net(vm, connection);
    // A crashed driver VM is restarted and netfront.c finds the new one (driverVm.ts).
    const driverVm = beside.guestBuilt(vm);
    for (const s of image.segments) vm.write(s.vaddr - KERNBASE, s.data);
    const info = new Uint8Array(32 + CMDLINE_BYTES);
    const v = new DataView(info.buffer);
    const words = [
      BOOTINFO_MAGIC,
      bytes,
      config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      nic === undefined ? 0 : 1,
      nic?.configRead(0x00, 4) ?? 0,
      nic?.configRead(0x08, 4) ?? 0,
      nic?.configRead(0x3c, 1) ?? 0,
      nic === undefined ? 0 : NIC_GPA,
    ];
    words.forEach((w, k) => v.setUint32(4 * k, w >>> 0, true));
    info.set(cmdline, 32);
    vm.write(BOOTINFO_GPA, info);
    // The initial stack: a return-address slot, then the boot information's address.
    const stack = new Uint8Array(8);
    new DataView(stack.buffer).setUint32(4, KERNBASE + BOOTINFO_GPA, true);
    vm.write(BOOT_STACK_TOP_GPA - 8, stack);
    vm.start(vm.mainThread, { ip: image.entry, sp: KERNBASE + BOOT_STACK_TOP_GPA - 8 });
    return {
      hypervisor: l4,
      vms,
      driverVm,
      input: (bytes) => l4.resourceMonitor.consoleInput(bytes),
      physicalMemory: () => machine.ram.subarray(vm.base, vm.base + vm.size),
    };
  };
}

/** The custom network driver's receiver threads (netfront.c: L4_NET_RECEIVERS, _BASE). */
const NET_RECEIVERS = 4;
const NET_RECEIVER_BASE = 40;

/**
 * The command line with the custom network driver's option (netfront.c): the driver VM's
 * monitor and helper threads and the VM's MAC address.
 */
function withL4Net(cmdline: string, conn: L4NetConnection | undefined): string {
  if (conn === undefined) return cmdline;
  const mac = [...conn.mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const hex = (tid: number | undefined): string => (tid ?? 0).toString(16);
  const option = `l4net=${hex(conn.driverMonitor)},${hex(conn.driverHelper)},${mac}`;
  return cmdline === '' ? option : `${cmdline} ${option}`;
}

/**
 * The client's side of the connection, for the driver VM's VMM: the VM (for its DMA window), its
 * kernel thread (which sends the transmit messages and takes the completions) and its receiver
 * threads (which take the frames).
 */
function connectL4Net(vm: Vm, conn: L4NetConnection): void {
  conn.clientVm = vm.id;
  conn.clientHelper = vm.mainThread;
  conn.clientMonitor = vm.mainThread;
  conn.receivers = Array.from({ length: NET_RECEIVERS }, (_, k) =>
    vm.threadId(NET_RECEIVER_BASE + k),
  );
}
