/**
 * The DMA page registers at 0x81–0x8F: on the PC/AT a 74LS612 memory mapper holds the upper
 * address bits of each 8237 DMA channel, 0x87/0x83/0x81/0x82 for channels 0–3 and 0x8F/0x8B/
 * 0x89/0x8A for channels 4–7; the others are unused registers of the same chip (IBM PC/AT
 * Technical Reference, "System I/O address map"; QEMU hw/dma/i8257.c models the channel ones).
 * Every register reads back what was last written; all are 0 at power-on, as QEMU resets them.
 * Port 0x80 is a register of the same chip, but stays the POST port (PostPort.ts: reads 0xFF,
 * as QEMU's ioport80), since firmware and kernels use it for progress codes and I/O delays.
 *
 * No DMA happens here (the 8237 itself is not modelled); the registers matter because kernels
 * look for the legacy DMA device by reading one: Linux's i8237 driver reads 0x87 and takes 0xFF
 * for "no legacy DMA" (arch/x86/kernel/i8237.c).
 */
import type { AccessSize, PortDevice, Stateful } from '../../device.ts';
import { arrayOf, checkState, num, type Check } from '../../state.ts';

export const DMA_PAGE_REGISTERS = 15;

export interface DmaPageRegistersState {
  version: 1;
  /** Ports 0x81–0x8F, in order. */
  pages: number[];
}

const STATE: Check = checkState<DmaPageRegistersState>('DMA page registers', 1, {
  pages: arrayOf(num, DMA_PAGE_REGISTERS),
});

export class DmaPageRegisters implements PortDevice, Stateful<DmaPageRegistersState> {
  readonly name = 'dma-page-registers';
  private readonly pages = new Uint8Array(DMA_PAGE_REGISTERS);

  /** A wider access reaches the next registers, low byte first (a byte-wide ISA device). */
  ioRead(offset: number, size: AccessSize): number {
    let v = 0;
    for (let k = size - 1; k >= 0; k--) v = (v << 8) | (this.pages[offset + k] ?? 0xff);
    return v >>> 0;
  }

  ioWrite(offset: number, size: AccessSize, value: number): void {
    for (let k = 0; k < size && offset + k < DMA_PAGE_REGISTERS; k++)
      this.pages[offset + k] = (value >>> (8 * k)) & 0xff;
  }

  save(): DmaPageRegistersState {
    return { version: 1, pages: Array.from(this.pages) };
  }

  restore(state: DmaPageRegistersState, path = 'dmaPages'): void {
    STATE(state, path);
    this.pages.set(state.pages.map((v) => v & 0xff));
  }
}
