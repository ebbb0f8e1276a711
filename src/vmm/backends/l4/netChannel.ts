/**
 * A client's network connection to the driver VM on l4 (issue "reuse"): the original's L4
 * driver reuse (shared/reference/driver-reuse.md, "DP83820 emulation path", IVMnet) between two
 * in-place VMMs, by IPC. The client's VMM (`L4NetFront`) runs the DP83820 model its guest's
 * unmodified driver drives (../../devices/emulatedNic.ts, the model's direct peer); the driver
 * VM's VMM (`L4NetBack`) is one client of its client link (../../devices/clientLink.ts), which
 * the driver VM's translation module serves.
 *
 * - Transmit without copying: the driver VM's VMM asked the resource monitor for the client's
 *   memory as DMA space of its devices (RmOp.clientDma, the original's request_client_pages):
 *   the client's guest-physical `a` is bus address `window + a` for the driver VM's NIC. The
 *   client's VMM sends the packets its guest gave the model (guest-physical address and length
 *   of each buffer) in one message at the guest's next `iret` or idle; the driver VM's VMM
 *   offers `window + a` to the module, which puts it in a descriptor of the real NIC, so the
 *   NIC's DMA reads the client's buffer where it is. When the NIC has sent it, the completion
 *   goes back, in one message at the driver VM's next `iret` or idle.
 * - Receive by copy, in batches: the client's monitor waits with the next receive buffers its
 *   guest gave the model (up to 16) as its string buffers and tells the driver VM how many
 *   (`credit`); frames for the client wait in the driver VM's NIC buffers until they fill what
 *   it holds out, the driver VM's next `iret` or idle, or the NIC's next write into one of those
 *   buffers, and then go in one IPC of up to 16 string items, the microkernel's copies from the
 *   driver VM's NIC buffers into the guest's (the original's server sent up to 16 packets an
 *   IPC). A para-virtualized client's receiver threads (guest/arch/l4-para/netfront.c) are
 *   filled the same way, in turn. A frame no receiver holds a buffer for is dropped, as a NIC
 *   with a full ring drops it.
 * - Messages go from the VMM's helper (a thread that never waits) with a zero send timeout to
 *   the other VM's monitor, which is waiting whenever its VM is not the one running; a message
 *   it cannot take now (it is not waiting) stays queued for the next flush.
 *
 * When the driver VM crashes, the toolstack destroys it (its threads go: the client's messages
 * to them fail with "non-existing partner") and builds another in its place
 * (src/platforms/driverVm.ts), moving the connection's incarnation on (`backend`). The client's
 * VMM sees that where it runs next (it is kicked out of its wait for it): it completes what it
 * had in flight with an error, gives its receive buffers back to the model unfilled and shows
 * its guest the link down. The new back end, when its module brings the link up, announces
 * itself (`reattach`, the original IVMnet's), and the client's link comes up again
 * (L4NetFront.check). A para-virtualized client's own driver asks the resource monitor for the
 * new back end instead (RmOp.netBackend; guest/arch/l4-para/netfront.c).
 */
import { BR } from '../../../hypervisor/l4/thread.ts';
import { acceptor, RmOp, stringItem } from '../../../hypervisor/l4/abi.ts';
import { message } from '../../../hypervisor/l4/api.ts';
import type { IpcResult } from '../../../hypervisor/l4/thread.ts';
import type { BufferPart, DirectWire, Dp83820 } from '../../../machine/devices/dp83820/Dp83820.ts';
import {
  arrayOf,
  bool,
  checkState,
  nullable,
  num,
  shape,
  type Check,
} from '../../../machine/state.ts';
import type { LinkClient } from '../../devices/clientLink.ts';
import type { L4Backend } from './L4Backend.ts';

