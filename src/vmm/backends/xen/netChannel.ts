/**
 * A client's network connection to the driver VM on xen (issue "reuse"): Xen's split-driver
 * pattern (shared/reference/driver-reuse.md "Xen split drivers") between two in-place VMMs. The
 * client's VMM (`NetFront`) runs the DP83820 model its guest's unmodified driver drives
 * (../../devices/emulatedNic.ts, the model's direct peer); the driver VM's VMM (`NetBack`) is one
 * client of its client link (../../devices/clientLink.ts), which the driver VM's translation
 * module serves.
 *
 * - One page of the client's, granted to the driver VM and mapped by its VMM, holds two rings
 *   of 64 slots with free-running producer and consumer indices and event thresholds (io/ring.h:
 *   a side notifies only when the other side's event index was passed, so a side still at work
 *   is never notified), and one interdomain event channel joins the two VMMs.
 * - Transmit without copying: the client grants each buffer read-only and posts a request; the
 *   driver VM's VMM maps the grant into its grant window, so the real NIC's DMA reads the
 *   client's buffer where it is; when the NIC has sent it, the mapping goes and a response
 *   tells the client, which ends the grant and completes the model's descriptor.
 * - Receive by copy: the client grants the buffers its guest gave the model (claimed in ring
 *   order) writable and posts them; for a frame from the wire, the driver VM's VMM copies the
 *   NIC's buffer into the next one with one grant copy and responds.
 * - Notifications batched: a side pushes its requests or responses as it makes them, but sends
 *   the event only at the next guest `iret` or idle (the original's flush points), and not at
 *   all when the other side is still at work (the event threshold).
 *
 * Who connects whom is the toolstack's (`XenNetConnection`, what xenstore holds in Xen): the
 * client's VMM publishes its ring's grant reference and its unbound port at its start of day;
 * the driver VM's VMM connects when its module brings the link up. When the driver VM crashes,
 * the toolstack builds another (src/platforms/driverVm.ts) and tells the client's VMM, which
 * ends what it had with the old back end, shows its guest the link down, and publishes again
 * for the new one; the link comes up when that one connects (NetFront.backendGone).
 */
import {
  DOMID_SELF,
  EvtchnOp,
  GNTCOPY,
  GNTMAP,
  GnttabCopy,
  GnttabMap,
  GnttabOp,
  GnttabSetup,
  GnttabUnmap,
  GRANT_ENTRY_SIZE,
  GTF,
  Hypercall,
} from '../../../hypervisor/xen/abi.ts';
import type { Domain } from '../../../hypervisor/xen/domain.ts';
import type { XenHypervisor } from '../../../hypervisor/xen/Xen.ts';
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
import type { HypercallChannel } from './channel.ts';
import { ARGS_PAGE } from './layout.ts';

/** The toolstack's record of one client's connection. */
export interface XenNetConnection {
  /** The client's MAC address (the model's). */
  mac: Uint8Array;
  /** Set at the client's start of day. */
  clientDom?: number;
  ringRef?: number;
  clientPort?: number;
  /** The driver VM's domain, set when it is built (before the client). */
  driverDom?: number;
  /**
   * For a client that publishes nothing itself (a para-virtualized kernel's own front end): the
   * toolstack's look for its ring reference and port, filling them in; false while they are not
   * there yet.
   */
  find?: () => boolean;
  /**
   * The back end's incarnation (0 at first): the toolstack moves it on when the driver VM is
   * gone and another is built in its place (`driverDom` then names the new one, and the client's
   * ring reference and port are cleared). The front end sees the change at the event the
   * toolstack raises on its port, as a xenstore watch fires in Xen, ends what it had with the
   * old back end and publishes again for the new one.
   */
  backend?: number;
  /**
   * The toolstack's watch on the front end (what the front end writes in xenstore, in Xen):
   * told when it connects to a new back end (its link comes up), and when the first frame from
   * that back end reaches the guest.
   */
  watch?: (event: 'connected' | 'first-frame') => void;
}

/** NetBack.connect: connected, waiting for the client to publish, or why not. */
export type ConnectResult = 'connected' | 'waiting' | { failed: string };

/** The connection record's data (its closures, `find` and `watch`, are the toolstack's again). */
export interface XenNetConnectionState {
  clientDom: number | null;
  ringRef: number | null;
  clientPort: number | null;
  driverDom: number | null;
  backend: number | null;
}

/**
 * The client's side in a snapshot: the ring page, its indices, the model's packets by their
 * first request (the model's packet numbers: Dp83820's `txPeerDone`), the buffers posted, the
 * back end it works with and the link's state. Its port's handler is the backend's again.
 */
export interface NetFrontState {
  version: 1;
  counters: NetChannelCounters;
  port: number;
  notifyPending: boolean;
  ringMfn: number;
  txProd: number;
  txCons: number;
  rxProd: number;
  rxCons: number;
  txPending: { first: number; slots: number; left: number; ok: boolean; packet: number }[];
  rxPosted: number[];
  backend: number;
  linkUp: boolean;
  awaitingFrame: boolean;
  eventsOff: boolean;
}

