/**
 * Several domains on the machine's one CPU (issue "reuse": a driver VM and its clients). A
 * domain that is not running keeps its virtual CPU here (`VcpuContext`); the one that runs has it
 * in the CPU. The policy is round robin with a time slice on the simulated clock, as Xen's
 * schedulers share a CPU among runnable vCPUs, plus the wake-up boost of Xen's credit scheduler
 * (a vCPU woken by an event preempts one that is running, so I/O between domains is not held up
 * for a whole slice): blocked domains never run, and with every domain blocked the CPU idles
 * until an event wakes one.
 *
 * When the switch happens matters. A domain blocks, yields or ends inside a hypercall, and the
 * in-place VMM makes its hypercalls from TypeScript handlers that still write the CPU's registers
 * after the call returns; so a switch is never made inside a hypercall but asked for as an event
 * at the current cycle, which the machine fires between the CPU's run slices (Machine.run), where
 * the CPU is at an instruction boundary and no handler runs. Timer events and the slice's end are
 * such events already and switch at once.
 *
 * With one domain nothing here schedules an event, so a single-domain run is exactly what it was
 * before there was a scheduler (the same cycles and counters).
 *
 * Work a driver domain does for a client is charged to the client (`workFor`, `account`): the
 * share the scheduler weighs in its pick ("least CPU lately") counts the driver domain's busy
 * cycles to the domains whose pages it worked with, as Gupta, Cherkasova, Gardner and Vahdat's
 * SEDF-DC did for Xen's driver domains ("Enforcing Performance Isolation Across Virtual
 * Machines in Xen", Middleware 2006: XenMon counts the page exchanges between the driver domain
 * and each guest, and the driver domain's CPU is charged to the guests in proportion). So a
 * client that floods the network pays for the driver domain's work for it out of its own share,
 * and the driver domain can run first (`pick`) without that costing its other clients.
 */
import type { CounterTree } from '../../machine/counters.ts';
import type { Timer, TimerState } from '../../machine/device.ts';
import {
  arrayOf,
  bool,
  nullable,
  num,
  shape,
  StateError,
  timer,
  type Check,
} from '../../machine/state.ts';
import type { Cpu } from '../../x86/Cpu.ts';
import { restoreSegment, saveSegment, type SegmentState } from '../../x86/system/state.ts';
import type { Domain } from './domain.ts';
import type { XenHypervisor } from './Xen.ts';

/**
 * What a domain's virtual CPU holds while another domain runs. The GDT, IDT (never read: the
 * monitor takes every event), LDT and TR are the hypervisor's and the same for every domain, so
 * they stay in the CPU; CR3 is the domain's base pointer.
 */
export interface VcpuContext {
  regs: number[];
  eip: number;
  eflags: number;
  cpl: number;
  segs: SegmentState[];
  cr2: number;
  cr3: number;
  interruptShadow: boolean;
}

const SEGMENT: Check = shape<SegmentState>({
  selector: num,
  base: num,
  limit: num,
  attributes: num,
  usable: bool,
});

export const VCPU_CONTEXT: Check = shape<VcpuContext>({
  regs: arrayOf(num, 8),
  eip: num,
  eflags: num,
  cpl: num,
  segs: arrayOf(SEGMENT, 6),
  cr2: num,
  cr3: num,
  interruptShadow: bool,
});

export function saveVcpu(cpu: Cpu): VcpuContext {
  return {
    regs: Array.from(cpu.regs, (v) => v >>> 0),
    eip: cpu.eip >>> 0,
    eflags: cpu.getEflags() >>> 0,
    cpl: cpu.cpl,
    segs: cpu.segs.map(saveSegment),
    cr2: cpu.cr2 >>> 0,
    cr3: cpu.cr3,
    interruptShadow: cpu.interruptShadow,
  };
}

