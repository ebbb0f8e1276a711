/**
 * The CMOS real-time clock (Motorola MC146818A datasheet, as in the PC/AT): index port 0x70
 * (bit 7 masks NMI), data port 0x71. Time registers 0x00–0x09 and the century at 0x32, in BCD or
 * binary and 12- or 24-hour format by status register B; status A never shows an update in
 * progress (updates are instantaneous here); status C reads and clears; status D reports a
 * valid battery. The time is the injected start time plus simulated time, never the host clock.
 */
import type { AccessSize, Clock, PortDevice, Stateful } from '../../device.ts';
import { bool, bytes, checkState, decodeBytes, encodeBytes, num } from '../../state.ts';

/** The index register and the 128 bytes of CMOS RAM; the time follows the (restored) clock. */
export interface CmosState {
  version: 1;
  index: number;
  nmiMasked: boolean;
  ram: string;
}

const STATE = checkState<CmosState>('CMOS RTC', 1, { index: num, nmiMasked: bool, ram: bytes });

export class Cmos implements PortDevice, Stateful<CmosState> {
  readonly name = 'cmos-rtc';
  private index = 0;
  nmiMasked = false;
  /** 128 bytes of CMOS RAM; 0x0B (status B) starts as 24-hour BCD. */
  private readonly ram = new Uint8Array(128);

  constructor(
    private readonly clock: Clock,
    /** Seconds since the Unix epoch at simulated time 0. */
    private readonly startSeconds: number,
  ) {
    this.ram[0x0a] = 0x26;
    this.ram[0x0b] = 0x02;
    this.ram[0x0d] = 0x80;
  }

  private now(): Date {
    return new Date((this.startSeconds + Math.floor(this.clock.now() / this.clock.hz)) * 1000);
  }

  private encode(v: number): number {
    return (this.ram[0x0b] & 0x04) !== 0 ? v : (Math.floor(v / 10) << 4) | (v % 10);
  }

  private timeRegister(index: number): number | undefined {
    const t = this.now();
    switch (index) {
      case 0x00:
        return this.encode(t.getUTCSeconds());
      case 0x02:
        return this.encode(t.getUTCMinutes());
      case 0x04: {
        const h = t.getUTCHours();
        if ((this.ram[0x0b] & 0x02) !== 0) return this.encode(h);
        const h12 = h % 12 === 0 ? 12 : h % 12;
        return this.encode(h12) | (h >= 12 ? 0x80 : 0);
      }
      case 0x06:
        return this.encode(t.getUTCDay() + 1);
      case 0x07:
        return this.encode(t.getUTCDate());
      case 0x08:
        return this.encode(t.getUTCMonth() + 1);
      case 0x09:
        return this.encode(t.getUTCFullYear() % 100);
      case 0x32:
        return this.encode(Math.floor(t.getUTCFullYear() / 100));
      default:
        return undefined;
    }
  }

  ioRead(offset: number, _size: AccessSize): number {
    if (offset === 0) return 0xff; // the index register is write-only
    const index = this.index;
    const time = this.timeRegister(index);
    if (time !== undefined) return time;
    if (index === 0x0c) {
      const v = this.ram[0x0c];
      this.ram[0x0c] = 0;
      return v;
    }
    return this.ram[index];
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) {
      this.index = value & 0x7f;
      this.nmiMasked = (value & 0x80) !== 0;
      return;
    }
    // Writes to the time registers are ignored: the clock follows simulated time.
    if (this.timeRegister(this.index) !== undefined || this.index === 0x0c || this.index === 0x0d)
      return;
    this.ram[this.index] = value & 0xff;
  }

  save(): CmosState {
    return {
      version: 1,
      index: this.index,
      nmiMasked: this.nmiMasked,
      ram: encodeBytes(this.ram),
    };
  }

  restore(s: CmosState, path = 'cmos'): void {
    STATE(s, path);
    const ram = decodeBytes(s.ram, `${path}.ram`, 128);
    this.index = s.index & 0x7f;
    this.nmiMasked = s.nmiMasked;
    this.ram.set(ram);
  }
}
