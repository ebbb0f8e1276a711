/**
 * The I/O APIC of the PC (Intel 82093AA I/O Advanced Programmable Interrupt Controller
 * datasheet): at 0xFEC00000, the index register IOREGSEL at offset 0 and the data window IOWIN
 * at 0x10; registers ID (0), version (1: version 0x11, 24 entries), arbitration ID (2) and the
 * 24 redirection entries (0x10 + 2n, low then high word). Each pin's entry gives the vector, the
 * delivery mode (fixed, lowest priority, NMI; SMI, INIT and ExtINT reach nothing here), the
 * destination (physical APIC ID or logical), edge or level triggering and the mask.
 *
 * The ISA interrupt lines come in beside the 8259 pair: ISA IRQ n on pin n, but IRQ 0 (the PIT)
 * on pin 2, as on PCs whose tables say so with an interrupt source override (QEMU:
 * hw/intc/ioapic.c, "ISA IRQs map to GSI 1-1 except for IRQ0 which maps to GSI 2"). Every entry
 * starts masked, so a kernel that never programs the I/O APIC sees only the 8259s. Polarity is
 * kept but not applied: a line here is high while its device asserts it, as in QEMU.
 *
 * Edge-triggered pins send one message per rising edge while unmasked. Level-triggered pins send
 * one while asserted and unmasked, then hold the entry's remote IRR until the local APIC's EOI
 * of that vector comes back (82093AA 3.2.4); a pin still asserted then sends again.
 */
import type { AccessSize, MmioDevice, Stateful } from '../../device.ts';
import { arrayOf, checkState, num } from '../../state.ts';

export const IO_APIC_BASE = 0xfec00000;
export const IO_APIC_PINS = 24;
const VERSION = 0x00170011; // max redirection entry 23, version 0x11

const MASKED = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;
/** The bits software may write in an entry's low word (not delivery status or remote IRR). */
const LOW_WRITABLE = 0x1afff;

/** An interrupt message to the local APICs (the destination fields of an ICR or an entry). */
export interface ApicMessage {
  vector: number;
  /** Delivery mode: 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT. */
  mode: number;
  level: boolean;
  destination: number;
  logical: boolean;
}

export interface IoApicState {
  version: 2;
  id: number;
  select: number;
  /** The redirection entries, low and high word of each. */
  entries: number[];
  /** The pins' input levels, one bit per pin. */
  levels: number;
  /** Counter: messages sent. */
  sent: number;
  /** Counter: messages sent per pin. */
  sentByPin: number[];
}

const STATE = checkState<IoApicState>('I/O APIC', 2, {
  id: num,
  select: num,
  entries: arrayOf(num, IO_APIC_PINS * 2),
  levels: num,
  sent: num,
  sentByPin: arrayOf(num, IO_APIC_PINS),
});

export class IoApic implements MmioDevice, Stateful<IoApicState> {
  readonly name = 'io-apic';
  private id = 0;
  private select = 0;
  private readonly entries = new Uint32Array(IO_APIC_PINS * 2);
  private levels = 0;
  /** Messages sent (a counter, for tests and statistics), in all and per pin. */
  sent = 0;
  readonly sentByPin: number[] = new Array<number>(IO_APIC_PINS).fill(0);

  constructor(private readonly deliver: (message: ApicMessage) => void) {
    for (let pin = 0; pin < IO_APIC_PINS; pin++) this.entries[pin * 2] = MASKED;
  }

  /** ISA IRQ `irq` as the PC wires it: pin `irq`, but IRQ 0 on pin 2. */
  static pinOfIsaIrq(irq: number): number {
    return irq === 0 ? 2 : irq;
  }

  /** A device drives pin `pin`. */
  setPin(pin: number, level: boolean): void {
    const bit = 1 << pin;
    const rising = level && (this.levels & bit) === 0;
    this.levels = level ? this.levels | bit : this.levels & ~bit;
    const low = this.entries[pin * 2];
    if ((low & LEVEL) !== 0) this.service(pin);
    else if (rising && (low & MASKED) === 0) this.send(pin);
  }

  /** The local APIC's EOI of a level-triggered `vector`: remote IRR clears, and asserted pins send again. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IO_APIC_PINS; pin++) {
      const low = this.entries[pin * 2];
      if ((low & 0xff) !== vector || (low & REMOTE_IRR) === 0) continue;
      this.entries[pin * 2] = low & ~REMOTE_IRR;
      this.service(pin);
    }
  }

  /** A level-triggered pin: asserted, unmasked and not waiting for its EOI sends. */
  private service(pin: number): void {
    const low = this.entries[pin * 2];
    if ((low & LEVEL) === 0 || (low & (MASKED | REMOTE_IRR)) !== 0) return;
    if ((this.levels & (1 << pin)) === 0) return;
    this.entries[pin * 2] = low | REMOTE_IRR;
    this.send(pin);
  }

  private send(pin: number): void {
    const low = this.entries[pin * 2];
    const high = this.entries[pin * 2 + 1];
    this.sent++;
    this.sentByPin[pin]++;
    this.deliver({
      vector: low & 0xff,
      mode: (low >> 8) & 7,
      level: (low & LEVEL) !== 0,
      destination: high >>> 24,
      logical: (low & (1 << 11)) !== 0,
    });
  }

  // GUEST-CONTROLLED: offset, size and values (only aligned 32-bit accesses to the two
  // registers do anything, as on the 82093AA; the index selects any register, unknown ones read 0).
  mmioRead(offset: number, size: AccessSize): number {
    if (size !== 4) return 0;
    if (offset === 0) return this.select;
    if (offset === 0x10) return this.read(this.select) >>> 0;
    return 0;
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4) return;
    if (offset === 0) this.select = value & 0xff;
    else if (offset === 0x10) this.write(this.select, value >>> 0);
  }

  private read(reg: number): number {
    if (reg === 0) return this.id;
    if (reg === 1) return VERSION;
    if (reg === 2) return this.id; // arbitration ID: the APIC ID after reset
    if (reg >= 0x10 && reg < 0x10 + IO_APIC_PINS * 2) return this.entries[reg - 0x10];
    return 0;
  }

  private write(reg: number, value: number): void {
    if (reg === 0) {
      this.id = value & 0x0f000000;
      return;
    }
    if (reg < 0x10 || reg >= 0x10 + IO_APIC_PINS * 2) return;
    const index = reg - 0x10;
    if ((index & 1) === 1) {
      this.entries[index] = value & 0xff000000;
      return;
    }
    const pin = index >> 1;
    const old = this.entries[index];
    let low = (value & LOW_WRITABLE) | (old & REMOTE_IRR);
    if ((low & LEVEL) === 0) low &= ~REMOTE_IRR; // edge: no remote IRR
    this.entries[index] = low >>> 0;
    // Unmasking a level-triggered pin that is asserted sends it now.
    this.service(pin);
  }

  save(): IoApicState {
    return {
      version: 2,
      id: this.id,
      select: this.select,
      entries: Array.from(this.entries),
      levels: this.levels >>> 0,
      sent: this.sent,
      sentByPin: [...this.sentByPin],
    };
  }

  restore(state: IoApicState, path = 'io-apic'): void {
    STATE(state, path);
    this.id = state.id;
    this.select = state.select;
    this.entries.set(state.entries);
    this.levels = state.levels;
    this.sent = state.sent;
    this.sentByPin.splice(0, IO_APIC_PINS, ...state.sentByPin);
  }
}