/** The domain's virtual CPU into the CPU; CR3 as a MOV to CR3 (the TLB is flushed). */
export function loadVcpu(cpu: Cpu, c: VcpuContext): void {
  c.regs.forEach((v, k) => (cpu.regs[k] = v | 0));
  cpu.eip = c.eip;
  cpu.setEflags(c.eflags);
  c.segs.forEach((s, k) => restoreSegment(cpu.segs[k], s));
  cpu.setCpl(c.cpl);
  cpu.cr2 = c.cr2;
  cpu.cr3 = c.cr3;
  cpu.interruptShadow = c.interruptShadow;
}

/** The scheduler's part of a snapshot: its pending events and the domain it boosts. */
export interface SchedulerState {
  switchAt: TimerState | null;
  sliceEnd: TimerState | null;
  boosted: number | null;
  /** The domain a boost preempted (it runs next) and the cycles left of its slice. */
  preempted: { id: number; slice: number } | null;
  /** The domain that runs since this cycle, and the idle cycles the CPU had counted then. */
  since: { cycle: number; idle: number };
  switches: number;
  /** Each domain's recent CPU (XenScheduler.recentOf) as of the cycle `at`, by domain id. */
  recent: { id: number; cycles: number; at: number }[];
  /** The running domain's page operations for other domains since `since`, by their id. */
  work: { id: number; ops: number }[];
  /** Busy cycles of other domains charged to each domain so far, by its id. */
  charged: { id: number; cycles: number }[];
  /** The domains that have worked for others (back ends), by id. */
  backEnds: number[];
}

export const SCHEDULER_STATE: Check = shape<SchedulerState>({
  switchAt: nullable(timer),
  sliceEnd: nullable(timer),
  boosted: nullable(num),
  preempted: nullable(shape<{ id: number; slice: number }>({ id: num, slice: num })),
  since: shape<{ cycle: number; idle: number }>({ cycle: num, idle: num }),
  switches: num,
  recent: arrayOf(
    shape<{ id: number; cycles: number; at: number }>({ id: num, cycles: num, at: num }),
  ),
  work: arrayOf(shape<{ id: number; ops: number }>({ id: num, ops: num })),
  charged: arrayOf(shape<{ id: number; cycles: number }>({ id: num, cycles: num })),
  backEnds: arrayOf(num),
});

export class XenScheduler {
  /** A switch asked for at the next instruction boundary. */
  private switchTimer: Timer | undefined;
  private sliceTimer: Timer | undefined;
  /** The domain an event woke, which runs next (the credit scheduler's BOOST). */
  private boosted: Domain | undefined;
  /** The domain a boost took the CPU from, and the slice it had left (it runs next). */
  private preempted: { dom: Domain; slice: number } | undefined;
  private since = { cycle: 0, idle: 0 };
  /** Switches from one domain's virtual CPU to another's. */
  switches = 0;
  /** Each domain's busy cycles, halved every slice that passes, as of a cycle (by id). */
  private readonly recent = new Map<number, { cycles: number; at: number }>();
  /** The running domain's page operations for others since it last ran in, by their id. */
  private readonly work = new Map<number, number>();
  /** The domains that have worked for others (back ends: a driver domain), by id. */
  private readonly backEnds = new Set<number>();
  /** Busy cycles of other domains (driver domains) charged to each domain, by its id. */
  private readonly charged = new Map<number, number>();

  constructor(
    private readonly xen: XenHypervisor,
    /** Cycles a domain runs before the next runnable one gets the CPU (10 ms of simulated time). */
    readonly sliceCycles: number,
  ) {}

  private get cpu(): Cpu {
    return this.xen.cpu;
  }

  /** The current domain blocked, yielded or ended: another one may run. */
  relinquish(): void {
    if (this.xen.domains.length > 1) this.requestSwitch();
  }

  /** An event woke `dom`, which is not the current domain: it runs as soon as it may. */
  woke(dom: Domain): void {
    this.boosted = dom;
    this.requestSwitch();
  }

  private requestSwitch(): void {
    if (this.switchTimer !== undefined) return;
    const clock = this.xen.machine.clock;
    this.switchTimer = clock.at(clock.now(), () => this.switchFired(), 'xen.schedule');
  }