/** The driver VM's side in a snapshot, with the toolstack's record of its connection. */
export interface NetBackState {
  version: 1;
  counters: NetChannelCounters;
  port: number;
  notifyPending: boolean;
  ringHandle: number;
  txCons: number;
  rxCons: number;
  txRsp: number;
  rxRsp: number;
  txHandles: number[];
  /** The packets with the link: first request and end. */
  packets: { first: number; end: number }[];
  waiting: boolean;
  connection: XenNetConnectionState;
}

const COUNTERS: Check = shape<NetChannelCounters>({
  notifications: num,
  suppressed: num,
  grantOps: num,
  frames: num,
  dropped: num,
});

const FRONT_STATE = checkState<NetFrontState>('xen net front', 1, {
  counters: COUNTERS,
  port: num,
  notifyPending: bool,
  ringMfn: num,
  txProd: num,
  txCons: num,
  rxProd: num,
  rxCons: num,
  txPending: arrayOf(
    shape<NetFrontState['txPending'][number]>({
      first: num,
      slots: num,
      left: num,
      ok: bool,
      packet: num,
    }),
  ),
  rxPosted: arrayOf(num, 64),
  backend: num,
  linkUp: bool,
  awaitingFrame: bool,
  eventsOff: bool,
});

const BACK_STATE = checkState<NetBackState>('xen net back', 1, {
  counters: COUNTERS,
  port: num,
  notifyPending: bool,
  ringHandle: num,
  txCons: num,
  rxCons: num,
  txRsp: num,
  rxRsp: num,
  txHandles: arrayOf(num, 64),
  packets: arrayOf(shape<{ first: number; end: number }>({ first: num, end: num })),
  waiting: bool,
  connection: shape<XenNetConnectionState>({
    clientDom: nullable(num),
    ringRef: nullable(num),
    clientPort: nullable(num),
    driverDom: nullable(num),
    backend: nullable(num),
  }),
});

/** Counters of one side, for the statistics. */
export interface NetChannelCounters {
  notifications: number;
  suppressed: number;
  grantOps: number;
  frames: number;
  dropped: number;
}

// The shared page (previrt's netif): two rings, each {reqProd, reqEvent, rspProd, rspEvent}.
const TX = 0x00;
const RX = 0x10;
const REQ_PROD = 0;
const REQ_EVENT = 4;
const RSP_PROD = 8;
const RSP_EVENT = 12;
const BACKEND_STATE = 0x20;
const CONNECTED = 1;
const TX_SLOTS_AT = 0x100;
const RX_SLOTS_AT = 0x500;
const SLOTS = 64;
const SLOT = 16;
const MORE = 1;
// The client's grant references: the ring, then one per TX and one per RX slot.
const RING_REF = 1;
const TX_REF = 8;
const RX_REF = TX_REF + SLOTS;
// The driver VM's grant window, per client: the ring at page 0, then one page per TX slot.
const WINDOW_RING = 0;
const WINDOW_TX = 1;
/** Grant window pages one client's back end takes (so a driver VM serves up to 3 on xen). */
export const WINDOW_PAGES_PER_CLIENT = WINDOW_TX + SLOTS;

/** Both sides' view of the ring page and their hypercalls. */
abstract class RingSide {
  readonly counters: NetChannelCounters = {
    notifications: 0,
    suppressed: 0,
    grantOps: 0,
    frames: 0,
    dropped: 0,
  };
  protected port = 0;
  protected notifyPending = false;

  constructor(
    protected readonly xen: XenHypervisor,
    protected readonly dom: Domain,
    protected readonly c: HypercallChannel,
  ) {}

  /** The ring page's machine address (undefined until connected). */
  protected abstract get page(): number | undefined;

  protected ring32(offset: number): number {
    const page = this.page;
    if (page === undefined) return 0;
    const r = this.xen.machine.ram;
    const a = page + offset;
    return (r[a] | (r[a + 1] << 8) | (r[a + 2] << 16) | (r[a + 3] << 24)) >>> 0;
  }

  protected setRing32(offset: number, value: number): void {
    const page = this.page;
    if (page !== undefined) this.xen.cpu.writePhysical(page + offset, 4, value >>> 0);
  }

  protected ring16(offset: number): number {
    return this.ring32(offset) & 0xffff;
  }

  /** The VMM writing or reading ring slots: charged as copying the bytes. */
  protected touch(bytes: number): void {
    this.xen.cpu.charge(1 + Math.ceil(bytes / 4));
  }

  /**
   * Publishes a new producer index (`ring` + REQ_PROD or RSP_PROD) and decides whether the other
   * side needs the event: only if its event index lies in (old, new] (io/ring.h).
   */
  protected push(prodAt: number, eventAt: number, value: number): void {
    const old = this.ring32(prodAt);
    if (old === value) return;
    this.setRing32(prodAt, value);
    const event = this.ring32(eventAt);
    if ((value - event) >>> 0 < (value - old) >>> 0) this.notifyPending = true;
    else this.counters.suppressed++;
  }

