/**
 * Live migration of a guest between hypervisors in one process (issue 16; first stage:
 * stop-and-copy). The guest — the afterburned kernel with the in-place VMM, on xen or l4 — is
 * stopped at a safe point (its kernel running its own code, or idle in `hlt`), taken out of its
 * hypervisor as a neutral record (src/vmm/migration.ts: memory with guest-physical page tables,
 * the kernel's context, the VMM core's state), and put into a guest the destination platform
 * builds from the same configuration: its hypervisor's objects are its own start of day (the
 * domain, event channels, the VM's threads and spaces), the page tables are given to it again
 * (xen: converted to machine frames and pinned), the VMM's state and its clock continue, and the
 * CPU continues where the guest stopped. The source is left as it stopped: it is the caller's
 * to run on (a failed move) or to drop.
 */
import { Dp83820 } from '../machine/devices/dp83820/Dp83820.ts';
import { withFcs } from '../machine/ethernet/frame.ts';
import type { EndReason } from '../machine/Machine.ts';
import type { GuestContext, MigrationRecord } from '../vmm/migration.ts';
import { MIGRATION_RECORD_VERSION } from '../vmm/migration.ts';
import { createGuest } from './createGuest.ts';
import type { Guest, GuestConfig } from './platform.ts';

export interface MigrateOptions {
  /** Where the destination guest's console output goes. */
  console?: (byte: number) => void;
  /**
   * Machine memory of the destination in MB (default: the source's, more if the destination's
   * hypervisor leaves the guest less RAM than the source gave it).
   */
  memoryMb?: number;
  /**
   * Nanoseconds that passed between the guest's stop on the source and its start here (the
   * copy): its clock moves on by them, as the world's did (default 0).
   */
  elapsedNs?: number;
}

/** Why a guest cannot migrate at all (its configuration); undefined if it may. */
export function migrationRefusal(guest: Guest): string | undefined {
  const c = guest.config;
  if (guest.vmm?.backend.migration === undefined)
    return `a guest on '${guest.platform}' cannot migrate: only the afterburned kernel with the in-place VMM on xen or l4 can`;
  const backend = guest.vmm.backend.migration.refusal?.();
  if (backend !== undefined) return backend;
  if (c.nic !== undefined && c.nic.emulated !== true)
    return "a guest with a passed-through device cannot migrate (the device stays with its machine): give it the VMM's model (--nic dp83820,emulated)";
  if (c.driverVm !== undefined || (c.vms ?? []).length > 0)
    return 'a guest with other VMs beside it cannot migrate';
  return undefined;
}

/** The guest's context if it is at a safe point now, else why not (one line). */
export function safePoint(guest: Guest): GuestContext | string {
  const refused = migrationRefusal(guest);
  if (refused !== undefined) return refused;
  const vmm = guest.vmm!;
  if (!vmm.paging) return 'the guest has not turned paging on yet';
  if (guest.machine.end !== undefined && guest.machine.end.kind !== 'cycle-limit')
    return `the guest's run has ended (${guest.machine.end.kind})`;
  const c = vmm.backend.migration!.safePoint();
  if (typeof c === 'string') return c;
  if (c.kind === 'kernel' && vmm.userMode) return 'the guest runs in user mode';
  if (c.kind === 'idle' && vmm.siteEndingAt(c.eip, 'hlt') === undefined)
    return `the guest stopped at 0x${c.eip.toString(16)}, after no hlt`;
  return c;
}

/**
 * Runs the guest on from where it stopped, in steps of `step` cycles, until it is at a safe
 * point (then it stops there) or its run ends or `limit` (absolute cycles) passes: the context,
 * or the run's end.
 */
export function runToSafePoint(
  guest: Guest,
  limit: number,
  step = 20_000,
): GuestContext | EndReason {
  const m = guest.machine;
  for (;;) {
    const c = safePoint(guest);
    if (typeof c !== 'string') return c;
    if (m.end !== undefined && m.end.kind !== 'cycle-limit') return m.end;
    if (m.cpu.cycles >= limit) return { kind: 'cycle-limit' };
    m.resume();
    const end = m.run(Math.min(limit, m.cpu.cycles + step));
    if (end.kind !== 'cycle-limit') return end;
  }
}

/** The guest-physical address behind a guest-virtual one through directory `cr3` in `memory`. */
function translate(memory: Uint8Array, cr3: number, va: number): number | undefined {
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  const read = (at: number): number | undefined =>
    at + 4 <= memory.length ? view.getUint32(at, true) : undefined;
  const pde = read((cr3 & ~0xfff) + (va >>> 22) * 4);
  if (pde === undefined || (pde & 1) === 0) return undefined;
  if ((pde & 0x80) !== 0) return ((pde & 0xffc00000) | (va & 0x3fffff)) >>> 0;
  const pte = read((pde & ~0xfff) + ((va >>> 12) & 0x3ff) * 4);
  if (pte === undefined || (pte & 1) === 0) return undefined;
  return ((pte & ~0xfff) | (va & 0xfff)) >>> 0;
}