/** The toolstack's record of one client's connection. */
export interface L4NetConnection {
  /** The client's MAC address (the model's). */
  mac: Uint8Array;
  /**
   * The client's VM number, its monitor (which takes the driver VM's messages) and its helper
   * (which sends the client's), set when the client is built.
   */
  clientVm?: number;
  clientMonitor?: number;
  clientHelper?: number;
  /** The driver VM's monitor and helper, set when it is built (before the client). */
  driverMonitor?: number;
  driverHelper?: number;
  /**
   * A para-virtualized client's receiver threads (guest/arch/l4-para/netfront.c), each waiting
   * with its own next buffer as its string buffer: its frames go to them in turn, and its
   * completions to its kernel thread (`clientMonitor`). Without them, frames go to the client's
   * monitor, which holds the model's next receive buffer.
   */
  receivers?: number[];
  /**
   * The back end's incarnation (0 at first): the toolstack moves it on when the driver VM is
   * gone and another is built in its place (the monitor and helper then name the new one's).
   */
  backend?: number;
  /** The back end's link is up (its module connected: it has the client's memory). */
  connected?: boolean;
  /**
   * The toolstack's watch on the connection: told when the client's link comes up with a new
   * back end, and when the first frame from it reaches the client's guest.
   */
  watch?: (event: 'connected' | 'first-frame') => void;
}

/** Labels of the two VMMs' messages (previrt's own). */
export const NetLabel = {
  /** Client → driver VM: MR1 the packet count, then per packet its id, part count, parts. */
  transmit: 0x5311,
  /** Driver VM → client: MR1 the count, then per packet its id and status (0 sent, 1 not). */
  transmitted: 0x5312,
  /**
   * Driver VM → client: one frame, a string item into the monitor's string buffer (to a
   * para-virtualized client's receiver: MR1 the frame's number, then the string item).
   */
  receive: 0x5313,
  /**
   * Client's VMM → driver VM: MR1 how many receive buffers its monitor holds out now (so many
   * frames may come in its next receive messages).
   */
  credit: 0x5314,
  /**
   * Driver VM → client's VMM: a back end built in place of a crashed one has its link up (the
   * original IVMnet's reattach); the client's link comes up.
   */
  reattach: 0x5315,
} as const;

/** Counters of one side, for the statistics. */
export interface L4NetCounters {
  /** Messages sent, and messages that had to wait for the next flush (the partner was busy). */
  messages: number;
  deferred: number;
  frames: number;
  dropped: number;
}

/** The connection record's data (its closure, `watch`, is the toolstack's again). */
export interface L4NetConnectionState {
  clientVm: number | null;
  clientMonitor: number | null;
  clientHelper: number | null;
  driverMonitor: number | null;
  driverHelper: number | null;
  receivers: number[] | null;
  backend: number | null;
  connected: boolean | null;
}

type Parts = { address: number; length: number }[];

/**
 * The client's side in a snapshot: the packets not yet sent and those with the driver VM (by
 * id, with the model's packet numbers: Dp83820's `txPeerDone`), the receive buffers its
 * monitor holds out, what the driver VM was told, the back end and the link.
 */
export interface L4NetFrontState {
  version: 1;
  counters: L4NetCounters;
  nextId: number;
  queued: { id: number; parts: Parts }[];
  inFlight: { id: number; packet: number }[];
  rxBuffers: Parts;
  told: number;
  backend: number;
  linkUp: boolean;
  awaitingFrame: boolean;
}

/** The driver VM's side in a snapshot, with the toolstack's record of its connection. */
export interface L4NetBackState {
  version: 1;
  counters: L4NetCounters;
  window: number | null;
  windowBytes: number;
  waiting: { id: number; parts: Parts }[];
  done: number[];
  credits: number[];
  receiver: number;
  pending: Parts;
  sequence: number;
  reattach: boolean;
  awaitingFrame: boolean;
  connection: L4NetConnectionState;
}

const COUNTERS: Check = shape<L4NetCounters>({
  messages: num,
  deferred: num,
  frames: num,
  dropped: num,
});
const PARTS: Check = arrayOf(shape<Parts[number]>({ address: num, length: num }));
const PACKETS: Check = arrayOf(shape<{ id: number; parts: Parts }>({ id: num, parts: PARTS }));

const FRONT_STATE = checkState<L4NetFrontState>('l4 net front', 1, {
  counters: COUNTERS,
  nextId: num,
  queued: PACKETS,
  inFlight: arrayOf(shape<{ id: number; packet: number }>({ id: num, packet: num })),
  rxBuffers: PARTS,
  told: num,
  backend: num,
  linkUp: bool,
  awaitingFrame: bool,
});