  /** The batched notification, at the guest's iret or idle. */
  flush(): void {
    if (!this.notifyPending || this.port === 0) return;
    this.notifyPending = false;
    this.counters.notifications++;
    this.c.argWrite(0, 4, this.port);
    this.c.hypercall(Hypercall.event_channel_op, [EvtchnOp.send, ARGS_PAGE]);
  }

  /**
   * map_grant_ref of `dom`'s entry `ref` at pseudo-physical page `page` (the grant window):
   * the handle, or undefined if the hypervisor refused it.
   */
  protected mapGrant(page: number, ref: number, dom: number, flags: number): number | undefined {
    const c = this.c;
    c.argWrite(GnttabMap.host_addr, 4, page * 4096);
    c.argWrite(GnttabMap.host_addr + 4, 4, 0);
    c.argWrite(GnttabMap.flags, 4, flags);
    c.argWrite(GnttabMap.ref, 4, ref);
    c.argWrite(GnttabMap.dom, 2, dom);
    if (this.grantOp(GnttabOp.map_grant_ref, 1) !== 0 || this.argStatus(GnttabMap.status) !== 0)
      return undefined;
    return c.argRead(GnttabMap.handle);
  }

  /** A signed 16-bit status field of the argument page. */
  protected argStatus(at: number): number {
    return ((this.c.argRead(at & ~3) >> ((at & 3) * 8)) << 16) >> 16;
  }

  /** One grant_table_op of `count` operations already written at the argument page. */
  protected grantOp(cmd: number, count: number): number {
    this.counters.grantOps += count;
    return this.c.hypercall(Hypercall.grant_table_op, [cmd, ARGS_PAGE, count]);
  }
}

/** The client's VMM's side: the model's direct peer. */
export class NetFront extends RingSide implements DirectWire {
  private model: Dp83820 | undefined;
  private ringMfn = -1;
  private txProd = 0;
  private txCons = 0;
  private rxProd = 0;
  private rxCons = 0;
  /** TX packets waiting for their responses, by their first slot's request index. */
  private readonly txPending = new Map<
    number,
    { slots: number; left: number; ok: boolean; packet: number }
  >();
  private readonly rxPosted: number[] = new Array<number>(SLOTS).fill(0);
  /** The back end's incarnation it published for (XenNetConnection.backend). */
  private backend = 0;
  /** The model's link: down from the loss of a back end until a new one connects. */
  private linkUp = true;
  /** A new back end connected and no frame from it has reached the guest yet. */
  private awaitingFrame = false;
  /** The guest sleeps through the model's hold-off: no events wanted until it ends (`idle`). */
  private eventsOff = false;
  /**
   * Where events on a port go (the VMM backend's handlers): set by its owner, so the port made
   * again for a new back end is heard too; undefined forgets a port.
   */
  listen: ((port: number, handler: (() => void) | undefined) => void) | undefined;

  constructor(
    xen: XenHypervisor,
    dom: Domain,
    c: HypercallChannel,
    private readonly conn: XenNetConnection,
  ) {
    super(xen, dom, c);
  }

  protected get page(): number | undefined {
    return this.ringMfn < 0 ? undefined : this.ringMfn * 4096;
  }

  attach(model: Dp83820): void {
    this.model = model;
  }

  /**
   * Start of day, in the client's context: its grant table, the ring page granted to the
   * driver VM, an unbound port for it; published in the connection record. Or a message.
   */
  start(): string | undefined {
    const driver = this.conn.driverDom;
    if (driver === undefined) return 'the driver VM is not built';
    const c = this.c;
    c.argWrite(GnttabSetup.dom, 2, DOMID_SELF);
    c.argWrite(GnttabSetup.nr_frames, 4, 1);
    c.argWrite(GnttabSetup.frame_list, 4, ARGS_PAGE + 64);
    if (this.grantOp(GnttabOp.setup_table, 1) !== 0 || (c.argRead(8) & 0xffff) !== 0)
      return 'cannot set up the grant table';
    const frame = this.xen.frames.allocate(this.dom.id, 1);
    if (frame === undefined) return 'not enough machine memory for the network ring';
    this.ringMfn = frame[0];
    this.xen.machine.ram.fill(0, this.ringMfn * 4096, this.ringMfn * 4096 + 4096);
    this.backend = this.conn.backend ?? 0;
    return this.publish(driver);
  }

