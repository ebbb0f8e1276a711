/**
 * A domain: the machine frames it owns, its pseudo-physical map, and the virtual-CPU state the
 * hypervisor keeps for it (trap table, kernel stack, callbacks, event channels, timer). All of it
 * is TypeScript state outside guest memory; only shared info and the console ring are pages the
 * guest shares with the hypervisor.
 */
import type { Timer, TimerState } from '../../machine/device.ts';
import type { EntryTable } from '../../x86/entries.ts';
import {
  arrayOf,
  bool,
  nullable,
  num,
  oneOf,
  shape,
  StateError,
  str,
  timer,
  type Check,
} from '../../machine/state.ts';
import { NR_EVENT_CHANNELS, NR_VIRQS } from './abi.ts';
import { inRanges, type DeviceGrant } from './devices.ts';
import type { FrameOwner } from './frames.ts';
import { GRANT_TABLE_STATE, GrantTable, type GrantTableState } from './grants.ts';
import { VCPU_CONTEXT, type VcpuContext } from './scheduler.ts';

/** One entry of the virtual IDT (set_trap_table). */
export interface TrapEntry {
  /** Lowest privilege allowed to reach it with INT n (trap_info flags bits 0–1). */
  dpl: number;
  /** Mask events on entry (TI_MASK_EVENTS), as an interrupt gate clears IF. */
  maskEvents: boolean;
  cs: number;
  eip: number;
}

export type EventChannel =
  | { kind: 'free' }
  | { kind: 'virq'; virq: number }
  | { kind: 'console' }
  | { kind: 'pirq'; irq: number }
  /** alloc_unbound: waiting for domain `remote` to bind it. */
  | { kind: 'unbound'; remote: number }
  /** Connected to port `remotePort` of domain `remote`: a send raises that port. */
  | { kind: 'interdomain'; remote: number; remotePort: number };

/**
 * A domain runs or waits for an event (blocked) until it ends (shut down or crashed); an ended
 * domain that is not the run's primary may then be destroyed (destroy.ts): its resources are
 * given back and only its id and counters remain.
 */
export type DomainState = 'running' | 'blocked' | 'shutdown' | 'crashed' | 'destroyed';

const callback: Check = nullable(shape<{ cs: number; eip: number }>({ cs: num, eip: num }));
/** `[number, value]`: a saved entry of a sparse table (a vector's trap entry, a port's channel). */
const pair =
  (second: Check): Check =>
  (v, path) => {
    if (!Array.isArray(v) || v.length !== 2)
      throw new StateError(`${path}: expected a [number, value] pair`);
    num(v[0], `${path}[0]`);
    second(v[1], `${path}[1]`);
  };

/** The shape a saved domain must have (checked before anything is restored). */
export const DOMAIN_SAVED: Check = shape<DomainSaved>({
  id: num,
  p2m: arrayOf(num),
  state: oneOf('running', 'blocked', 'shutdown', 'crashed', 'destroyed'),
  ending: nullable(str),
  virtBase: num,
  startInfoVirt: num,
  sharedInfoMfn: num,
  consoleMfn: num,
  baseMfn: nullable(num),
  startCycle: num,
  traps: arrayOf(pair(shape<TrapEntry>({ dpl: num, maskEvents: bool, cs: num, eip: num }))),
  kernelStack: nullable(shape<{ ss: number; esp: number }>({ ss: num, esp: num })),
  eventCallback: callback,
  failsafeCallback: callback,
  channels: arrayOf(
    pair(
      shape<{ kind: string }>({ kind: oneOf('virq', 'console', 'pirq', 'unbound', 'interdomain') }),
    ),
  ),
  virqPort: arrayOf(num, NR_VIRQS),
  timer: nullable(timer),
  grants: num,
  context: nullable(VCPU_CONTEXT),
  busyCycles: num,
  hypercalls: num,
  grantTable: GRANT_TABLE_STATE,
});

/**
 * A domain in a snapshot: what the hypervisor keeps for it. Its frames and device grants come
 * from building the same configuration again (they are checked, not restored).
 */
