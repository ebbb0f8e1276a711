/**
 * A domain: the machine frames it owns, its pseudo-physical map, and the virtual-CPU state the
 * hypervisor keeps for it (trap table, kernel stack, callbacks, event channels, timer). All of it
 * is TypeScript state outside guest memory; only shared info and the console ring are pages the
 * guest shares with the hypervisor.
 */
import type { Timer } from '../../machine/device.ts';
import { NR_EVENT_CHANNELS, NR_VIRQS } from './abi.ts';
import { inRanges, type DeviceGrant } from './devices.ts';
import type { FrameOwner } from './frames.ts';

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
  | { kind: 'pirq'; irq: number };

export type DomainState = 'running' | 'blocked' | 'shutdown' | 'crashed';

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

  /** Devices this domain may drive directly (devices.ts). */
  readonly grants: DeviceGrant[] = [];

  constructor(
    readonly id: number,
    frames: number[],
  ) {
    this.p2m = frames;
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
}