/** The guest stopped at a safe point, as a migration record; or why not. */
export function captureGuest(guest: Guest): MigrationRecord | string {
  const context = safePoint(guest);
  if (typeof context === 'string') return context;
  const vmm = guest.vmm!;
  const m = vmm.backend.migration!;
  // The console line being collected goes with the VMM's state; what the source printed stays.
  const pageTables = m.pageTables();
  const memory = m.exportMemory(pageTables);
  const state = vmm.save();
  let kernelStack: number | undefined;
  if (state.tr.base !== 0) {
    const at = translate(memory, state.cr3, (state.tr.base + 4) >>> 0);
    if (at !== undefined && at + 4 <= memory.length)
      kernelStack = new DataView(memory.buffer).getUint32(at, true);
  }
  return {
    version: MIGRATION_RECORD_VERSION,
    from: guest.platform,
    guestPages: m.guestPages,
    memory,
    pageTables,
    context,
    kernelStack,
    nowNs: vmm.nowNs(),
    // The backend's own state stays: the destination's hypervisor objects are its own.
    vmm: { ...state, backend: { kind: state.backend.kind, version: state.backend.version } },
    vcpuBlock: vmm.vcpuBlockBytes(),
  };
}

/**
 * A guest on platform `to` that continues `record`: built from `config` (the source's), then the
 * record put into it. One line if it cannot be built or refuses the record.
 */
export function resumeGuest(
  record: MigrationRecord,
  config: Readonly<GuestConfig>,
  to: string,
  options: MigrateOptions = {},
): Guest | string {
  if (record.version !== MIGRATION_RECORD_VERSION)
    return `migration record version ${String(record.version)} is not supported (this previrt reads version ${MIGRATION_RECORD_VERSION})`;
  let memoryMb = options.memoryMb ?? config.memoryMb ?? 256;
  let guest: Guest | string = '';
  for (let attempt = 0; attempt < 4; attempt++) {
    guest = createGuest({ ...config, platform: to, memoryMb, console: options.console });
    if (typeof guest === 'string') return `the destination cannot be built: ${guest}`;
    const m = guest.vmm?.backend.migration;
    if (m === undefined) return `a guest cannot migrate to '${to}' (no in-place VMM there)`;
    if (m.guestPages >= record.guestPages) break;
    if (options.memoryMb !== undefined)
      return `the destination gives the guest ${m.guestPages * 4} KB of RAM, it had ${record.guestPages * 4} KB`;
    memoryMb += Math.ceil(((record.guestPages - m.guestPages) * 4096) / 2 ** 22) * 4 + 4;
    guest = '';
  }
  if (typeof guest === 'string') return 'the destination cannot give the guest as much RAM';
  const vmm = guest.vmm!;
  let context = record.context;
  if (context.kind === 'idle') {
    // The guest idles again on the destination: its `hlt` runs again.
    const site = vmm.siteEndingAt(context.eip, 'hlt');
    if (site === undefined)
      return `the destination's kernel has no hlt ending at 0x${context.eip.toString(16)}`;
    context = { ...context, eip: site.start };
  }
  // The VMM's state first: the page tables' device frames are where its virtual PCI says.
  try {
    vmm.adoptMigrated(record.vmm, record.nowNs + (options.elapsedNs ?? 0), record.vcpuBlock, 'vmm');
  } catch (e) {
    return `the destination refused the guest's VMM state: ${e instanceof Error ? e.message : String(e)}`;
  }
  const refused = vmm.backend.migration!.resume({ ...record, context }, record.vmm.cr3);
  if (refused !== undefined) return `the destination refused the guest: ${refused}`;
  // The backends run the model's interrupt hold-off differently (xen folds its end into the
  // VMM's points, l4 keeps a clock event): a hold-off under way ends by an event here.
  for (const f of vmm.platform.emulated) if (f instanceof Dp83820) f.wakeAtHoldoffEnd();
  return guest;
}

/** Moves a guest that stopped at a safe point (runToSafePoint) to platform `to`. */
export function migrateGuest(
  guest: Guest,
  to: string,
  options: MigrateOptions = {},
): { guest: Guest; record: MigrationRecord } | string {
  const record = captureGuest(guest);
  if (typeof record === 'string') return record;
  const moved = resumeGuest(record, guest.config, to, options);
  return typeof moved === 'string' ? moved : { guest: moved, record };
}

/** RARP (RFC 903), QEMU's and Xen's self-announcement after a migration. */
const ETHERTYPE_RARP = 0x8035;

/**
 * After a move: the guest's NIC announces itself on the destination's wire — a RARP request
 * from its MAC to everyone, as QEMU's and Xen's toolstacks send for a migrated guest — so that
 * a switch between the hosts learns its new port before the guest sends anything. Sent from
 * the VMM's model's end of the machine's link; false if the guest has no NIC there.
 */
export function announce(guest: Guest): boolean {
  const link = guest.machine.link;
  const mac = guest.machine.nic?.mac;
  if (link === undefined || mac === undefined || guest.config.nic?.emulated !== true) return false;
  // Ethernet header, then the RARP body (hardware 1, protocol IPv4, op 3 "request reverse").
  const frame = new Uint8Array(60);
  frame.fill(0xff, 0, 6);
  frame.set(mac, 6);
  frame.set([ETHERTYPE_RARP >> 8, ETHERTYPE_RARP & 0xff], 12);
  frame.set([0, 1, 0x08, 0x00, 6, 4, 0, 3], 14);
  frame.set(mac, 22);
  frame.set(mac, 32);
  return link.send(0, withFcs(frame)) !== undefined;
}