export interface DomainSaved {
  id: number;
  p2m: number[];
  state: DomainState;
  ending: string | null;
  virtBase: number;
  startInfoVirt: number;
  sharedInfoMfn: number;
  consoleMfn: number;
  baseMfn: number | null;
  startCycle: number;
  /** The virtual IDT: [vector, entry] for the vectors that have one. */
  traps: [number, TrapEntry][];
  kernelStack: { ss: number; esp: number } | null;
  eventCallback: { cs: number; eip: number } | null;
  failsafeCallback: { cs: number; eip: number } | null;
  /** [port, channel] for the ports in use. */
  channels: [number, EventChannel][];
  virqPort: number[];
  timer: TimerState | null;
  grants: number;
  /** Its virtual CPU while another domain runs (scheduler.ts); null for the running one. */
  context: VcpuContext | null;
  busyCycles: number;
  /** Hypercalls it made (its kernel's or its in-place VMM's), counted from power-on. */
  hypercalls: number;
  grantTable: GrantTableState;
}

export class Domain implements FrameOwner {
  /** Pseudo-physical frame number → machine frame number. */
  readonly p2m: number[];
  state: DomainState = 'running';
  /** Why it ended (shutdown reason and status, or the crash message). */
  ending: string | undefined;

  /** Virtual-address layout the builder chose (start_info's pointers). */
  virtBase = 0;
  startInfoVirt = 0;
  sharedInfoMfn = 0;
  consoleMfn = 0;
  /** Machine frame of the current base pointer (the L2 in CR3); holds one L2 type reference. */
  baseMfn: number | undefined;
  /** Cycle at which the domain's system time is 0. */
  startCycle = 0;

  readonly traps: (TrapEntry | undefined)[] = new Array<TrapEntry | undefined>(256);
  /** Ring-1 stack for events that arrive in ring 3 (stack_switch). */
  kernelStack: { ss: number; esp: number } | undefined;
  eventCallback: { cs: number; eip: number } | undefined;
  failsafeCallback: { cs: number; eip: number } | undefined;

  readonly channels: EventChannel[] = Array.from({ length: NR_EVENT_CHANNELS }, () => ({
    kind: 'free' as const,
  }));
  readonly virqPort = new Int32Array(NR_VIRQS);
  timer: Timer | undefined;

  /**
   * The CPU's table of bound entries for this domain (its in-place VMM's), made current when the
   * domain runs; none for a para-virtual kernel that binds nothing.
   */
  entries: EntryTable | undefined;

  /** Devices this domain may drive directly (devices.ts). */
  readonly grants: DeviceGrant[] = [];

  /** Its grant table and the grants it maps (grants.ts). */
  readonly grantTable = new GrantTable();

  /** Its virtual CPU while another domain has the CPU (scheduler.ts). */
  context: VcpuContext | undefined;
  /**
   * Cycles the CPU was busy while it was the current domain: its own, the hypervisor's on its
   * behalf, and at start of day the building of the domain after it (the first domain's from
   * power-on), so that the domains' figures add up to the machine's busy cycles.
   */
  busyCycles = 0;
  /** Hypercalls it made (the scheduler's statistics show them by domain). */
  hypercalls = 0;
  /**
   * Where its console output goes (console_io, its console ring); undefined: the hypervisor's
   * console. Configuration, set again when a snapshot is restored.
   */
  console: ((byte: number) => void) | undefined;

  constructor(
    readonly id: number,
    frames: number[],
  ) {
    this.p2m = frames;
  }

  /** Frames on which this domain's grants hold type references (the frame table's audit). */
  extraTypeReferences(): number[] {
    return this.grantTable.typeReferences();
  }

  mayMapIoFrame(mfn: number): boolean {
    return this.grants.some((g) => inRanges(g.ioMemory, mfn * 4096, 4096));
  }

  mayUsePort(port: number, size: number): boolean {
    return this.grants.some((g) => inRanges(g.ioPorts, port, size));
  }

  mayBindIrq(irq: number): boolean {
    return this.grants.some((g) => g.irqs.includes(irq));
  }