  /** The ring page granted to the driver VM and an unbound port for it, in the record. */
  private publish(driver: number): string | undefined {
    const c = this.c;
    this.grant(RING_REF, this.ringMfn, false);
    c.argWrite(0, 2, DOMID_SELF);
    c.argWrite(2, 2, driver);
    if (c.hypercall(Hypercall.event_channel_op, [EvtchnOp.alloc_unbound, ARGS_PAGE]) !== 0)
      return 'cannot allocate the network event channel';
    this.port = c.argRead(4);
    this.conn.clientDom = this.dom.id;
    this.conn.ringRef = RING_REF;
    this.conn.clientPort = this.port;
    // Events for every response from the start.
    this.setRing32(TX + RSP_EVENT, 1);
    this.setRing32(RX + RSP_EVENT, 1);
    return undefined;
  }

  /**
   * The back end is gone (the toolstack destroyed the driver VM and builds another), in the
   * client's context. What was in flight with it ends: the model's TX packets complete with an
   * error (TCP sends their data again), the RX buffers it had go back to the model unfilled.
   * The grants end (the hypervisor unmapped the old back end's mappings when it destroyed it),
   * the port closes and the ring starts again from 0; the model's link goes down. Then the ring
   * and a new unbound port are published for the new back end, whose module connects when it
   * brings its link up (`event` then brings the model's link up again).
   */
  private backendGone(): void {
    this.backend = this.conn.backend ?? 0;
    const c = this.c;
    this.endGrant(RING_REF);
    for (let k = this.txCons; k !== this.txProd; k = (k + 1) >>> 0)
      this.endGrant(TX_REF + (k % SLOTS));
    for (let k = this.rxCons; k !== this.rxProd; k = (k + 1) >>> 0)
      this.endGrant(RX_REF + (k % SLOTS));
    if (this.port !== 0) {
      this.listen?.(this.port, undefined);
      c.argWrite(0, 4, this.port);
      c.hypercall(Hypercall.event_channel_op, [EvtchnOp.close, ARGS_PAGE]);
      this.port = 0;
    }
    this.notifyPending = false;
    for (const ring of [TX, RX])
      for (const field of [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT])
        this.setRing32(ring + field, 0);
    this.setRing32(BACKEND_STATE, 0);
    this.txProd = this.txCons = this.rxProd = this.rxCons = 0;
    const failed = [...this.txPending.values()];
    this.txPending.clear();
    this.linkUp = false;
    this.awaitingFrame = false;
    this.model?.rxUnclaim();
    this.model?.setLink(false);
    // Last, with the ring disconnected: a completion may make the model hand over its next
    // packet, which then fails at once.
    for (const p of failed) this.model?.txPeerDone(p.packet, false);
    const driver = this.conn.driverDom;
    if (driver !== undefined && this.publish(driver) === undefined)
      this.listen?.(this.port, () => this.event());
  }

  get eventPort(): number {
    return this.port;
  }

  private get connected(): boolean {
    return this.ring32(BACKEND_STATE) === CONNECTED;
  }

  /** An entry of the client's grant table: the frame for the driver VM, flags last. */
  private grant(ref: number, mfn: number, readonly: boolean): void {
    const at = this.dom.grantTable.frames[0] * 4096 + ref * GRANT_ENTRY_SIZE;
    const cpu = this.xen.cpu;
    cpu.writePhysical(at + 2, 2, this.conn.driverDom ?? 0);
    cpu.writePhysical(at + 4, 4, mfn);
    cpu.writePhysical(at, 2, GTF.permit_access | (readonly ? GTF.readonly : 0));
    this.touch(GRANT_ENTRY_SIZE);
  }

  /** Ends access (the driver VM's mapping is gone or its copy done: the hypervisor's records). */
  private endGrant(ref: number): void {
    const at = this.dom.grantTable.frames[0] * 4096 + ref * GRANT_ENTRY_SIZE;
    this.xen.cpu.writePhysical(at, 2, 0);
    this.touch(2);
  }

  /** A guest-physical address's machine frame, if it is the guest's RAM. */
  private machineFrame(address: number): number | undefined {
    const pfn = Math.floor(address / 4096);
    const mfn = this.dom.p2m[pfn];
    return mfn === undefined || !this.xen.frames.ownedBy(this.dom, mfn) ? undefined : mfn;
  }

  // ---- snapshot -----------------------------------------------------------------------------

  save(): NetFrontState {
    return {
      version: 1,
      counters: { ...this.counters },
      port: this.port,
      notifyPending: this.notifyPending,
      ringMfn: this.ringMfn,
      txProd: this.txProd,
      txCons: this.txCons,
      rxProd: this.rxProd,
      rxCons: this.rxCons,
      txPending: [...this.txPending].map(([first, p]) => ({ first, ...p })),
      rxPosted: [...this.rxPosted],
      backend: this.backend,
      linkUp: this.linkUp,
      awaitingFrame: this.awaitingFrame,
      eventsOff: this.eventsOff,
    };
  }

