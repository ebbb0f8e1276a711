/**
 * Ethernet frame helpers (IEEE 802.3 clause 3): frames on previrt's wire carry their 4-byte FCS,
 * so a corrupted frame is detected by the receiver exactly as on a real link.
 */

/**
 * CRC-32 tables for slicing by 8 (Intel's "slicing-by-8", Kounavis and Berry 2005): row 0 is the
 * byte-at-a-time table, row k the CRC of a byte followed by k zero bytes. PERF: every frame on
 * the wire is checksummed by its sender and again by its receiver, and the client machine's
 * stream too, so a 1 GB netperf run feeds these loops about 3 GB; eight bytes per step are
 * several times faster than one.
 */
const CRC_TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n];
      t[k * 256 + n] = t[prev & 0xff] ^ (prev >>> 8);
    }
  }
  return t;
})();

/**
 * Continues a CRC-32 over more bytes: `crc32Update(crc32Update(0, a), b)` equals the CRC-32 of
 * a followed by b, and `crc32Update(0, x)` equals zlib's `crc32(x)`.
 */
export function crc32Update(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let k = start;
  for (; k + 8 <= end; k += 8) {
    const lo = c ^ (bytes[k] | (bytes[k + 1] << 8) | (bytes[k + 2] << 16) | (bytes[k + 3] << 24));
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + bytes[k + 4]] ^
      t[512 + bytes[k + 5]] ^
      t[256 + bytes[k + 6]] ^
      t[bytes[k + 7]];
  }
  for (; k < end; k++) c = t[(c ^ bytes[k]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 as Ethernet's FCS uses it (reflected, initial and final XOR 0xFFFFFFFF). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32Update(0, bytes, start, end);
}

/** Appends the FCS (least significant byte first, as transmitted). */
export function withFcs(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length + 4);
  out.set(frame);
  const fcs = crc32(frame);
  new DataView(out.buffer).setUint32(frame.length, fcs, true);
  return out;
}

/** True when the last four bytes are the correct FCS of the rest. */
export function fcsValid(frame: Uint8Array): boolean {
  if (frame.length < 5) return false;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return v.getUint32(frame.length - 4, true) === crc32(frame, 0, frame.length - 4);
}

/** Largest frame without FCS for MTU 1500: 14-byte header + 1500 payload. */
export const MAX_FRAME = 1514;
/** Smallest frame with FCS (shorter frames are runts). */
export const MIN_FRAME_FCS = 64;
