/**
 * The National Semiconductor DP83820 gigabit Ethernet MAC as a PCI function (facts from
 * shared/reference/dp83820.md, which cites Linux ns83820.c, gem5, NetBSD, FreeBSD and U-Boot):
 * I/O BAR0 (256 bytes) and memory BAR1 (4 KB) with the same registers, interrupt on INTA#,
 * descriptor rings in the 32- and 64-bit formats walked by TX and RX engines that DMA on the
 * simulated clock, the receive filter and perfect-match MAC, the EEPROM, MIB counters, and a
 * 1000 Mb/s full-duplex copper link as CFG reports it, and the IP/TCP/UDP checksum engine in both
 * directions (checksumOffload.ts). A descriptor or buffer outside memory is
 * a bus error reported to the driver (status and interrupt), never a host exception.
 */
import type {
  AccessSize,
  BusAccess,
  Clock,
  DmaMemory,
  IrqLine,
  MmioDevice,
  PciFunction,
  PortDevice,
  Registration,
  Stateful,
  Timer,
  TimerState,
} from '../../device.ts';
import { fcsValid, withFcs } from '../../ethernet/frame.ts';
import type { EthernetReceiver } from '../../ethernet/link.ts';
import {
  arrayOf,
  bool,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  nullable,
  num,
  oneOf,
  shape,
  timer,
  type Check,
} from '../../state.ts';
import { insertTxChecksums, rxChecksumStatus, VRCR_IPEN, VTCR } from './checksumOffload.ts';
import { Eeprom93c46, type EepromState } from './Eeprom93c46.ts';
import { CFG, CFG_READ_ONLY, CMDSTS, CR, ISR, MEAR, PTSCR, REG, RFCR, TBI } from './registers.ts';
import { configSpaceRead, forEachConfigByte } from '../pci/configSpace.ts';

export interface Dp83820Config {
  clock: Clock;
  dma: DmaMemory;
  irq: IrqLine;
  buses: BusAccess;
  mac: Uint8Array;
  /** Puts a frame (with FCS) on the wire; returns the cycle the wire is free again, or undefined. */
  transmit: (frame: Uint8Array) => number | undefined;
  /**
   * Instead of a wire, a peer that takes and fills the driver's buffers where they are (the
   * in-place VMM's model forwarding to a driver VM: src/vmm/devices/emulatedNic.ts). Then the
   * engines copy nothing: TX hands the packet's buffers over and completes when the peer is
   * through with them; RX lets the peer claim the buffers the driver gave the NIC, in ring order,
   * and completes each when the peer has filled it (`rxClaim`, `rxComplete`). No checksum
   * offload on this path (the peer sees the buffers, not a frame).
   */
  direct?: DirectWire;
  /**
   * For a virtual device (the in-place VMM's model, src/vmm/devices/emulatedNic.ts): the end of
   * the interrupt hold-off is an event on the clock only when the host goes idle (`idle`,
   * `wakeAtHoldoffEnd`). The line is held while the hold-off runs, exactly as IHR says; while the
   * host runs, the line comes up at the first point after the hold-off's end at which the host
   * looks (`holdoffCheck`: the VMM's `iret`, idle, events, timer ticks) or the chip is touched,
   * since a virtual interrupt reaches the guest only at such points anyway; an event of its own
   * then would cost the VMM a timer of the hypervisor's (a hypercall) for nothing.
   */
  holdoffWithoutEvent?: boolean;
}

/** The peer of a DP83820 without a wire (Dp83820Config.direct). */
export interface DirectWire {
  /**
   * A packet's buffers (bus addresses and lengths), numbered `packet`: the peer calls the
   * model's `txPeerDone(packet, ok)` when it is through with them (a number, not a callback, so
   * that what the peer holds is data a snapshot keeps).
   */
  transmit(parts: BufferPart[], packet: number): void;
  /** The driver enabled the RX engine (CR.RXE): there may be buffers to claim. */
  rxKick(): void;
}

export interface BufferPart {
  address: number;
  length: number;
}

type TxDescriptor = TxDescriptorState;

export interface Dp83820Counters {
  rxFrames: number;
  rxBytes: number;
  rxDropped: number;
  rxFcsErrors: number;
  txFrames: number;
  txBytes: number;
  busErrors: number;
  interrupts: number;
  unknownRegisterReads: number;
}

/**
 * The transmit engine's pending work on the clock: a step that gathers the packet at TXDP, or the
 * end of a packet's DMA and transmission, which raises its ISR bits and goes on at `link`.
 */
export type TxEventState =
  { kind: 'step'; at: TimerState } | { kind: 'done'; at: TimerState; isr: number; link: number };

/**
 * Everything the chip holds: PCI configuration space (the BARs' placement: restoring it places
 * the BARs on the buses again), the register file, receive-filter memory, MIB counters, the
 * EEPROM, the interrupt line and hold-off timer, both engines mid-DMA (the events pending on the
 * clock) and the frames waiting in the receive FIFO, and the model's counters.
 */
/** A TX descriptor as the engine read it (a direct packet's, while the peer has it). */
export interface TxDescriptorState {
  addr: number;
  cmdsts: number;
  link: number;
  extsts: number;
}

/**
 * The direct peer's part of the chip (Dp83820Config.direct; empty without one): the packets
 * with the peer by number, with the descriptors they came from; whether the engine waits for one
 * of them; whether TXE was written since the last flush; the RX buffers the peer claimed.
 */
export interface Dp83820DirectState {
  txWaiting: boolean;
  txKicked: boolean;
  nextPacket: number;
  handedOver: { packet: number; length: number; descs: TxDescriptorState[] }[];
  rxClaimed: number[];
  rxClaimAt: number | null;
}

export interface Dp83820State {
  version: 2;
  config: string;
  /** The 64 registers at 0x00–0xFC, u32 each. */
  regs: number[];
  filter: string;
  mib: number[];
  eeprom: EepromState;
  lineLevel: boolean;
  /** The hold-off: no interrupt before this cycle, and the event that re-evaluates the line. */
  holdoffUntil: number;
  holdoff: TimerState | null;
  txBusy: boolean;
  tx: TxEventState[];
  rxEnabled: boolean;
  rxIdle: boolean;
  /** Frames (with FCS) in the receive FIFO, oldest first; the RX DMA of the first, if under way. */
  rxFifo: string[];
  rxDma: TimerState | null;
  direct: Dp83820DirectState;
  counters: Dp83820Counters;
}

