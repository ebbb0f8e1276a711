/**
 * The hypercalls (shared/reference/xen-pv.md, "Essential hypercalls"; numbers and structures in
 * abi.ts). Each takes the guest's EBX, ECX, EDX, ESI, EDI and returns 0 or a positive value, or a
 * negative errno; none throws for anything the guest passes (DESIGN.md decision 9). Pointers are
 * guest virtual addresses read and written through XenHypervisor.copyFromGuest/copyToGuest,
 * which confine them to the domain's own frames.
 */
import {
  ConsoleIo,
  CONSOLEIO_MAX,
  DOMID_SELF,
  Errno,
  EvtchnOp,
  Hypercall,
  PhysdevOp,
  HYPERVISOR_VIRT_START,
  MMU_MACHPHYS_UPDATE,
  MMU_NORMAL_PT_UPDATE,
  MMU_UPDATE_SIZE,
  MmuExt,
  MMUEXT_OP_SIZE,
  NR_VIRQS,
  PTE_P,
  SchedOp,
  Selector,
  Shutdown,
  SharedInfo,
  TI_MASK_EVENTS,
  TRAP_INFO_SIZE,
  UVMF_ALL,
  UVMF_FLUSHTYPE_MASK,
  UVMF_INVLPG,
  UVMF_TLB_FLUSH,
} from './abi.ts';
import { allowedConfigWrite } from './devices.ts';
import type { Domain, TrapEntry } from './domain.ts';
import { FrameType } from './frames.ts';
import { grantTableOp } from './grants.ts';
import type { XenHypervisor } from './Xen.ts';

type Args = readonly [number, number, number, number, number];
type Handler = (xen: XenHypervisor, dom: Domain, a: Args) => number;

/** Elements one mmu_update or mmuext_op call may carry (previrt's limit; Xen preempts). */
const MAX_BATCH = 4096;

const handlers = new Map<number, Handler>([
  [Hypercall.set_trap_table, setTrapTable],
  [Hypercall.mmu_update, mmuUpdate],
  [Hypercall.stack_switch, stackSwitch],
  [Hypercall.set_callbacks, setCallbacks],
  [Hypercall.update_va_mapping, updateVaMapping],
  [Hypercall.set_timer_op, setTimerOp],
  [Hypercall.xen_version, xenVersion],
  [Hypercall.console_io, consoleIo],
  [Hypercall.mmuext_op, mmuextOp],
  [Hypercall.sched_op, schedOp],
  [Hypercall.event_channel_op, eventChannelOp],
  [Hypercall.physdev_op, physdevOp],
  [Hypercall.grant_table_op, (xen, dom, a) => grantTableOp(xen, dom, a)],
]);

export const HYPERCALL_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Hypercall).map(([name, nr]) => [nr, name]),
);

export function dispatchHypercall(xen: XenHypervisor, dom: Domain, nr: number, args: Args): number {
  // GUEST-CONTROLLED: the number and every argument.
  const handler = handlers.get(nr);
  return handler === undefined ? -Errno.ENOSYS : handler(xen, dom, args);
}

/** A code selector the guest may name for a handler: the ring-1 flat code segment. */
function guestCodeSelector(cs: number): number | undefined {
  // Xen fixes an RPL of 0 up to 1 (fixup_guest_code_selector); anything else is refused.
  const fixed = (cs & 3) === 0 ? cs | 1 : cs;
  return fixed === Selector.RING1_CS ? fixed : undefined;
}

function guestCodeAddress(eip: number): boolean {
  return eip >>> 0 < HYPERVISOR_VIRT_START;
}

// ---- traps and callbacks -------------------------------------------------------------------

