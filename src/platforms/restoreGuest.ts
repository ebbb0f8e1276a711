/**
 * A guest again from its snapshot (snapshot.ts has the state's shape and how a restore works).
 */
import type { BootModule } from '../loader/multiboot.ts';
import { decodeBytes, StateError } from '../machine/state.ts';
import type { SnapshotContents } from '../snapshot/file.ts';
import { createGuest, PLATFORMS } from './createGuest.ts';
import type { Guest, GuestConfig } from './platform.ts';
import { GUEST_STATE_VERSION, type GuestState } from './snapshot.ts';

export interface RestoreOptions {
  /** Where the restored guest's console output goes. */
  console?: (byte: number) => void;
  /** Where extra VM k's console output goes (GuestConfig.vms). */
  vmConsole?: (k: number, name: string) => (byte: number) => void;
  /** Where the driver VM's console output goes (GuestConfig.driverVm). */
  driverConsole?: (byte: number) => void;
  /**
   * Restores the caller's part (`extra` as saved) — a peer re-attached to the new machine's
   * link, its events on the new clock — before the audit checks that every event came back.
   */
  restoreExtra?: (extra: unknown, guest: Guest) => void;
}

/**
 * A guest again from snapshot contents (src/snapshot/file.ts reads them), ready to run on;
 * or one line saying why not (another state version, a platform this previrt lacks, a state
 * that does not fit the configuration it names).
 */
export function restoreGuest(
  contents: SnapshotContents,
  options: RestoreOptions = {},
): Guest | string {
  const state = contents.state as GuestState;
  if (
    contents.header.stateVersion !== GUEST_STATE_VERSION ||
    state?.version !== GUEST_STATE_VERSION
  )
    return `snapshot state version ${String(contents.header.stateVersion)} is not supported (this previrt reads version ${GUEST_STATE_VERSION})`;
  if (!PLATFORMS.has(state.platform))
    return `a snapshot of platform '${String(state.platform)}', which this previrt does not have (known: ${[...PLATFORMS.keys()].join(', ')})`;
  const kernel = contents.blobs.get('kernel');
  if (kernel === undefined) return 'the snapshot lacks its kernel';
  let config: GuestConfig;
  try {
    const c = state.config;
    const modules: BootModule[] = c.modules.map((m, k) => {
      const bytes = contents.blobs.get(`module.${k}`);
      if (bytes === undefined) throw new StateError(`the snapshot lacks module ${k} (${m.name})`);
      return { name: m.name, string: m.string, bytes };
    });
    config = {
      platform: state.platform,
      kernel,
      kernelName: c.kernelName,
      cmdline: c.cmdline,
      modules,
      memoryMb: c.memoryMb ?? undefined,
      costModel: c.costModel ?? undefined,
      nic:
        c.nic === null
          ? undefined
          : {
              mac: c.nic.mac === null ? undefined : decodeBytes(c.nic.mac, 'config.nic.mac', 6),
              faults: c.nic.faults ?? undefined,
              ...(c.nic.emulated ? { emulated: true } : {}),
            },
      rtcStartSeconds: c.rtcStartSeconds ?? undefined,
      console: options.console,
      vms: c.vms.map((v, k) => {
        const bytes = contents.blobs.get(`vm.${k}.kernel`);
        if (bytes === undefined) throw new StateError(`the snapshot lacks VM ${k}'s kernel`);
        return {
          kernel: bytes,
          kernelName: v.kernelName,
          cmdline: v.cmdline,
          modules: v.modules.map((m, j) => {
            const b = contents.blobs.get(`vm.${k}.module.${j}`);
            if (b === undefined)
              throw new StateError(`the snapshot lacks VM ${k}'s module ${j} (${m.name})`);
            return { name: m.name, string: m.string, bytes: b };
          }),
          memoryMb: v.memoryMb ?? undefined,
          console: options.vmConsole?.(k, v.kernelName),
          ...(v.clientOfDriverVm ? { clientOfDriverVm: true } : {}),
        };
      }),
    };
    const d = c.driverVm;
    if (d !== null) {
      const bytes = contents.blobs.get('driver.kernel');
      if (bytes === undefined) throw new StateError("the snapshot lacks the driver VM's kernel");
      config.driverVm = {
        kernel: bytes,
        kernelName: d.kernelName,
        cmdline: d.cmdline,
        modules: d.modules.map((m, j) => {
          const b = contents.blobs.get(`driver.module.${j}`);
          if (b === undefined)
            throw new StateError(`the snapshot lacks the driver VM's module ${j} (${m.name})`);
          return { name: m.name, string: m.string, bytes: b };
        }),
        memoryMb: d.memoryMb ?? undefined,
        console: options.driverConsole,
      };
    }
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const guest = createGuest(config);
  if (typeof guest === 'string') return `the snapshot's guest cannot be built again: ${guest}`;
  try {
    guest.machine.restore(
      state.machine,
      () => {
        if ((state.hypervisor === null) !== (guest.hypervisor === undefined))
          throw new StateError(
            `hypervisor: the snapshot and the platform '${guest.platform}' disagree`,
          );
        if (state.hypervisor !== null) guest.hypervisor!.restore(state.hypervisor, 'hypervisor');
        if ((state.vmm === null) !== (guest.vmm === undefined))
          throw new StateError(`vmm: the snapshot and the platform '${guest.platform}' disagree`);
        if (state.vmm !== null) guest.vmm!.restore(state.vmm, 'vmm');
        if (!Array.isArray(state.vmVmms) || state.vmVmms.length !== guest.vms.length)
          throw new StateError(
            `vmVmms: not one state for each of the ${guest.vms.length} extra VMs`,
          );
        guest.vms.forEach((v, k) => v.vmm.restore(state.vmVmms[k], `vmVmms[${k}]`));
        options.restoreExtra?.(state.extra, guest);
      },
      contents.ram,
    );
  } catch (e) {
    // A StateError names the field; anything else from a malformed state is reported as such,
    // never thrown at the user (DESIGN.md decision 9).
    if (e instanceof StateError) return `the snapshot does not fit: ${e.message}`;
    return `the snapshot's state is malformed (${e instanceof Error ? e.message : String(e)})`;
  }
  // A snapshot is taken where a run stopped at its cycle limit: the restored one goes on.
  guest.machine.resume();
  return guest;
}