const BACK_STATE = checkState<L4NetBackState>('l4 net back', 1, {
  counters: COUNTERS,
  window: nullable(num),
  windowBytes: num,
  waiting: PACKETS,
  done: arrayOf(num),
  credits: arrayOf(num),
  receiver: num,
  pending: PARTS,
  sequence: num,
  reattach: bool,
  awaitingFrame: bool,
  connection: shape<L4NetConnectionState>({
    clientVm: nullable(num),
    clientMonitor: nullable(num),
    clientHelper: nullable(num),
    driverMonitor: nullable(num),
    driverHelper: nullable(num),
    receivers: nullable(arrayOf(num)),
    backend: nullable(num),
    connected: nullable(bool),
  }),
});

const copyParts = (parts: Parts): Parts => parts.map((p) => ({ ...p }));

/** Most packets in one transmit message (64 message registers). */
const PACKETS_PER_MESSAGE = 15;
/** Most frames in one receive message: string buffers BR1..BR32, two registers each. */
const FRAMES_PER_MESSAGE = 16;

function newCounters(): L4NetCounters {
  return { messages: 0, deferred: 0, frames: 0, dropped: 0 };
}

/** The client's VMM's side: the model's direct peer. */
export class L4NetFront implements DirectWire {
  readonly counters = newCounters();
  private model: Dp83820 | undefined;
  private nextId = 1;
  /** Packets given to the model, not yet sent to the driver VM; and those with it, by id. */
  private queued: { id: number; parts: BufferPart[] }[] = [];
  /** The model's packet number of each id with the driver VM (DirectWire.transmit). */
  private readonly inFlight = new Map<number, number>();
  /** The receive buffers the monitor waits with (guest-physical), in the model's ring order. */
  private rxBuffers: { address: number; length: number }[] = [];
  /** How many the driver VM was last told of (NetLabel.credit); -1: not yet. */
  private told = -1;
  /** The back end's incarnation it works with (L4NetConnection.backend). */
  private backend = 0;
  /** The model's link: down from the loss of a back end until a new one connects. */
  private linkUp = true;
  /** A new back end connected and no frame from it has reached the guest yet. */
  private awaitingFrame = false;

  constructor(
    private readonly b: L4Backend,
    private readonly conn: L4NetConnection,
  ) {}

  attach(model: Dp83820): void {
    this.model = model;
  }

  /**
   * Wherever the VMM runs (a flush, a message, the monitor's wake): the toolstack's news. The
   * back end gone (the incarnation moved on): what was in flight with it ends — the model's
   * packets complete with an error (TCP sends their data again), the receive buffers go back
   * to the model unfilled — and the model's link goes down. A new back end connected: the link
   * comes up, and the receive buffers are held out to it.
   */
  check(): void {
    if ((this.conn.backend ?? 0) !== this.backend) {
      this.backend = this.conn.backend ?? 0;
      const failed = [...this.inFlight.values()];
      this.inFlight.clear();
      this.queued = [];
      this.rxBuffers = [];
      this.hold();
      this.told = -1;
      this.linkUp = false;
      this.awaitingFrame = false;
      this.model?.rxUnclaim();
      this.model?.setLink(false);
      // Last: a completion may make the model hand over its next packet, which fails at once.
      for (const packet of failed) this.model?.txPeerDone(packet, false);
    }
    if (!this.linkUp && this.conn.connected === true) {
      this.linkUp = true;
      this.awaitingFrame = true;
      this.model?.setLink(true);
      this.conn.watch?.('connected');
      this.claim();
    }
  }

  // ---- DirectWire ---------------------------------------------------------------------------

  transmit(parts: BufferPart[], packet: number): void {
    const done = (ok: boolean): void => this.model?.txPeerDone(packet, ok);
    const ram = this.b.guestPages * 4096;
    // GUEST-CONTROLLED: the guest's descriptors; a buffer outside its RAM is a bus error.
    if (parts.length === 0 || parts.some((p) => p.address < 0 || p.address + p.length > ram))
      return done(false);
    if (this.conn.driverMonitor === undefined || !this.linkUp) return done(false);
    const id = this.nextId++;
    this.inFlight.set(id, packet);
    this.queued.push({ id, parts });
    this.counters.frames++;
  }

  rxKick(): void {
    this.claim();
  }