/** set_trap_table(table): entries {vector, flags, cs, address} up to one with address 0. */
function setTrapTable(xen: XenHypervisor, dom: Domain, [table]: Args): number {
  if (table === 0) {
    dom.traps.fill(undefined);
    return 0;
  }
  // All entries are checked before any is applied, so an error leaves the table unchanged.
  const updates: { vector: number; entry: TrapEntry }[] = [];
  for (let k = 0; k < 256; k++) {
    const raw = xen.copyFromGuest(dom, (table + k * TRAP_INFO_SIZE) >>> 0, TRAP_INFO_SIZE);
    if (raw === undefined) return -Errno.EFAULT;
    const v = new DataView(raw.buffer);
    const address = v.getUint32(4, true);
    if (address === 0) break;
    const cs = guestCodeSelector(v.getUint16(2, true));
    if (cs === undefined || !guestCodeAddress(address)) return -Errno.EPERM;
    const flags = raw[1];
    updates.push({
      vector: raw[0],
      entry: { dpl: flags & 3, maskEvents: (flags & TI_MASK_EVENTS) !== 0, cs, eip: address },
    });
  }
  for (const u of updates) dom.traps[u.vector] = u.entry;
  return 0;
}

/** stack_switch(ss, esp): the ring-1 stack for events that arrive in ring 3. */
function stackSwitch(_xen: XenHypervisor, dom: Domain, [ss, esp]: Args): number {
  if ((ss & 0xffff) !== Selector.RING1_DS) return -Errno.EPERM;
  dom.kernelStack = { ss: Selector.RING1_DS, esp: esp >>> 0 };
  return 0;
}

/** set_callbacks(event cs, event eip, failsafe cs, failsafe eip). */
function setCallbacks(_xen: XenHypervisor, dom: Domain, a: Args): number {
  const eventCs = guestCodeSelector(a[0]);
  const failsafeCs = guestCodeSelector(a[2]);
  if (eventCs === undefined || failsafeCs === undefined) return -Errno.EPERM;
  if (!guestCodeAddress(a[1]) || !guestCodeAddress(a[3])) return -Errno.EPERM;
  dom.eventCallback = { cs: eventCs, eip: a[1] >>> 0 };
  dom.failsafeCallback = { cs: failsafeCs, eip: a[3] >>> 0 };
  return 0;
}

// ---- memory management -----------------------------------------------------------------------

/** mmu_update(requests, count, done*, domid): checked page-table writes and M2P updates. */
function mmuUpdate(xen: XenHypervisor, dom: Domain, [reqs, count, donePtr, domid]: Args): number {
  if ((domid & 0xffff) !== DOMID_SELF && domid !== dom.id) return -Errno.ESRCH;
  if (count > MAX_BATCH) return -Errno.EINVAL;
  let done = 0;
  let result = 0;
  for (; done < count; done++) {
    const raw = xen.copyFromGuest(dom, (reqs + done * MMU_UPDATE_SIZE) >>> 0, MMU_UPDATE_SIZE);
    if (raw === undefined) {
      result = -Errno.EFAULT;
      break;
    }
    const v = new DataView(raw.buffer);
    const ptr = v.getUint32(0, true);
    const value = v.getUint32(8, true);
    if (v.getUint32(4, true) !== 0 || v.getUint32(12, true) !== 0) {
      result = -Errno.EINVAL;
      break;
    }
    xen.cpu.charge(xen.costs.xenPteUpdate);
    const cmd = ptr & 3;
    if (cmd === MMU_NORMAL_PT_UPDATE) {
      xen.counters.pteUpdates++;
      result = xen.frames.updateEntry(dom, ptr & ~3, value);
    } else if (cmd === MMU_MACHPHYS_UPDATE) {
      const mfn = ptr >>> 12;
      if (!xen.frames.ownedBy(dom, mfn)) result = -Errno.EPERM;
      else xen.setM2p(mfn, value);
    } else {
      result = -Errno.ENOSYS;
    }
    if (result !== 0) break;
  }
  if (donePtr !== 0 && !xen.writeGuest32(dom, donePtr, done)) return -Errno.EFAULT;
  return result;
}

