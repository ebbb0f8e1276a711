/**
 * A 16550A UART (National Semiconductor PC16550D datasheet) as the console: registers RBR/THR,
 * IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR and the divisor latch (LCR.DLAB). Transmission is
 * instantaneous (bytes go to the sink when THR is written); received bytes from the host arrive
 * on the simulated clock at the line rate the divisor sets, into a 16-byte FIFO (one byte with the
 * FIFO off). Like QEMU, the host side waits while the receiver is full instead of overrunning it,
 * so piped input is never lost. Interrupts:
 * receiver line status, received data available (with the FIFO trigger level), THR empty. As on
 * QEMU, MCR.OUT2 does not gate the interrupt line.
 */
import type {
  AccessSize,
  Clock,
  IrqLine,
  PortDevice,
  Stateful,
  Timer,
  TimerState,
} from '../../device.ts';
import {
  bool,
  bytes,
  checkState,
  decodeBytes,
  encodeBytes,
  nullable,
  num,
  timer,
} from '../../state.ts';

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const IER_RDA = 0x01;
const IER_THRE = 0x02;
const IER_RLS = 0x04;

export interface UartState {
  version: 1;
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  fcr: number;
  divisor: number;
  overrun: boolean;
  threPending: boolean;
  /** The receiver (FIFO or holding register), oldest byte first. */
  rx: string;
  /** Host bytes not yet on the wire, and when the next one arrives. */
  input: string;
  arrival: TimerState | null;
  /** Counters. */
  bytesOut: number;
  bytesIn: number;
}

const STATE = checkState<UartState>('16550A', 1, {
  ier: num,
  lcr: num,
  mcr: num,
  scr: num,
  fcr: num,
  divisor: num,
  overrun: bool,
  threPending: bool,
  rx: bytes,
  input: bytes,
  arrival: nullable(timer),
  bytesOut: num,
  bytesIn: num,
});

export class Uart16550 implements PortDevice, Stateful<UartState> {
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private fcr = 0;
  private divisor = 12; // 9600 baud after reset, as a BIOS would leave it
  private overrun = false;
  /** A THR-empty interrupt is pending (cleared by reading IIR or writing THR). */
  private threPending = false;
  private rx: number[] = [];
  /** Host bytes not yet "on the wire". */
  private input: number[] = [];
  private arrival: Timer | undefined;
  bytesOut = 0;
  bytesIn = 0;

  constructor(
    readonly name: string,
    private readonly clock: Clock,
    private readonly irq: IrqLine,
    private readonly sink: (byte: number) => void,
  ) {}

  /** Queues bytes typed on the host; they arrive one character time apart. */
  receive(bytes: Iterable<number>): void {
    for (const b of bytes) this.input.push(b & 0xff);
    this.scheduleArrival();
  }

  private characterCycles(): number {
    // 10 bits per character (start, 8 data, stop) at 115200 / divisor baud.
    const baud = 115200 / Math.max(1, this.divisor);
    return Math.ceil((this.clock.hz * 10) / baud);
  }

  private scheduleArrival(): void {
    if (this.arrival !== undefined || this.input.length === 0) return;
    this.arrival = this.clock.at(
      this.clock.now() + this.characterCycles(),
      () => this.arrive(),
      `${this.name}.rx`,
    );
  }

  /** The next host byte has come down the line. */
  private arrive(): void {
    this.arrival = undefined;
    // The receiver is full: wait until the guest reads RBR (QEMU's can_receive).
    if (this.rx.length >= (this.fifoEnabled ? 16 : 1)) return;
    const byte = this.input.shift();
    if (byte === undefined) return;
    this.rx.push(byte);
    this.bytesIn++;
    this.update();
    this.scheduleArrival();
  }

  private get fifoEnabled(): boolean {
    return (this.fcr & 1) !== 0;
  }

  private get triggerLevel(): number {
    if (!this.fifoEnabled) return 1;
    return [1, 4, 8, 14][this.fcr >> 6];
  }

