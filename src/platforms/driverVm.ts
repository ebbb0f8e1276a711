/**
 * The toolstack's care of a driver VM, on xen and on l4, for both kinds of client ("dependability,
 * the point of driver reuse": shared/reference/driver-reuse.md, OSDI04 — a faulty driver is
 * recovered by rebooting its VM). When the driver VM crashes while the run goes on (the guest is
 * the primary), the toolstack, as Xen's xl does for a domain configured `on_crash = "restart"`:
 *
 *   1. destroys the dead VM: on xen the hypervisor's domain_kill (src/hypervisor/xen/destroy.ts:
 *      its frames, grants, event channels and the machine's DP83820 come back, the NIC reset);
 *      on l4 the resource monitor's (ResourceMonitor.destroyVm: its threads and spaces deleted,
 *      so the clients' IPCs to them fail with "non-existing partner", its interrupt line
 *      dissociated, its DMA no longer confined to it, the NIC reset, its region given back);
 *   2. moves the back end's incarnation on in each client's connection record (xenstore's, in
 *      Xen) and clears what named the old back end;
 *   3. builds a new driver VM in its place from the same kernel and command line, with the
 *      DP83820 passed through again (its interrupt line and DMA associated with the new VM) and
 *      the client link serving the same connections (on l4 in the region the dead one gave
 *      back); its driver resets the NIC again and its translation module brings the link up;
 *   4. tells the clients: on xen by an event on each client's port, as a xenstore watch would
 *      (a para-virtualized kernel's own front end reads the news in its ring page); on l4 by
 *      kicking each client VMM's monitor out of its wait (a para-virtualized kernel's own driver
 *      sees its receivers' IPCs fail and asks the resource monitor for the new back end,
 *      RmOp.netBackend). The client's side ends what it had in flight, shows its guest the link
 *      down, and reconnects to the new back end; the link comes up again
 *      (src/vmm/backends/{xen,l4}/netChannel.ts).
 *
 * The crash may happen anywhere (a hypercall, a trap, a fault injected by a test): the
 * toolstack does its work in a clock event at the crash's cycle, where the CPU is between
 * instructions. It reacts at once; its work costs what the hypervisor's operations cost (the
 * cost model's rows for the destruction and the building), and the new kernel boots on the
 * simulated clock. A driver VM that crashes again before it served the guest (its link never
 * came up) is left dead, as xl gives up on a domain that keeps crashing.
 *
 * Each restart is recorded with the machine cycles of the crash, of the client's link coming up
 * (the outage, as `bench netperf` reports it) and of the first frame from the new back end
 * reaching the client's guest.
 *
 * `startBesideGuest` is the one start of day of every platform with VMs beside the guest (xen
 * and l4, the afterburned guest and a para-virtualized one): the driver VM first (its client
 * link names the guest's connection, which the guest's side fills in), then the extra VMs;
 * after the guest is built, `guestBuilt` makes it the primary, names it as the driver VM's
 * client and puts the driver VM under the toolstack's care.
 */
import { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import type { Domain } from '../hypervisor/xen/domain.ts';
import type { L4Kernel } from '../hypervisor/l4/L4.ts';
import { Exregs } from '../hypervisor/l4/abi.ts';
import type { Vm } from '../hypervisor/l4/resourceMonitor.ts';
import type { XenNetConnection } from '../vmm/backends/xen/netChannel.ts';
import type { L4NetConnection } from '../vmm/backends/l4/netChannel.ts';
import { startXenVm } from '../vmm/backends/xen/vm.ts';
import { startL4Vm } from '../vmm/backends/l4/vm.ts';
import type { InPlaceVmm } from '../vmm/Vmm.ts';
import { grantedFrame } from '../hypervisor/xen/grants.ts';
import type { SimClock as Clock } from '../machine/clock.ts';
import type { AfterburnedKernel } from '../vmm/load.ts';
import {
  EXTRA_VM_DEFAULT_MB,
  startExtraL4Vms,
  startExtraXenVms,
  startL4DriverVm,
  startXenDriverVm,
} from './extraVms.ts';
import type { DriverVmControl, DriverVmRestart, ExtraVm, GuestConfig } from './platform.ts';

/** The ring page's words the toolstack writes for a custom front end (guest/arch/xen-para/netfront.c). */
const RING_BACKEND_STATE = 0x20;
const RING_BACKEND_DOMAIN = 0x24;
const BACKEND_CLOSED = 2;

/** What the toolstack's care needs of one hypervisor (V: its kind of VM). */
interface Hypervisor<V> {
  readonly clock: Clock;
  /** How the console names a VM ("domain 2", "vm2"). */
  name(vm: V): string;
  id(vm: V): number;
  alive(vm: V): boolean;
  /** The crash (a test's injected fault); the hypervisor then reports the end (`onCrash`). */
  crash(vm: V, message: string): void;
  onCrash(handler: (vm: V) => void): void;
  /** Destroys the dead VM; one line if it cannot. */
  destroy(vm: V): string | undefined;
  /**
   * A dead VM the toolstack gives up on: left as it is where the hypervisor runs none of a
   * crashed VM's code (xen), destroyed where its threads would run on (l4).
   */
  abandon(vm: V): void;
  /**
   * Builds the new driver VM in the dead one's place; or one line. `tell` then tells the
   * clients (after the toolstack's line).
   */
  rebuild(dead: V): { vm: V; vmm: InPlaceVmm; tell: () => void } | string;
  /** A toolstack line, on the VM's console (or the hypervisor's). */
  print(text: string, vm?: V): void;
}

/**
 * Watches the driver VM `first` and restarts it when it crashes (the steps above); the restarted
 * VMs are added to `vms` (the guest's extra VMs) as `<kernel> (restart N)`. `watch` receives the
 * guest's connection's events ('connected', 'first-frame').
 */
function supervise<V>(
  hv: Hypervisor<V>,
  spec: NonNullable<GuestConfig['driverVm']>,
  first: V | undefined,
  connection: { watch?: (event: 'connected' | 'first-frame') => void },
  vms: ExtraVm[],
  tag: string,
): DriverVmControl {
  const clock = hv.clock;
  const restarts: DriverVmRestart[] = [];
  let driver = first;

  connection.watch = (event) => {
    const r = restarts.at(-1);
    if (r === undefined) return;
    if (event === 'connected') r.connectedCycle ??= clock.now();
    else r.firstFrameCycle ??= clock.now();
  };

  const restart = (dead: V, record: DriverVmRestart): void => {
    const refused = hv.destroy(dead);
    if (refused !== undefined) {
      record.failed = refused;
      return;
    }
    const built = hv.rebuild(dead);
    if (typeof built === 'string') {
      record.failed = `${spec.kernelName}: ${built}`;
      hv.print(`(${tag}) toolstack: cannot restart the driver VM: ${record.failed}\n`);
      driver = undefined;
      return;
    }
    driver = built.vm;
    record.domain = hv.id(built.vm);
    vms.push({ name: `${spec.kernelName} (restart ${restarts.length})`, vmm: built.vmm });
    hv.print(
      `(${tag}) toolstack: driver VM ${hv.name(dead)} destroyed, ${hv.name(built.vm)} built in its place\n`,
      built.vm,
    );
    built.tell();
  };

  hv.onCrash((vm) => {
    if (vm !== driver) return;
    const last = restarts.at(-1);
    if (last !== undefined && last.connectedCycle === undefined) {
      driver = undefined;
      clock.at(clock.now(), () => hv.abandon(vm), `${tag}.toolstack`);
      hv.print(
        `(${tag}) toolstack: driver VM ${hv.name(vm)} crashed before it served the guest; not restarted again\n`,
        vm,
      );
      return;
    }
    const record: DriverVmRestart = { crashCycle: clock.now(), crashedDomain: hv.id(vm) };
    restarts.push(record);
    clock.at(clock.now(), () => restart(vm, record), `${tag}.toolstack`);
  });

  return {
    crash(message) {
      if (driver === undefined || !hv.alive(driver)) return false;
      hv.crash(driver, message);
      return true;
    },
    restarts,
  };
}

/** The new driver VM's RTC: the machine's start, plus the seconds gone by. */
function rtcNow(config: GuestConfig, clock: Clock): number {
  return (
    (config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000) + Math.floor(clock.now() / clock.hz)
  );
}

/** Xen: domains; the toolstack's steps as xl takes them. */
function onXen(
  xen: XenHypervisor,
  config: GuestConfig,
  kernel: AfterburnedKernel,
  connections: XenNetConnection[],
): Hypervisor<Domain> {
  const spec = config.driverVm!;
  // A client's side, told of the new back end: a front end the toolstack finds (a
  // para-virtualized kernel's own, netfront.c) reads the news in its ring page, where xenstore
  // would hold them in Xen (the back end closed, the new back end's domain); then the event on
  // its port, which wakes a blocked client (a runnable one takes it when it next runs).
  const tell = (
    c: XenNetConnection,
    old: { port?: number; ringRef?: number },
    domain: number,
  ): void => {
    const client = c.clientDom === undefined ? undefined : xen.domains[c.clientDom];
    if (client === undefined || old.port === undefined) return;
    if (c.find !== undefined && old.ringRef !== undefined) {
      const frame = grantedFrame(xen, client, old.ringRef);
      if (frame !== undefined) {
        xen.cpu.writePhysical(frame * 4096 + RING_BACKEND_STATE, 4, BACKEND_CLOSED);
        xen.cpu.writePhysical(frame * 4096 + RING_BACKEND_DOMAIN, 4, domain);
      }
    }
    xen.setPending(client, old.port);
  };
  return {
    clock: xen.machine.clock,
    name: (d) => `domain ${d.id}`,
    id: (d) => d.id,
    alive: (d) => d.alive,
    crash: (d, message) => xen.crash(d, message),
    onCrash(handler) {
      xen.onDomainEnd = (dom, end) => {
        if (end.kind === 'crash') handler(dom);
      };
    },
    destroy: (d) => xen.destroy(d),
    abandon: () => {},
    rebuild() {
      // Each client publishes again for the new back end (its domain stays known).
      const published = connections.map((c) => ({ port: c.clientPort, ringRef: c.ringRef }));
      for (const c of connections) {
        c.ringRef = undefined;
        c.clientPort = undefined;
        c.backend = (c.backend ?? 0) + 1;
      }
      const built = startXenVm(xen, {
        kernel,
        cmdline: spec.cmdline ?? '',
        modules: spec.modules ?? [],
        domainMemoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
        passthroughNic: true,
        serveClients: connections,
        rtcStartSeconds: rtcNow(config, xen.machine.clock),
      });
      if (typeof built === 'string') return built;
      built.domain.console = spec.console;
      return {
        vm: built.domain,
        vmm: built.vmm,
        tell: () => connections.forEach((c, k) => tell(c, published[k], built.domain.id)),
      };
    },
    print: (text, d) => xen.print(text, d),
  };
}

/** L4: VMs of the resource monitor; the toolstack is its host side. */
function onL4(
  l4: L4Kernel,
  config: GuestConfig,
  kernel: AfterburnedKernel,
  connections: L4NetConnection[],
): Hypervisor<Vm> {
  const spec = config.driverVm!;
  const rm = l4.resourceMonitor;
  const print = (text: string, vm?: Vm): void => {
    const out = vm?.console;
    if (out === undefined) l4.print(text);
    else for (const c of text) out(c.charCodeAt(0));
  };
  // A para-virtualized client's own driver asks for its back end when it has lost it: the new
  // one's threads once its link is up (and the client's link is up with it).
  rm.netBackendOf = (client) => {
    const c = connections.find((x) => x.clientVm === client.id);
    if (c === undefined) return undefined;
    if (c.connected !== true || c.driverMonitor === undefined || c.driverHelper === undefined)
      return 'waiting';
    c.watch?.('connected');
    return { monitor: c.driverMonitor, helper: c.driverHelper };
  };
  return {
    clock: l4.machine.clock,
    name: (vm) => vm.name,
    id: (vm) => vm.id,
    alive: (vm) => vm.state === 'running' && !vm.destroyed,
    crash: (vm, message) => rm.crashVm(vm, message),
    onCrash(handler) {
      rm.onVmEnd = (vm, end) => {
        if (end.kind === 'crash') handler(vm);
      };
    },
    destroy: (vm) => rm.destroyVm(vm),
    abandon: (vm) => void rm.destroyVm(vm),
    rebuild(dead) {
      for (const c of connections) {
        c.backend = (c.backend ?? 0) + 1;
        c.connected = false;
        c.driverMonitor = undefined;
        c.driverHelper = undefined;
      }
      const built = startL4Vm(l4, {
        kernel,
        cmdline: spec.cmdline ?? '',
        modules: spec.modules ?? [],
        memoryMb: spec.memoryMb ?? EXTRA_VM_DEFAULT_MB,
        passthroughNic: true,
        serveClients: connections,
        rtcStartSeconds: rtcNow(config, l4.machine.clock),
        region: dead.base,
      });
      if (typeof built === 'string') return built;
      built.vm.console = spec.console;
      // The toolstack's choice again: the new driver VM may ask for its clients' memory.
      for (const c of connections) if (c.clientVm !== undefined) built.vm.serves.add(c.clientVm);
      // A client VMM's monitor waiting is kicked out of its wait, so its VMM sees the news at
      // once (a running client sees them where its VMM next runs).
      const tell = (): void => {
        const b = rm.builder();
        for (const c of connections)
          if (c.receivers === undefined && c.clientMonitor !== undefined)
            b.exchangeRegisters({
              dest: c.clientMonitor,
              control: Exregs.abortReceive,
              sp: 0,
              ip: 0,
              flags: 0,
              userHandle: 0,
              pager: 0,
            });
      };
      return { vm: built.vm, vmm: built.vmm, tell };
    },
    print,
  };
}

/** The VMs beside a guest, started before it, and what to do once it is built. */
export interface BesideGuest<C, G> {
  /** The guest's connection to the driver VM (undefined: no driver VM). */
  connection: C | undefined;
  /** The driver VM and the extra VMs, in order. */
  vms: ExtraVm[];
  /**
   * The guest is built: it becomes the primary (with VMs beside it), the driver VM's client,
   * and the driver VM goes under the toolstack's care (its control, if there is a driver VM).
   */
  guestBuilt(guest: G): DriverVmControl | undefined;
}

/**
 * The driver VM (GuestConfig.driverVm), then the extra VMs (GuestConfig.vms), on xen or l4: the
 * one start of day of the four platforms with VMs beside the guest; or one line.
 */
export function startBesideGuest(
  hv: XenHypervisor,
  config: GuestConfig,
  extraKernels: AfterburnedKernel[],
  driverKernel: AfterburnedKernel | undefined,
): BesideGuest<XenNetConnection, Domain> | string;
export function startBesideGuest(
  hv: L4Kernel,
  config: GuestConfig,
  extraKernels: AfterburnedKernel[],
  driverKernel: AfterburnedKernel | undefined,
): BesideGuest<L4NetConnection, Vm> | string;
export function startBesideGuest(
  hv: XenHypervisor | L4Kernel,
  config: GuestConfig,
  extraKernels: AfterburnedKernel[],
  driverKernel: AfterburnedKernel | undefined,
): BesideGuest<XenNetConnection, Domain> | BesideGuest<L4NetConnection, Vm> | string {
  if (hv instanceof XenHypervisor) {
    const xen = hv;
    const driver = startXenDriverVm(xen, config, driverKernel);
    if (typeof driver === 'string') return driver;
    const { connection, driverVms, extraClients } = driver;
    const extra = startExtraXenVms(xen, config, extraKernels, extraClients);
    if (typeof extra === 'string') return extra;
    const vms = [...driverVms, ...extra];
    const first =
      connection?.driverDom === undefined ? undefined : xen.domains[connection.driverDom];
    return {
      connection,
      vms,
      guestBuilt(guest: Domain) {
        if (vms.length > 0) xen.primary = guest;
        if (connection === undefined || driverKernel === undefined) return undefined;
        const all = [connection, ...extraClients.values()];
        return supervise(
          onXen(xen, config, driverKernel, all),
          config.driverVm!,
          first,
          connection,
          vms,
          'xen',
        );
      },
    };
  }
  const l4 = hv;
  const driver = startL4DriverVm(l4, config, driverKernel);
  if (typeof driver === 'string') return driver;
  const { connection, driverVms, driverVm, extraClients } = driver;
  const extra = startExtraL4Vms(l4, config, extraKernels, extraClients, driverVm);
  if (typeof extra === 'string') return extra;
  const vms = [...driverVms, ...extra];
  return {
    connection,
    vms,
    guestBuilt(guest: Vm) {
      // The toolstack's choice: this driver VM may ask for this client's memory (RmOp.clientDma).
      driverVm?.serves.add(guest.id);
      if (vms.length > 0) l4.resourceMonitor.primary = guest;
      if (connection === undefined || driverKernel === undefined) return undefined;
      return supervise(
        onL4(l4, config, driverKernel, [connection, ...extraClients.values()]),
        config.driverVm!,
        driverVm,
        connection,
        vms,
        'l4',
      );
    },
  };
}