  /** Lowest free port (port 0 is never used, as in Xen), or undefined. */
  allocatePort(channel: EventChannel): number | undefined {
    for (let port = 1; port < this.channels.length; port++) {
      if (this.channels[port].kind === 'free') {
        this.channels[port] = channel;
        return port;
      }
    }
    return undefined;
  }

  get alive(): boolean {
    return this.state === 'running' || this.state === 'blocked';
  }

  save(): DomainSaved {
    const traps: [number, TrapEntry][] = [];
    this.traps.forEach((t, v) => {
      if (t !== undefined) traps.push([v, { ...t }]);
    });
    const channels: [number, EventChannel][] = [];
    this.channels.forEach((c, port) => {
      if (c.kind !== 'free') channels.push([port, { ...c }]);
    });
    return {
      id: this.id,
      p2m: [...this.p2m],
      state: this.state,
      ending: this.ending ?? null,
      virtBase: this.virtBase,
      startInfoVirt: this.startInfoVirt,
      sharedInfoMfn: this.sharedInfoMfn,
      consoleMfn: this.consoleMfn,
      baseMfn: this.baseMfn ?? null,
      startCycle: this.startCycle,
      traps,
      kernelStack: this.kernelStack === undefined ? null : { ...this.kernelStack },
      eventCallback: this.eventCallback === undefined ? null : { ...this.eventCallback },
      failsafeCallback: this.failsafeCallback === undefined ? null : { ...this.failsafeCallback },
      channels,
      virqPort: [...this.virqPort],
      timer: this.timer === undefined ? null : { cycle: this.timer.cycle, seq: this.timer.seq },
      grants: this.grants.length,
      context: this.context === undefined ? null : structuredClone(this.context),
      busyCycles: this.busyCycles,
      hypercalls: this.hypercalls,
      grantTable: this.grantTable.save(),
    };
  }

  /**
   * Restores what `save` kept into a domain built from the same configuration (same frames,
   * same grants); `timer` reschedules the saved timer. A StateError if the domain differs.
   */
  restore(s: DomainSaved, timer: (saved: TimerState) => Timer, path: string): void {
    DOMAIN_SAVED(s, path);
    if (
      s.id !== this.id ||
      s.p2m.length !== this.p2m.length ||
      s.p2m.some((m, k) => m !== this.p2m[k])
    )
      throw new StateError(`${path}: domain ${s.id}'s machine frames differ from this one's`);
    if (s.grants !== this.grants.length)
      throw new StateError(
        `${path}.grants: ${s.grants} device grants, this domain has ${this.grants.length}`,
      );
    for (const [port] of s.channels)
      if (!Number.isInteger(port) || port <= 0 || port >= this.channels.length)
        throw new StateError(`${path}.channels: port ${port} does not exist`);
    for (const [v] of s.traps)
      if (!Number.isInteger(v) || v < 0 || v > 255)
        throw new StateError(`${path}.traps: vector ${v}`);
    this.state = s.state;
    this.ending = s.ending ?? undefined;
    this.virtBase = s.virtBase;
    this.startInfoVirt = s.startInfoVirt;
    this.sharedInfoMfn = s.sharedInfoMfn;
    this.consoleMfn = s.consoleMfn;
    this.baseMfn = s.baseMfn ?? undefined;
    this.startCycle = s.startCycle;
    this.traps.fill(undefined);
    for (const [v, t] of s.traps) this.traps[v] = { ...t };
    this.kernelStack = s.kernelStack === null ? undefined : { ...s.kernelStack };
    this.eventCallback = s.eventCallback === null ? undefined : { ...s.eventCallback };
    this.failsafeCallback = s.failsafeCallback === null ? undefined : { ...s.failsafeCallback };
    for (let port = 0; port < this.channels.length; port++) this.channels[port] = { kind: 'free' };
    for (const [port, c] of s.channels) this.channels[port] = { ...c };
    this.virqPort.set(s.virqPort);
    this.timer?.cancel();
    this.timer = s.timer === null ? undefined : timer(s.timer);
    this.context = s.context === null ? undefined : structuredClone(s.context);
    this.busyCycles = s.busyCycles;
    this.hypercalls = s.hypercalls;
    this.grantTable.restore(s.grantTable, `${path}.grantTable`);
  }
}
