/**
 * A capture of the wire in the pcap format (the libpcap file format of tcpdump and Wireshark):
 * the frames the client machine sent and received, each stamped with the simulated time it
 * was on the wire, so `tcpdump -r` or Wireshark shows a run's TCP exchange as the guest saw it.
 *
 * The file: a 24-byte header (the nanosecond-resolution magic 0xa1b23c4d, version 2.4, zone 0,
 * accuracy 0, snapshot length 65535, link type 1, Ethernet), then one record per frame: a
 * 16-byte header (seconds, nanoseconds, captured length, length on the wire) and the frame
 * without its FCS, as a NIC hands frames to a capture. Little-endian, as written by an x86
 * host. Deterministic: the same run gives the same file, byte for byte.
 */

/** The magic of a pcap file whose timestamps are in nanoseconds. */
export const PCAP_MAGIC_NS = 0xa1b23c4d;
/** LINKTYPE_ETHERNET. */
export const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;
const FILE_HEADER = 24;
const RECORD_HEADER = 16;

/**
 * Writes a capture as it goes: the file header at once, then each frame's record, to `sink`
 * (a file, or memory), so a long run's capture never sits in memory whole.
 */
export class PcapWriter {
  frames = 0;

  constructor(private readonly sink: (chunk: Uint8Array) => void) {
    const h = new Uint8Array(FILE_HEADER);
    const v = new DataView(h.buffer);
    v.setUint32(0, PCAP_MAGIC_NS, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true);
    v.setUint32(12, 0, true);
    v.setUint32(16, SNAPLEN, true);
    v.setUint32(20, LINKTYPE_ETHERNET, true);
    sink(h);
  }

  /** A frame on the wire at `ns` simulated nanoseconds; `withFcs`: its last 4 bytes are dropped. */
  add(ns: bigint, frame: Uint8Array, withFcs = true): void {
    const length = withFcs ? Math.max(0, frame.length - 4) : frame.length;
    const captured = Math.min(length, SNAPLEN);
    const r = new Uint8Array(RECORD_HEADER + captured);
    const v = new DataView(r.buffer);
    v.setUint32(0, Number(ns / 1_000_000_000n), true);
    v.setUint32(4, Number(ns % 1_000_000_000n), true);
    v.setUint32(8, captured, true);
    v.setUint32(12, length, true);
    r.set(frame.subarray(0, captured), RECORD_HEADER);
    this.sink(r);
    this.frames++;
  }
}

/** A pcap file read back (what this module writes, or any little-endian Ethernet capture). */
export interface PcapRecord {
  ns: bigint;
  frame: Uint8Array;
  originalLength: number;
}

/** Parses a pcap file; one clear message for anything that is not one. */
export function readPcap(bytes: Uint8Array): PcapRecord[] | string {
  if (bytes.length < FILE_HEADER) return 'not a pcap file (shorter than its header)';
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0, true);
  if (magic !== PCAP_MAGIC_NS && magic !== 0xa1b2c3d4)
    return `not a little-endian pcap file (magic 0x${magic.toString(16)})`;
  const scale = magic === PCAP_MAGIC_NS ? 1n : 1000n;
  if (v.getUint32(20, true) !== LINKTYPE_ETHERNET) return 'not an Ethernet capture';
  const out: PcapRecord[] = [];
  let at = FILE_HEADER;
  while (at < bytes.length) {
    if (at + RECORD_HEADER > bytes.length) return `a record header cut short at byte ${at}`;
    const captured = v.getUint32(at + 8, true);
    if (at + RECORD_HEADER + captured > bytes.length) return `a frame cut short at byte ${at}`;
    out.push({
      ns:
        BigInt(v.getUint32(at, true)) * 1_000_000_000n + BigInt(v.getUint32(at + 4, true)) * scale,
      frame: Uint8Array.from(bytes.subarray(at + RECORD_HEADER, at + RECORD_HEADER + captured)),
      originalLength: v.getUint32(at + 12, true),
    });
    at += RECORD_HEADER + captured;
  }
  return out;
}