/** update_va_mapping(va, pte low, pte high, flags): a checked write of va's L1 entry. */
function updateVaMapping(xen: XenHypervisor, dom: Domain, [va, lo, hi, flags]: Args): number {
  if (hi !== 0 || va >>> 0 >= HYPERVISOR_VIRT_START) return -Errno.EINVAL;
  if ((flags & ~(UVMF_FLUSHTYPE_MASK | UVMF_ALL)) !== 0) return -Errno.EINVAL;
  const flush = flags & UVMF_FLUSHTYPE_MASK;
  if (flush === UVMF_FLUSHTYPE_MASK) return -Errno.EINVAL;
  if (dom.baseMfn === undefined) return -Errno.EINVAL;
  const pde = xen.machine.cpu.readPhysical(dom.baseMfn * 4096 + (va >>> 22) * 4, 4);
  if ((pde & PTE_P) === 0) return -Errno.EINVAL;
  xen.cpu.charge(xen.costs.xenPteUpdate);
  xen.counters.pteUpdates++;
  const r = xen.frames.updateEntry(dom, (pde & 0xfffff000) + ((va >>> 12) & 0x3ff) * 4, lo);
  if (r !== 0) return r;
  if (flush === UVMF_TLB_FLUSH) flushTlb(xen);
  else if (flush === UVMF_INVLPG) invlpg(xen, va);
  return 0;
}

function flushTlb(xen: XenHypervisor): void {
  xen.cpu.flushTlb(false);
}

function invlpg(xen: XenHypervisor, va: number): void {
  xen.cpu.invalidatePage(va >>> 0);
  xen.cpu.counters.invlpg++;
  xen.cpu.charge(xen.cpu.costs.invlpg);
}

/** mmuext_op(ops, count, done*, domid): pin/unpin, new base pointer, TLB flush, INVLPG. */
function mmuextOp(xen: XenHypervisor, dom: Domain, [ops, count, donePtr, domid]: Args): number {
  if ((domid & 0xffff) !== DOMID_SELF && domid !== dom.id) return -Errno.ESRCH;
  if (count > MAX_BATCH) return -Errno.EINVAL;
  let done = 0;
  let result = 0;
  for (; done < count; done++) {
    const raw = xen.copyFromGuest(dom, (ops + done * MMUEXT_OP_SIZE) >>> 0, MMUEXT_OP_SIZE);
    if (raw === undefined) {
      result = -Errno.EFAULT;
      break;
    }
    const v = new DataView(raw.buffer);
    result = mmuextOne(xen, dom, v.getUint32(0, true), v.getUint32(4, true));
    if (result !== 0) break;
  }
  if (donePtr !== 0 && !xen.writeGuest32(dom, donePtr, done)) return -Errno.EFAULT;
  return result;
}

function mmuextOne(xen: XenHypervisor, dom: Domain, cmd: number, arg1: number): number {
  const frames = xen.frames;
  switch (cmd) {
    case MmuExt.PIN_L1_TABLE:
    case MmuExt.PIN_L2_TABLE: {
      const r = frames.pin(dom, arg1, cmd === MmuExt.PIN_L1_TABLE ? FrameType.l1 : FrameType.l2);
      if (r === 0) xen.counters.pins++;
      return r;
    }
    case MmuExt.PIN_L3_TABLE:
    case MmuExt.PIN_L4_TABLE:
      return -Errno.EINVAL; // 32-bit non-PAE paging has two levels
    case MmuExt.UNPIN_TABLE: {
      const r = frames.unpin(dom, arg1);
      if (r === 0) xen.counters.unpins++;
      return r;
    }
    case MmuExt.NEW_BASEPTR:
      return newBaseptr(xen, dom, arg1);
    case MmuExt.TLB_FLUSH_LOCAL:
    case MmuExt.TLB_FLUSH_MULTI:
    case MmuExt.TLB_FLUSH_ALL:
      flushTlb(xen);
      return 0;
    case MmuExt.INVLPG_LOCAL:
    case MmuExt.INVLPG_MULTI:
    case MmuExt.INVLPG_ALL:
      invlpg(xen, arg1);
      return 0;
    case MmuExt.FLUSH_CACHE:
      return 0;
    default:
      return -Errno.ENOSYS;
  }
}

/** Switches CR3 to an L2 the domain has already validated (pinned or in use). */
function newBaseptr(xen: XenHypervisor, dom: Domain, mfn: number): number {
  if (!xen.frames.isValidatedL2(dom, mfn)) return -Errno.EINVAL;
  const r = xen.frames.getType(dom, mfn, FrameType.l2);
  if (r !== 0) return r;
  if (dom.baseMfn !== undefined) xen.frames.putType(dom.baseMfn);
  dom.baseMfn = mfn;
  xen.cpu.cr3 = mfn * 4096;
  xen.cpu.charge(xen.costs.xenBaseSwitch + xen.cpu.costs.movCr3);
  xen.counters.baseSwitches++;
  return 0;
}

