/**
 * The keyboard controller's status and command ports (0x60, 0x64) to the extent kernels use
 * them: status reads and the 0xFE pulse on the reset line.
 */
import type { AccessSize, PortDevice } from '../../device.ts';

export class KeyboardController implements PortDevice {
  readonly name = 'i8042';
  constructor(private readonly reset: () => void) {}
  ioRead(offset: number): number {
    // Status (0x64): system flag and keyboard unlocked, both buffers empty. Data (0x60): none.
    return offset === 4 ? 0x14 : 0;
  }
  ioWrite(offset: number, _size: AccessSize, value: number): void {
    if (offset === 4 && (value & 0xff) === 0xfe) this.reset();
  }
}
