/**
 * The POST diagnostic port 0x80: firmware writes its progress codes there, and kernels write it
 * as an I/O delay (Linux's `outb_p`). Writes are ignored and reads float high; no state.
 */
import type { PortDevice } from '../../device.ts';

export class PostPort implements PortDevice {
  readonly name = 'post-0x80';
  ioRead(): number {
    return 0xff;
  }
  ioWrite(): void {}
}
