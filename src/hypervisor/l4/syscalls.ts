/**
 * The system calls (PI api/v4/*.cc; shared/reference/l4.md "L4 X.2 system calls"), once for both
 * callers: `systemCall` takes an x86 thread's registers (the table in README.md), the functions
 * below do the work and return what the caller gets back; api.ts calls them for TypeScript
 * threads. Every argument is guest-controlled: a bad one is an error code, never a throw.
 * ThreadControl, SpaceControl, ProcessorControl and MemoryControl need a privileged space (the
 * root task's: VMs reach them through the resource monitor). Costs beyond the trap: Unmap 100 per
 * page-table entry changed (mapdb.ts), Ipc as ipc.ts says.
 */
import {
  ANYLOCALTHREAD,
  ANYTHREAD,
  API_VERSION,
  decodeFpage,
  decodeTime,
  Exregs,
  ExregsState,
  IpcError,
  isLocalId,
  KERNEL_ID,
  KIP_VIRT,
  L4Error,
  NILPAGE,
  NILTHREAD,
  ROOT_ID,
  SIGMA0_ID,
  Syscall,
  SYSCALL_NAMES,
  THREAD_ID_SYSTEM_BASE,
  THREAD_ID_USER_BASE,
  ThreadState,
  UNMAP_FLUSH,
  USER_LIMIT,
  Utcb,
  UTCB_AREA,
  UTCB_SIZE,
} from './abi.ts';
import { readMessage } from './ipc.ts';
import { USER_EFLAGS, type L4Kernel } from './L4.ts';
import { MR, Thread, type Message } from './thread.ts';

const EAX = 0;
const ECX = 1;
const EDX = 2;
const EBX = 3;
const ESP = 4;
const EBP = 5;
const ESI = 6;
const EDI = 7;

/** An x86 thread's INT 0x30–0x3B (or `lock; nop`): arguments and results in its registers. */
export function systemCall(k: L4Kernel, t: Thread, vector: number): void {
  const r = t.ctx.regs;
  const name = SYSCALL_NAMES.get(vector)!;
  const utcb = k.utcbOf(t);
  const error = (code: number): void => utcb?.set(Utcb.errorCode, code);
  switch (vector) {
    case Syscall.ipc:
    case Syscall.lipc: {
      k.counters.syscalls[name]++;
      const message = utcb === undefined ? undefined : readMessage((off) => utcb.get(off));
      startIpc(k, t, r[EAX], r[EDX], r[ECX], message, undefined);
      return;
    }
    case Syscall.unmap: {
      const control = r[EAX];
      const mrs: number[] = [];
      for (let i = 0; i <= (control & 0x3f); i++) mrs.push(utcb?.get(MR(i)) ?? 0);
      const out = unmap(k, t, control, mrs);
      out.forEach((v, i) => utcb?.set(MR(i), v));
      return;
    }
    case Syscall.exchangeRegisters: {
      k.counters.syscalls.exchangeRegisters++;
      const out = exchangeRegisters(k, t, {
        dest: r[EAX],
        control: r[ECX],
        sp: r[EDX],
        ip: r[ESI],
        flags: r[EDI],
        userHandle: r[EBX],
        pager: r[EBP],
      });
      if (out.error !== 0) error(out.error);
      r[EAX] = out.result;
      r[ECX] = out.control;
      r[EDX] = out.sp;
      r[ESI] = out.ip;
      r[EDI] = out.flags;
      r[EBX] = out.userHandle;
      r[EBP] = out.pager;
      return;
    }
    case Syscall.threadControl: {
      k.counters.syscalls.threadControl++;
      const e = threadControl(k, t, r[EAX], r[ESI], r[EDX], r[ECX], r[EDI]);
      if (e !== 0) error(e);
      r[EAX] = e === 0 ? 1 : 0;
      return;
    }
    case Syscall.spaceControl: {
      k.counters.syscalls.spaceControl++;
      const e = spaceControl(k, t, r[EAX], r[ECX], r[EDX], r[ESI], r[EDI]);
      if (e !== 0) error(e);
      r[EAX] = e === 0 ? 1 : 0;
      r[ECX] = 0;
      return;
    }
    case Syscall.schedule: {
      k.counters.syscalls.schedule++;
      const out = schedule(k, t, r[EAX], r[EDX], r[ESI], r[ECX], r[EDI]);
      if (out.error !== 0) error(out.error);
      r[EAX] = out.result;
      r[EDX] = out.timeControl;
      return;
    }
    case Syscall.threadSwitch:
      k.counters.syscalls.threadSwitch++;
      threadSwitch(k, t, r[EAX]);
      return;
    case Syscall.systemClock: {
      k.counters.syscalls.systemClock++;
      const us = systemClock(k);
      r[EAX] = us % 2 ** 32;
      r[EDX] = Math.floor(us / 2 ** 32);
      return;
    }
    case Syscall.processorControl:
    case Syscall.memoryControl: {
      k.counters.syscalls[name]++;
      const ok = t.space?.privileged === true;
      if (!ok) error(L4Error.noPrivilege);
      r[EAX] = ok ? 1 : 0;
      return;
    }
    case Syscall.kernelInterface: {
      k.counters.syscalls.kernelInterface++;
      const ki = kernelInterface();
      r[EAX] = ki.kip;
      r[ECX] = ki.apiVersion;
      r[EDX] = ki.apiFlags;
      r[ESI] = ki.kernelId;
      return;
    }
  }
}

