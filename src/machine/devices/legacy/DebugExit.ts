/**
 * QEMU's isa-debug-exit (DESIGN.md decision 2): a write of v to its port (0xF4, four bytes wide,
 * as `-device isa-debug-exit,iobase=0xf4,iosize=4`) ends the run, and the process exits with
 * (v << 1) | 1. Reads float high. The device holds no state: the value goes to its owner at once
 * (the machine keeps the pending exit; Machine.ts).
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
