/**
 * The microkernel in a snapshot (DESIGN.md decision 11): the kernel's frame pool, every space
 * (its page-table frames are machine memory, saved with it), every thread with its state and the
 * IPC it is in, the mapping database, the scheduler's queues, the current thread and its time
 * slice, pending timeouts and the slice's end as clock events (TimerState), the counters, and each
 * TypeScript thread's program state. TypeScript threads are code: a restore finds them again in
 * the kernel built from the same configuration (same construction, then `restore`), by thread ID.
 */
import type { TimerState } from '../../machine/device.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  oneOf,
  shape,
  StateError,
  timer,
  type Check,
} from '../../machine/state.ts';
import type { HypervisorState } from '../Hypervisor.ts';
import type { PortRange } from '../devices.ts';
import type { Fpage } from './abi.ts';
import type { FramePoolState } from './frames.ts';
import type { L4Counters, L4Kernel } from './L4.ts';
import type { SavedNode } from './mapdb.ts';
import { Space } from './space.ts';
import { Thread, type IpcOp, type IpcResult, type ThreadKind } from './thread.ts';

export interface SpaceSaved {
  id: number;
  physical: boolean;
  privileged: boolean;
  vm: number;
  pd: number;
  kernelL1: number;
  /** [slot, page-table frame, present entries] for the slots that have a table. */
  l1: [number, number, number][];
  utcbPages: [number, number][];
  ioBitmap: [number, number] | null;
  ports: PortRange[];
  utcbArea: Fpage | null;
  kipArea: Fpage | null;
  threads: number;
}

export interface ThreadSaved {
  tid: number;
  kind: ThreadKind;
  space: number | null;
  state: Thread['state'];
  halted: boolean;
  queued: boolean;
  ipc:
    | (Omit<IpcOp, 'receiveUntil' | 'message'> & {
        receiveUntil: number | null;
        message: { tag: number; words: number[] } | null;
      })
    | null;
  timer: TimerState | null;
  senders: number[];
  regs: number[];
  eip: number;
  eflags: number;
  priority: number;
  timeslice: number;
  remaining: number;
  timeControl: number;
  scheduler: number;
  utcbAddress: number;
  /** A TypeScript thread's UTCB, 128 words. */
  hostUtcb: number[] | null;
  irq: number;
  handler: number;
  pendingIrq: boolean;
  inService: boolean;
  /** A TypeScript thread's program state (its `save()`). */
  program: unknown;
}

export interface L4State extends HypervisorState {
  kind: 'l4';
  version: 1;
  pool: FramePoolState;
  nextSpaceId: number;
  spaces: SpaceSaved[];
  threads: ThreadSaved[];
  mapping: { nextId: number; nodes: SavedNode[] };
  current: number | null;
  /** [priority, thread IDs in queue order] for the queues that are not empty. */
  ready: [number, number[]][];
  slice: { owner: number | null; start: number; timer: TimerState | null };
  deliveries: { thread: number; result: IpcResult }[];
  counters: L4Counters;
  /** The CPU's bound-entry table in use (a VM's, or the default one). */
  activeEntries: string;
}

const fpageCheck: Check = nullable(shape<Fpage>({ base: num, size: num, rights: num }));