  private switchFired(): void {
    this.switchTimer = undefined;
    this.schedule();
  }

  private sliceFired(): void {
    this.sliceTimer = undefined;
    this.schedule();
  }

  /**
   * Picks the domain to run, in this order: the boosted one if it can run; a back end that can
   * run (a domain that works for others: a driver domain, `workFor`); the domain a boost took
   * the CPU from, if it can still run (`preempted`), with what was left of its slice; else, of
   * the other runnable domains, the one that has had the least CPU lately (`recentOf`; ties in
   * round-robin order after the current); the current itself only if no other can run.
   * Undefined: all are blocked or ended.
   *
   * Least recent CPU first is what keeps a domain that spins from holding up one that was
   * preempted while it had work: Xen's credit scheduler runs vCPUs that are under their share
   * (UNDER) before those over it (OVER), Linux's CFS the task with the least virtual runtime.
   * The current domain is never preferred over another runnable one, so a domain that has had
   * little CPU cannot keep it: the slice still ends and the others run.
   *
   * A back end first, as L4Ka's resource monitor gave its device-driver VMs a higher priority
   * (shared/reference/driver-reuse.md) and Xen's toolstacks give driver domains a larger weight:
   * its clients' frames wait while it does. What it does is charged to the clients it serves
   * (`account`), so running it first costs each client its own share and no other's; a back
   * end that keeps running still loses the CPU when its slice ends.
   *
   * Then the CPU goes back to the domain a boost preempted, as CFS's "last buddy" returns it to
   * the task a wake-up preempted (kernel/sched/fair.c, pick_next_entity: "try to return the CPU
   * to a preempted task"): a boost is for the woken domain's short piece of work (the driver
   * domain answering an interrupt or an event), not a turn taken from the one it interrupted.
   * Without it, a client that floods the network had the driver domain boosted for its frames
   * again and again while the guest ran, and each time the driver domain blocked the pick could
   * fall on the flooder, which then kept the CPU while the guest's receive buffers ran out
   * (README, "A flooding client"). The preempted domain gets only what was left of its slice,
   * so the return gives it no more CPU than it had.
   *
   * With two domains this is the round robin it always was (one other to choose).
   */
  private pick(): { dom: Domain; slice: number } | undefined {
    const xen = this.xen;
    const current = xen.current;
    const boosted = this.boosted;
    this.boosted = undefined;
    if (boosted !== undefined && boosted.state === 'running') {
      if (current !== undefined && current !== boosted && current.state === 'running') {
        const end = this.sliceTimer?.cycle;
        const left = end === undefined ? this.sliceCycles : end - this.cpu.cycles;
        this.preempted = { dom: current, slice: Math.max(0, left) };
      }
      return { dom: boosted, slice: this.sliceCycles };
    }
    const domains = xen.domains;
    const from = current === undefined ? -1 : domains.indexOf(current);
    for (let k = 1; k <= domains.length; k++) {
      const d = domains[(from + k) % domains.length];
      if (d !== current && d.state === 'running' && this.backEnds.has(d.id))
        return { dom: d, slice: this.sliceCycles };
    }
    const preempted = this.preempted;
    this.preempted = undefined;
    if (
      preempted !== undefined &&
      preempted.dom !== current &&
      preempted.dom.state === 'running' &&
      preempted.slice > 0
    )
      return preempted;
    let best: Domain | undefined;
    for (let k = 1; k <= domains.length; k++) {
      const d = domains[(from + k) % domains.length];
      if (d === current || d.state !== 'running') continue;
      if (best === undefined || this.recentOf(d) < this.recentOf(best)) best = d;
    }
    if (best !== undefined) return { dom: best, slice: this.sliceCycles };
    return current?.state === 'running' ? { dom: current, slice: this.sliceCycles } : undefined;
  }

