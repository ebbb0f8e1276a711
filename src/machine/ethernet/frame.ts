/**
 * Ethernet frame helpers (IEEE 802.3 clause 3): frames on previrt's wire carry their 4-byte FCS,
 * so a corrupted frame is detected by the receiver exactly as on a real link.
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as Ethernet's FCS uses it (reflected, initial and final XOR 0xFFFFFFFF). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let k = start; k < end; k++) c = CRC_TABLE[(c ^ bytes[k]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
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