/** A global ID for a specifier given as a local one; the special IDs stay as they are. */
function resolve(k: L4Kernel, t: Thread, id: number): number {
  id >>>= 0;
  if (id === NILTHREAD || id === ANYTHREAD || id === ANYLOCALTHREAD) return id;
  return isLocalId(id) ? (k.lookup(id, t)?.tid ?? id) : id;
}

/** Ipc and Lipc: the send phase to `to` with `message`, then the receive phase from `from`. */
export function startIpc(
  k: L4Kernel,
  t: Thread,
  to: number,
  from: number,
  timeoutsWord: number,
  message: Message | undefined,
  receiveUntil: number | undefined,
): void {
  const op = {
    kind: 'call' as const,
    phase: 'send' as const,
    to: resolve(k, t, to),
    from: resolve(k, t, from),
    timeouts: timeoutsWord >>> 0,
    receiveUntil,
    message,
  };
  if (op.to !== NILTHREAD && message === undefined) {
    // GUEST-CONTROLLED: MR0 said more than 63 words follow.
    t.ipc = op;
    k.ipc.fail(t, IpcError.overflow, false);
    return;
  }
  k.ipc.begin(t, op);
}

/**
 * Unmap: fpages in MR0..MRk (k = control bits 0–5), flush with bit 6. Returns the fpages with
 * their status bits (referenced 4, written 2) in place of the rights.
 */
export function unmap(k: L4Kernel, t: Thread, control: number, fpages: number[]): number[] {
  const flush = (control & UNMAP_FLUSH) !== 0;
  k.counters.syscalls[flush ? 'flush' : 'unmap']++;
  const space = t.space;
  return fpages.map((raw) => {
    if (space === undefined) return (raw & ~7) >>> 0;
    // GUEST-CONTROLLED: any fpage; the kernel's area is never in the database.
    const page = decodeFpage(raw);
    if (page.base >= USER_LIMIT) return (raw & ~7) >>> 0;
    const status = k.mdb.unmapFpage(space, page, flush);
    return ((raw & ~7) | status) >>> 0;
  });
}

export interface ExregsArgs {
  dest: number;
  control: number;
  sp: number;
  ip: number;
  flags: number;
  userHandle: number;
  pager: number;
}

export interface ExregsResult {
  /** The destination's global ID, NILTHREAD on error. */
  result: number;
  /** Its old state (ExregsState bits). */
  control: number;
  sp: number;
  ip: number;
  flags: number;
  userHandle: number;
  pager: number;
  error: number;
}

/**
 * ExchangeRegisters: reads and replaces the user state of a thread in the caller's space (X.2:
 * the same address space), optionally aborting its IPC and halting or resuming it.
 */
