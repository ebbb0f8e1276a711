/**
 * The two checksums the peer needs: the Internet checksum of IPv4 and TCP headers (RFC 1071:
 * the ones'-complement of the ones'-complement sum of 16-bit big-endian words), and CRC-32 as
 * zlib and Ethernet compute it (reflected polynomial 0xEDB88320, initial and final XOR
 * 0xFFFFFFFF), here with a running state so the sender can checksum a stream it generates piece
 * by piece.
 */

/**
 * Adds bytes [start, end) to a running ones'-complement sum as 16-bit big-endian words (an odd
 * last byte is padded with a zero byte, RFC 1071 section 4.1). The sum is kept unfolded (exact
 * in a double for any frame size); fold it with `foldChecksum`.
 */
export function sum16(bytes: Uint8Array, start = 0, end = bytes.length, acc = 0): number {
  let sum = acc;
  let k = start;
  // PERF: eight bytes a step (the client machine sums every segment it sends and receives).
  for (; k + 7 < end; k += 8) {
    sum +=
      ((bytes[k] << 8) | bytes[k + 1]) +
      ((bytes[k + 2] << 8) | bytes[k + 3]) +
      ((bytes[k + 4] << 8) | bytes[k + 5]) +
      ((bytes[k + 6] << 8) | bytes[k + 7]);
  }
  for (; k + 1 < end; k += 2) sum += (bytes[k] << 8) | bytes[k + 1];
  if (k < end) sum += bytes[k] << 8;
  return sum;
}

/** Folds the carries back in and complements: the value to put in a checksum field. */
export function foldChecksum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** The Internet checksum of bytes [start, end). A header that carries a correct one sums to 0. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return foldChecksum(sum16(bytes, start, end));
}

/** CRC-32 of the stream's trailer: the same CRC as Ethernet's FCS (zlib's `crc32`). */
export { crc32Update } from '../machine/ethernet/frame.ts';
