/**
 * The 93C46-type serial EEPROM behind MEAR (reference 2d): chip select EESEL, clock EECLK, data
 * in EEDI latched on rising clock edges, data out on EEDO. Only READ (start bit 1, opcode 10,
 * 6-bit address, then 16 data bits MSB first) is implemented; other opcodes are ignored, as the
 * drivers that talk to this part only read it.
 */
import type { Stateful } from '../../device.ts';
import { arrayOf, bool, checkState, nullable, num } from '../../state.ts';

/** The words and the serial interface's progress through a command. */
export interface EepromState {
  version: 1;
  words: number[];
  selected: boolean;
  clock: boolean;
  shift: number;
  bits: number;
  /** The word being shifted out (null: none) and the bits of it still to go. */
  out: number | null;
  outBit: number;
  dataOut: boolean;
}

const STATE = checkState<EepromState>('93C46 EEPROM', 1, {
  words: arrayOf(num, 64),
  selected: bool,
  clock: bool,
  shift: num,
  bits: num,
  out: nullable(num),
  outBit: num,
  dataOut: bool,
});

export class Eeprom93c46 implements Stateful<EepromState> {
  private readonly words = new Uint16Array(64);
  private selected = false;
  private clock = false;
  private shift = 0;
  private bits = 0;
  private out: number | undefined;
  private outBit = 0;
  dataOut = false;

  /** Words 0xA–0xC hold the MAC: MAC[4..5], MAC[2..3], MAC[0..1] (FreeBSD nge, gem5). */
  constructor(mac: Uint8Array) {
    this.words[0xa] = mac[4] | (mac[5] << 8);
    this.words[0xb] = mac[2] | (mac[3] << 8);
    this.words[0xc] = mac[0] | (mac[1] << 8);
  }

  /** Applies the MEAR pins the host drives. */
  drive(select: boolean, clock: boolean, dataIn: boolean): void {
    if (!select) {
      this.selected = false;
      this.bits = 0;
      this.shift = 0;
      this.out = undefined;
      this.dataOut = false;
      this.clock = clock;
      return;
    }
    this.selected = true;
    const rising = clock && !this.clock;
    this.clock = clock;
    if (!rising) return;
    if (this.out !== undefined) {
      // Shift the next data bit out, MSB first.
      this.outBit--;
      this.dataOut = ((this.out >> this.outBit) & 1) === 1;
      if (this.outBit === 0) this.out = undefined;
      return;
    }
    if (this.bits === 0 && !dataIn) return; // wait for the start bit
    this.shift = (this.shift << 1) | (dataIn ? 1 : 0);
    this.bits++;
    if (this.bits === 9) {
      // start(1) opcode(2) address(6)
      const opcode = (this.shift >> 6) & 3;
      const address = this.shift & 0x3f;
      this.bits = 0;
      this.shift = 0;
      if (opcode === 2) {
        this.out = this.words[address];
        this.outBit = 16;
        this.dataOut = false; // the dummy zero bit before the data
      }
    }
  }

  get isSelected(): boolean {
    return this.selected;
  }

  save(): EepromState {
    return {
      version: 1,
      words: Array.from(this.words),
      selected: this.selected,
      clock: this.clock,
      shift: this.shift,
      bits: this.bits,
      out: this.out ?? null,
      outBit: this.outBit,
      dataOut: this.dataOut,
    };
  }

  /** Checks everything before it changes anything (the NIC restores it with its own state). */
  static check(state: EepromState, path: string): void {
    STATE(state, path);
  }

  restore(state: EepromState, path = 'eeprom'): void {
    STATE(state, path);
    this.words.set(state.words);
    this.selected = state.selected;
    this.clock = state.clock;
    this.shift = state.shift;
    this.bits = state.bits;
    this.out = state.out ?? undefined;
    this.outBit = state.outBit;
    this.dataOut = state.dataOut;
  }
}