const TX_EVENT: Check = (v, path) => {
  shape<{ kind: string }>({ kind: oneOf('step', 'done') })(v, path);
  if ((v as { kind: string }).kind === 'step') shape<{ at: TimerState }>({ at: timer })(v, path);
  else
    shape<{ at: TimerState; isr: number; link: number }>({ at: timer, isr: num, link: num })(
      v,
      path,
    );
};

const TX_DESCRIPTOR: Check = shape<TxDescriptorState>({
  addr: num,
  cmdsts: num,
  link: num,
  extsts: num,
});

const STATE = checkState<Dp83820State>('DP83820', 2, {
  config: bytes,
  regs: arrayOf(num, 64),
  filter: bytes,
  mib: arrayOf(num, 11),
  eeprom: (v, path) => Eeprom93c46.check(v as EepromState, path),
  lineLevel: bool,
  holdoffUntil: num,
  holdoff: nullable(timer),
  txBusy: bool,
  tx: arrayOf(TX_EVENT),
  rxEnabled: bool,
  rxIdle: bool,
  rxFifo: arrayOf(bytes),
  rxDma: nullable(timer),
  direct: shape<Dp83820DirectState>({
    txWaiting: bool,
    txKicked: bool,
    nextPacket: num,
    handedOver: arrayOf(
      shape<Dp83820DirectState['handedOver'][number]>({
        packet: num,
        length: num,
        descs: arrayOf(TX_DESCRIPTOR),
      }),
    ),
    rxClaimed: arrayOf(num),
    rxClaimAt: nullable(num),
  }),
  counters: shape<Dp83820Counters>({
    rxFrames: num,
    rxBytes: num,
    rxDropped: num,
    rxFcsErrors: num,
    txFrames: num,
    txBytes: num,
    busErrors: num,
    interrupts: num,
    unknownRegisterReads: num,
  }),
});

type TxEvent =
  { kind: 'step'; timer: Timer } | { kind: 'done'; timer: Timer; isr: number; link: number };

/** Cycles the engines take to fetch and write back a descriptor (a PCI burst, ~0.2 µs). */
const DESCRIPTOR_CYCLES = 560;
/** Gigabit MAC DMA: about 4 bytes per 66 MHz PCI clock on a 64-bit bus (~2 Gb/s). */
const DMA_BYTES_PER_CYCLE = 0.1;

const ones = (size: AccessSize): number => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);

/** Buffers a direct peer may hold at once (the 64 descriptors of Linux's and our ring). */
const RX_CLAIMS_MAX = 64;

export class Dp83820 implements PciFunction, EthernetReceiver, Stateful<Dp83820State> {
  readonly name = 'dp83820';
  readonly counters: Dp83820Counters = {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxFcsErrors: 0,
    txFrames: 0,
    txBytes: 0,
    busErrors: 0,
    interrupts: 0,
    unknownRegisterReads: 0,
  };

  private readonly config = new Uint8Array(256);
  private readonly regs = new Uint32Array(64);
  /** Receive filter memory (perfect match at 0–5, hash at 0x100–0x1FF, patterns). */
  private readonly filter = new Uint8Array(0x400);
  private readonly mib = new Uint32Array(11);
  private readonly eeprom: Eeprom93c46;
  private ioRegistration: Registration | undefined;
  private memRegistration: Registration | undefined;
  private lineLevel = false;
  private holdoffUntil = 0;
  private holdoffTimer: Timer | undefined;

  private txBusy = false;
  /** Direct TX: a packet is with the peer (the engine goes on when it is through). */
  private txWaiting = false;
  /**
   * Direct TX: the packets with the peer by number (a reset forgets them: the peer's late
   * completion of one then does nothing), and the next packet's number.
   */
  private readonly txHandedOver = new Map<number, { length: number; descs: TxDescriptor[] }>();
  private txNextPacket = 1;
  /** Direct TX: TXE was written since the last flush. */
  private txKicked = false;
  /** Direct TX: descriptors whose packets are with the peer. */
  private readonly txInFlight = new Set<number>();
  /** TX work pending on the clock (a TXD then TXE may leave two), in the order scheduled. */
  private txEvents: TxEvent[] = [];
  /**
   * PERF: scratch for descriptor reads and status writes (DmaMemory copies, keeps nothing), so
   * that the engines allocate nothing per descriptor.
   */
  private readonly descriptorBytes = new Uint8Array(24);
  private readonly descriptorView = new DataView(this.descriptorBytes.buffer);
  private readonly wordBytes = new Uint8Array(4);
  private readonly wordView = new DataView(this.wordBytes.buffer);
  private rxEnabled = false;
  /** The RX engine stopped on an owned descriptor or a NULL link; RXE restarts it. */
  private rxIdle = true;
  private readonly rxQueue: Uint8Array[] = [];
  /** The RX DMA of the FIFO's first frame, while it is under way (its event on the clock). */
  private rxDma: Timer | undefined;
  /** Direct RX: the descriptors the peer claimed, oldest first; the next one to claim. */
  private rxClaimed: number[] = [];
  private rxClaimAt: number | undefined;
  /** The PHY's link (CFG.LNKSTS): up but while a direct peer is gone (setLink). */
  private linkUp = true;

  /** The address its EEPROM holds (what the driver reads back at start). */
  get mac(): Uint8Array {
    return Uint8Array.from(this.cfg.mac);
  }

  constructor(private readonly cfg: Dp83820Config) {
    this.eeprom = new Eeprom93c46(cfg.mac);
    const c = new DataView(this.config.buffer);
    c.setUint16(0x00, 0x100b, true); // National Semiconductor
    c.setUint16(0x02, 0x0022, true); // DP83820
    c.setUint16(0x06, 0x0290, true); // status: capability list, fast back-to-back, DEVSEL medium
    c.setUint8(0x08, 0x00);
    c.setUint8(0x0b, 0x02); // class: network controller, Ethernet
    c.setUint32(0x10, 0x1, true); // BAR0: I/O
    c.setUint32(0x14, 0x0, true); // BAR1: 32-bit memory
    c.setUint16(0x2c, 0x100b, true); // subsystem vendor
    c.setUint16(0x2e, 0x0022, true);
    c.setUint8(0x3d, 1); // INTA#
    c.setUint8(0x3e, 0xb0);
    c.setUint8(0x3f, 0x34);
    this.filter.set(cfg.mac, 0);
    this.reset();
  }