const L4_STATE: Check = checkState<L4State>('l4', 1, {
  kind: oneOf('l4'),
  pool: shape<FramePoolState>({ first: num, count: num, used: arrayOf(num) }),
  nextSpaceId: num,
  spaces: arrayOf(
    shape<SpaceSaved>({
      id: num,
      physical: bool,
      privileged: bool,
      vm: num,
      pd: num,
      kernelL1: num,
      l1: arrayOf(arrayOf(num, 3)),
      utcbPages: arrayOf(arrayOf(num, 2)),
      ioBitmap: nullable(arrayOf(num, 2)),
      ports: arrayOf(shape<PortRange>({ base: num, length: num })),
      utcbArea: fpageCheck,
      kipArea: fpageCheck,
      threads: num,
    }),
  ),
  threads: arrayOf(
    shape<ThreadSaved>({
      tid: num,
      kind: oneOf('x86', 'ts', 'irq'),
      space: nullable(num),
      state: oneOf('inactive', 'ready', 'sending', 'receiving'),
      halted: bool,
      queued: bool,
      ipc: nullable(
        shape<NonNullable<ThreadSaved['ipc']>>({
          kind: oneOf('call', 'pageFault', 'exception', 'start', 'interrupt'),
          phase: oneOf('send', 'receive'),
          to: num,
          from: num,
          timeouts: num,
          receiveUntil: nullable(num),
          message: nullable(
            shape<{ tag: number; words: number[] }>({ tag: num, words: arrayOf(num) }),
          ),
        }),
      ),
      timer: nullable(timer),
      senders: arrayOf(num),
      regs: arrayOf(num, 8),
      eip: num,
      eflags: num,
      priority: num,
      timeslice: num,
      remaining: num,
      timeControl: num,
      scheduler: num,
      utcbAddress: num,
      hostUtcb: nullable(arrayOf(num, 128)),
      irq: num,
      handler: num,
      pendingIrq: bool,
      inService: bool,
      program: () => {},
    }),
  ),
  mapping: shape<{ nextId: number; nodes: SavedNode[] }>({
    nextId: num,
    nodes: arrayOf(arrayOf(num, 6)),
  }),
  current: nullable(num),
  ready: arrayOf((v, path) => {
    if (!Array.isArray(v) || v.length !== 2)
      throw new StateError(`${path}: expected [priority, threads]`);
    num(v[0], `${path}[0]`);
    arrayOf(num)(v[1], `${path}[1]`);
  }),
  slice: shape<L4State['slice']>({ owner: nullable(num), start: num, timer: nullable(timer) }),
  deliveries: arrayOf(
    shape<{ thread: number; result: IpcResult }>({ thread: num, result: () => {} }),
  ),
  counters: shape<Pick<L4Counters, 'syscalls' | 'ipc' | 'pages'>>({
    syscalls: shape<object>({}),
    ipc: shape<object>({}),
    pages: shape<object>({}),
  }),
  activeEntries: (v, path) => {
    if (typeof v !== 'string') throw new StateError(`${path}: expected a table name`);
  },
});

export function saveKernel(k: L4Kernel): L4State {
  k.flushAccounting();
  const spaces = [...k.spaces.values()].sort((a, b) => a.id - b.id);
  const threads = k.allThreads();
  const roots = spaces
    .flatMap((s) => [...s.mappings.values()].filter((n) => n.parent === undefined))
    .sort((a, b) => a.space.id - b.space.id || a.vpn - b.vpn);
  const ready: [number, number[]][] = [];
  k.ready.forEach((q, p) => {
    if (q.length > 0) ready.push([p, q.map((t) => t.tid)]);
  });
  return {
    kind: 'l4',
    version: 1,
    pool: k.pool.save(),
    nextSpaceId: k.nextSpaceId,
    spaces: spaces.map((s) => ({
      id: s.id,
      physical: s.physical,
      privileged: s.privileged,
      vm: s.vm,
      pd: s.pd,
      kernelL1: s.kernelL1,
      l1: [...s.l1.entries()]
        .filter(([, f]) => f >= 0)
        .map(([slot, f]) => [slot, f, s.l1Count[slot]]),
      utcbPages: [...s.utcbPages.entries()].sort((a, b) => a[0] - b[0]),
      ioBitmap: s.ioBitmap === undefined ? null : [...s.ioBitmap],
      ports: s.ports.map((p) => ({ ...p })),
      utcbArea: s.utcbArea === undefined ? null : { ...s.utcbArea },
      kipArea: s.kipArea === undefined ? null : { ...s.kipArea },
      threads: s.threads,
    })),
    threads: threads.map((t) => ({
      tid: t.tid,
      kind: t.kind,
      space: t.space?.id ?? null,
      state: t.state,
      halted: t.halted,
      queued: t.queued,
      ipc:
        t.ipc === undefined
          ? null
          : {
              ...t.ipc,
              receiveUntil: t.ipc.receiveUntil ?? null,
              message:
                t.ipc.message === undefined
                  ? null
                  : { tag: t.ipc.message.tag, words: [...t.ipc.message.words] },
            },
      timer: t.timer === undefined ? null : { cycle: t.timer.cycle, seq: t.timer.seq },
      senders: t.senders.map((s) => s.tid),
      regs: [...t.ctx.regs],
      eip: t.ctx.eip,
      eflags: t.ctx.eflags,
      priority: t.priority,
      timeslice: t.timeslice,
      remaining: t.remaining,
      timeControl: t.timeControl,
      scheduler: t.scheduler,
      utcbAddress: t.utcbAddress,
      hostUtcb: t.hostUtcb === undefined ? null : [...t.hostUtcb.words],
      irq: t.irq,
      handler: t.handler,
      pendingIrq: t.pendingIrq,
      inService: t.inService,
      program: t.program?.save?.() ?? null,
    })),
    mapping: k.mdb.save(roots),
    current: k.current?.tid ?? null,
    ready,
    slice: {
      owner: k.sliceOwner?.tid ?? null,
      start: k.sliceStart,
      timer:
        k.sliceTimer === undefined ? null : { cycle: k.sliceTimer.cycle, seq: k.sliceTimer.seq },
    },
    deliveries: k.deliveries.map((d) => ({
      thread: d.thread.tid,
      result: structuredClone(d.result),
    })),
    counters: structuredClone(k.counters),
    activeEntries: k.cpu.activeEntryTable.name,
  };
}

