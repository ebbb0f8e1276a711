/**
 * Whole-guest snapshots (DESIGN.md decision 11): everything a running guest is, on any platform,
 * as data — the configuration it was built from (with the kernel and module files, so a
 * snapshot needs nothing else), the machine (src/machine/machineState.ts), the hypervisor's and
 * the in-place VMM's state, and whatever the caller keeps beside the guest (a peer on its link).
 *
 * A restore builds the same configuration again with `createGuest` — which recreates every
 * closure: bound entries, device callbacks, the VMM's site table — and then overwrites every
 * component's state with the saved one: the machine's clock and devices first, then the
 * hypervisor, then the VMM, then the caller's part, and last the audit that every pending
 * clock event and every bound entry came back. The restored guest continues exactly as the
 * saved one would have: the same console output, cycles, instructions and counters.
 */
import type { HypervisorState } from '../hypervisor/Hypervisor.ts';
import { costModels, type CostModel } from '../machine/costModel.ts';
import type { FaultConfig } from '../machine/ethernet/link.ts';
import type { MachineState } from '../machine/machineState.ts';
import { encodeBytes } from '../machine/state.ts';
import type { SnapshotContents } from '../snapshot/file.ts';
import type { VmmState } from '../vmm/Vmm.ts';
import type { Guest, GuestConfig } from './platform.ts';

/** The version of GuestState (and so of the snapshot's state section). */
export const GUEST_STATE_VERSION = 3;

/** The configuration as data: what `createGuest` needs again, but the files (blobs). */
export interface GuestConfigState {
  kernelName: string;
  cmdline: string;
  /** Each module's name and string; its bytes are the blob `module.<k>`. */
  modules: { name: string; string: string }[];
  memoryMb: number | null;
  /** A preset's name, or the preset itself if it is not one of the built-in ones. */
  costModel: string | CostModel | null;
  nic: { mac: string | null; faults: FaultConfig | null; emulated: boolean } | null;
  rtcStartSeconds: number | null;
  /** The extra VMs (GuestConfig.vms); VM k's kernel is the blob `vm.<k>.kernel`, its modules `vm.<k>.module.<j>`. */
  vms: {
    kernelName: string;
    cmdline: string;
    modules: { name: string; string: string }[];
    memoryMb: number | null;
    /** Its network through the driver VM (ExtraVmConfig.clientOfDriverVm). */
    clientOfDriverVm: boolean;
  }[];
  /**
   * The driver VM (GuestConfig.driverVm), or null; its kernel is the blob `driver.kernel`, its
   * modules `driver.module.<j>`. Its VMM is the first of `vmVmms`.
   */
  driverVm: {
    kernelName: string;
    cmdline: string;
    modules: { name: string; string: string }[];
    memoryMb: number | null;
  } | null;
}

export interface GuestState {
  version: typeof GUEST_STATE_VERSION;
  platform: string;
  config: GuestConfigState;
  /** The machine, its memory left out (it is the snapshot's `ram` section). */
  machine: MachineState;
  hypervisor: HypervisorState | null;
  vmm: VmmState | null;
  /** The extra VMs' in-place VMMs, in their order. */
  vmVmms: VmmState[];
  /** The caller's own state beside the guest (e.g. a TCP peer's), or null. */
  extra: unknown;
}

function configState(c: GuestConfig): GuestConfigState {
  const cost = c.costModel;
  return {
    kernelName: c.kernelName,
    cmdline: c.cmdline ?? '',
    modules: (c.modules ?? []).map((m) => ({ name: m.name, string: m.string })),
    memoryMb: c.memoryMb ?? null,
    costModel:
      cost === undefined
        ? null
        : typeof cost === 'string' || costModels.get(cost.name) === cost
          ? typeof cost === 'string'
            ? cost
            : cost.name
          : cost,
    nic:
      c.nic === undefined
        ? null
        : {
            mac: c.nic.mac === undefined ? null : encodeBytes(c.nic.mac),
            faults: c.nic.faults ?? null,
            emulated: c.nic.emulated === true,
          },
    rtcStartSeconds: c.rtcStartSeconds ?? null,
    vms: (c.vms ?? []).map((v) => ({
      kernelName: v.kernelName,
      cmdline: v.cmdline ?? '',
      modules: (v.modules ?? []).map((m) => ({ name: m.name, string: m.string })),
      memoryMb: v.memoryMb ?? null,
      clientOfDriverVm: v.clientOfDriverVm === true,
    })),
    driverVm:
      c.driverVm === undefined
        ? null
        : {
            kernelName: c.driverVm.kernelName,
            cmdline: c.driverVm.cmdline ?? '',
            modules: (c.driverVm.modules ?? []).map((m) => ({ name: m.name, string: m.string })),
            memoryMb: c.driverVm.memoryMb ?? null,
          },
  };
}

/**
 * The guest as snapshot contents (src/snapshot/file.ts writes them): `extra` is the caller's
 * state that goes with it (it must be JSON data). Call it between runs of the machine.
 */
export function saveGuest(guest: Guest, extra: unknown = null): SnapshotContents {
  // A restarted driver VM is a VM the configuration does not build: a restore could not build
  // it again. Callers refuse it first (previrt run does).
  if ((guest.driverVm?.restarts.length ?? 0) > 0)
    throw new Error(
      'a guest whose driver VM crashed cannot be snapshotted (the toolstack built another)',
    );
  const machine = guest.machine.save({ ram: false });
  const state: GuestState = {
    version: GUEST_STATE_VERSION,
    platform: guest.platform,
    config: configState(guest.config),
    machine,
    hypervisor: guest.hypervisor?.save() ?? null,
    vmm: guest.vmm?.save() ?? null,
    vmVmms: guest.vms.map((v) => v.vmm.save()),
    extra,
  };
  const blobs = new Map<string, Uint8Array>([['kernel', guest.config.kernel]]);
  (guest.config.modules ?? []).forEach((m, k) => blobs.set(`module.${k}`, m.bytes));
  (guest.config.vms ?? []).forEach((v, k) => {
    blobs.set(`vm.${k}.kernel`, v.kernel);
    (v.modules ?? []).forEach((m, j) => blobs.set(`vm.${k}.module.${j}`, m.bytes));
  });
  const driver = guest.config.driverVm;
  if (driver !== undefined) {
    blobs.set('driver.kernel', driver.kernel);
    (driver.modules ?? []).forEach((m, j) => blobs.set(`driver.module.${j}`, m.bytes));
  }
  return {
    header: {
      format: 'previrt-snapshot',
      stateVersion: GUEST_STATE_VERSION,
      createdBy: 'previrt',
      platform: guest.platform,
      kernelName: guest.config.kernelName,
      cycle: guest.machine.cpu.cycles,
    },
    state,
    ram: guest.machine.ram,
    blobs,
  };
}