  /**
   * CR.RST: every register to its reset value; the perfect-match MAC survives (reference 4, 5).
   * Both engines stop: what they had pending on the clock (a packet's DMA, a frame's) is dropped.
   */
  private reset(): void {
    for (const e of this.txEvents) e.timer.cancel();
    this.txEvents = [];
    this.rxDma?.cancel();
    this.rxDma = undefined;
    this.regs.fill(0);
    // raw 1010: up, 1000, full (active-low bits); the link as the PHY has it (setLink).
    this.set(REG.CFG, (this.linkUp ? CFG.LNKSTS : 0) | CFG.SPDSTS0 | CFG.MODE_1000);
    this.set(REG.MEAR, 0x12);
    this.set(REG.TXCFG, 0x120);
    this.set(REG.RXCFG, 0x4);
    this.set(REG.SRR, 0x103);
    this.set(REG.MIBC, 0x2);
    this.set(REG.VDR, 0x81);
    this.set(REG.TESR, 0xc000);
    this.set(REG.BRAR, 0xffffffff);
    this.set(REG.TANAR, TBI.FULL_DUP);
    this.mib.fill(0);
    this.txBusy = false;
    this.rxEnabled = false;
    this.rxIdle = true;
    this.rxQueue.length = 0;
    this.rxClaimed = [];
    this.rxClaimAt = undefined;
    this.txWaiting = false;
    this.txHandedOver.clear();
    this.txInFlight.clear();
    this.txKicked = false;
    this.updateLine();
  }

  /**
   * A reset of the whole function, as a hypervisor's toolstack makes when the VM that had the
   * device is gone (Xen's pciback resets a device it gets back): the chip as CR.RST leaves it
   * and its PCI command register cleared (no decoding, no bus mastering), as at power-on, so
   * nothing the old driver set up runs on; the BARs keep their placement for the next driver.
   */
  functionReset(): void {
    this.reset();
    this.configWrite(0x04, 2, 0);
  }

