/**
 * The 8259A programmable interrupt controller pair of the PC (Intel 8259A datasheet; PC/AT
 * wiring: master at 0x20/0x21, slave at 0xA0/0xA1 cascaded on master IRQ 2). Edge-triggered,
 * fully nested (fixed priority, IRQ 0 highest), specific and non-specific EOI, auto-EOI, reads of
 * IRR/ISR through OCW3, and the spurious IRQ 7 / 15 of an interrupt that vanished before INTA.
 */
import type { AccessSize, IrqLine, PortDevice, Stateful } from '../../device.ts';
import { arrayOf, bool, checkState, num, shape } from '../../state.ts';

export interface PicChipState {
  irr: number;
  isr: number;
  imr: number;
  base: number;
  lines: number;
  levelMask: number;
  readIsr: boolean;
  autoEoi: boolean;
  /** Initialisation step: 0 ready, 2–4 waiting for ICW2–ICW4. */
  initStep: number;
  needIcw4: boolean;
  single: boolean;
}

/** The pair; the ELCR is the chips' `levelMask`. */
export interface PicState {
  version: 1;
  master: PicChipState;
  slave: PicChipState;
  /** Counters: interrupts acknowledged by IRQ 0–15, spurious acknowledges. */
  delivered: number[];
  spurious: number;
}

const CHIP = shape<PicChipState>({
  irr: num,
  isr: num,
  imr: num,
  base: num,
  lines: num,
  levelMask: num,
  readIsr: bool,
  autoEoi: bool,
  initStep: num,
  needIcw4: bool,
  single: bool,
});
const STATE = checkState<PicState>('8259A pair', 1, {
  master: CHIP,
  slave: CHIP,
  delivered: arrayOf(num, 16),
  spurious: num,
});

export class PicChip implements PortDevice {
  irr = 0;
  isr = 0;
  imr = 0xff;
  base = 0x08;
  /** Current input line levels, for edge detection. */
  lines = 0;
  /** Inputs programmed level-triggered through the ELCR (PCI interrupts), one bit per IRQ. */
  levelMask = 0;
  readIsr = false;
  autoEoi = false;
  initStep = 0;
  needIcw4 = false;
  single = false;

  constructor(
    readonly name: string,
    private readonly changed: () => void,
  ) {}

  /** Drives input `irq` (0–7); a rising edge latches it in IRR. */
  setLine(irq: number, level: boolean): void {
    const bit = 1 << irq;
    if (level && (this.lines & bit) === 0) this.irr |= bit;
    this.lines = level ? this.lines | bit : this.lines & ~bit;
    this.changed();
  }

  /** The highest-priority request that may interrupt now, or -1. */
  pending(): number {
    // A level-triggered input requests service for as long as its line is high.
    const requests = (this.irr | (this.lines & this.levelMask)) & ~this.imr;
    for (let irq = 0; irq < 8; irq++) {
      const bit = 1 << irq;
      if ((this.isr & bit) !== 0) return -1; // an equal or higher priority is in service
      if ((requests & bit) !== 0) return irq;
    }
    return -1;
  }

  /** INTA for this chip: the IRQ acknowledged, moved from IRR to ISR (unless auto-EOI). */
  acknowledge(): number {
    const irq = this.pending();
    if (irq < 0) return -1;
    this.irr &= ~(1 << irq);
    if (!this.autoEoi) this.isr |= 1 << irq;
    this.changed();
    return irq;
  }

  ioRead(offset: number, _size: AccessSize): number {
    if (offset === 1) return this.imr;
    return this.readIsr ? this.isr : this.irr;
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    if (offset === 0) {
      if ((value & 0x10) !== 0) {
        // ICW1: start initialisation; IMR and ISR cleared, IRR read selected.
        this.initStep = 2;
        this.needIcw4 = (value & 1) !== 0;
        this.single = (value & 2) !== 0;
        this.imr = 0;
        this.isr = 0;
        this.irr = 0;
        this.readIsr = false;
        this.autoEoi = false;
      } else if ((value & 0x08) !== 0) {
        // OCW3: bit 1 set selects the register bit 0 names (1 ISR, 0 IRR).
        if ((value & 2) !== 0) this.readIsr = (value & 1) !== 0;
      } else {
        this.ocw2(value);
      }
    } else if (this.initStep === 2) {
      this.base = value & 0xf8;
      this.initStep = this.single ? (this.needIcw4 ? 4 : 0) : 3;
    } else if (this.initStep === 3) {
      this.initStep = this.needIcw4 ? 4 : 0; // ICW3: the cascade wiring is fixed on a PC
    } else if (this.initStep === 4) {
      this.autoEoi = (value & 2) !== 0;
      this.initStep = 0;
    } else {
      this.imr = value; // OCW1
    }
    this.changed();
  }

