/**
 * The client link (issue "reuse"): the virtual device through which a driver VM serves other
 * VMs' network traffic. The driver VM runs the same afterburned kernel as everyone, with the
 * real DP83820 passed through; its translation module (guest/kernel/bridge.c, where the
 * register layout is written down) finds this device on the virtual PCI bus and bridges frames
 * between its DP83820 driver and the link: the link is platform-style, the same registers and
 * rings on every hypervisor, and only its far side — how frames reach the clients — is the
 * hypervisor's (a `LinkClient` per client: grants and event channels on xen). So the driver VM
 * stays one binary for both hypervisors, as the original's DD/OS stayed one Linux with one
 * translation module for its clients.
 *
 * - Clients' frames to send: the hypervisor's side makes a client's buffers reachable in the
 *   driver VM's physical space (on xen, grant mappings in its grant window) and `offer`s them;
 *   the device puts them on the send ring and raises its interrupt; the module hands the
 *   buffers to its NIC where they are and reports them done (KICK_SENT) when the NIC has sent
 *   them, and the device tells the client's side (`sent`), which ends the mapping.
 * - Frames for clients: the module puts the NIC's receive buffer on the deliver ring and kicks
 *   (KICK_DELIVER); the device hands each entry to its client's side at once (`deliver`: on xen
 *   a grant copy into a buffer the client posted), and writes whether it was delivered.
 *
 * The rings are in the driver VM's memory, read and written through its (confined) DMA, which
 * charges the VMM's copying; a register access costs what any virtual device register does
 * (cost-model.md: 40 cycles, charged by the core).
 */
import type {
  AccessSize,
  BusAccess,
  DmaMemory,
  IrqLine,
  MmioDevice,
  PciFunction,
  Registration,
} from '../../machine/device.ts';
import type { BufferPart } from '../../machine/devices/dp83820/Dp83820.ts';
import {
  arrayOf,
  bool,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  num,
  shape,
} from '../../machine/state.ts';
import { configSpaceRead, forEachConfigByte } from '../../machine/devices/pci/configSpace.ts';
import type { CounterTree } from '../../machine/counters.ts';

export const LINK_VENDOR = 0x7072;
export const LINK_DEVICE = 0x0001;
export const LINK_SLOT = 4;
export const LINK_IRQ = 10;
export const LINK_MAX_CLIENTS = 8;

const REG = {
  version: 0x00,
  clients: 0x04,
  isr: 0x08,
  imr: 0x0c,
  sendRing: 0x10,
  deliverRing: 0x14,
  kick: 0x18,
  control: 0x1c,
  mac: 0x40,
} as const;
const ISR_OFFERED = 1;
const KICK_DELIVER = 1;
const KICK_SENT = 2;
const EVERY_CLIENT = 0xff;
const DELIVERED = 1;
const NOT_DELIVERED = 2;

/** The rings (bridge.c's struct send_ring and struct deliver_ring). */
export const RING_SLOTS = 64;
const RING_ENTRIES = 0x40;
const SEND_ENTRY = 32;
const DELIVER_ENTRY = 16;

/** One client as the hypervisor's side of the link serves it. */
export interface LinkClient {
  readonly mac: Uint8Array;
  /**
   * Copies the frame at the driver VM's physical `address` (`length` bytes) to the client; false
   * if it could not take it (no buffer posted: dropped, as a full NIC drops).
   */
  deliver(address: number, length: number): boolean;
  /** The driver VM is through with the client's frame `id` (offered earlier). */
  sent(id: number): void;
}

export interface ClientLinkConfig {
  /** The driver VM's physical memory as the device reaches it (confined, charged). */
  dma: DmaMemory;
  irq: IrqLine;
  buses: BusAccess;
  clients: LinkClient[];
  /** The module brought the link up (its rings are set) or down. */
  control(up: boolean): void;
}

export interface ClientLinkCounters {
  offered: number;
  sent: number;
  delivered: number;
  notDelivered: number;
  badEntries: number;
}

/**
 * One client's part of the link's traffic (with several clients only: a link with one shows
 * the totals alone, as it always did). `full`: the times its share of the send ring was taken
 * while it had more frames waiting (its side told the link so: `waiting`), the limit a client
 * that floods the link runs into.
 */
export interface LinkClientCounters {
  offered: number;
  sent: number;
  delivered: number;
  notDelivered: number;
  full: number;
}