  /**
   * The link as the PHY reports it: CFG.LNKSTS, and ISR.PHY on a change (reference 2, CFG and
   * ISR; Linux's ns83820 reads CFG on that interrupt). A direct peer's model has its link down
   * while its peer is gone (netChannel.ts: the driver VM restarting).
   */
  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    const cfg = this.get(REG.CFG);
    this.set(REG.CFG, up ? cfg | CFG.LNKSTS : cfg & ~CFG.LNKSTS);
    this.raise(ISR.PHY);
  }

  private get(reg: number): number {
    return this.regs[reg >> 2];
  }

  private set(reg: number, v: number): void {
    this.regs[reg >> 2] = v >>> 0;
  }

  // ---- PCI configuration space ------------------------------------------------------------

  configRead(offset: number, size: AccessSize): number {
    return configSpaceRead(this.config, offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    const v = new DataView(this.config.buffer);
    forEachConfigByte(offset, size, value, (o, byte) => {
      if (o === 0x04)
        this.config[o] = byte & 0x07; // I/O, memory, bus master
      else if (o === 0x05) this.config[o] = byte & 0x01;
      else if (o >= 0x10 && o < 0x18) this.config[o] = byte;
      else if (o === 0x0c || o === 0x0d || o === 0x3c) this.config[o] = byte;
    });
    // BAR sizing: the writable bits are the address bits above the size (PCI 3.0, 6.2.5.1).
    v.setUint32(0x10, ((v.getUint32(0x10, true) & 0xffffff00) | 0x1) >>> 0, true);
    v.setUint32(0x14, (v.getUint32(0x14, true) & 0xfffff000) >>> 0, true);
    this.placeBars();
  }

  /** Places (or removes) the BARs on the buses after the guest moved them or toggled decoding. */
  private placeBars(): void {
    const v = new DataView(this.config.buffer);
    const command = v.getUint16(0x04, true);
    const ioBase = (v.getUint32(0x10, true) & 0xffffff00) >>> 0;
    const memBase = (v.getUint32(0x14, true) & 0xfffff000) >>> 0;
    this.ioRegistration?.remove();
    this.ioRegistration = undefined;
    this.memRegistration?.remove();
    this.memRegistration = undefined;
    // GUEST-CONTROLLED: the bases come from the guest; a clash is refused by the bus, not thrown.
    if ((command & 1) !== 0 && ioBase !== 0 && ioBase < 0x10000 && ioBase !== 0xffffff00) {
      const r = this.cfg.buses.registerPorts(ioBase, 0x100, this.ioView);
      if (typeof r !== 'string') this.ioRegistration = r;
    }
    if ((command & 2) !== 0 && memBase !== 0 && memBase !== 0xfffff000) {
      const r = this.cfg.buses.registerMmio(memBase, 0x1000, this.mmioView);
      if (typeof r !== 'string') this.memRegistration = r;
    }
  }

  private readonly ioView: PortDevice = {
    name: 'dp83820-io',
    ioRead: (offset, size) => this.read(offset, size),
    ioWrite: (offset, size, value) => this.write(offset, size, value),
  };

  private readonly mmioView: MmioDevice = {
    name: 'dp83820-mmio',
    mmioRead: (offset, size) => this.read(offset, size),
    mmioWrite: (offset, size, value) => this.write(offset, size, value),
  };

  // ---- registers ----------------------------------------------------------------------------

  /** Register reads; sub-dword accesses see the bytes of the containing register. */
  read(offset: number, size: AccessSize): number {
    const shift = (offset & 3) * 8;
    return (this.readRegister(offset & ~3) >>> shift) & ones(size);
  }

  private readRegister(reg: number): number {
    if (reg >= 0x200 && reg < 0x300) return this.configRead(reg - 0x200, 4);
    switch (reg) {
      case REG.CR:
        return (this.txBusy ? CR.TXE : 0) | (this.rxEnabled && !this.rxIdle ? CR.RXE : 0);
      case REG.ISR: {
        // Read-to-clear; the hold-off timer starts from here (IHR, reference 2).
        const v = this.get(REG.ISR);
        this.set(REG.ISR, 0);
        const holdoff = this.get(REG.IHR) & 0xff;
        if (holdoff > 0)
          this.holdoffUntil =
            this.cfg.clock.now() + Math.round(holdoff * 100e-6 * this.cfg.clock.hz);
        this.updateLine();
        return v;
      }
      case REG.MEAR:
        return (this.get(REG.MEAR) & ~MEAR.EEDO) | (this.eeprom.dataOut ? MEAR.EEDO : 0);
      case REG.RFDR: {
        const a = this.get(REG.RFCR) & RFCR.ADDR & ~1;
        return this.filter[a] | (this.filter[a + 1] << 8);
      }
      default:
        if (reg >= REG.MIB_FIRST && reg <= REG.MIB_LAST) {
          // MIB counters clear on read (Linux accumulates them on every read, reference 2).
          const k = (reg - REG.MIB_FIRST) >> 2;
          const v = this.mib[k];
          this.mib[k] = 0;
          return v;
        }
        if (reg >= 0x100) {
          this.counters.unknownRegisterReads++;
          return 0;
        }
        return this.get(reg);
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    const reg = offset & ~3;
    let v = value >>> 0;
    if (size !== 4) {
      // Merge a byte or word write into the register.
      const shift = (offset & 3) * 8;
      const mask = (ones(size) << shift) >>> 0;
      v = ((this.get(reg) & ~mask) | ((v << shift) & mask)) >>> 0;
    }
    this.writeRegister(reg, v);
  }

  private writeRegister(reg: number, v: number): void {
    switch (reg) {
      case REG.CR:
        this.command(v);
        return;
      case REG.CFG:
        this.set(REG.CFG, (this.get(REG.CFG) & CFG_READ_ONLY) | (v & ~CFG_READ_ONLY));
        return;
      case REG.MEAR:
        this.set(REG.MEAR, v);
        this.eeprom.drive((v & MEAR.EESEL) !== 0, (v & MEAR.EECLK) !== 0, (v & MEAR.EEDI) !== 0);
        return;
      case REG.PTSCR:
        // BIST and EEPROM load complete at once: enable bits clear, RBIST reports done.
        if ((v & PTSCR.EELOAD_EN) !== 0) this.filter.set(this.cfg.mac, 0);
        this.set(
          REG.PTSCR,
          (v & ~(PTSCR.EEBIST_EN | PTSCR.EELOAD_EN | PTSCR.RBIST_EN | PTSCR.RBIST_RST)) |
            ((v & PTSCR.RBIST_EN) !== 0 ? PTSCR.RBIST_DONE : 0),
        );
        return;
      case REG.ISR:
        return; // read-only
      case REG.IMR:
      case REG.IER:
        this.set(reg, v);
        this.updateLine();
        return;
      case REG.TXDP:
      case REG.RXDP:
        this.set(reg, v & ~3);
        if (reg === REG.RXDP) {
          this.rxClaimed = [];
          this.rxClaimAt = undefined;
        }
        return;
      case REG.RFDR: {
        const a = this.get(REG.RFCR) & RFCR.ADDR & ~1;
        const bmask = (v >>> 16) & 3;
        if ((bmask & 1) === 0 || bmask === 0) this.filter[a] = v & 0xff;
        if ((bmask & 2) === 0 || bmask === 0) this.filter[a + 1] = (v >>> 8) & 0xff;
        return;
      }
      case REG.TBICR:
        this.set(reg, v);
        if ((v & TBI.AN_ENABLE) !== 0) {
          // Autonegotiation completes at once with a partner that mirrors our abilities.
          this.set(REG.TANLPAR, this.get(REG.TANAR));
          this.set(REG.TBISR, TBI.AN_COMPLETE | TBI.LINK_STATUS);
        }
        return;
      case REG.SRR:
      case REG.TBISR:
        return;
      default:
        if (reg >= 0x200 && reg < 0x300) {
          this.configWrite(reg - 0x200, 4, v);
          return;
        }
        if (reg < 0x100) this.set(reg, v);
    }
  }

  private command(v: number): void {
    if ((v & CR.RST) !== 0) {
      this.reset();
      return; // RST self-clears: the register reads 0 at once
    }
    if ((v & CR.SWI) !== 0) this.raise(ISR.SWI);
    if ((v & CR.TXR) !== 0) {
      this.txBusy = false;
      this.raise(ISR.TXRCMP);
    }
    if ((v & CR.RXR) !== 0) {
      this.rxEnabled = false;
      this.rxIdle = true;
      this.rxQueue.length = 0;
      this.raise(ISR.RXRCMP);
    }
    // Disable wins over enable when both are written (reference 2, CR).
    if ((v & CR.TXD) !== 0) this.txBusy = false;
    else if ((v & CR.TXE) !== 0 && !this.txBusy) {
      this.txBusy = true;
      // Direct TX starts at the peer's next flush (txFlush), as the original's model counted
      // the TXE writes and flushed at the guest's iret or idle.
      if (this.cfg.direct !== undefined) this.txKicked = true;
      else this.scheduleTx(this.cfg.clock.now() + DESCRIPTOR_CYCLES, { kind: 'step' });
    }
    if ((v & CR.RXD) !== 0) {
      this.rxEnabled = false;
      this.rxIdle = true;
    } else if ((v & CR.RXE) !== 0) {
      this.rxEnabled = true;
      this.rxIdle = false;
      if (this.cfg.direct !== undefined) this.cfg.direct.rxKick();
      else this.scheduleRx();
    }
  }

  // ---- interrupts -------------------------------------------------------------------------

  private raise(bits: number): void {
    this.set(REG.ISR, this.get(REG.ISR) | bits);
    this.updateLine();
  }

  private updateLine(): void {
    const now = this.cfg.clock.now();
    let level = (this.get(REG.ISR) & this.get(REG.IMR)) !== 0 && (this.get(REG.IER) & 1) !== 0;
    if (level && now < this.holdoffUntil) {
      level = false;
      if (this.holdoffTimer === undefined && this.cfg.holdoffWithoutEvent !== true) {
        const t = this.at(this.holdoffUntil, () => this.holdoffEnded(), 'dp83820.holdoff');
        if (t !== undefined) this.holdoffTimer = t;
      }
    }
    if (level && !this.lineLevel) this.counters.interrupts++;
    this.lineLevel = level;
    this.cfg.irq.set(level);
  }

  private holdoffEnded(): void {
    this.holdoffTimer = undefined;
    this.updateLine();
  }

  /** An interrupt the chip would give now but for the hold-off (or a line already up). */
  private get interruptWaiting(): boolean {
    return (this.get(REG.ISR) & this.get(REG.IMR)) !== 0 && (this.get(REG.IER) & 1) !== 0;
  }

  /**
   * The host's look at a line held by the hold-off (Dp83820Config.holdoffWithoutEvent): if the
   * hold-off is over and the chip still has an interrupt to give, the line comes up now.
   */
  holdoffCheck(): void {
    if (this.lineLevel || this.cfg.clock.now() < this.holdoffUntil) return;
    if (this.interruptWaiting) this.updateLine();
  }

  /** The end of the hold-off that runs now (clock cycles), or undefined. */
  holdoffEnd(): number | undefined {
    return this.cfg.clock.now() < this.holdoffUntil ? this.holdoffUntil : undefined;
  }

  /**
   * The hold-off's end as an event on the clock after all (Dp83820Config.holdoffWithoutEvent),
   * so that an idle host wakes at it: for a peer that will have something for the driver by
   * then (src/vmm/backends/xen/netChannel.ts). Nothing if no hold-off runs.
   */
  wakeAtHoldoffEnd(): void {
    if (this.holdoffTimer !== undefined || this.holdoffEnd() === undefined) return;
    const t = this.at(this.holdoffUntil, () => this.holdoffEnded(), 'dp83820.holdoff');
    if (t !== undefined) this.holdoffTimer = t;
  }

  /**
   * The host goes idle (Dp83820Config.holdoffWithoutEvent): an interrupt the hold-off holds
   * comes at the hold-off's end, as on the chip, so the host wakes then.
   */
  idle(): void {
    if (!this.lineLevel && this.interruptWaiting) this.wakeAtHoldoffEnd();
  }

  // ---- descriptors --------------------------------------------------------------------------

  private get wide(): boolean {
    return (this.get(REG.CFG) & CFG.M64ADDR) !== 0;
  }

  /**
   * Reads a descriptor: link, buffer pointer, cmdsts, extsts (the low 32 bits of 64-bit fields).
   * PERF: through one scratch buffer (`descriptorBytes`), not a new array per descriptor.
   */
  private readDescriptor(
    addr: number,
  ): { link: number; buf: number; cmdsts: number; extsts: number } | undefined {
    const wide = this.wide;
    const bytes = wide ? this.descriptorBytes : this.descriptorBytes.subarray(0, 16);
    // GUEST-CONTROLLED: a descriptor address outside memory is a bus error.
    if (!this.cfg.dma.read(addr, bytes)) return undefined;
    const v = this.descriptorView;
    if (wide)
      return {
        link: v.getUint32(0, true),
        buf: v.getUint32(8, true),
        cmdsts: v.getUint32(16, true),
        extsts: v.getUint32(20, true),
      };
    return {
      link: v.getUint32(0, true),
      buf: v.getUint32(4, true),
      cmdsts: v.getUint32(8, true),
      extsts: v.getUint32(12, true),
    };
  }

  /** The extsts field: written only with CFG.EXTSTS_EN (the driver's extended status). */
  private writeExtsts(addr: number, extsts: number): boolean {
    return this.writeWord(addr + (this.wide ? 20 : 12), extsts);
  }

  /** A little-endian u32 to memory by DMA, through the scratch word (`wordBytes`). */
  private writeWord(addr: number, value: number): boolean {
    this.wordView.setUint32(0, value >>> 0, true);
    return this.cfg.dma.write(addr, this.wordBytes);
  }

  private get extendedStatus(): boolean {
    return (this.get(REG.CFG) & CFG.EXTSTS_EN) !== 0;
  }

  private writeCmdsts(addr: number, cmdsts: number): boolean {
    return this.writeWord(addr + (this.wide ? 16 : 8), cmdsts);
  }

  private busError(): void {
    this.counters.busErrors++;
    this.raise(ISR.RMABT);
  }

  // ---- transmit -----------------------------------------------------------------------------

  /** One TX step: gather the packet at TXDP (MORE chain), send it, write status back. */
  private txStep(): void {
    if (!this.txBusy || this.txWaiting) return;
    const first = this.get(REG.TXDP);
    if (this.txInFlight.has(first)) {
      this.txWaiting = true; // direct TX: this descriptor is still with the peer
      return;
    }
    const parts: Uint8Array[] = [];
    const direct: BufferPart[] = [];
    const descs: TxDescriptor[] = [];
    let addr = first;
    for (;;) {
      const d = addr === 0 ? undefined : this.readDescriptor(addr);
      if (d === undefined) {
        if (addr !== 0) this.busError();
        this.txIdle();
        return;
      }
      if ((d.cmdsts & CMDSTS.OWN) === 0) {
        // Not ours: the engine goes idle with TXDP on this descriptor (reference 3).
        this.txIdle();
        return;
      }
      const size = d.cmdsts & CMDSTS.SIZE;
      if (this.cfg.direct !== undefined) {
        direct.push({ address: d.buf, length: size });
        descs.push({ addr, cmdsts: d.cmdsts, link: d.link, extsts: d.extsts });
        if ((d.cmdsts & CMDSTS.MORE) === 0 || d.link === 0) break;
        addr = d.link;
        continue;
      }
      const data = new Uint8Array(size);
      if (!this.cfg.dma.read(d.buf, data)) {
        this.writeCmdsts(addr, (d.cmdsts & ~CMDSTS.OWN & ~CMDSTS.OK) | CMDSTS.TX_ABORT);
        this.busError();
        this.raise(ISR.TXERR);
        this.txIdle();
        return;
      }
      parts.push(data);
      descs.push({ addr, cmdsts: d.cmdsts, link: d.link, extsts: d.extsts });
      if ((d.cmdsts & CMDSTS.MORE) === 0 || d.link === 0) break;
      addr = d.link;
    }
    if (this.cfg.direct !== undefined) {
      this.txHandOver(direct, descs);
      return;
    }
    const length = parts.reduce((n, p) => n + p.length, 0);
    const frame = new Uint8Array(Math.max(length, 60)); // TXCFG.ATP pads short frames
    let at = 0;
    for (const p of parts) {
      frame.set(p, at);
      at += p.length;
    }
    // The checksum engine, per packet from the first descriptor's extsts (checksumOffload.ts).
    const vtcr = this.get(REG.VTCR);
    if (this.extendedStatus && (vtcr & (VTCR.PPCHK | VTCR.GCHK)) !== 0)
      insertTxChecksums(
        frame,
        (vtcr & VTCR.PPCHK) !== 0 ? descs[0].extsts : 0,
        (vtcr & VTCR.GCHK) !== 0,
      );
    const free = this.cfg.transmit(withFcs(frame));
    this.txComplete(descs, free !== undefined, length, free);
  }

  /**
   * Direct TX: the packet's buffers to the peer, and on to the next packet at once; its status
   * is written when the peer is through with it (in order: the peer completes in order). The
   * engine never hands over a descriptor that is still with the peer (a ring that wrapped): it
   * waits for it there.
   */
  private txHandOver(parts: BufferPart[], descs: TxDescriptor[]): void {
    const length = parts.reduce((n, p) => n + p.length, 0);
    const packet = this.txNextPacket;
    this.txNextPacket = (this.txNextPacket + 1) % 0x100000000;
    for (const d of descs) this.txInFlight.add(d.addr);
    this.txHandedOver.set(packet, { length, descs });
    const last = descs[descs.length - 1];
    this.cfg.direct!.transmit(parts, packet);
    if (last.link === 0) {
      this.txIdle();
      return;
    }
    // No DMA to wait for: the next packet now (at most a ring's worth, then an owned one).
    this.set(REG.TXDP, last.link);
    this.txStep();
  }

  /**
   * Direct TX: the peer is through with `packet` (sent, or not: `ok`); its status is written
   * back and the engine goes on if it waited for it. A packet the chip no longer knows (a reset
   * in between: its descriptors are the driver's again) is ignored.
   */
  txPeerDone(packet: number, ok: boolean): void {
    const p = this.txHandedOver.get(packet);
    if (p === undefined) return;
    this.txHandedOver.delete(packet);
    const { descs, length } = p;
    const last = descs[descs.length - 1];
    for (const d of descs) {
      this.txInFlight.delete(d.addr);
      const status = (d.cmdsts & ~CMDSTS.OWN) | (ok ? CMDSTS.OK : CMDSTS.TX_ABORT);
      this.writeCmdsts(d.addr, d === last ? status : d.cmdsts & ~CMDSTS.OWN);
    }
    if (ok) {
      this.counters.txFrames++;
      this.counters.txBytes += length;
    }
    this.raise((ok ? ISR.TXOK : ISR.TXERR) | ((last.cmdsts & CMDSTS.INTR) !== 0 ? ISR.TXDESC : 0));
    if (this.txWaiting) {
      this.txWaiting = false;
      this.txStep();
    }
  }

  /** A packet is sent (`free`: when the wire is free again) or not: status back, then go on. */
  private txComplete(descs: TxDescriptor[], ok: boolean, length: number, free?: number): void {
    const last = descs[descs.length - 1];
    for (const d of descs) {
      const status = (d.cmdsts & ~CMDSTS.OWN) | (ok ? CMDSTS.OK : CMDSTS.TX_ABORT);
      this.writeCmdsts(d.addr, d === last ? status : d.cmdsts & ~CMDSTS.OWN);
    }
    if (ok) {
      this.counters.txFrames++;
      this.counters.txBytes += length;
    }
    let bits = ok ? ISR.TXOK : ISR.TXERR;
    if ((last.cmdsts & CMDSTS.INTR) !== 0) bits |= ISR.TXDESC;
    const doneAt = Math.max(
      free ?? 0,
      this.cfg.clock.now() + DESCRIPTOR_CYCLES + Math.ceil(length / DMA_BYTES_PER_CYCLE / 100),
    );
    this.scheduleTx(doneAt, { kind: 'done', isr: bits, link: last.link });
  }

  /** A packet's DMA and transmission are over: its interrupt bits, then the next descriptor. */
  private txDone(isr: number, link: number): void {
    this.raise(isr);
    if (link === 0) {
      this.txIdle();
      return;
    }
    this.set(REG.TXDP, link);
    this.txStep();
  }

  private scheduleTx(
    cycle: number,
    what: { kind: 'step' } | { kind: 'done'; isr: number; link: number },
    saved?: TimerState,
  ): void {
    // The event is listed before it is scheduled: it may fire while being scheduled (`at`).
    // PERF: built field by field, not spread (one per frame sent).
    const event = (what.kind === 'step'
      ? { kind: 'step', timer: undefined }
      : { kind: 'done', timer: undefined, isr: what.isr, link: what.link }) as unknown as TxEvent;
    this.txEvents.push(event);
    const fire = (): void => {
      const k = this.txEvents.indexOf(event);
      if (k >= 0) this.txEvents.splice(k, 1);
      if (what.kind === 'step') this.txStep();
      else this.txDone(what.isr, what.link);
    };
    if (saved !== undefined) {
      event.timer = this.cfg.clock.restoreAt(saved, fire, 'dp83820.tx');
      return;
    }
    const t = this.at(cycle, fire, 'dp83820.tx');
    if (t !== undefined) event.timer = t;
  }

  private txIdle(): void {
    this.txBusy = false;
    this.raise(ISR.TXIDLE);
  }

  // ---- receive ------------------------------------------------------------------------------

  /** A frame (with FCS) arrives from the wire. */
  receive(frame: Uint8Array): void {
    if (!this.rxEnabled || !this.accepts(frame)) {
      this.counters.rxDropped++;
      return;
    }
    if (this.rxQueue.length >= 32) {
      // The 32 KB RX FIFO is full (about 21 full-size frames): overrun.
      this.mib[2]++; // RxMissedPkts
      this.counters.rxDropped++;
      this.raise(ISR.RXORN);
      return;
    }
    this.rxQueue.push(frame);
    this.scheduleRx();
  }

  private scheduleRx(): void {
    if (this.rxDma !== undefined || this.rxIdle || this.rxQueue.length === 0) return;
    const frame = this.rxQueue[0];
    const delay = DESCRIPTOR_CYCLES + Math.ceil(frame.length / DMA_BYTES_PER_CYCLE / 100);
    const t = this.at(this.cfg.clock.now() + delay, () => this.rxDmaDone(), 'dp83820.rx-dma');
    if (t !== undefined) this.rxDma = t;
  }

  /**
   * `clock.at` for a clock whose host may fire an event while it is being scheduled (the
   * in-place VMM's virtual devices' clock on l4, whose timer is a thread that may run at once):
   * the timer, or undefined if the event has fired already (its work is done, and what it
   * scheduled in turn stands).
   */
  private at(cycle: number, fire: () => void, owner: string): Timer | undefined {
    let fired = false;
    const t = this.cfg.clock.at(
      cycle,
      () => {
        fired = true;
        fire();
      },
      owner,
    );
    return fired ? undefined : t;
  }

  private rxDmaDone(): void {
    this.rxDma = undefined;
    this.rxStep();
    this.scheduleRx();
  }

  /** The receive filter (RFCR): broadcast, multicast, unicast to our address or all. */
  private accepts(frame: Uint8Array): boolean {
    const rfcr = this.get(REG.RFCR);
    if ((rfcr & RFCR.RFEN) === 0 || frame.length < 14) return false;
    if (
      frame[0] === 0xff &&
      frame[1] === 0xff &&
      frame[2] === 0xff &&
      frame[3] === 0xff &&
      frame[4] === 0xff &&
      frame[5] === 0xff
    ) {
      return (rfcr & RFCR.AAB) !== 0;
    }
    if ((frame[0] & 1) !== 0) return (rfcr & RFCR.AAM) !== 0;
    if ((rfcr & RFCR.AAU) !== 0) return true;
    if ((rfcr & RFCR.APM) === 0) return false;
    for (let k = 0; k < 6; k++) if (frame[k] !== this.filter[k]) return false;
    return true;
  }

  private rxStep(): void {
    const frame = this.rxQueue[0];
    if (frame === undefined || !this.rxEnabled || this.rxIdle) return;
    const addr = this.get(REG.RXDP);
    const d = addr === 0 ? undefined : this.readDescriptor(addr);
    if (d === undefined || (d.cmdsts & CMDSTS.OWN) !== 0) {
      if (d === undefined && addr !== 0) this.busError();
      // No buffer: the engine idles until the driver kicks it with RXE (reference 3).
      this.rxIdle = true;
      this.raise(ISR.RXIDLE);
      return;
    }
    this.rxQueue.shift();
    const rxcfg = this.get(REG.RXCFG);
    const good = fcsValid(frame);
    if (!good) {
      this.mib[1]++; // RxFCSErrors
      this.counters.rxFcsErrors++;
      if ((rxcfg & 0x80000000) === 0) {
        // Without RXCFG.AEP an errored frame is dropped before it reaches a descriptor.
        this.mib[0]++;
        this.counters.rxDropped++;
        this.scheduleRx();
        return;
      }
    }
    const data = (rxcfg & 0x20000000) !== 0 ? frame.subarray(0, frame.length - 4) : frame; // STRIPCRC
    const size = d.cmdsts & CMDSTS.SIZE;
    let status = CMDSTS.OWN | (d.cmdsts & CMDSTS.INTR);
    const len = Math.min(data.length, size);
    if (data.length > size) status |= CMDSTS.RX_LONG | CMDSTS.RX_OVERRUN;
    else if (good) status |= CMDSTS.OK;
    if (!good) status |= CMDSTS.RX_CRCE;
    status |=
      frame[0] === 0xff
        ? CMDSTS.DEST_BROADCAST
        : (frame[0] & 1) !== 0
          ? CMDSTS.DEST_MULTICAST
          : CMDSTS.DEST_UNICAST;
    // GUEST-CONTROLLED: the buffer address comes from the descriptor.
    if (!this.cfg.dma.write(d.buf, data.subarray(0, len))) {
      this.busError();
      this.writeCmdsts(addr, CMDSTS.OWN | CMDSTS.RX_OVERRUN);
      this.raise(ISR.RXERR);
    } else {
      if (this.extendedStatus) {
        const ipen = (this.get(REG.VRCR) & VRCR_IPEN) !== 0;
        this.writeExtsts(addr, ipen ? rxChecksumStatus(frame.subarray(0, frame.length - 4)) : 0);
      }
      this.writeCmdsts(addr, status | len);
      if ((status & CMDSTS.OK) !== 0) {
        this.counters.rxFrames++;
        this.counters.rxBytes += len;
        this.raise(ISR.RXOK | ((d.cmdsts & CMDSTS.INTR) !== 0 ? ISR.RXDESC : 0));
      } else {
        this.mib[0]++;
        this.raise(ISR.RXERR | ((d.cmdsts & CMDSTS.INTR) !== 0 ? ISR.RXDESC : 0));
      }
    }
    if (d.link === 0) {
      this.rxIdle = true;
      this.raise(ISR.RXIDLE);
      return;
    }
    this.set(REG.RXDP, d.link);
  }

  // ---- direct RX (Dp83820Config.direct) ------------------------------------------------------

  /** Direct TX: the packets the driver gave since the last flush go to the peer now. */
  txFlush(): void {
    if (!this.txKicked) return;
    this.txKicked = false;
    this.txStep();
  }

  /**
   * The next buffer the driver gave the NIC (a descriptor it does not own, after the ones
   * already claimed), for the peer to fill; undefined if there is none (or RX is off).
   */
  rxClaim(): BufferPart | undefined {
    if (!this.rxEnabled || this.rxClaimed.length >= RX_CLAIMS_MAX) return undefined;
    const addr = this.rxClaimAt ?? this.get(REG.RXDP);
    if (addr === 0 || this.rxClaimed.includes(addr)) return undefined;
    const d = this.readDescriptor(addr);
    if (d === undefined) {
      this.busError();
      return undefined;
    }
    if ((d.cmdsts & CMDSTS.OWN) !== 0) return undefined;
    this.rxClaimed.push(addr);
    this.rxClaimAt = d.link === 0 ? undefined : d.link;
    return { address: d.buf, length: d.cmdsts & CMDSTS.SIZE };
  }

  /**
   * Direct RX: the peer gives back every buffer it claimed, unfilled (it is gone). They stay the
   * NIC's, as the driver gave them, and are claimed again from the oldest (RXDP) on.
   */
  rxUnclaim(): void {
    this.rxClaimed = [];
    this.rxClaimAt = undefined;
  }

  /**
   * The peer filled the oldest claimed buffer with `length` bytes of a frame whose first byte
   * (the destination's) is `dest0`, or could not (`ok` false: a receive error). False if the
   * buffer is no longer claimed (the driver reset the ring since).
   */
  rxComplete(length: number, ok: boolean, dest0: number): boolean {
    const addr = this.rxClaimed.shift();
    if (addr === undefined || addr === 0) return false;
    const d = this.readDescriptor(addr);
    if (d === undefined) {
      this.busError();
      return false;
    }
    let status = CMDSTS.OWN | (d.cmdsts & CMDSTS.INTR) | (ok ? CMDSTS.OK : CMDSTS.RX_OVERRUN);
    status |=
      dest0 === 0xff
        ? CMDSTS.DEST_BROADCAST
        : (dest0 & 1) !== 0
          ? CMDSTS.DEST_MULTICAST
          : CMDSTS.DEST_UNICAST;
    if (this.extendedStatus) this.writeExtsts(addr, 0);
    this.writeCmdsts(addr, status | (ok ? length : 0));
    const desc = (d.cmdsts & CMDSTS.INTR) !== 0 ? ISR.RXDESC : 0;
    if (ok) {
      this.counters.rxFrames++;
      this.counters.rxBytes += length;
      this.raise(ISR.RXOK | desc);
    } else {
      this.mib[0]++;
      this.raise(ISR.RXERR | desc);
    }
    if (d.link === 0) {
      this.rxClaimed = [];
      this.raise(ISR.RXIDLE);
    } else this.set(REG.RXDP, d.link);
    return true;
  }

  // ---- snapshot -----------------------------------------------------------------------------

  save(): Dp83820State {
    const at = (t: Timer): TimerState => ({ cycle: t.cycle, seq: t.seq });
    return {
      version: 2,
      config: encodeBytes(this.config),
      regs: Array.from(this.regs),
      filter: encodeBytes(this.filter),
      mib: Array.from(this.mib),
      eeprom: this.eeprom.save(),
      lineLevel: this.lineLevel,
      holdoffUntil: this.holdoffUntil,
      holdoff: this.holdoffTimer === undefined ? null : at(this.holdoffTimer),
      txBusy: this.txBusy,
      tx: this.txEvents.map((e) =>
        e.kind === 'step'
          ? { kind: 'step', at: at(e.timer) }
          : { kind: 'done', at: at(e.timer), isr: e.isr, link: e.link },
      ),
      rxEnabled: this.rxEnabled,
      rxIdle: this.rxIdle,
      rxFifo: this.rxQueue.map(encodeBytes),
      rxDma: this.rxDma === undefined ? null : at(this.rxDma),
      direct: {
        txWaiting: this.txWaiting,
        txKicked: this.txKicked,
        nextPacket: this.txNextPacket,
        handedOver: [...this.txHandedOver].map(([packet, p]) => ({
          packet,
          length: p.length,
          descs: p.descs.map((d) => ({ ...d })),
        })),
        rxClaimed: [...this.rxClaimed],
        rxClaimAt: this.rxClaimAt ?? null,
      },
      counters: { ...this.counters },
    };
  }

  /**
   * The chip again: configuration space first, which places the BARs on the buses where the
   * saved machine had them; the engines' pending work at its saved places on the (restored)
   * clock. The line is driven to its saved level without re-evaluating it (that could start a
   * hold-off the saved chip did not have).
   */
  restore(state: Dp83820State, path = 'nic'): void {
    STATE(state, path);
    const config = decodeBytes(state.config, `${path}.config`, 256);
    const filter = decodeBytes(state.filter, `${path}.filter`, 0x400);
    const fifo = state.rxFifo.map((f, k) => decodeBytes(f, `${path}.rxFifo[${k}]`));
    this.config.set(config);
    this.placeBars();
    this.regs.set(state.regs.map((v) => v >>> 0));
    this.filter.set(filter);
    this.mib.set(state.mib.map((v) => v >>> 0));
    this.eeprom.restore(state.eeprom, `${path}.eeprom`);
    this.lineLevel = state.lineLevel;
    this.holdoffUntil = state.holdoffUntil;
    this.holdoffTimer?.cancel();
    this.holdoffTimer =
      state.holdoff === null
        ? undefined
        : this.cfg.clock.restoreAt(state.holdoff, () => this.holdoffEnded(), 'dp83820.holdoff');
    this.txBusy = state.txBusy;
    for (const e of this.txEvents) e.timer.cancel();
    this.txEvents = [];
    for (const e of state.tx)
      this.scheduleTx(
        e.at.cycle,
        e.kind === 'step' ? { kind: 'step' } : { kind: 'done', isr: e.isr, link: e.link },
        e.at,
      );
    this.rxEnabled = state.rxEnabled;
    this.rxIdle = state.rxIdle;
    this.rxQueue.length = 0;
    this.rxQueue.push(...fifo);
    this.rxDma?.cancel();
    this.rxDma =
      state.rxDma === null
        ? undefined
        : this.cfg.clock.restoreAt(state.rxDma, () => this.rxDmaDone(), 'dp83820.rx-dma');
    const d = state.direct;
    this.txWaiting = d.txWaiting;
    this.txKicked = d.txKicked;
    this.txNextPacket = d.nextPacket;
    this.txHandedOver.clear();
    this.txInFlight.clear();
    for (const p of d.handedOver) {
      this.txHandedOver.set(p.packet, { length: p.length, descs: p.descs.map((x) => ({ ...x })) });
      for (const x of p.descs) this.txInFlight.add(x.addr);
    }
    this.rxClaimed = [...d.rxClaimed];
    this.rxClaimAt = d.rxClaimAt ?? undefined;
    Object.assign(this.counters, state.counters);
    this.linkUp = (this.get(REG.CFG) & CFG.LNKSTS) !== 0;
    this.cfg.irq.set(this.lineLevel);
  }
}