// ---- time, scheduling, console -----------------------------------------------------------

/** set_timer_op(deadline low, deadline high): VIRQ_TIMER at that system time in ns; 0 cancels. */
function setTimerOp(xen: XenHypervisor, dom: Domain, [lo, hi]: Args): number {
  xen.setTimer(dom, hi * 2 ** 32 + lo);
  return 0;
}

function xenVersion(_xen: XenHypervisor, _dom: Domain, [cmd]: Args): number {
  // XENVER_version: major in the high half. Also a cheap way to let pending events upcall.
  return cmd === 0 ? 0x00010000 : -Errno.ENOSYS;
}

/** sched_op(cmd, arg): yield, block (unmask events and sleep until one is pending), shutdown. */
function schedOp(xen: XenHypervisor, dom: Domain, [cmd, arg]: Args): number {
  switch (cmd) {
    case SchedOp.yield:
      // Another runnable domain gets the CPU (scheduler.ts); alone, the domain runs on.
      xen.scheduler.relinquish();
      return 0;
    case SchedOp.block:
      xen.writeShared8(dom, SharedInfo.upcall_mask, 0);
      if (xen.readShared8(dom, SharedInfo.upcall_pending) === 0) {
        dom.state = 'blocked';
        xen.cpu.halted = true;
        xen.scheduler.relinquish();
      }
      return 0;
    case SchedOp.shutdown: {
      const raw = xen.copyFromGuest(dom, arg, 8);
      if (raw === undefined) return -Errno.EFAULT;
      const v = new DataView(raw.buffer);
      const reason = v.getUint32(0, true);
      const status = v.getUint32(4, true);
      if (reason === Shutdown.poweroff) xen.shutdown(dom, 'poweroff', status);
      else if (reason === Shutdown.reboot) xen.shutdown(dom, 'reboot', status);
      else if (reason === Shutdown.crash) xen.crash(dom, `the guest asked to crash (${status})`);
      else return -Errno.EINVAL; // suspend needs a toolstack previrt does not have
      return 0;
    }
    default:
      return -Errno.ENOSYS;
  }
}

/** console_io(cmd, count, buffer): write to the console sink, or read host input. */
function consoleIo(xen: XenHypervisor, dom: Domain, [cmd, count, buffer]: Args): number {
  if (count > CONSOLEIO_MAX) return -Errno.EINVAL;
  if (cmd === ConsoleIo.write) {
    const bytes = xen.copyFromGuest(dom, buffer, count);
    if (bytes === undefined) return -Errno.EFAULT;
    const out = xen.consoleOf(dom);
    for (const b of bytes) out(b);
    return 0;
  }
  if (cmd === ConsoleIo.read) {
    // Host input is the primary domain's (Xen.primary), with several domains.
    if (xen.primary !== undefined && dom !== xen.primary) return 0;
    const n = Math.min(count, xen.consoleInput.length);
    if (!xen.copyToGuest(dom, buffer, Uint8Array.from(xen.consoleInput.slice(0, n)))) {
      return -Errno.EFAULT;
    }
    xen.consoleInput.splice(0, n);
    return n;
  }
  return -Errno.ENOSYS;
}

// ---- event channels ----------------------------------------------------------------------

/**
 * event_channel_op(cmd, arg): bind_virq, bind_pirq, alloc_unbound and bind_interdomain (a
 * channel between two domains), close, send, unmask.
 */
