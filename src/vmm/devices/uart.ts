/**
 * The virtual 16550 on COM1 (PC16550D datasheet, register map), as much of it as a console needs:
 * the transmitter is always empty (bytes go to the backend's console at once), received bytes
 * come from the backend's console input, one in the receive buffer at a time (FIFOs are accepted
 * but not modelled), and the interrupt line follows IER and the line status.
 *
 * A byte enters the receive buffer when the guest has received interrupts enabled, or at the
 * next timer tick (`tick`), and each one makes a new edge on the line: input typed before the
 * guest initialised its 8259s (which resets their edge detection) is not lost.
 */
import type { AccessSize, PortDevice } from '../../machine/device.ts';

const IER_RDA = 0x01;
const IER_THRE = 0x02;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

export class VirtualUart implements PortDevice {
  readonly name = 'vuart';
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private divisor = 12;
  private threPending = false;
  private readonly input: number[] = [];
  private rbr: number | undefined;
  bytesOut = 0;
  bytesIn = 0;

  constructor(
    private readonly transmit: (byte: number) => void,
    private readonly irq: (level: boolean) => void,
  ) {}

  /** Bytes typed on the console. */
  receive(bytes: Iterable<number>): void {
    for (const b of bytes) this.input.push(b & 0xff);
    if ((this.ier & IER_RDA) !== 0) this.load();
  }

  /** A timer tick: the next waiting byte arrives if the receive buffer is empty. */
  tick(): void {
    this.load();
  }

  private load(): void {
    if (this.rbr !== undefined || this.input.length === 0) return;
    this.rbr = this.input.shift();
    this.bytesIn++;
    // A new edge for the 8259 (edge-triggered ISA line).
    this.irq(false);
    this.update();
  }

  private iir(): number {
    if ((this.ier & IER_RDA) !== 0 && this.rbr !== undefined) return 0x04;
    if ((this.ier & IER_THRE) !== 0 && this.threPending) return 0x02;
    return 0x01;
  }

  private update(): void {
    this.irq(this.iir() !== 0x01);
  }

  ioRead(offset: number, _size: AccessSize): number {
    const dlab = (this.lcr & 0x80) !== 0;
    switch (offset) {
      case 0: {
        if (dlab) return this.divisor & 0xff;
        const b = this.rbr ?? 0;
        this.rbr = undefined;
        this.update();
        this.load();
        return b;
      }
      case 1:
        return dlab ? this.divisor >> 8 : this.ier;
      case 2: {
        const code = this.iir();
        if (code === 0x02) this.threPending = false;
        this.update();
        return code;
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return LSR_THRE | LSR_TEMT | (this.rbr !== undefined ? LSR_DR : 0);
      case 6:
        return 0xb0;
      default:
        return this.scr;
    }
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    value &= 0xff;
    const dlab = (this.lcr & 0x80) !== 0;
    switch (offset) {
      case 0:
        if (dlab) {
          this.divisor = (this.divisor & 0xff00) | value;
          return;
        }
        this.bytesOut++;
        this.transmit(value);
        this.threPending = true;
        this.update();
        return;
      case 1:
        if (dlab) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
          return;
        }
        if ((value & IER_THRE) !== 0 && (this.ier & IER_THRE) === 0) this.threPending = true;
        this.ier = value & 0x0f;
        this.update();
        return;
      case 3:
        this.lcr = value;
        return;
      case 4:
        this.mcr = value & 0x1f;
        return;
      case 7:
        this.scr = value;
        return;
      default:
        return;
    }
  }
}