  /** At the guest's iret or idle: the model's packets, then one message to the driver VM. */
  flush(): void {
    this.check();
    this.model?.txFlush();
    this.tell();
    while (this.queued.length > 0) {
      const batch = this.queued.slice(0, PACKETS_PER_MESSAGE);
      const words = [batch.length];
      for (const p of batch) {
        words.push(p.id, p.parts.length);
        for (const part of p.parts) words.push(part.address, part.length);
      }
      if (!this.b.sendTo(this.conn.driverMonitor!, message(NetLabel.transmit, words))) {
        this.counters.deferred++;
        return;
      }
      this.counters.messages++;
      this.queued.splice(0, batch.length);
    }
  }

  /**
   * The guest's next receive buffers (up to 16) as the monitor's string buffers, then the
   * driver VM told how many there are.
   */
  private claim(): void {
    if (!this.linkUp) return;
    while (this.rxBuffers.length < FRAMES_PER_MESSAGE) {
      const b = this.model?.rxClaim();
      if (b === undefined) break;
      this.rxBuffers.push({ address: b.address, length: Math.min(b.length, 0x3fffff) });
    }
    this.hold();
    this.tell();
  }

  /** The claimed buffers as the string buffers (BR1, BR2, ...; each C bit: another follows). */
  private hold(): void {
    const utcb = this.b.monitorUtcb();
    const n = this.rxBuffers.length;
    utcb.set(BR(0), acceptor(0, n > 0));
    this.rxBuffers.forEach((x, k) => {
      utcb.set(BR(1 + 2 * k), (stringItem(x.length, 0)[0] | (k < n - 1 ? 1 : 0)) >>> 0);
      utcb.set(BR(2 + 2 * k), (this.b.mapAt + x.address) >>> 0);
    });
  }

  /** The driver VM told how many buffers the monitor holds, if that changed (else at a flush). */
  private tell(): void {
    const n = this.rxBuffers.length;
    if (n === this.told || this.conn.driverMonitor === undefined) return;
    if (this.b.sendTo(this.conn.driverMonitor, message(NetLabel.credit, [n]))) {
      this.told = n;
      this.counters.messages++;
    } else this.counters.deferred++;
  }

  /** A message for the monitor (its label is the channel's), handled; false if it is not. */
  message(r: IpcResult): boolean {
    const label = r.tag >>> 16;
    this.check();
    if (r.from !== this.conn.driverHelper) return false;
    if (label === NetLabel.reattach) return true;
    if (label === NetLabel.transmitted) {
      const w = r.words;
      for (let k = 0, n = w[0] ?? 0; k < n; k++) {
        const id = w[1 + 2 * k] >>> 0;
        const packet = this.inFlight.get(id);
        if (packet === undefined) continue;
        this.inFlight.delete(id);
        this.model?.txPeerDone(packet, w[2 + 2 * k] === 0);
      }
      return true;
    }
    if (label !== NetLabel.receive) return false;
    // One frame per string item, in the claimed buffers' order; each item's length word, as the
    // kernel wrote it back, is the bytes copied. (A failed transfer delivers no items.)
    const frames = r.error === 0 ? Math.min((r.tag >>> 6) & 0x3f, r.words.length) >>> 1 : 0;
    const taken = this.rxBuffers.splice(0, frames);
    // Those buffers are the guest's again: no string lands in them any more.
    this.hold();
    // The driver VM counts these frames off what it was told.
    this.told = Math.max(-1, this.told - taken.length);
    taken.forEach((buffer, k) => {
      const length = (r.words[2 * k] ?? 0) >>> 10;
      const ok = length > 0 && length <= buffer.length;
      const dest0 = ok ? this.b.guestRam()[buffer.address] : 0;
      if (!ok) this.counters.dropped++;
      else this.counters.frames++;
      this.model?.rxComplete(ok ? length : 0, ok, dest0);
      if (ok && this.awaitingFrame) {
        this.awaitingFrame = false;
        this.conn.watch?.('first-frame');
      }
    });
    this.claim();
    return true;
  }