/**
 * Puts a saved kernel into one built from the same configuration, after the machine (RAM with
 * the page tables, the CPU, the clock) was restored. A StateError naming the field if it does not
 * fit; the kernel is unusable after a failure part-way.
 */
export function restoreKernel(k: L4Kernel, saved: HypervisorState, path: string): void {
  L4_STATE(saved, path);
  const s = saved as L4State;
  const fail = (why: string): never => {
    throw new StateError(`${path}.${why}`);
  };
  k.pool.restore(s.pool, `${path}.pool`);

  // TypeScript threads are the configuration's; everything else is rebuilt from the snapshot.
  const programs = new Map<number, Thread>();
  for (const t of k.threads.values()) if (t.kind === 'ts') programs.set(t.tid, t);
  for (const t of s.threads)
    if (t.kind === 'ts' && !programs.has(t.tid))
      fail(`threads: TypeScript thread 0x${t.tid.toString(16)} is not made by this configuration`);

  for (const t of k.threads.values()) k.ipc.disarm(t);
  k.sliceTimer = undefined;
  k.spaces.clear();
  for (const ss of s.spaces) {
    const space = new Space(ss.id, ss.physical, ss.privileged, ss.vm);
    space.pd = ss.pd;
    space.kernelL1 = ss.kernelL1;
    for (const [slot, frame, count] of ss.l1) {
      if (slot < 0 || slot >= space.l1.length) fail(`spaces: slot ${slot}`);
      space.l1[slot] = frame;
      space.l1Count[slot] = count;
    }
    for (const [page, frame] of ss.utcbPages) space.utcbPages.set(page, frame);
    space.ioBitmap = ss.ioBitmap === null ? undefined : [ss.ioBitmap[0], ss.ioBitmap[1]];
    space.ports.push(...ss.ports.map((p) => ({ ...p })));
    space.utcbArea = ss.utcbArea ?? undefined;
    space.kipArea = ss.kipArea ?? undefined;
    space.threads = ss.threads;
    k.spaces.set(space.id, space);
  }
  if (!k.spaces.has(k.sigma0Space.id) || !k.spaces.has(k.rootSpace.id))
    fail("spaces: the roots' spaces are missing");
  k.nextSpaceId = s.nextSpaceId;

  k.threads.clear();
  const byTid = new Map<number, Thread>();
  for (const st of s.threads) {
    const space = st.space === null ? undefined : k.spaces.get(st.space);
    if (st.space !== null && space === undefined)
      fail(`threads: thread 0x${st.tid.toString(16)}'s space ${st.space}`);
    let t = programs.get(st.tid);
    if (t !== undefined) t.space = space;
    else {
      if (st.kind === 'ts') fail('threads: kind');
      t = new Thread(st.tid, st.kind, space, st.timeslice, st.scheduler);
    }
    t.state = st.state;
    t.halted = st.halted;
    t.queued = false;
    t.ipc =
      st.ipc === null
        ? undefined
        : {
            ...st.ipc,
            receiveUntil: st.ipc.receiveUntil ?? undefined,
            message: st.ipc.message ?? undefined,
          };
    t.senders.length = 0;
    t.ctx.regs = [...st.regs];
    t.ctx.eip = st.eip;
    t.ctx.eflags = st.eflags;
    t.priority = st.priority;
    t.timeslice = st.timeslice;
    t.remaining = st.remaining;
    t.timeControl = st.timeControl;
    t.scheduler = st.scheduler;
    t.utcbAddress = st.utcbAddress;
    if (st.hostUtcb !== null) t.hostUtcb?.words.set(st.hostUtcb);
    t.irq = st.irq;
    t.handler = st.handler;
    t.pendingIrq = st.pendingIrq;
    t.inService = st.inService;
    t.inCall = false;
    t.callResult = undefined;
    k.threads.set(t.number, t);
    byTid.set(t.tid, t);
  }
  const get = (tid: number, what: string): Thread =>
    byTid.get(tid) ?? fail(`${what}: no thread 0x${tid.toString(16)}`);
  for (const st of s.threads) {
    const t = byTid.get(st.tid)!;
    for (const sender of st.senders) t.senders.push(get(sender, 'threads.senders'));
    if (st.timer !== null) {
      t.timer = k.clock.restoreAt(
        st.timer,
        () => k.timerEntry(() => k.ipc.timedOut(t)),
        'l4.timeout',
      );
    }
    if (t.program?.restore !== undefined) t.program.restore(st.program, `${path}.threads.program`);
  }
  for (const q of k.ready) q.length = 0;
  for (const [p, tids] of s.ready) {
    if (p < 0 || p > 255) fail(`ready: priority ${p}`);
    for (const tid of tids) {
      const t = get(tid, 'ready');
      k.ready[p].push(t);
      t.queued = true;
    }
  }
  k.current = s.current === null ? undefined : get(s.current, 'current');
  k.handoff = undefined;
  k.sliceOwner = s.slice.owner === null ? undefined : get(s.slice.owner, 'slice.owner');
  k.sliceStart = s.slice.start;
  k.sliceTimer =
    s.slice.timer === null
      ? undefined
      : k.clock.restoreAt(s.slice.timer, () => k.timerEntry(() => k.sliceEnded()), 'l4.timeslice');
  k.deliveries.length = 0;
  for (const d of s.deliveries)
    k.deliveries.push({ thread: get(d.thread, 'deliveries'), result: structuredClone(d.result) });
  for (const sp of k.spaces.values()) sp.mappings.clear();
  k.mdb.restore(s.mapping, k.spaces, (why) => fail(`mapping: ${why}`));
  // In place: the mapping database and the DMA confinement hold the counter objects.
  const savedCounters = structuredClone(s.counters) as unknown as Record<string, unknown>;
  const counters = k.counters as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(savedCounters)) {
    const into = counters[key];
    if (typeof into === 'object' && into !== null && typeof value === 'object' && value !== null)
      Object.assign(into, value);
    else counters[key] = value;
  }
  k.resetAccounting();
  const table =
    k.cpu.entryTable(s.activeEntries) ??
    fail(`activeEntries: no bound-entry table '${s.activeEntries}'`);
  if (k.cpu.activeEntryTable !== table) k.cpu.useEntryTable(table);
}
