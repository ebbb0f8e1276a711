/**
 * The 8042 keyboard controller (IBM PC/AT Technical Reference, "Keyboard controller"; Intel
 * UPI-41A/8042 data sheet) to the extent kernels use it without a keyboard: the status register
 * at 0x64, the data port 0x60 with nothing in it, and the command that pulses the output port's
 * reset line (0xFE, or any 0xF0–0xFF pulse command with bit 0 clear), which ends the run.
 *
 * Status register bits: 0 OBF (output buffer full: a byte for the host at 0x60), 1 IBF (input
 * buffer full: the controller has not taken the host's last byte yet), 2 SYS (system flag, set by
 * the firmware after its self-test passed), 3 A2 (the last host write went to 0x64, a command,
 * rather than 0x60, data), 4 INH (1 = the keyboard is not inhibited by the key lock), 5–7 aux
 * output, timeout and parity errors. No keyboard is attached and the controller answers at once,
 * so OBF and IBF stay clear; SYS and INH are set as the firmware leaves them; A2 follows the
 * host's writes. At power-on (the state a multiboot kernel starts in) the register reads 0x1C, as
 * on QEMU after SeaBIOS's controller self-test (QEMU hw/input/pckbd.c: KBD_STAT_CMD |
 * KBD_STAT_UNLOCKED at reset, KBD_STAT_SELFTEST once the firmware's 0xAA test ran).
 */
import type { AccessSize, PortDevice, Stateful } from '../../device.ts';
import { checkState, num, type Check } from '../../state.ts';

export const KBC_STATUS = {
  OBF: 0x01,
  IBF: 0x02,
  SYS: 0x04,
  A2: 0x08,
  INH: 0x10,
} as const;

export interface KeyboardControllerState {
  version: 1;
  /** The status register (port 0x64). */
  status: number;
}

const STATE: Check = checkState<KeyboardControllerState>('keyboard controller', 1, {
  status: num,
});

export class KeyboardController implements PortDevice, Stateful<KeyboardControllerState> {
  readonly name = 'i8042';
  private status = KBC_STATUS.SYS | KBC_STATUS.A2 | KBC_STATUS.INH;

  constructor(private readonly reset: () => void) {}

  ioRead(offset: number, _size: AccessSize): number {
    // Data (0x60): the output buffer is empty; 0x61–0x63 are not modelled.
    return offset === 4 ? this.status : 0;
  }

  ioWrite(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.status &= ~KBC_STATUS.A2;
    if (offset !== 4) return;
    this.status |= KBC_STATUS.A2;
    // 0xF0–0xFF pulse the output port bits whose command bits are 0; bit 0 is the CPU reset.
    if ((value & 0xf0) === 0xf0 && (value & 1) === 0) this.reset();
  }

  save(): KeyboardControllerState {
    return { version: 1, status: this.status };
  }

  restore(state: KeyboardControllerState, path = 'keyboard'): void {
    STATE(state, path);
    this.status = state.status & 0xff;
  }
}