  /** The saved side again; its port's handler is the owner's to set again (`eventPort`). */
  restore(state: NetFrontState, path = 'netFront'): void {
    FRONT_STATE(state, path);
    Object.assign(this.counters, state.counters);
    this.port = state.port;
    this.notifyPending = state.notifyPending;
    this.ringMfn = state.ringMfn;
    this.txProd = state.txProd;
    this.txCons = state.txCons;
    this.rxProd = state.rxProd;
    this.rxCons = state.rxCons;
    this.txPending.clear();
    for (const { first, slots, left, ok, packet } of state.txPending)
      this.txPending.set(first, { slots, left, ok, packet });
    this.rxPosted.splice(0, SLOTS, ...state.rxPosted);
    this.backend = state.backend;
    this.linkUp = state.linkUp;
    this.awaitingFrame = state.awaitingFrame;
    this.eventsOff = state.eventsOff;
  }

  // ---- DirectWire ---------------------------------------------------------------------------

  transmit(parts: BufferPart[], packet: number): void {
    const done = (ok: boolean): void => this.model?.txPeerDone(packet, ok);
    // A buffer crossing a page boundary is two grants.
    const frags: { mfn: number; offset: number; length: number }[] = [];
    for (const p of parts) {
      for (let at = p.address, left = p.length; left > 0;) {
        const n = Math.min(left, 4096 - (at % 4096));
        const mfn = this.machineFrame(at);
        if (mfn === undefined) return done(false); // not the guest's memory: a bus error
        frags.push({ mfn, offset: at % 4096, length: n });
        at += n;
        left -= n;
      }
    }
    if (!this.connected || frags.length === 0 || frags.length > 2) return done(false);
    if (SLOTS - (this.txProd - this.txCons) < frags.length) return done(false);
    const first = this.txProd;
    frags.forEach((f, k) => {
      const slot = this.txProd % SLOTS;
      this.grant(TX_REF + slot, f.mfn, true);
      const at = TX_SLOTS_AT + slot * SLOT;
      this.setRing32(at, TX_REF + slot);
      this.setRing32(at + 4, f.offset | ((k < frags.length - 1 ? MORE : 0) << 16));
      this.setRing32(at + 8, slot | (f.length << 16));
      this.touch(SLOT);
      this.txProd = (this.txProd + 1) >>> 0;
    });
    this.txPending.set(first, { slots: frags.length, left: frags.length, ok: true, packet });
    this.counters.frames++;
    this.push(TX + REQ_PROD, TX + REQ_EVENT, this.txProd);
  }

  rxKick(): void {
    this.postRx();
  }

  /** At the guest's iret or idle: the model's packets to the ring, then the notification. */
  override flush(): void {
    this.model?.txFlush();
    super.flush();
  }

  /**
   * The guest goes to sleep while its driver's interrupt hold-off runs (IHR): nothing the back
   * end responds can reach the driver before the hold-off ends — the model holds its interrupt
   * till then, and a sleeping guest looks at no descriptor — so the front end asks for no
   * events until then (each ring's event index left behind its producer: io/ring.h notifies
   * only past it) and wakes at the hold-off's end instead (the model's event), where it takes
   * what came (`poll`), and the model's interrupt comes when the chip's would. One wake-up per
   * hold-off instead of an event for each response and then the hold-off's end.
   */
  idle(): void {
    const model = this.model;
    if (model === undefined || !this.linkUp || !this.connected) return;
    if (model.holdoffEnd() === undefined) return;
    this.eventsOff = true;
    this.setRing32(TX + RSP_EVENT, this.ring32(TX + RSP_PROD));
    this.setRing32(RX + RSP_EVENT, this.ring32(RX + RSP_PROD));
    model.wakeAtHoldoffEnd();
  }

  /** Wherever the VMM runs (the guest is awake): events again, and what came meanwhile. */
  poll(): void {
    if (!this.eventsOff) return;
    this.eventsOff = false;
    this.event();
  }

  /** The guest's free receive buffers, granted and posted, as many as the ring takes. */
  private postRx(): void {
    const model = this.model;
    if (model === undefined || !this.connected) return;
    while (this.rxProd - this.rxCons < SLOTS) {
      const b = model.rxClaim();
      if (b === undefined) break;
      const slot = this.rxProd % SLOTS;
      const mfn = this.machineFrame(b.address);
      const offset = b.address % 4096;
      const size = mfn === undefined ? 0 : Math.min(b.length, 4096 - offset);
      if (mfn !== undefined) this.grant(RX_REF + slot, mfn, false);
      const at = RX_SLOTS_AT + slot * SLOT;
      this.setRing32(at, slot | (offset << 16));
      this.setRing32(at + 4, mfn === undefined ? 0 : RX_REF + slot);
      this.setRing32(at + 8, size);
      this.touch(SLOT);
      this.rxPosted[slot] = b.address;
      this.rxProd = (this.rxProd + 1) >>> 0;
    }
    // Posting receive buffers never needs a notification (netif.h): the driver VM reads them
    // when a frame arrives.
    this.setRing32(RX + REQ_PROD, this.rxProd);
  }

