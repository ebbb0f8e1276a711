/**
 * A PCI function's 256-byte configuration space as its model keeps it: the aligned read every
 * function answers the same way (PCI 3.0, 6.1: little-endian, naturally aligned), and the
 * walk over the bytes of a write, for the function to keep the bits it implements.
 */
import type { AccessSize } from '../../device.ts';

/** `size` bytes at `offset`, aligned down to the size as configuration mechanism #1 does. */
export function configSpaceRead(config: Uint8Array, offset: number, size: AccessSize): number {
  const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
  if (size === 4) return v.getUint32(offset & 0xfc, true);
  if (size === 2) return v.getUint16(offset & 0xfe, true);
  return config[offset & 0xff];
}

/** Each byte a write of `size` bytes at `offset` carries, with its offset in the space. */
export function forEachConfigByte(
  offset: number,
  size: AccessSize,
  value: number,
  byte: (offset: number, value: number) => void,
): void {
  for (let k = 0; k < size; k++) byte((offset + k) & 0xff, (value >>> (8 * k)) & 0xff);
}
