/**
 * The 93C46-type serial EEPROM behind MEAR (reference 2d): chip select EESEL, clock EECLK, data
 * in EEDI latched on rising clock edges, data out on EEDO. Only READ (start bit 1, opcode 10,
 * 6-bit address, then 16 data bits MSB first) is implemented; other opcodes are ignored, as the
 * drivers that talk to this part only read it.
 */
export class Eeprom93c46 {
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
}