  save(): L4NetFrontState {
    return {
      version: 1,
      counters: { ...this.counters },
      nextId: this.nextId,
      queued: this.queued.map((p) => ({ id: p.id, parts: copyParts(p.parts) })),
      inFlight: [...this.inFlight].map(([id, packet]) => ({ id, packet })),
      rxBuffers: copyParts(this.rxBuffers),
      told: this.told,
      backend: this.backend,
      linkUp: this.linkUp,
      awaitingFrame: this.awaitingFrame,
    };
  }

  /** The saved side again (the monitor's string buffers are in its UTCB, saved with it). */
  restore(state: L4NetFrontState, path = 'netFront'): void {
    FRONT_STATE(state, path);
    Object.assign(this.counters, state.counters);
    this.nextId = state.nextId;
    this.queued = state.queued.map((p) => ({ id: p.id, parts: copyParts(p.parts) }));
    this.inFlight.clear();
    for (const { id, packet } of state.inFlight) this.inFlight.set(id, packet);
    this.rxBuffers = copyParts(state.rxBuffers);
    this.told = state.told;
    this.backend = state.backend;
    this.linkUp = state.linkUp;
    this.awaitingFrame = state.awaitingFrame;
  }

  /** The connection, at the client's start of day: its monitor, for the driver VM. */
  start(): void {
    this.conn.clientVm = this.b.vm.id;
    this.conn.clientMonitor = this.b.monitorTid;
    this.conn.clientHelper = this.b.helperTid;
    this.backend = this.conn.backend ?? 0;
    this.claim();
  }
}

/** The driver VM's VMM's side: one client of its client link. */
export class L4NetBack implements LinkClient {
  readonly counters = newCounters();
  /** The bus address of the client's guest-physical 0 for the driver VM's devices, and its size. */
  private window: number | undefined;
  private windowBytes = 0;
  private offerTo: ((parts: BufferPart[], id: number) => boolean) | undefined;
  private room: () => number = () => 0;
  /** Packets the link had no room for yet, and completions for the next flush. */
  private waiting: { id: number; parts: BufferPart[] }[] = [];
  private done: number[] = [];
  /**
   * How many buffers each receiver holds out (the client VMM's monitor: its last credit, less
   * the frames sent since), the receiver being filled, the frames waiting for it (driver-VM
   * physical addresses) and the next frame's number.
   */
  private credits: number[] = [];
  private receiver = 0;
  private pending: { address: number; length: number }[] = [];
  private sequence = 0;
  /**
   * A back end built in place of a crashed one: its reattach for the client's VMM is still to
   * go (sent when its link comes up, again at each flush until taken), and no frame of it has
   * reached the client yet.
   */
  private reattach = false;
  private awaitingFrame: boolean;

  constructor(
    private readonly b: L4Backend,
    private readonly conn: L4NetConnection,
  ) {
    this.awaitingFrame = (conn.backend ?? 0) > 0;
  }

  get mac(): Uint8Array {
    return this.conn.mac;
  }

  serveThrough(offer: (parts: BufferPart[], id: number) => boolean, room: () => number): void {
    this.offerTo = offer;
    this.room = room;
  }

  /**
   * The module brought the link up (in the driver VM's kernel thread): the client's memory as
   * DMA space of the driver VM's devices, from the resource monitor. A message if refused.
   */
  connect(): string | undefined {
    if (this.window !== undefined) return undefined;
    if (this.conn.clientVm === undefined) return 'the client has not started';
    const r = this.b.rmCall(RmOp.clientDma, [this.conn.clientVm]);
    if (r === undefined) return "the resource monitor refused the client's memory";
    this.window = r[0];
    this.windowBytes = r[1];
    this.conn.connected = true;
    // In place of a crashed back end: the client's VMM is told (its own driver asks instead).
    this.reattach = (this.conn.backend ?? 0) > 0 && this.conn.receivers === undefined;
    this.announce();
    return undefined;
  }

  /** The reattach to the client's monitor, if it is still to go. */
  private announce(): void {
    const to = this.conn.clientMonitor;
    if (!this.reattach || to === undefined) return;
    if (this.b.sendTo(to, message(NetLabel.reattach, []))) {
      this.reattach = false;
      this.counters.messages++;
    } else this.counters.deferred++;
  }