  /** The highest-priority pending interrupt's IIR code, or 1 (none). */
  private iirCode(): number {
    if ((this.ier & IER_RLS) !== 0 && this.overrun) return 0x06;
    if ((this.ier & IER_RDA) !== 0 && this.rx.length >= this.triggerLevel) return 0x04;
    // Fewer bytes than the trigger level: a character timeout interrupt (FIFO mode).
    if ((this.ier & IER_RDA) !== 0 && this.rx.length > 0) return 0x0c;
    if ((this.ier & IER_THRE) !== 0 && this.threPending) return 0x02;
    return 0x01;
  }

  private update(): void {
    this.irq.set(this.iirCode() !== 0x01);
  }

  ioRead(offset: number, _size: AccessSize): number {
    const dlab = (this.lcr & 0x80) !== 0;
    switch (offset) {
      case 0: {
        if (dlab) return this.divisor & 0xff;
        const b = this.rx.shift() ?? 0;
        this.update();
        this.scheduleArrival();
        return b;
      }
      case 1:
        return dlab ? this.divisor >> 8 : this.ier;
      case 2: {
        const code = this.iirCode();
        if (code === 0x02) this.threPending = false;
        this.update();
        return code | (this.fifoEnabled ? 0xc0 : 0);
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const lsr =
          LSR_THRE | LSR_TEMT | (this.rx.length > 0 ? LSR_DR : 0) | (this.overrun ? LSR_OE : 0);
        this.overrun = false;
        this.update();
        return lsr;
      }
      case 6:
        // MSR: CTS, DSR, DCD asserted (a connected terminal); loopback mirrors MCR.
        return (this.mcr & 0x10) !== 0 ? (this.mcr & 0x0f) << 4 : 0xb0;
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
        if ((this.mcr & 0x10) !== 0) {
          this.rx.push(value); // loopback
        } else {
          this.sink(value);
        }
        this.threPending = true;
        this.update();
        return;
      case 1:
        if (dlab) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
          return;
        }
        // Enabling the THRE interrupt while THR is empty raises it at once (16550 behaviour).
        if ((value & IER_THRE) !== 0 && (this.ier & IER_THRE) === 0) this.threPending = true;
        this.ier = value & 0x0f;
        this.update();
        return;
      case 2:
        this.fcr = value & 0xc9;
        if ((value & 2) !== 0) this.rx = [];
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

  save(): UartState {
    return {
      version: 1,
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      fcr: this.fcr,
      divisor: this.divisor,
      overrun: this.overrun,
      threPending: this.threPending,
      rx: encodeBytes(Uint8Array.from(this.rx)),
      input: encodeBytes(Uint8Array.from(this.input)),
      arrival:
        this.arrival === undefined ? null : { cycle: this.arrival.cycle, seq: this.arrival.seq },
      bytesOut: this.bytesOut,
      bytesIn: this.bytesIn,
    };
  }

  /** The registers and buffers again, the next arrival at its saved place on the clock. */
  restore(s: UartState, path = this.name): void {
    STATE(s, path);
    const rx = decodeBytes(s.rx, `${path}.rx`);
    const input = decodeBytes(s.input, `${path}.input`);
    this.ier = s.ier & 0x0f;
    this.lcr = s.lcr & 0xff;
    this.mcr = s.mcr & 0x1f;
    this.scr = s.scr & 0xff;
    this.fcr = s.fcr & 0xc9;
    this.divisor = s.divisor & 0xffff;
    this.overrun = s.overrun;
    this.threPending = s.threPending;
    this.rx = [...rx];
    this.input = [...input];
    this.bytesOut = s.bytesOut;
    this.bytesIn = s.bytesIn;
    this.arrival?.cancel();
    this.arrival =
      s.arrival === null
        ? undefined
        : this.clock.restoreAt(s.arrival, () => this.arrive(), `${this.name}.rx`);
    this.update();
  }
}