  /**
   * The driver VM's event: responses to take. Or the toolstack's: the back end is gone
   * (`backendGone`), or a new one has connected (the link comes up again).
   */
  event(): void {
    if ((this.conn.backend ?? 0) !== this.backend) {
      this.backendGone();
      return;
    }
    if (!this.linkUp) {
      if (!this.connected) return;
      this.linkUp = true;
      this.awaitingFrame = true;
      this.model?.setLink(true);
      this.conn.watch?.('connected');
    }
    for (;;) {
      const txProd = this.ring32(TX + RSP_PROD);
      while (this.txCons !== txProd) this.txResponse();
      this.setRing32(TX + RSP_EVENT, this.txCons + 1);
      const rxProd = this.ring32(RX + RSP_PROD);
      while (this.rxCons !== rxProd) this.rxResponse();
      this.setRing32(RX + RSP_EVENT, this.rxCons + 1);
      // A response that came after we looked: take it now (RING_FINAL_CHECK_FOR_RESPONSES).
      if (this.ring32(TX + RSP_PROD) === txProd && this.ring32(RX + RSP_PROD) === rxProd) break;
    }
    this.postRx();
  }

  private txResponse(): void {
    const slot = this.txCons % SLOTS;
    const status = ((this.ring32(TX_SLOTS_AT + slot * SLOT) >> 16) << 16) >> 16;
    this.touch(4);
    this.endGrant(TX_REF + slot);
    // The packet this slot belongs to: the latest first index at or before it.
    let packet: number | undefined;
    for (const first of this.txPending.keys())
      if ((this.txCons - first) >>> 0 < SLOTS) packet = first;
    this.txCons = (this.txCons + 1) >>> 0;
    const p = packet === undefined ? undefined : this.txPending.get(packet);
    if (p === undefined || packet === undefined) return;
    if (status < 0) p.ok = false;
    if (--p.left === 0) {
      this.txPending.delete(packet);
      this.model?.txPeerDone(p.packet, p.ok);
    }
  }

  private rxResponse(): void {
    const slot = this.rxCons % SLOTS;
    const at = RX_SLOTS_AT + slot * SLOT;
    const status = this.ring32(at + 4) | 0;
    this.touch(8);
    this.endGrant(RX_REF + slot);
    this.rxCons = (this.rxCons + 1) >>> 0;
    const ok = status > 0;
    const address = this.rxPosted[slot];
    const mfn = this.machineFrame(address);
    const dest0 = ok && mfn !== undefined ? this.xen.machine.ram[mfn * 4096 + (address % 4096)] : 0;
    if (!ok) this.counters.dropped++;
    this.model?.rxComplete(ok ? status : 0, ok, dest0);
    if (ok && this.awaitingFrame) {
      this.awaitingFrame = false;
      this.conn.watch?.('first-frame');
    }
  }
}

/** The driver VM's VMM's side: one client of its client link. */
export class NetBack extends RingSide implements LinkClient {
  private ringHandle = -1;
  private txCons = 0;
  private rxCons = 0;
  private txRsp = 0;
  private rxRsp = 0;
  /** Mapped TX grants by slot (their handles), and the packets with the link by first index. */
  private readonly txHandles: number[] = new Array<number>(SLOTS).fill(-1);
  private readonly packets = new Map<number, number>();
  private offerTo: ((parts: BufferPart[], id: number) => boolean) | undefined;
  private room: () => number = () => 0;
  private tellWaiting: () => void = () => {};

  constructor(
    xen: XenHypervisor,
    dom: Domain,
    c: HypercallChannel,
    private readonly conn: XenNetConnection,
    /** Its part of the driver VM's grant window: client k's starts at k pages-per-client. */
    private readonly window = 0,
  ) {
    super(xen, dom, c);
  }

  get mac(): Uint8Array {
    return this.conn.mac;
  }

  protected get page(): number | undefined {
    if (this.ringHandle < 0) return undefined;
    const mfn = this.dom.grantTable.windowFrame(this.window + WINDOW_RING);
    return mfn === undefined ? undefined : mfn * 4096;
  }

  get eventPort(): number {
    return this.port;
  }

  /**
   * Where the link takes this client's frames (the device's `offer` for this client), its room
   * for them, and whom to tell when frames wait for room (the link counts it per client).
   */
  serveThrough(
    offer: (parts: BufferPart[], id: number) => boolean,
    room: () => number,
    waiting: () => void = () => {},
  ): void {
    this.offerTo = offer;
    this.room = room;
    this.tellWaiting = waiting;
  }

  /** Tried again at each flush while connect() says 'waiting' (set by the client link's owner). */
  retry: (() => void) | undefined;
  private waiting = false;