  /** The client's transmit message (in the driver VM's monitor): its packets to the link. */
  message(r: IpcResult): boolean {
    if (r.tag >>> 16 === NetLabel.credit) {
      // The client's VMM (its helper, for its monitor), or a receiver thread (MR1 its index).
      const k = this.conn.receivers === undefined ? 0 : this.conn.receivers.indexOf(r.from);
      const from =
        this.conn.receivers === undefined ? this.conn.clientHelper : this.conn.receivers[k];
      if (k < 0 || r.from !== from) return false;
      const n = (r.words[this.conn.receivers === undefined ? 0 : 1] ?? 0) >>> 0;
      // GUEST-CONTROLLED (a receiver thread's count): at most what one message carries.
      this.credits[k] = Math.min(n, FRAMES_PER_MESSAGE);
      return true;
    }
    if (r.from !== this.conn.clientHelper) return false;
    if (r.tag >>> 16 !== NetLabel.transmit) return false;
    const w = r.words.map((x) => x >>> 0);
    let at = 1;
    for (let k = 0, n = w[0] ?? 0; k < n && at + 1 < w.length; k++) {
      const id = w[at];
      const count = w[at + 1];
      at += 2;
      const parts: BufferPart[] = [];
      for (let p = 0; p < count && at + 1 < w.length; p++, at += 2)
        parts.push({ address: w[at], length: w[at + 1] });
      this.waiting.push({ id, parts });
    }
    this.offer();
    return true;
  }

  /** Waiting packets to the link, as far as it has room. */
  private offer(): void {
    const window = this.window;
    while (this.waiting.length > 0 && this.room() > 0) {
      const p = this.waiting.shift()!;
      // GUEST-CONTROLLED (the client's VMM relays its guest's descriptors): a buffer outside
      // the client's memory fails this packet only, before the NIC sees it (as a bad grant does
      // on xen); the resource monitor's window confines the NIC's DMA besides.
      const inside = p.parts.every(
        (x) => x.length > 0 && x.address >= 0 && x.address + x.length <= this.windowBytes,
      );
      const ok =
        window !== undefined &&
        inside &&
        p.parts.length > 0 &&
        p.parts.length <= 2 &&
        this.offerTo?.(
          p.parts.map((x) => ({ address: window + x.address, length: x.length })),
          p.id,
        ) === true;
      if (ok) this.counters.frames++;
      else {
        this.counters.dropped++;
        this.done.push(p.id, 1);
      }
    }
  }

  sent(id: number): void {
    this.done.push(id, 0);
    this.offer();
  }

  /**
   * A frame from the wire for this client: it waits for the next ones, to go in one message of
   * up to 16 string items into the buffers a receiver of the client holds out, as the
   * original's server sent up to 16 packets in one IPC. The receiver is the client VMM's
   * monitor, or one of a para-virtualized client's receiver threads in turn; each says how many
   * buffers it holds (NetLabel.credit). A frame goes as soon as the batch fills what its
   * receiver holds out, at the driver VM's next iret or idle, or before the NIC writes into the
   * buffer it is in (the module gave the buffer back to the NIC's driver when this returned),
   * whichever comes first. With no receiver holding a buffer it is dropped, as a NIC with a full
   * ring drops it.
   */
  deliver(address: number, length: number): boolean {
    if (this.pending.length === 0 && !this.pickReceiver()) {
      this.counters.dropped++;
      return false;
    }
    this.pending.push({ address, length });
    if (this.pending.length >= Math.min(this.credits[this.receiver], FRAMES_PER_MESSAGE))
      this.sendFrames();
    return true;
  }

  /** The receivers: the client's monitor, or its receiver threads. */
  private get receivers(): number[] {
    if (this.conn.receivers !== undefined) return this.conn.receivers;
    return this.conn.clientMonitor === undefined ? [] : [this.conn.clientMonitor];
  }

  /** The next receiver (in turn, from the one after the last) that holds out a buffer. */
  private pickReceiver(): boolean {
    const n = this.receivers.length;
    for (let k = 0; k < n; k++) {
      const r = (this.receiver + k) % n;
      if ((this.credits[r] ?? 0) > 0) {
        this.receiver = r;
        return true;
      }
    }
    return false;
  }

