/**
 * The extra VMs of a guest configuration (`GuestConfig.vms`): afterburned kernels, each through
 * its own in-place VMM, on the same hypervisor as the guest, built before it. What a platform
 * needs for them: their kernels checked before anything is built, and the memory they take.
 */
import type { L4Kernel } from '../hypervisor/l4/L4.ts';
import type { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import type { Vm } from '../hypervisor/l4/resourceMonitor.ts';
import type { L4NetConnection } from '../vmm/backends/l4/netChannel.ts';
import { startL4Vm } from '../vmm/backends/l4/vm.ts';
import type { XenNetConnection } from '../vmm/backends/xen/netChannel.ts';
import { startXenVm } from '../vmm/backends/xen/vm.ts';
import type { AfterburnedKernel } from '../vmm/load.ts';
import type { ExtraVm, GuestConfig } from './platform.ts';
import { readVmmKernel } from './vmmKernel.ts';

/** An extra VM's memory when its configuration does not say. */
export const EXTRA_VM_DEFAULT_MB = 32;

/** The extra VMs' kernels, in order; or one line naming the file that cannot run. */
export function readExtraKernels(
  config: GuestConfig,
  platform: string,
): AfterburnedKernel[] | string {
  const kernels: AfterburnedKernel[] = [];
  for (const vm of config.vms ?? []) {
    const mb = vm.memoryMb ?? EXTRA_VM_DEFAULT_MB;
    if (!Number.isInteger(mb) || mb < 16)
      return `${vm.kernelName}: a VM needs at least 16 MB (got ${mb})`;
    const k = readVmmKernel({ ...config, ...vm, platform });
    if (typeof k === 'string') return k;
    kernels.push(k);
  }
  return kernels;
}

/** MB of machine memory the extra VMs (and the driver VM) take. */
export function extraVmsMb(config: GuestConfig): number {
  const all = [...(config.vms ?? []), ...(config.driverVm === undefined ? [] : [config.driverVm])];
  return all.reduce((sum, vm) => sum + (vm.memoryMb ?? EXTRA_VM_DEFAULT_MB), 0);
}

/** The driver VM's kernel (GuestConfig.driverVm), if there is one; or one line. */
export function readDriverKernel(
  config: GuestConfig,
  platform: string,
): AfterburnedKernel | undefined | string {
  const vm = config.driverVm;
  if (vm === undefined) return undefined;
  const mb = vm.memoryMb ?? EXTRA_VM_DEFAULT_MB;
  if (!Number.isInteger(mb) || mb < 16)
    return `${vm.kernelName}: a VM needs at least 16 MB (got ${mb})`;
  return readVmmKernel({ ...config, ...vm, platform });
}

/**
 * A client's MAC address behind the driver VM: the machine NIC's with its last byte moved on
 * by `k + 1`, so the peer on the wire sees a distinct station.
 */
export function clientMac(nicMac: Uint8Array, k: number): Uint8Array {
  const mac = Uint8Array.from(nicMac);
  mac[5] = (mac[5] + k + 1) & 0xff;
  return mac;
}

/**
 * The configuration's extra VMs, each an afterburned kernel in a domain of its own through its
 * own in-place VMM, with its own console (GuestConfig.vms); or one line.
 */
export function startExtraXenVms(
  xen: XenHypervisor,
  config: GuestConfig,
  kernels: AfterburnedKernel[],
  clients: ReadonlyMap<number, XenNetConnection> = new Map(),
): ExtraVm[] | string {
  const vms: ExtraVm[] = [];
  for (const [k, spec] of (config.vms ?? []).entries()) {
    const through = clients.get(k);
    const vm = startXenVm(xen, {
      kernel: kernels[k],
      cmdline: spec.cmdline ?? '',
      modules: spec.modules ?? [],
      domainMemoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
      rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      ...(through === undefined ? {} : { emulatedNic: true, nicThrough: through }),
    });
    if (typeof vm === 'string') return `${spec.kernelName}: ${vm}`;
    vm.domain.console = spec.console;
    vms.push({ name: spec.kernelName, vmm: vm.vmm });
  }
  return vms;
}

/**
 * The configuration's extra VMs on the L4 microkernel, each a VM of the resource monitor with
 * the afterburned kernel as its thread through its own in-place VMM, with its own console; or
 * one line.
 */
export function startExtraL4Vms(
  l4: L4Kernel,
  config: GuestConfig,
  kernels: AfterburnedKernel[],
  clients: ReadonlyMap<number, L4NetConnection> = new Map(),
  driverVm?: Vm,
): ExtraVm[] | string {
  const vms: ExtraVm[] = [];
  for (const [k, spec] of (config.vms ?? []).entries()) {
    const through = clients.get(k);
    const vm = startL4Vm(l4, {
      kernel: kernels[k],
      cmdline: spec.cmdline ?? '',
      modules: spec.modules ?? [],
      memoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
      rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
      ...(through === undefined ? {} : { emulatedNic: true, nicThrough: through }),
    });
    if (typeof vm === 'string') return `${spec.kernelName}: ${vm}`;
    vm.vm.console = spec.console;
    // The toolstack's choice: the driver VM may ask for this client's memory (RmOp.clientDma).
    if (through !== undefined) driverVm?.serves.add(vm.vm.id);
    vms.push({ name: spec.kernelName, vmm: vm.vmm });
  }
  return vms;
}

/**
 * The configuration's driver VM (GuestConfig.driverVm), if it has one: the afterburned kernel in
 * a domain of its own with the machine's DP83820 passed through and a client link serving the
 * guest's connection (the record the guest's side fills in); or one line.
 */
export function startXenDriverVm(
  xen: XenHypervisor,
  config: GuestConfig,
  driverKernel: AfterburnedKernel | undefined,
):
  | {
      connection: XenNetConnection | undefined;
      driverVms: ExtraVm[];
      /** The extra VMs' connections (`clientOfDriverVm`), by their index in `config.vms`. */
      extraClients: Map<number, XenNetConnection>;
    }
  | string {
  const machine = xen.machine;
  const spec = config.driverVm;
  const extraClients = new Map<number, XenNetConnection>();
  if (driverKernel === undefined || spec === undefined || machine.nic === undefined)
    return { connection: undefined, driverVms: [], extraClients };
  const connection: XenNetConnection = { mac: clientMac(machine.nic.mac, 0) };
  for (const [k, vm] of (config.vms ?? []).entries())
    if (vm.clientOfDriverVm === true)
      extraClients.set(k, { mac: clientMac(machine.nic.mac, extraClients.size + 1) });
  const driver = startXenVm(xen, {
    kernel: driverKernel,
    cmdline: spec.cmdline ?? '',
    modules: spec.modules ?? [],
    domainMemoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
    passthroughNic: true,
    serveClients: [connection, ...extraClients.values()],
    rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
  });
  if (typeof driver === 'string') return `${spec.kernelName}: ${driver}`;
  driver.domain.console = spec.console;
  return { connection, driverVms: [{ name: spec.kernelName, vmm: driver.vmm }], extraClients };
}

/**
 * The configuration's driver VM on l4 (GuestConfig.driverVm), if it has one: the afterburned
 * kernel in a VM of its own with the machine's DP83820 passed through and a client link serving
 * the guest's connection (the record the guest's VMM fills in); or one line.
 */
export function startL4DriverVm(
  l4: L4Kernel,
  config: GuestConfig,
  driverKernel: AfterburnedKernel | undefined,
):
  | {
      connection: L4NetConnection | undefined;
      driverVms: ExtraVm[];
      driverVm?: Vm;
      /** The extra VMs' connections (`clientOfDriverVm`), by their index in `config.vms`. */
      extraClients: Map<number, L4NetConnection>;
    }
  | string {
  const machine = l4.machine;
  const spec = config.driverVm;
  const extraClients = new Map<number, L4NetConnection>();
  if (driverKernel === undefined || spec === undefined || machine.nic === undefined)
    return { connection: undefined, driverVms: [], extraClients };
  const connection: L4NetConnection = { mac: clientMac(machine.nic.mac, 0) };
  for (const [k, vm] of (config.vms ?? []).entries())
    if (vm.clientOfDriverVm === true)
      extraClients.set(k, { mac: clientMac(machine.nic.mac, extraClients.size + 1) });
  const driver = startL4Vm(l4, {
    kernel: driverKernel,
    cmdline: spec.cmdline ?? '',
    modules: spec.modules ?? [],
    memoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
    passthroughNic: true,
    serveClients: [connection, ...extraClients.values()],
    rtcStartSeconds: config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000,
  });
  if (typeof driver === 'string') return `${spec.kernelName}: ${driver}`;
  driver.vm.console = spec.console;
  return {
    connection,
    driverVms: [{ name: spec.kernelName, vmm: driver.vmm }],
    driverVm: driver.vm,
    extraClients,
  };
}
