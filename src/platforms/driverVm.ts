/**
 * The toolstack's care of a driver VM on xen ("dependability, the point of driver reuse":
 * shared/reference/driver-reuse.md, OSDI04 — a faulty driver is recovered by rebooting its VM).
 * When the driver VM crashes while the run goes on (the guest is the primary domain), the
 * toolstack, as Xen's xl does for a domain configured `on_crash = "restart"`:
 *
 *   1. destroys the dead domain (the hypervisor's domain_kill, src/hypervisor/xen/destroy.ts):
 *      its frames, grants, event channels and the machine's DP83820 come back, the NIC reset;
 *   2. clears the client's keys in the connection record (xenstore's, in Xen) and moves the back
 *      end's incarnation on;
 *   3. builds a new driver VM, a new domain with a new id, from the same kernel and command line
 *      with the DP83820 passed through and the client link serving the same connection
 *      (startXenVm, as startXenDriverVm did at start of day); its driver resets the NIC again and
 *      its translation module brings the link up, so its back end connects;
 *   4. tells the client's front end, as a xenstore watch would, by an event on its port: the
 *      front end completes what it had in flight with an error, takes its buffers back, shows
 *      its guest the link down, and publishes its ring and a new port for the new domain; the
 *      new back end connects and the link comes up (src/vmm/backends/xen/netChannel.ts).
 *
 * The crash may happen anywhere (a hypercall, a trap, a fault injected by a test): the
 * toolstack does its work in a clock event at the crash's cycle, where the CPU is between
 * instructions. It reacts at once; its work costs what the hypervisor's operations cost
 * (cost-model.md's Xen rows: the grant unmaps and table releases of the destruction, the
 * validations and pins of building), and the new kernel boots on the simulated clock.
 *
 * Each restart is recorded with the machine cycles of the crash, of the client's link coming up
 * (the outage, as `bench netperf` reports it) and of the first frame from the new back end
 * reaching the client's guest.
 */
import type { XenHypervisor } from '../hypervisor/xen/Xen.ts';
import type { Domain } from '../hypervisor/xen/domain.ts';
import type { XenNetConnection } from '../vmm/backends/xen/netChannel.ts';
import { startXenVm } from '../vmm/backends/xen/vm.ts';
import { grantedFrame } from '../hypervisor/xen/grants.ts';
import type { AfterburnedKernel } from '../vmm/load.ts';
import { EXTRA_VM_DEFAULT_MB } from './extraVms.ts';
import type { DriverVmControl, DriverVmRestart, ExtraVm, GuestConfig } from './platform.ts';

/** The ring page's words the toolstack writes for a custom front end (guest/arch/xen-para/netfront.c). */
const RING_BACKEND_STATE = 0x20;
const RING_BACKEND_DOMAIN = 0x24;
const BACKEND_CLOSED = 2;

/**
 * Watches the driver VM serving `connections` (the guest's first, whose link the restart's
 * outage is measured on) and restarts it when it crashes; the restarted
 * VMs are added to `vms` (the guest's extra VMs) as `<kernel> (restart N)`.
 */
export function superviseXenDriverVm(
  xen: XenHypervisor,
  config: GuestConfig,
  kernel: AfterburnedKernel,
  connections: XenNetConnection[],
  vms: ExtraVm[],
): DriverVmControl {
  const connection = connections[0];
  const spec = config.driverVm!;
  const clock = xen.machine.clock;
  const restarts: DriverVmRestart[] = [];
  let driver: Domain | undefined =
    connection.driverDom === undefined ? undefined : xen.domains[connection.driverDom];

  connection.watch = (event) => {
    const r = restarts.at(-1);
    if (r === undefined) return;
    if (event === 'connected') r.connectedCycle ??= clock.now();
    else r.firstFrameCycle ??= clock.now();
  };

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

  const restart = (dead: Domain, record: DriverVmRestart): void => {
    const refused = xen.destroy(dead);
    if (refused !== undefined) {
      record.failed = refused;
      return;
    }
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
      // Its RTC shows the machine's time: the same start, plus the seconds gone by.
      rtcStartSeconds:
        (config.rtcStartSeconds ?? Date.UTC(2026, 0, 1) / 1000) +
        Math.floor(clock.now() / clock.hz),
    });
    if (typeof built === 'string') {
      record.failed = `${spec.kernelName}: ${built}`;
      xen.print(`(xen) toolstack: cannot restart the driver VM: ${record.failed}\n`);
      driver = undefined;
      return;
    }
    built.domain.console = spec.console;
    driver = built.domain;
    record.domain = built.domain.id;
    vms.push({ name: `${spec.kernelName} (restart ${restarts.length})`, vmm: built.vmm });
    xen.print(
      `(xen) toolstack: driver VM domain ${dead.id} destroyed, domain ${built.domain.id} built in its place\n`,
      built.domain,
    );
    connections.forEach((c, k) => tell(c, published[k], built.domain.id));
  };

  xen.onDomainEnd = (dom, end) => {
    if (dom !== driver || end.kind !== 'crash') return;
    // A driver VM that crashed again before it served the guest (its link never came up) would
    // crash at each start: it is left dead, as xl gives up on a domain that keeps crashing.
    const last = restarts.at(-1);
    if (last !== undefined && last.connectedCycle === undefined) {
      driver = undefined;
      xen.print(
        `(xen) toolstack: driver VM domain ${dom.id} crashed before it served the guest; not restarted again\n`,
        dom,
      );
      return;
    }
    const record: DriverVmRestart = { crashCycle: clock.now(), crashedDomain: dom.id };
    restarts.push(record);
    clock.at(clock.now(), () => restart(dom, record), 'xen.toolstack');
  };

  return {
    crash(message) {
      if (driver === undefined || !driver.alive) return false;
      xen.crash(driver, message);
      return true;
    },
    restarts,
  };
}