export function exchangeRegisters(k: L4Kernel, t: Thread, a: ExregsArgs): ExregsResult {
  const fail: ExregsResult = {
    result: NILTHREAD,
    control: 0,
    sp: 0,
    ip: 0,
    flags: 0,
    userHandle: 0,
    pager: 0,
    error: L4Error.invalidThread,
  };
  const d = k.lookup(a.dest, t);
  if (d === undefined || d.kind === 'irq' || d.space === undefined) return fail;
  const utcb = k.utcbOf(d);
  if (d.space !== t.space) {
    // X.2: the caller's own space only; with pagerexregs also the space of dest's pager.
    const pager = k.pagerExregs ? k.lookup(utcb?.get(Utcb.pager) ?? NILTHREAD, d) : undefined;
    if (pager === undefined || pager.space !== t.space) return fail;
  }
  const old: ExregsResult = {
    result: d.tid,
    control:
      (d.halted ? ExregsState.halted : 0) |
      (d.state === 'receiving' ? ExregsState.receiving : 0) |
      (d.state === 'sending' ? ExregsState.sending : 0),
    sp: d.ctx.regs[ESP],
    ip: d.ctx.eip,
    flags: d.ctx.eflags,
    userHandle: utcb?.get(Utcb.userHandle) ?? 0,
    pager: utcb?.get(Utcb.pager) ?? 0,
    error: 0,
  };
  const c = a.control >>> 0;
  if ((c & (Exregs.abortSend | Exregs.abortReceive)) !== 0)
    k.ipc.abort(d, (c & Exregs.abortSend) !== 0, (c & Exregs.abortReceive) !== 0);
  if ((c & Exregs.sp) !== 0) d.ctx.regs[ESP] = a.sp >>> 0;
  if ((c & Exregs.ip) !== 0) d.ctx.eip = a.ip >>> 0;
  if ((c & Exregs.flags) !== 0)
    d.ctx.eflags = ((d.ctx.eflags & ~USER_EFLAGS) | (a.flags & USER_EFLAGS)) >>> 0;
  if ((c & Exregs.userHandle) !== 0) utcb?.set(Utcb.userHandle, a.userHandle);
  if ((c & Exregs.pager) !== 0) utcb?.set(Utcb.pager, a.pager);
  if ((c & Exregs.haltValid) !== 0) {
    if ((c & Exregs.halt) !== 0) {
      d.halted = true;
      k.unqueue(d);
    } else if (d.halted) {
      d.halted = false;
      if (d.state === 'ready') k.makeReady(d);
    }
  }
  return old;
}

/** The UTCB location a new thread asks for is in its space's area, aligned and free. */
function utcbError(k: L4Kernel, space: Thread['space'], utcb: number, self?: Thread): number {
  if (space === undefined || space.utcbArea === undefined) return L4Error.utcbArea;
  const area = space.utcbArea;
  if (utcb < area.base || utcb + UTCB_SIZE > area.base + area.size) return L4Error.utcbArea;
  if ((utcb - UTCB_AREA) % UTCB_SIZE !== 0) return L4Error.utcbArea;
  for (const o of k.threads.values())
    if (o !== self && o.space === space && o.utcbAddress === utcb) return L4Error.utcbArea;
  return 0;
}

/**
 * ThreadControl (privileged): creates, modifies or deletes (space = nil) a thread; dest = space
 * makes a new space. A pager on a thread with a UTCB activates it: it waits for its start message
 * (MR1 IP, MR2 SP) from the pager. On an interrupt thread: pager = a thread associates it, pager
 * = the interrupt thread itself dissociates it. Returns 0 or the error code.
 */