export interface ClientLinkState {
  version: 2;
  config: string;
  isr: number;
  imr: number;
  sendRing: number;
  deliverRing: number;
  up: boolean;
  sendProd: number;
  sendDone: number;
  deliverCons: number;
  /**
   * Each client's frames on the send ring (offered, not yet sent). Saved, not read back from
   * the ring at a restore: the ring is read through the driver VM's DMA, which charges the
   * VMM's copying, and a restore must cost the restored machine nothing.
   */
  held: number[];
  counters: ClientLinkCounters;
  /** Each client's counters (several clients; an empty list for one). */
  clientCounters: LinkClientCounters[];
}

const STATE = checkState<ClientLinkState>('client link', 2, {
  config: bytes,
  isr: num,
  imr: num,
  sendRing: num,
  deliverRing: num,
  up: bool,
  sendProd: num,
  sendDone: num,
  deliverCons: num,
  held: arrayOf(num),
  counters: shape<ClientLinkCounters>({
    offered: num,
    sent: num,
    delivered: num,
    notDelivered: num,
    badEntries: num,
  }),
  clientCounters: arrayOf(
    shape<LinkClientCounters>({
      offered: num,
      sent: num,
      delivered: num,
      notDelivered: num,
      full: num,
    }),
  ),
});

/**
 * A driver VM's VMM counters for its link (the VMM's `stats()`, on either hypervisor): the link's
 * own, with the emulated devices' DMA; with several clients each one's traffic and the times its
 * share was full; and each back end's.
 */
export function servedCounters(
  link: ClientLink,
  dma: Record<string, number>,
  backs: { counters: object }[],
): { clientLink: CounterTree; netBack: CounterTree } {
  return {
    clientLink: {
      ...link.counters,
      ...dma,
      ...(link.clientCounters.length === 0
        ? {}
        : { clients: Object.fromEntries(link.clientCounters.map((c, k) => [k, { ...c }])) }),
    },
    netBack: Object.fromEntries(
      backs.map((b, k) => [k, { ...b.counters } as unknown as CounterTree]),
    ),
  };
}

export class ClientLink implements PciFunction, MmioDevice {
  readonly name = 'client-link';
  readonly counters: ClientLinkCounters = {
    offered: 0,
    sent: 0,
    delivered: 0,
    notDelivered: 0,
    badEntries: 0,
  };
  /** Each client's counters, with several clients (empty with one). */
  readonly clientCounters: LinkClientCounters[];
  private readonly config = new Uint8Array(256);
  private registration: Registration | undefined;
  private isr = 0;
  private imr = 0;
  /** Frames of each client on the send ring (offered, not yet sent): derived from the ring. */
  private held: number[] = [];
  private sendRing = 0;
  private deliverRing = 0;
  private up = false;
  /** The send ring's producer (ours) and the module's last `done` we acted on. */
  private sendProd = 0;
  private sendDone = 0;
  private deliverCons = 0;

  constructor(private readonly cfg: ClientLinkConfig) {
    this.clientCounters =
      cfg.clients.length > 1
        ? cfg.clients.map(() => ({ offered: 0, sent: 0, delivered: 0, notDelivered: 0, full: 0 }))
        : [];
    const c = new DataView(this.config.buffer);
    c.setUint16(0x00, LINK_VENDOR, true);
    c.setUint16(0x02, LINK_DEVICE, true);
    c.setUint8(0x0b, 0x02); // network controller
    c.setUint8(0x0a, 0x80); // other
    c.setUint32(0x10, 0, true); // BAR0: 32-bit memory, 4 KB
    c.setUint8(0x3c, LINK_IRQ);
    c.setUint8(0x3d, 1); // INTA#
  }

  /** Whether the module has brought the link up. */
  get isUp(): boolean {
    return this.up;
  }

  // ---- PCI configuration space ------------------------------------------------------------

