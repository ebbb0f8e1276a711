/**
 * Small PC ports: QEMU's isa-debug-exit at 0xF4 (DESIGN.md decision 2), the POST diagnostic port
 * 0x80 (ignored, as kernels use it as an I/O delay), and the keyboard controller's status and
 * command ports (0x60, 0x64) to the extent kernels use them: status reads and the 0xFE pulse
 * on the reset line.
 */
import type { AccessSize, PortDevice } from '../../device.ts';

export class DebugExit implements PortDevice {
  readonly name = 'isa-debug-exit';
  constructor(private readonly exit: (value: number) => void) {}
  ioRead(): number {
    return 0xff;
  }
  ioWrite(_offset: number, size: AccessSize, value: number): void {
    // QEMU's device takes the value of the write (iosize 4 at 0xF4 in our configuration).
    this.exit(value & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff));
  }
}

export class PostPort implements PortDevice {
  readonly name = 'post-0x80';
  ioRead(): number {
    return 0xff;
  }
  ioWrite(): void {}
}

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