function eventChannelOp(xen: XenHypervisor, dom: Domain, [cmd, arg]: Args): number {
  switch (cmd) {
    case EvtchnOp.alloc_unbound: {
      // evtchn_alloc_unbound {u16 dom; u16 remote_dom; u32 port (out)}
      const raw = xen.copyFromGuest(dom, arg, 4);
      if (raw === undefined) return -Errno.EFAULT;
      const self = raw[0] | (raw[1] << 8);
      let remote = raw[2] | (raw[3] << 8);
      if (self !== DOMID_SELF && self !== dom.id) return -Errno.EPERM;
      if (remote === DOMID_SELF) remote = dom.id;
      if (xen.domains[remote] === undefined || xen.domains[remote].state === 'destroyed')
        return -Errno.ESRCH;
      return bindPort(xen, dom, arg + 4, { kind: 'unbound', remote }, () => {});
    }
    case EvtchnOp.bind_interdomain: {
      // evtchn_bind_interdomain {u16 remote_dom; u32 remote_port (at 4); u32 local_port (out)}
      const raw = xen.copyFromGuest(dom, arg, 8);
      if (raw === undefined) return -Errno.EFAULT;
      const v = new DataView(raw.buffer);
      const remoteId = v.getUint16(0, true);
      const remotePort = v.getUint32(4, true);
      const remote = remoteId === DOMID_SELF ? dom : xen.domains[remoteId];
      if (remote === undefined || !remote.alive) return -Errno.ESRCH;
      if (remotePort === 0 || remotePort >= remote.channels.length) return -Errno.EINVAL;
      const waiting = remote.channels[remotePort];
      if (waiting.kind !== 'unbound' || waiting.remote !== dom.id) return -Errno.EINVAL;
      return bindPort(
        xen,
        dom,
        arg + 8,
        { kind: 'interdomain', remote: remote.id, remotePort },
        (port) => {
          remote.channels[remotePort] = { kind: 'interdomain', remote: dom.id, remotePort: port };
        },
      );
    }
    case EvtchnOp.bind_virq: {
      // evtchn_bind_virq {u32 virq; u32 vcpu; u32 port (out)}
      const virq = xen.readGuest32(dom, arg);
      const vcpu = xen.readGuest32(dom, arg + 4);
      if (virq === undefined || vcpu === undefined) return -Errno.EFAULT;
      if (virq >= NR_VIRQS) return -Errno.EINVAL;
      if (vcpu !== 0) return -Errno.ENOENT;
      if (dom.virqPort[virq] !== 0) return -Errno.EEXIST;
      return bindPort(xen, dom, arg + 8, { kind: 'virq', virq }, (port) => {
        dom.virqPort[virq] = port;
      });
    }
    case EvtchnOp.bind_pirq: {
      // evtchn_bind_pirq {u32 pirq; u32 flags; u32 port (out)}: only a granted device's line.
      const irq = xen.readGuest32(dom, arg);
      if (irq === undefined) return -Errno.EFAULT;
      if (!dom.mayBindIrq(irq)) return -Errno.EPERM;
      if (dom.channels.some((c) => c.kind === 'pirq' && c.irq === irq)) return -Errno.EEXIST;
      return bindPort(xen, dom, arg + 8, { kind: 'pirq', irq }, () => {
        xen.setIrqMasked(irq, false);
      });
    }
    case EvtchnOp.close: {
      const port = portArg(xen, dom, arg);
      if (port < 0) return port;
      closePort(xen, dom, port);
      return 0;
    }
    case EvtchnOp.send: {
      const port = portArg(xen, dom, arg);
      if (port < 0) return port;
      xen.cpu.charge(xen.costs.xenEventSend);
      xen.counters.eventsSent++;
      const channel = dom.channels[port];
      if (channel.kind === 'interdomain') {
        xen.interdomainEvents++;
        const other = xen.domains[channel.remote];
        if (other !== undefined) xen.setPending(other, channel.remotePort);
        return 0;
      }
      if (channel.kind !== 'console') return -Errno.EINVAL;
      xen.drainConsoleRing(dom);
      return 0;
    }
    case EvtchnOp.unmask: {
      // evtchn_unmask: clear the mask; a pending port then raises upcall_pending.
      const port = portArg(xen, dom, arg, true);
      if (port < 0) return port;
      const word = port >>> 5;
      const bit = 1 << (port & 31);
      const maskAt = SharedInfo.evtchn_mask + word * 4;
      xen.writeShared32(dom, maskAt, xen.readShared32(dom, maskAt) & ~bit);
      // A physical IRQ's line stays masked from its interrupt until the guest unmasks the port.
      const channel = dom.channels[port];
      if (channel.kind === 'pirq') xen.setIrqMasked(channel.irq, false);
      if ((xen.readShared32(dom, SharedInfo.evtchn_pending + word * 4) & bit) !== 0) {
        const sel = xen.readShared32(dom, SharedInfo.pending_sel);
        if ((sel & (1 << word)) === 0) {
          xen.writeShared32(dom, SharedInfo.pending_sel, sel | (1 << word));
          xen.writeShared8(dom, SharedInfo.upcall_pending, 1);
        }
      }
      return 0;
    }
    default:
      return -Errno.ENOSYS;
  }
}