  /**
   * The waiting frames in one message to their receiver. A receiver thread's message carries
   * the number of its first frame in the order sent (the client takes its receivers' frames in
   * that order), and its credit is spent (it says again when it waits again); the monitor's is
   * counted down (its new one comes while it takes the message). Frames that cannot go are
   * dropped.
   */
  private sendFrames(): void {
    const frames = this.pending;
    this.pending = [];
    const n = frames.length;
    const to = this.receivers[this.receiver];
    if (n === 0) return;
    if (to !== undefined) {
      const items = frames.flatMap((f) => stringItem(f.length, (this.b.mapAt + f.address) >>> 0));
      const threads = this.conn.receivers !== undefined;
      const credit = this.credits[this.receiver];
      this.credits[this.receiver] = threads ? 0 : credit - n;
      const r = this.b.sendResult(
        to,
        message(NetLabel.receive, threads ? [this.sequence] : [], items),
      );
      if (r !== undefined && r.error === 0) {
        this.counters.messages++;
        // A para-virtualized client's first frame from a new back end (the VMM's front end
        // says so for its guest).
        if (this.awaitingFrame && threads) {
          this.awaitingFrame = false;
          this.conn.watch?.('first-frame');
        }
        this.sequence = (this.sequence + n) >>> 0;
        this.receiver = (this.receiver + (threads ? 1 : 0)) % this.receivers.length;
        return;
      }
      this.credits[this.receiver] = credit;
    }
    this.counters.dropped += n;
  }

  save(): L4NetBackState {
    const c = this.conn;
    return {
      version: 1,
      counters: { ...this.counters },
      window: this.window ?? null,
      windowBytes: this.windowBytes,
      waiting: this.waiting.map((p) => ({ id: p.id, parts: copyParts(p.parts) })),
      done: [...this.done],
      credits: Array.from(this.credits, (n) => n ?? 0),
      receiver: this.receiver,
      pending: copyParts(this.pending),
      sequence: this.sequence,
      reattach: this.reattach,
      awaitingFrame: this.awaitingFrame,
      connection: {
        clientVm: c.clientVm ?? null,
        clientMonitor: c.clientMonitor ?? null,
        clientHelper: c.clientHelper ?? null,
        driverMonitor: c.driverMonitor ?? null,
        driverHelper: c.driverHelper ?? null,
        receivers: c.receivers === undefined ? null : [...c.receivers],
        backend: c.backend ?? null,
        connected: c.connected ?? null,
      },
    };
  }

  /** The saved side and its connection record again. */
  restore(state: L4NetBackState, path = 'netBack'): void {
    BACK_STATE(state, path);
    Object.assign(this.counters, state.counters);
    this.window = state.window ?? undefined;
    this.windowBytes = state.windowBytes;
    this.waiting = state.waiting.map((p) => ({ id: p.id, parts: copyParts(p.parts) }));
    this.done = [...state.done];
    this.credits = [...state.credits];
    this.receiver = state.receiver;
    this.pending = copyParts(state.pending);
    this.sequence = state.sequence;
    this.reattach = state.reattach;
    this.awaitingFrame = state.awaitingFrame;
    const r = state.connection;
    const c = this.conn;
    c.clientVm = r.clientVm ?? undefined;
    c.clientMonitor = r.clientMonitor ?? undefined;
    c.clientHelper = r.clientHelper ?? undefined;
    c.driverMonitor = r.driverMonitor ?? undefined;
    c.driverHelper = r.driverHelper ?? undefined;
    c.receivers = r.receivers === null ? undefined : [...r.receivers];
    c.backend = r.backend ?? undefined;
    c.connected = r.connected ?? undefined;
  }

  /** Before the driver VM's NIC writes to [address, +length): frames waiting there go first. */
  dmaWrite(address: number, length: number): void {
    if (this.pending.some((f) => address < f.address + f.length && f.address < address + length))
      this.sendFrames();
  }

  /** At the driver VM's iret or idle: the waiting frames, then the completions in one message. */
  flush(): void {
    this.announce();
    this.sendFrames();
    const to = this.conn.clientMonitor;
    while (this.done.length > 0 && to !== undefined) {
      const batch = this.done.slice(0, 2 * 30);
      if (!this.b.sendTo(to, message(NetLabel.transmitted, [batch.length / 2, ...batch]))) {
        this.counters.deferred++;
        return;
      }
      this.counters.messages++;
      this.done.splice(0, batch.length);
    }
  }
}
