/**
 * The network between the two hosts of a migration and the client (issue 16): the client
 * machine (src/net/TcpSender.ts) on a clock of its own that follows the host the guest runs on
 * (`RelayClock`), and a learning switch between it and the two hosts' links (`LearningSwitch`):
 * a frame for the guest goes to the port its MAC was last seen on, so after the move the
 * guest's frames on the new host — its announcement first (platforms/migrate.ts `announce`) —
 * take it there; until then, frames for it go to the old host, where nothing receives them.
 */
import type { Clock, Timer, TimerState } from '../../machine/device.ts';
import type { EthernetLink } from '../../machine/ethernet/link.ts';

interface Relayed extends Timer {
  inner: Timer;
  callback: () => void;
  owner: string | undefined;
  fired: boolean;
}

/**
 * A clock for the client that runs on a host's clock with an offset, and moves to another
 * host's: its pending events go with it, in their order, at the same client times (a time the
 * move skipped comes at once).
 */
export class RelayClock implements Clock {
  readonly hz: number;
  private offset = 0;
  private seq = 0;
  private readonly pending = new Set<Relayed>();

  constructor(private host: Clock) {
    this.hz = host.hz;
  }

  now(): number {
    return this.host.now() + this.offset;
  }

  /** A host's cycle as the client's. */
  fromHost(cycle: number): number {
    return cycle + this.offset;
  }

  at(cycle: number, callback: () => void, owner?: string): Timer {
    const seq = this.seq++;
    const pending = this.pending;
    const r: Relayed = {
      cycle,
      seq,
      callback,
      owner,
      fired: false,
      inner: undefined as unknown as Timer,
      cancel() {
        r.inner.cancel();
        pending.delete(r);
      },
    };
    this.schedule(r);
    pending.add(r);
    return r;
  }

  restoreAt(_saved: TimerState, _callback: () => void): Timer {
    throw new Error('relay clock: not restored from a snapshot');
  }

  /** The client now runs on `host`, whose current cycle is client time `clientNow`. */
  move(host: Clock, clientNow: number): void {
    for (const r of this.pending) r.inner.cancel();
    this.host = host;
    this.offset = clientNow - host.now();
    const order = [...this.pending].sort((x, y) => x.cycle - y.cycle || x.seq - y.seq);
    for (const r of order) this.schedule(r);
  }

  private schedule(r: Relayed): void {
    r.inner = this.host.at(
      Math.max(this.host.now(), r.cycle - this.offset),
      () => {
        this.pending.delete(r);
        r.callback();
      },
      r.owner,
    );
  }
}

/** Counters of the switch. */
export interface SwitchCounters {
  /** Frames from the client to each host port, and from each host port to the client. */
  toPort: number[];
  fromPort: number[];
  /** Times the guest's MAC was learnt on another port than before (the move). */
  moves: number;
  /** Frames for a host that had stopped running (the guest's old host): lost. */
  toStoppedHost: number;
}

/**
 * A learning switch: the client's port and one port per host link (its end 1). A frame from
 * the client goes to the port its destination MAC was learnt on, else to every host port; a
 * frame from a host goes to the client.
 */
export class LearningSwitch {
  readonly counters: SwitchCounters = { toPort: [], fromPort: [], moves: 0, toStoppedHost: 0 };
  private readonly ports: EthernetLink[] = [];
  private readonly table = new Map<string, number>();
  /** The cycle (client time) the guest's MAC moved to a new port, each time. */
  readonly learnt: { port: number; at: number }[] = [];

  constructor(
    private readonly clock: RelayClock,
    private readonly client: { receive(frame: Uint8Array): void },
  ) {}

  /** A host's link joins at the next port; its number. */
  addPort(link: EthernetLink): number {
    const port = this.ports.length;
    this.ports.push(link);
    this.counters.toPort.push(0);
    this.counters.fromPort.push(0);
    link.attach(1, { receive: (frame) => this.fromHost(port, frame) });
    return port;
  }

  /** The port of the host the client's clock runs on (the others' clocks have stopped). */
  live = 0;

  /** Where a MAC was learnt, if it was. */
  portOf(mac: Uint8Array): number | undefined {
    return this.table.get(key(mac));
  }

  /** The client's frame (with FCS): the client's time the wire is free again, or undefined. */
  fromClient(frame: Uint8Array): number | undefined {
    const to = this.table.get(key(frame.subarray(0, 6)));
    const targets = to === undefined ? this.ports.map((_, k) => k) : [to];
    let free: number | undefined;
    for (const p of targets) {
      this.counters.toPort[p]++;
      const link = this.ports[p];
      if (p !== this.live) {
        // A host that no longer runs: the frame waits on its wire for good (lost).
        this.counters.toStoppedHost++;
        free = Math.max(free ?? 0, this.clock.now() + link.frameCycles(frame.length));
        continue;
      }
      const f = link.send(1, frame);
      if (f !== undefined) free = Math.max(free ?? 0, this.clock.fromHost(f));
    }
    return free;
  }

  private fromHost(port: number, frame: Uint8Array): void {
    this.counters.fromPort[port]++;
    const src = key(frame.subarray(6, 12));
    const was = this.table.get(src);
    if (was !== port) {
      if (was !== undefined) this.counters.moves++;
      this.table.set(src, port);
      this.learnt.push({ port, at: this.clock.now() });
    }
    this.client.receive(frame);
  }
}

function key(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}