  /** Between instructions: the chosen domain gets the CPU, with a slice if others wait. */
  schedule(): void {
    const xen = this.xen;
    const cpu = this.cpu;
    const next = this.pick();
    if (next === undefined) {
      // Every domain blocked or ended: the CPU idles until an event wakes one.
      cpu.halted = true;
      this.armSlice();
      return;
    }
    if (next.dom !== xen.current) this.contextSwitch(next.dom);
    cpu.halted = false;
    this.armSlice(next.slice);
    xen.deliverUpcall(next.dom);
  }

  /** The domain the CPU runs from now on (also at start of day, before a domain's first run). */
  contextSwitch(to: Domain): void {
    const xen = this.xen;
    const cpu = this.cpu;
    const from = xen.current;
    if (from === to) return;
    // Busy cycles belong to the domain that was current (from power-on, the first one).
    if (from !== undefined) {
      from.context = saveVcpu(cpu);
      this.account(from);
    }
    xen.current = to;
    const table = to.entries ?? cpu.defaultEntries;
    if (cpu.activeEntryTable !== table) cpu.useEntryTable(table);
    // At start of day, the second domain built makes the CPU shared: slices from now on.
    if (from !== undefined && to.context === undefined) this.armSlice();
    if (to.context !== undefined) {
      loadVcpu(cpu, to.context);
      to.context = undefined;
      // A vCPU switch: the base-pointer switch and its MOV to CR3 (cost-model.md, Xen rows).
      cpu.charge(xen.costs.xenBaseSwitch + cpu.costs.movCr3);
      this.switches++;
      xen.updateTime(to);
    }
  }

  /**
   * The running domain did one operation with a page `granter` granted it (a grant map, unmap
   * or copy: grants.ts), that is, work for `granter`; it is a back end from now on (`pick`).
   */
  workFor(granter: Domain): void {
    const current = this.xen.current;
    if (current !== undefined) this.backEnds.add(current.id);
    this.work.set(granter.id, (this.work.get(granter.id) ?? 0) + 1);
  }

  /**
   * Adds the busy cycles of the domain that ran since the last switch. They are its own
   * (`busyCycles`, the figures); in the scheduler's share (`recent`) they go, if it did page
   * operations for other domains meanwhile (a driver domain serving its clients), to those
   * domains, each in proportion to its operations (SEDF-DC's rule, above).
   */
  account(dom: Domain): void {
    const cpu = this.cpu;
    const busy = cpu.cycles - this.since.cycle - (cpu.idleCycles - this.since.idle);
    dom.busyCycles += busy;
    let ops = 0;
    for (const n of this.work.values()) ops += n;
    if (ops === 0) this.addRecent(dom, busy);
    else
      for (const [id, n] of this.work) {
        const to = this.xen.domains[id];
        const part = (busy * n) / ops;
        if (to === undefined || !to.alive) {
          this.addRecent(dom, part);
          continue;
        }
        this.addRecent(to, part);
        this.charged.set(id, (this.charged.get(id) ?? 0) + part);
      }
    this.work.clear();
    this.since = { cycle: cpu.cycles, idle: cpu.idleCycles };
  }

  private addRecent(dom: Domain, cycles: number): void {
    this.recent.set(dom.id, { cycles: this.recentOf(dom) + cycles, at: this.cpu.cycles });
  }

  /**
   * A domain's CPU lately: its busy cycles, each halved for every slice (10 ms) since, as the
   * credit scheduler's accounting forgets all but the last periods; a domain that spins has
   * about a slice's worth whatever it did long ago, one that mostly waits far less.
   */
  private recentOf(dom: Domain): number {
    const r = this.recent.get(dom.id);
    if (r === undefined) return 0;
    return r.cycles * Math.pow(0.5, (this.cpu.cycles - r.at) / this.sliceCycles);
  }

  /** A slice while another domain than the current one is runnable; none otherwise. */
  private armSlice(cycles = this.sliceCycles): void {
    const xen = this.xen;
    this.sliceTimer?.cancel();
    this.sliceTimer = undefined;
    if (xen.domains.filter((d) => d.state === 'running').length < 2) return;
    const clock = xen.machine.clock;
    this.sliceTimer = clock.at(clock.now() + cycles, () => this.sliceFired(), 'xen.slice');
  }