/**
 * Closes one of the domain's ports (evtchn_close; also when a domain is destroyed, destroy.ts):
 * a VIRQ is unbound, a physical IRQ's line masked, and the far end of an interdomain channel
 * waits again for this domain to bind (Xen's evtchn_close).
 */
export function closePort(xen: XenHypervisor, dom: Domain, port: number): void {
  const channel = dom.channels[port];
  if (channel.kind === 'virq') dom.virqPort[channel.virq] = 0;
  if (channel.kind === 'pirq') xen.setIrqMasked(channel.irq, true);
  if (channel.kind === 'interdomain') {
    const other = xen.domains[channel.remote];
    const back = other?.channels[channel.remotePort];
    if (back?.kind === 'interdomain' && back.remote === dom.id && back.remotePort === port)
      other!.channels[channel.remotePort] = { kind: 'unbound', remote: dom.id };
  }
  dom.channels[port] = { kind: 'free' };
}

/** Reads a port number argument; a negative errno for a bad pointer or an unbound port. */
function portArg(xen: XenHypervisor, dom: Domain, arg: number, anyPort = false): number {
  const port = xen.readGuest32(dom, arg);
  if (port === undefined) return -Errno.EFAULT;
  if (port === 0 || port >= dom.channels.length) return -Errno.EINVAL;
  if (!anyPort && dom.channels[port].kind === 'free') return -Errno.EINVAL;
  return port;
}

function bindPort(
  xen: XenHypervisor,
  dom: Domain,
  out: number,
  channel: Domain['channels'][number],
  onBound: (port: number) => void,
): number {
  const port = dom.allocatePort(channel);
  if (port === undefined) return -Errno.ENOSPC;
  if (!xen.writeGuest32(dom, out, port)) {
    dom.channels[port] = { kind: 'free' };
    return -Errno.EFAULT;
  }
  onBound(port);
  return 0;
}

// ---- physical devices ------------------------------------------------------------------------

/**
 * physdev_op(cmd, arg): configuration space of the domain's granted PCI function (previrt
 * commands, devices.ts): arg = {u32 offset; u32 size; u32 value}. Writes the hypervisor keeps
 * for itself (BARs, ROM, read-only registers) are ignored, as a read-only register would.
 */
function physdevOp(xen: XenHypervisor, dom: Domain, [cmd, arg]: Args): number {
  if (cmd !== PhysdevOp.pci_config_read && cmd !== PhysdevOp.pci_config_write) return -Errno.ENOSYS;
  const pci = dom.grants.find((g) => g.pci !== undefined)?.pci;
  if (pci === undefined) return -Errno.EPERM;
  // GUEST-CONTROLLED: offset, size and value.
  const offset = xen.readGuest32(dom, arg);
  const size = xen.readGuest32(dom, arg + 4);
  const value = xen.readGuest32(dom, arg + 8);
  if (offset === undefined || size === undefined || value === undefined) return -Errno.EFAULT;
  if ((size !== 1 && size !== 2 && size !== 4) || offset >= 256 || offset % size !== 0)
    return -Errno.EINVAL;
  if (cmd === PhysdevOp.pci_config_read) {
    return xen.writeGuest32(dom, arg + 8, pci.read(offset, size)) ? 0 : -Errno.EFAULT;
  }
  const w = allowedConfigWrite(offset, size, value);
  if (w !== undefined) pci.write(w.offset, w.size, w.value);
  return 0;
}