export function threadControl(
  k: L4Kernel,
  t: Thread,
  dest: number,
  spaceSpec: number,
  scheduler: number,
  pager: number,
  utcbLocation: number,
): number {
  if (t.space?.privileged !== true) return L4Error.noPrivilege;
  dest >>>= 0;
  utcbLocation >>>= 0;
  if (dest === NILTHREAD || dest === ANYTHREAD || isLocalId(dest)) return L4Error.invalidThread;
  const number = dest >>> 14;
  if (number < THREAD_ID_SYSTEM_BASE) {
    const it = k.irqThread(number);
    if (it === undefined || it.tid !== dest || spaceSpec >>> 0 === NILTHREAD)
      return L4Error.invalidThread;
    if (pager >>> 0 === dest) k.interrupts.dissociate(it);
    else {
      const handler = k.lookup(pager, t);
      if (handler === undefined || handler.kind === 'irq') return L4Error.invalidThread;
      k.interrupts.associate(it, handler.tid);
    }
    return 0;
  }
  if (number < THREAD_ID_USER_BASE || dest === SIGMA0_ID || dest === ROOT_ID)
    return L4Error.invalidThread;
  if (number === SIGMA0_ID >>> 14 || number === ROOT_ID >>> 14) return L4Error.invalidThread;
  const existing = k.threads.get(number);
  if (spaceSpec >>> 0 === NILTHREAD) {
    if (existing === undefined || existing.tid !== dest) return L4Error.invalidThread;
    k.deleteThread(existing);
    return 0;
  }
  const sched = scheduler >>> 0 === NILTHREAD ? undefined : k.lookup(scheduler, t);
  if (scheduler >>> 0 !== NILTHREAD && sched === undefined) return L4Error.invalidScheduler;
  const pagerId = pager >>> 0 === NILTHREAD ? NILTHREAD : (k.lookup(pager, t)?.tid ?? pager >>> 0);
  if (existing === undefined) {
    if ((dest & 0x3f) === 0) return L4Error.invalidThread;
    let space: Thread['space'];
    if (spaceSpec >>> 0 !== dest) {
      const inSpace = k.lookup(spaceSpec, t);
      if (inSpace === undefined || inSpace.space === undefined || inSpace.space.physical)
        return L4Error.invalidSpace;
      space = inSpace.space;
      if (utcbLocation !== 0xffffffff) {
        const e = utcbError(k, space, utcbLocation);
        if (e !== 0) return e;
      }
    } else if (utcbLocation !== 0xffffffff) {
      return L4Error.utcbArea; // a new space has no UTCB area until SpaceControl
    }
    if (sched === undefined) return L4Error.invalidScheduler;
    if (space === undefined) {
      space = k.newSpace(false, false, t.space.vm);
      if (space === undefined) return L4Error.noMem;
    }
    const nt = new Thread(dest, 'x86', space, k.defaultTimeslice, sched.tid);
    k.addThread(nt);
    if (utcbLocation !== 0xffffffff && !k.placeUtcb(nt, utcbLocation)) {
      k.deleteThread(nt);
      return L4Error.noMem;
    }
    if (pagerId !== NILTHREAD && nt.utcbAddress >= 0) k.activateThread(nt, pagerId);
    return 0;
  }
  if (existing.tid !== dest || existing.kind === 'irq') return L4Error.invalidThread;
  const inSpace = k.lookup(spaceSpec, t);
  if (inSpace === undefined || inSpace.space !== existing.space) return L4Error.invalidSpace;
  if (utcbLocation !== 0xffffffff && existing.kind === 'x86') {
    if (existing.utcbAddress >= 0 && existing.utcbAddress !== utcbLocation) return L4Error.utcbArea;
    if (existing.utcbAddress < 0) {
      const e = utcbError(k, existing.space, utcbLocation, existing);
      if (e !== 0) return e;
      if (!k.placeUtcb(existing, utcbLocation)) return L4Error.noMem;
    }
  }
  if (sched !== undefined) existing.scheduler = sched.tid;
  if (pagerId !== NILTHREAD) {
    if (
      existing.kind === 'x86' &&
      existing.state === 'inactive' &&
      existing.ipc === undefined &&
      existing.utcbAddress >= 0
    )
      k.activateThread(existing, pagerId);
    else k.utcbOf(existing)?.set(Utcb.pager, pagerId);
  }
  return 0;
}

/**
 * SpaceControl (privileged): sets a new space's KIP area (the KIP's own page, the only place it
 * can be here) and UTCB area (within the fixed UTCB region) before its first thread gets a UTCB.
 * The redirector is not modelled. Returns 0 or the error code.
 */