  save(): SchedulerState {
    return {
      switchAt: this.switchTimer === undefined ? null : stateOf(this.switchTimer),
      sliceEnd: this.sliceTimer === undefined ? null : stateOf(this.sliceTimer),
      boosted: this.boosted?.id ?? null,
      preempted:
        this.preempted === undefined
          ? null
          : { id: this.preempted.dom.id, slice: this.preempted.slice },
      since: { ...this.since },
      switches: this.switches,
      recent: [...this.recent].map(([id, r]) => ({ id, ...r })),
      work: [...this.work].map(([id, ops]) => ({ id, ops })),
      charged: [...this.charged].map(([id, cycles]) => ({ id, cycles })),
      backEnds: [...this.backEnds],
    };
  }

  restore(s: SchedulerState, path: string): void {
    SCHEDULER_STATE(s, path);
    const clock = this.xen.machine.clock;
    this.switchTimer?.cancel();
    this.sliceTimer?.cancel();
    this.switchTimer =
      s.switchAt === null
        ? undefined
        : clock.restoreAt(s.switchAt, () => this.switchFired(), 'xen.schedule');
    this.sliceTimer =
      s.sliceEnd === null
        ? undefined
        : clock.restoreAt(s.sliceEnd, () => this.sliceFired(), 'xen.slice');
    if (s.boosted !== null && this.xen.domains[s.boosted] === undefined)
      throw new StateError(`${path}.boosted: no domain ${s.boosted}`);
    this.boosted = s.boosted === null ? undefined : this.xen.domains[s.boosted];
    const preempted = s.preempted === null ? undefined : this.xen.domains[s.preempted.id];
    if (s.preempted !== null && preempted === undefined)
      throw new StateError(`${path}.preempted: no domain ${s.preempted.id}`);
    this.preempted =
      preempted === undefined || s.preempted === null
        ? undefined
        : { dom: preempted, slice: s.preempted.slice };
    this.since = { ...s.since };
    this.switches = s.switches;
    this.recent.clear();
    for (const r of s.recent) this.recent.set(r.id, { cycles: r.cycles, at: r.at });
    this.work.clear();
    for (const w of s.work) this.work.set(w.id, w.ops);
    this.charged.clear();
    for (const c of s.charged) this.charged.set(c.id, c.cycles);
    this.backEnds.clear();
    for (const id of s.backEnds) this.backEnds.add(id);
  }

  /**
   * With several domains: the switches, and each domain's busy cycles so far (the running one's
   * up to now) and hypercalls, so a run can say how the one CPU was shared; and, once a driver
   * domain has worked for others, the busy cycles of it charged to each in the scheduler's
   * share (`chargedCycles`, whole cycles; the running span's once it is accounted).
   */
  stats(): CounterTree | undefined {
    const xen = this.xen;
    if (xen.domains.length < 2) return undefined;
    const cpu = this.cpu;
    const busy: CounterTree = {};
    const hypercalls: CounterTree = {};
    for (const d of xen.domains) {
      const running =
        d === xen.current ? cpu.cycles - this.since.cycle - (cpu.idleCycles - this.since.idle) : 0;
      busy[`dom${d.id}`] = d.busyCycles + running;
      hypercalls[`dom${d.id}`] = d.hypercalls;
    }
    const charged: CounterTree = {};
    for (const [id, cycles] of [...this.charged].sort((a, b) => a[0] - b[0]))
      charged[`dom${id}`] = Math.round(cycles);
    return {
      switches: this.switches,
      busyCycles: busy,
      hypercalls,
      ...(this.charged.size === 0 ? {} : { chargedCycles: charged }),
    };
  }
}

function stateOf(t: Timer): TimerState {
  return { cycle: t.cycle, seq: t.seq };
}