  /**
   * The module brought the link up, in the driver VM's context: map the client's ring, bind
   * its port, say so in the ring and tell the client. A client that publishes through the
   * toolstack's look (`find`) may not be there yet: then 'waiting', and retried at each flush.
   */
  connect(): ConnectResult {
    if (this.ringHandle >= 0) return 'connected';
    const published = (): boolean =>
      this.conn.clientDom !== undefined &&
      this.conn.ringRef !== undefined &&
      this.conn.clientPort !== undefined;
    if (!published() && this.conn.find?.() !== true) {
      // A client the toolstack looks for (find), or one publishing again for this restarted
      // driver VM (its domain known, its keys not yet): tried again at each flush.
      if (this.conn.find === undefined && this.conn.clientDom === undefined)
        return { failed: 'the client has not published its ring' };
      this.waiting = true;
      return 'waiting';
    }
    this.waiting = false;
    const { clientDom = 0, ringRef = 0, clientPort = 0 } = this.conn;
    const handle = this.mapGrant(
      this.dom.p2m.length + this.window + WINDOW_RING,
      ringRef,
      clientDom,
      GNTMAP.host_map,
    );
    if (handle === undefined) return { failed: "cannot map the client's ring" };
    this.ringHandle = handle;
    const c = this.c;
    c.argWrite(0, 2, clientDom);
    c.argWrite(4, 4, clientPort);
    if (c.hypercall(Hypercall.event_channel_op, [EvtchnOp.bind_interdomain, ARGS_PAGE]) !== 0)
      return { failed: "cannot bind the client's event channel" };
    this.port = c.argRead(8);
    this.setRing32(TX + REQ_EVENT, this.txCons + 1);
    this.setRing32(BACKEND_STATE, CONNECTED);
    this.notifyPending = true;
    // Likewise its link is up when the back end has connected.
    if (this.conn.find !== undefined) this.conn.watch?.('connected');
    return 'connected';
  }

  /** At the driver VM's iret or idle: the connection it still waits for, then the event. */
  override flush(): void {
    if (this.waiting) this.retry?.();
    super.flush();
  }

  /** The client's event: its TX requests to the link, as far as the link has room. */
  event(): void {
    if (this.ringHandle < 0) return;
    for (;;) {
      const prod = this.ring32(TX + REQ_PROD);
      this.takeTx(prod);
      this.setRing32(TX + REQ_EVENT, this.txCons + 1);
      if (this.ring32(TX + REQ_PROD) === prod || this.room() === 0) break;
    }
    if (this.txCons !== this.ring32(TX + REQ_PROD)) this.tellWaiting();
  }

  /** Requests up to `prod`, each packet mapped into the grant window and offered. */
  private takeTx(prod: number): void {
    const clientDom = this.conn.clientDom ?? 0;
    while (this.txCons !== prod && this.room() > 0) {
      // A packet: its requests up to the one without MORE (all pushed at once by the client).
      const parts: BufferPart[] = [];
      const first = this.txCons;
      let ok = true;
      for (let more = true; more && this.txCons !== prod;) {
        const slot = this.txCons % SLOTS;
        const at = TX_SLOTS_AT + slot * SLOT;
        const ref = this.ring32(at);
        const offset = this.ring16(at + 4);
        more = ((this.ring32(at + 4) >>> 16) & MORE) !== 0;
        const size = this.ring32(at + 8) >>> 16;
        this.touch(SLOT);
        this.txCons = (this.txCons + 1) >>> 0;
        const page = this.dom.p2m.length + this.window + WINDOW_TX + slot;
        // GUEST-CONTROLLED (the client's ring): a bad reference or size fails this packet only.
        const handle =
          offset + size > 4096
            ? undefined
            : this.mapGrant(
                page,
                ref,
                clientDom,
                GNTMAP.host_map | GNTMAP.device_map | GNTMAP.readonly,
              );
        if (handle === undefined) {
          ok = false;
          continue;
        }
        this.txHandles[slot] = handle;
        parts.push({ address: page * 4096 + offset, length: size });
      }
      if (!ok || parts.length === 0 || parts.length > 2 || this.offerTo?.(parts, first) !== true) {
        this.counters.dropped++;
        this.finish(first, this.txCons, -1);
        continue;
      }
      this.packets.set(first, this.txCons);
      this.counters.frames++;
    }
  }

  /** The link is through with the packet `id`: unmap it and respond. */
  sent(id: number): void {
    const end = this.packets.get(id);
    if (end === undefined) return;
    this.packets.delete(id);
    this.finish(id, end, 0);
    // Room on the link again: what the client queued meanwhile.
    this.event();
  }

  /** Unmaps the packet's slots [first, end) and responds to each with `status`. */
  private finish(first: number, end: number, status: number): void {
    for (let k = first; k !== end; k = (k + 1) >>> 0) {
      const slot = k % SLOTS;
      const handle = this.txHandles[slot];
      if (handle >= 0) {
        const c = this.c;
        c.argWrite(GnttabUnmap.host_addr, 4, 0);
        c.argWrite(GnttabUnmap.host_addr + 4, 4, 0);
        c.argWrite(GnttabUnmap.dev_bus_addr, 4, 0);
        c.argWrite(GnttabUnmap.dev_bus_addr + 4, 4, 0);
        c.argWrite(GnttabUnmap.handle, 4, handle);
        this.grantOp(GnttabOp.unmap_grant_ref, 1);
        this.txHandles[slot] = -1;
      }
      this.setRing32(TX_SLOTS_AT + slot * SLOT, slot | ((status & 0xffff) << 16));
      this.touch(4);
      this.txRsp = (this.txRsp + 1) >>> 0;
    }
    this.push(TX + RSP_PROD, TX + RSP_EVENT, this.txRsp);
  }