export function spaceControl(
  k: L4Kernel,
  t: Thread,
  spaceSpec: number,
  control: number,
  kipArea: number,
  utcbArea: number,
  redirector: number,
): number {
  void control;
  void redirector;
  if (t.space?.privileged !== true) return L4Error.noPrivilege;
  const inSpace = k.lookup(spaceSpec, t);
  const space = inSpace?.space;
  if (inSpace === undefined || inSpace.kind === 'irq' || space === undefined || space.physical)
    return L4Error.invalidSpace;
  if (space.initialized) return 0;
  const kip = decodeFpage(kipArea);
  if (kipArea >>> 0 !== NILPAGE && (kip.base !== KIP_VIRT || kip.size !== 4096))
    return L4Error.kipArea;
  const area = decodeFpage(utcbArea);
  if (area.size < 4096 || area.base < UTCB_AREA) return L4Error.utcbArea;
  space.kipArea = { base: KIP_VIRT, size: 4096, rights: 0 };
  space.utcbArea = area;
  return 0;
}

/**
 * Schedule: the caller must be the thread's scheduler (or privileged). prio (not above the
 * caller's), the time slice (TimeControl's upper half; the total quantum is kept, not enforced);
 * ~0 leaves a value as it is. Returns the thread's state, 0 on error, and the old TimeControl.
 */
export function schedule(
  k: L4Kernel,
  t: Thread,
  dest: number,
  timeControl: number,
  processorControl: number,
  prio: number,
  preemptionControl: number,
): { result: number; timeControl: number; error: number } {
  void preemptionControl;
  const d = k.lookup(dest, t);
  if (d === undefined || d.kind === 'irq')
    return { result: 0, timeControl: 0, error: L4Error.invalidThread };
  if (d.scheduler !== t.tid && t.space?.privileged !== true)
    return { result: 0, timeControl: 0, error: L4Error.noPrivilege };
  prio >>>= 0;
  if (prio !== 0xffffffff && (prio > 255 || prio > t.priority))
    return { result: 0, timeControl: 0, error: L4Error.invalidParam };
  processorControl >>>= 0;
  if (processorControl !== 0xffffffff && processorControl !== 0)
    return { result: 0, timeControl: 0, error: L4Error.invalidParam };
  const old = d.timeControl;
  if (prio !== 0xffffffff && prio !== d.priority) {
    const queued = d.queued;
    k.unqueue(d);
    d.priority = prio;
    if (queued) k.makeReady(d);
  }
  timeControl >>>= 0;
  if (timeControl !== 0xffffffff) {
    const slice = decodeTime(timeControl >>> 16);
    if (slice !== 'zero') {
      d.timeslice = slice === 'never' ? 2 ** 52 : Math.max(1, k.microsToCycles(slice));
      d.remaining = Math.min(d.remaining, d.timeslice);
    }
    d.timeControl = timeControl;
  }
  return { result: threadState(d), timeControl: old, error: 0 };
}

function threadState(d: Thread): number {
  if (d.state === 'inactive') return ThreadState.inactive;
  if (d.state === 'sending') return ThreadState.pendingSend;
  if (d.state === 'receiving') return ThreadState.waitingToReceive;
  return ThreadState.running;
}

/** ThreadSwitch: nil yields (to the end of the queue); a ready thread goes to the head of its. */
export function threadSwitch(k: L4Kernel, t: Thread, dest: number): void {
  if (dest >>> 0 !== NILTHREAD) {
    const d = k.lookup(dest, t);
    if (d !== undefined && d.runnable && d.queued) {
      k.unqueue(d);
      k.makeReady(d, true);
      k.handoff = d;
    }
  }
  if (t === k.current) k.yielding = true;
}

/** SystemClock: microseconds since the machine started, from the simulated clock. */
export function systemClock(k: L4Kernel): number {
  return Math.floor((k.now() * 1e6) / k.machine.costModel.hz);
}

export function kernelInterface(): {
  kip: number;
  apiVersion: number;
  apiFlags: number;
  kernelId: number;
} {
  return { kip: KIP_VIRT, apiVersion: API_VERSION, apiFlags: 0, kernelId: KERNEL_ID };
}