  configRead(offset: number, size: AccessSize): number {
    return configSpaceRead(this.config, offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    const v = new DataView(this.config.buffer);
    forEachConfigByte(offset, size, value, (o, byte) => {
      if (o === 0x04)
        this.config[o] = byte & 0x06; // memory, bus master
      else if ((o >= 0x10 && o < 0x14) || o === 0x3c) this.config[o] = byte;
    });
    v.setUint32(0x10, (v.getUint32(0x10, true) & 0xfffff000) >>> 0, true);
    this.placeBar();
  }

  private placeBar(): void {
    const v = new DataView(this.config.buffer);
    const base = v.getUint32(0x10, true) >>> 0;
    this.registration?.remove();
    this.registration = undefined;
    // GUEST-CONTROLLED: the base comes from the guest; a clash is refused by the bus.
    if ((v.getUint16(0x04, true) & 2) !== 0 && base !== 0 && base !== 0xfffff000) {
      const r = this.cfg.buses.registerMmio(base, 0x1000, this);
      if (typeof r !== 'string') this.registration = r;
    }
  }

  // ---- registers ----------------------------------------------------------------------------

  mmioRead(offset: number, size: AccessSize): number {
    const at = offset & ~3;
    let v = 0;
    if (at === REG.version) v = 1;
    else if (at === REG.clients) v = this.cfg.clients.length;
    else if (at === REG.isr) {
      v = this.isr;
      this.isr = 0;
      this.updateLine();
    } else if (at === REG.imr) v = this.imr;
    else if (at === REG.sendRing) v = this.sendRing;
    else if (at === REG.deliverRing) v = this.deliverRing;
    else if (at === REG.control) v = this.up ? 1 : 0;
    else if (at >= REG.mac && at < REG.mac + 8 * LINK_MAX_CLIENTS) {
      const mac = this.cfg.clients[(at - REG.mac) >> 3]?.mac;
      if (mac !== undefined)
        v =
          (at & 4) === 0
            ? (mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)) >>> 0
            : mac[4] | (mac[5] << 8);
    }
    const shift = (offset & 3) * 8;
    return size === 4 ? v >>> 0 : (v >>> shift) & ((1 << (size * 8)) - 1);
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || (offset & 3) !== 0) return; // the module writes whole registers
    const v = value >>> 0;
    switch (offset) {
      case REG.imr:
        this.imr = v;
        this.updateLine();
        return;
      case REG.sendRing:
        this.sendRing = v & ~0xfff;
        this.sendProd = 0;
        this.sendDone = 0;
        this.held = [];
        return;
      case REG.deliverRing:
        this.deliverRing = v & ~0xfff;
        this.deliverCons = 0;
        return;
      case REG.kick:
        if ((v & KICK_SENT) !== 0) this.takeSent();
        if ((v & KICK_DELIVER) !== 0) this.takeDeliveries();
        return;
      case REG.control: {
        const up = (v & 1) !== 0 && this.sendRing !== 0 && this.deliverRing !== 0;
        if (up === this.up) return;
        this.up = up;
        this.cfg.control(up);
        return;
      }
      default:
        return;
    }
  }

  private updateLine(): void {
    this.cfg.irq.set((this.isr & this.imr) !== 0);
  }

  // ---- the rings ----------------------------------------------------------------------------

  private read32(address: number): number | undefined {
    const b = new Uint8Array(4);
    if (!this.cfg.dma.read(address, b)) return undefined;
    return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }

  private write32(address: number, value: number): boolean {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    return this.cfg.dma.write(address, b);
  }

  /**
   * A client's frame for the driver VM to send: its buffers in the driver VM's physical space
   * (at most two: a buffer may cross one page boundary). False if the send ring is full or the
   * link is down (the client's side keeps it and offers it again after a `sent`).
   */
  offer(client: number, parts: BufferPart[], id: number): boolean {
    if (!this.up || parts.length < 1 || parts.length > 2) return false;
    if (this.roomFor(client) === 0) return false;
    const e = new Uint8Array(SEND_ENTRY);
    const v = new DataView(e.buffer);
    v.setUint32(0, id >>> 0, true);
    v.setUint8(4, client);
    v.setUint8(5, parts.length);
    parts.forEach((p, k) => {
      v.setUint32(8 + 4 * k, p.address >>> 0, true);
      v.setUint32(16 + 4 * k, p.length >>> 0, true);
    });
    const slot = this.sendRing + RING_ENTRIES + (this.sendProd % RING_SLOTS) * SEND_ENTRY;
    if (!this.cfg.dma.write(slot, e)) return false;
    this.sendProd = (this.sendProd + 1) >>> 0;
    this.held[client] = (this.held[client] ?? 0) + 1;
    if (!this.write32(this.sendRing, this.sendProd)) return false;
    this.counters.offered++;
    if (this.clientCounters[client] !== undefined) this.clientCounters[client].offered++;
    this.isr |= ISR_OFFERED;
    this.updateLine();
    return true;
  }

  /**
   * Room on the send ring for `client` now: the ring's free slots, and no more than its share
   * of the ring (all of it for one client; with several, an equal part each), so that a client
   * that floods the link holds at most its share and the others' frames still find room.
   */
  roomFor(client: number): number {
    if (!this.up) return 0;
    const share = Math.floor(RING_SLOTS / Math.max(1, this.cfg.clients.length));
    const free = RING_SLOTS - (this.sendProd - this.sendDone);
    return Math.max(0, Math.min(free, share - (this.held[client] ?? 0)));
  }

  /** `client` has frames waiting that found no room (its share or the ring full): counted. */
  waiting(client: number): void {
    if (this.clientCounters[client] !== undefined) this.clientCounters[client].full++;
  }

  /** The module's `done` moved: those frames go back to their clients, oldest first. */
  private takeSent(): void {
    const done = this.read32(this.sendRing + 8);
    if (done === undefined) return;
    // GUEST-CONTROLLED: `done` is the module's; it may not pass what was offered.
    const n = (done - this.sendDone) >>> 0;
    if (n > this.sendProd - this.sendDone) {
      this.counters.badEntries++;
      return;
    }
    for (let k = 0; k < n; k++) {
      const slot = this.sendRing + RING_ENTRIES + (this.sendDone % RING_SLOTS) * SEND_ENTRY;
      const id = this.read32(slot);
      const b = new Uint8Array(1);
      const which = this.cfg.dma.read(slot + 4, b) ? b[0] : undefined;
      const client = which === undefined ? undefined : this.cfg.clients[which];
      this.sendDone = (this.sendDone + 1) >>> 0;
      if (which !== undefined && (this.held[which] ?? 0) > 0) this.held[which]--;
      if (id === undefined || client === undefined) {
        this.counters.badEntries++;
        continue;
      }
      this.counters.sent++;
      const mine = which === undefined ? undefined : this.clientCounters[which];
      if (mine !== undefined) mine.sent++;
      client.sent(id);
    }
  }

  /** The module's frames for clients, each handed to its client (or all) now. */
  private takeDeliveries(): void {
    const prod = this.read32(this.deliverRing);
    if (prod === undefined) return;
    // GUEST-CONTROLLED: at most a ring's worth at a time, whatever the module wrote.
    for (let k = 0; k < RING_SLOTS && this.deliverCons !== prod; k++) {
      const slot =
        this.deliverRing + RING_ENTRIES + (this.deliverCons % RING_SLOTS) * DELIVER_ENTRY;
      const e = new Uint8Array(8);
      this.deliverCons = (this.deliverCons + 1) >>> 0;
      if (!this.cfg.dma.read(slot, e)) {
        this.counters.badEntries++;
        continue;
      }
      const v = new DataView(e.buffer);
      const address = v.getUint32(0, true);
      const length = v.getUint16(4, true);
      const which = v.getUint8(6);
      const targets =
        which === EVERY_CLIENT ? this.cfg.clients : [this.cfg.clients[which]].filter(Boolean);
      let ok = targets.length > 0 && length >= 14 && length <= 1518;
      if (!ok) this.counters.badEntries++;
      else
        for (const c of targets) {
          const took = c.deliver(address, length);
          const mine = this.clientCounters[this.cfg.clients.indexOf(c)];
          if (mine !== undefined) {
            if (took) mine.delivered++;
            else mine.notDelivered++;
          }
          ok = took && ok;
        }
      if (ok) this.counters.delivered++;
      else this.counters.notDelivered++;
      this.cfg.dma.write(slot + 7, Uint8Array.of(ok ? DELIVERED : NOT_DELIVERED));
    }
    this.write32(this.deliverRing + 4, this.deliverCons);
  }

  // ---- snapshot -----------------------------------------------------------------------------

  save(): ClientLinkState {
    return {
      version: 2,
      config: encodeBytes(this.config),
      isr: this.isr,
      imr: this.imr,
      sendRing: this.sendRing,
      deliverRing: this.deliverRing,
      up: this.up,
      sendProd: this.sendProd,
      sendDone: this.sendDone,
      deliverCons: this.deliverCons,
      held: Array.from(this.held, (n) => n ?? 0),
      counters: { ...this.counters },
      clientCounters: this.clientCounters.map((c) => ({ ...c })),
    };
  }

  restore(state: ClientLinkState, path = 'clientLink'): void {
    STATE(state, path);
    this.config.set(decodeBytes(state.config, `${path}.config`, 256));
    this.placeBar();
    this.isr = state.isr;
    this.imr = state.imr;
    this.sendRing = state.sendRing;
    this.deliverRing = state.deliverRing;
    this.up = state.up;
    this.sendProd = state.sendProd;
    this.sendDone = state.sendDone;
    this.deliverCons = state.deliverCons;
    Object.assign(this.counters, state.counters);
    state.clientCounters.forEach((c, k) => {
      if (this.clientCounters[k] !== undefined) Object.assign(this.clientCounters[k], c);
    });
    this.held = [...state.held];
    this.updateLine();
  }
}