  /** OCW2: EOI commands (bits 7–5: 001 non-specific, 011 specific, 101/111 rotating forms). */
  private ocw2(value: number): void {
    const command = value >> 5;
    if (command === 1 || command === 5) {
      for (let irq = 0; irq < 8; irq++) {
        if ((this.isr & (1 << irq)) !== 0) {
          this.isr &= ~(1 << irq);
          break;
        }
      }
    } else if (command === 3 || command === 7) {
      this.isr &= ~(1 << (value & 7));
    }
  }

  save(): PicChipState {
    const { irr, isr, imr, base, lines, levelMask, readIsr, autoEoi, initStep, needIcw4, single } =
      this;
    return { irr, isr, imr, base, lines, levelMask, readIsr, autoEoi, initStep, needIcw4, single };
  }

  /** The chip's registers again (checked by DualPic.restore); the pair re-evaluates INTR. */
  restore(s: PicChipState): void {
    this.irr = s.irr & 0xff;
    this.isr = s.isr & 0xff;
    this.imr = s.imr & 0xff;
    this.base = s.base & 0xf8;
    this.lines = s.lines & 0xff;
    this.levelMask = s.levelMask & 0xff;
    this.readIsr = s.readIsr;
    this.autoEoi = s.autoEoi;
    this.initStep = s.initStep;
    this.needIcw4 = s.needIcw4;
    this.single = s.single;
  }
}

/** The cascaded pair, with its INTR output to the CPU. */
export class DualPic implements Stateful<PicState> {
  readonly master: PicChip;
  readonly slave: PicChip;
  /** Interrupts acknowledged, by IRQ 0–15. */
  readonly delivered = new Array<number>(16).fill(0);
  spurious = 0;

  constructor(private readonly intr: (level: boolean) => void) {
    this.master = new PicChip('pic-master', () => this.update());
    this.slave = new PicChip('pic-slave', () => this.update());
  }

  /**
   * The edge/level control registers at 0x4D0/0x4D1 (ELCR of the PIIX, as on PCs since PCI):
   * one bit per IRQ, set for level-triggered (shared PCI) interrupts.
   */
  readonly elcr: PortDevice = {
    name: 'pic-elcr',
    ioRead: (offset) => (offset === 0 ? this.master.levelMask : this.slave.levelMask),
    ioWrite: (offset, _size, value) => {
      // IRQ 0, 1, 2, 8 and 13 are edge-only on the PIIX.
      if (offset === 0) this.master.levelMask = value & 0xf8;
      else this.slave.levelMask = value & 0xde;
      this.update();
    },
  };

  /** The IRQ line object for ISA IRQ `irq` (0–15). */
  line(irq: number): IrqLine {
    return { set: (level) => this.setIrq(irq, level) };
  }

  setIrq(irq: number, level: boolean): void {
    if (irq < 8) this.master.setLine(irq, level);
    else this.slave.setLine(irq - 8, level);
  }

  private update(): void {
    // The slave's INT output drives master input 2; it is taken as a level here, so a second
    // slave request pending at the master's EOI is not lost for want of a new edge.
    const slaveOut = this.slave.pending() >= 0;
    const bit = 1 << 2;
    this.master.irr = slaveOut ? this.master.irr | bit : this.master.irr & ~bit;
    this.master.lines = slaveOut ? this.master.lines | bit : this.master.lines & ~bit;
    this.intr(this.master.pending() >= 0);
  }

  /** The vector `acknowledge` would return now, nothing acknowledged. */
  pendingVector(): number {
    const irq = this.master.pending();
    if (irq < 0) return this.master.base + 7;
    if (irq !== 2) return this.master.base + irq;
    const slaveIrq = this.slave.pending();
    return this.slave.base + (slaveIrq < 0 ? 7 : slaveIrq);
  }

  /** INTA: the vector for the CPU (SDM 3A 6.3.1); IRQ 7 or 15 of the chip if nothing is left. */
  acknowledge(): number {
    const irq = this.master.acknowledge();
    if (irq < 0) {
      this.spurious++;
      return this.master.base + 7;
    }
    if (irq !== 2) {
      this.delivered[irq]++;
      return this.master.base + irq;
    }
    const slaveIrq = this.slave.acknowledge();
    if (slaveIrq < 0) {
      this.spurious++;
      return this.slave.base + 7;
    }
    this.delivered[8 + slaveIrq]++;
    return this.slave.base + slaveIrq;
  }

  save(): PicState {
    return {
      version: 1,
      master: this.master.save(),
      slave: this.slave.save(),
      delivered: [...this.delivered],
      spurious: this.spurious,
    };
  }

  /**
   * Restore it after the devices that drive its lines (their restores may set a line), so that
   * the saved IRR and line levels are what remains; INTR to the CPU is driven again.
   */
  restore(state: PicState, path = 'pic'): void {
    STATE(state, path);
    this.master.restore(state.master);
    this.slave.restore(state.slave);
    state.delivered.forEach((n, irq) => (this.delivered[irq] = n));
    this.spurious = state.spurious;
    this.update();
  }
}