  /** Whether it has mapped the client's ring (its port then has this side's handler). */
  get isConnected(): boolean {
    return this.ringHandle >= 0;
  }

  save(): NetBackState {
    const c = this.conn;
    return {
      version: 1,
      counters: { ...this.counters },
      port: this.port,
      notifyPending: this.notifyPending,
      ringHandle: this.ringHandle,
      txCons: this.txCons,
      rxCons: this.rxCons,
      txRsp: this.txRsp,
      rxRsp: this.rxRsp,
      txHandles: [...this.txHandles],
      packets: [...this.packets].map(([first, end]) => ({ first, end })),
      waiting: this.waiting,
      connection: {
        clientDom: c.clientDom ?? null,
        ringRef: c.ringRef ?? null,
        clientPort: c.clientPort ?? null,
        driverDom: c.driverDom ?? null,
        backend: c.backend ?? null,
      },
    };
  }

  /** The saved side and its connection record again; its port's handler is the owner's. */
  restore(state: NetBackState, path = 'netBack'): void {
    BACK_STATE(state, path);
    Object.assign(this.counters, state.counters);
    this.port = state.port;
    this.notifyPending = state.notifyPending;
    this.ringHandle = state.ringHandle;
    this.txCons = state.txCons;
    this.rxCons = state.rxCons;
    this.txRsp = state.txRsp;
    this.rxRsp = state.rxRsp;
    this.txHandles.splice(0, SLOTS, ...state.txHandles);
    this.packets.clear();
    for (const p of state.packets) this.packets.set(p.first, p.end);
    this.waiting = state.waiting;
    const r = state.connection;
    this.conn.clientDom = r.clientDom ?? undefined;
    this.conn.ringRef = r.ringRef ?? undefined;
    this.conn.clientPort = r.clientPort ?? undefined;
    this.conn.driverDom = r.driverDom ?? undefined;
    this.conn.backend = r.backend ?? undefined;
  }

  /** A frame from the wire for this client: one grant copy into its next posted buffer. */
  deliver(address: number, length: number): boolean {
    if (this.ringHandle < 0) return false;
    if (this.ring32(RX + REQ_PROD) === this.rxCons) {
      this.counters.dropped++; // no buffer posted: dropped, as a NIC with a full ring drops
      return false;
    }
    const slot = this.rxCons % SLOTS;
    const at = RX_SLOTS_AT + slot * SLOT;
    const head = this.ring32(at);
    const id = head & 0xffff;
    const offset = head >>> 16;
    const ref = this.ring32(at + 4);
    const size = this.ring32(at + 8);
    this.touch(SLOT);
    this.rxCons = (this.rxCons + 1) >>> 0;
    let ok = length <= size && offset + length <= 4096;
    if (ok) {
      // The source may cross a page of the driver VM's: one operation per piece.
      const c = this.c;
      let ops = 0;
      for (let done = 0; done < length; ops++) {
        const src = address + done;
        const n = Math.min(length - done, 4096 - (src % 4096));
        const op = ops * GnttabCopy.size;
        c.argWrite(op + GnttabCopy.source, 4, Math.floor(src / 4096));
        c.argWrite(op + GnttabCopy.source + 4, 2, DOMID_SELF);
        c.argWrite(op + GnttabCopy.source + 6, 2, src % 4096);
        c.argWrite(op + GnttabCopy.dest, 4, ref);
        c.argWrite(op + GnttabCopy.dest + 4, 2, this.conn.clientDom ?? 0);
        c.argWrite(op + GnttabCopy.dest + 6, 2, offset + done);
        c.argWrite(op + GnttabCopy.len, 2, n);
        c.argWrite(op + GnttabCopy.flags, 2, GNTCOPY.dest_gref);
        done += n;
      }
      ok = this.grantOp(GnttabOp.copy, ops) === 0;
      for (let k = 0; k < ops && ok; k++)
        ok = this.argStatus(k * GnttabCopy.size + GnttabCopy.status) === 0;
    }
    this.setRing32(at, id);
    this.setRing32(at + 4, ok ? length : -1);
    this.touch(8);
    this.rxRsp = (this.rxRsp + 1) >>> 0;
    this.push(RX + RSP_PROD, RX + RSP_EVENT, this.rxRsp);
    if (ok) this.counters.frames++;
    else this.counters.dropped++;
    // A front end of the guest's own (the toolstack finds it) has no VMM to tell the
    // toolstack's watch: the back end's first delivery is its first frame.
    if (ok && this.conn.find !== undefined) this.conn.watch?.('first-frame');
    return ok;
  }
}
