/**
 * Building and parsing the headers the peer speaks: Ethernet II, ARP for IPv4 over Ethernet
 * (RFC 826), IPv4 (RFC 791) and TCP (RFC 9293) with the MSS (RFC 9293 3.7.1) and window-scale
 * (RFC 7323 section 2) options. Frames here are without FCS; the link layer adds and checks it.
 * Parsers never throw: anything malformed comes back as a message string for the caller to count.
 */
import { crc32 } from '../machine/ethernet/frame.ts';
import { foldChecksum, internetChecksum, sum16 } from './checksum.ts';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IP_PROTO_TCP = 6;
export const BROADCAST_MAC = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** Frames shorter than this (without FCS) are padded, as a real MAC pads runts (802.3 4.2.3.3). */
export const MIN_FRAME = 60;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** An IPv4 address as a u32 (10.0.2.15 = 0x0a00020f). */
export function ipv4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

export function formatIpv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join('.');
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === 6 && b.length === 6 && a.every((x, k) => x === b[k]);
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

// ---------------------------------------------------------------------------------------------
// Ethernet II

export interface EthernetFrame {
  dst: Uint8Array;
  src: Uint8Array;
  type: number;
  /** Everything after the 14-byte header (may include padding). */
  payload: Uint8Array;
}

export function buildEthernet(
  dst: Uint8Array,
  src: Uint8Array,
  type: number,
  payload: Uint8Array,
): Uint8Array {
  const frame = new Uint8Array(Math.max(MIN_FRAME, 14 + payload.length));
  frame.set(dst, 0);
  frame.set(src, 6);
  view(frame).setUint16(12, type);
  frame.set(payload, 14);
  return frame;
}

export function parseEthernet(frame: Uint8Array): EthernetFrame | string {
  if (frame.length < 14) return `runt Ethernet frame (${frame.length} bytes)`;
  return {
    dst: frame.subarray(0, 6),
    src: frame.subarray(6, 12),
    type: view(frame).getUint16(12),
    payload: frame.subarray(14),
  };
}

// ---------------------------------------------------------------------------------------------
// ARP (RFC 826), Ethernet hardware type 1, protocol IPv4

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface ArpPacket {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

export function buildArp(p: ArpPacket): Uint8Array {
  const b = new Uint8Array(28);
  const v = view(b);
  v.setUint16(0, 1); // hardware: Ethernet
  v.setUint16(2, ETHERTYPE_IPV4);
  b[4] = 6;
  b[5] = 4;
  v.setUint16(6, p.op);
  b.set(p.senderMac, 8);
  v.setUint32(14, p.senderIp);
  b.set(p.targetMac, 18);
  v.setUint32(24, p.targetIp);
  return b;
}

export function parseArp(b: Uint8Array): ArpPacket | string {
  if (b.length < 28) return `truncated ARP packet (${b.length} bytes)`;
  const v = view(b);
  if (v.getUint16(0) !== 1 || v.getUint16(2) !== ETHERTYPE_IPV4 || b[4] !== 6 || b[5] !== 4)
    return 'ARP packet not for IPv4 over Ethernet';
  return {
    op: v.getUint16(6),
    senderMac: b.slice(8, 14),
    senderIp: v.getUint32(14),
    targetMac: b.slice(18, 24),
    targetIp: v.getUint32(24),
  };
}

// ---------------------------------------------------------------------------------------------
// IPv4 (RFC 791), no options on what we build

export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  id: number;
  ttl: number;
  /** Don't-fragment bit. */
  dontFragment: boolean;
  /** The payload, cut to the total length (Ethernet padding removed). */
  payload: Uint8Array;
}

export function buildIpv4(p: Omit<Ipv4Packet, 'payload'>, payloadLength: number): Uint8Array {
  const b = new Uint8Array(20 + payloadLength);
  writeIpv4Header(b, 0, p, payloadLength);
  return b;
}

/** Writes a 20-byte IPv4 header with its checksum at `at` of `b` (whose bytes there are 0). */
function writeIpv4Header(
  b: Uint8Array,
  at: number,
  p: Omit<Ipv4Packet, 'payload'>,
  payloadLength: number,
): void {
  const v = view(b);
  b[at] = 0x45; // version 4, 5 words of header
  v.setUint16(at + 2, 20 + payloadLength);
  v.setUint16(at + 4, p.id & 0xffff);
  v.setUint16(at + 6, p.dontFragment ? 0x4000 : 0);
  b[at + 8] = p.ttl;
  b[at + 9] = p.protocol;
  v.setUint32(at + 12, p.src);
  v.setUint32(at + 16, p.dst);
  v.setUint16(at + 10, internetChecksum(b, at, at + 20));
}

export function parseIpv4(b: Uint8Array): Ipv4Packet | string {
  if (b.length < 20) return `truncated IPv4 header (${b.length} bytes)`;
  const v = view(b);
  if (b[0] >> 4 !== 4) return `IP version ${b[0] >> 4}`;
  const headerLength = (b[0] & 0xf) * 4;
  const total = v.getUint16(2);
  if (headerLength < 20 || total < headerLength || total > b.length)
    return `bad IPv4 lengths (header ${headerLength}, total ${total}, frame ${b.length})`;
  if (internetChecksum(b, 0, headerLength) !== 0) return 'bad IPv4 header checksum';
  const fragment = v.getUint16(6);
  if ((fragment & 0x3fff) !== 0) return 'IPv4 fragment (not supported)';
  return {
    src: v.getUint32(12),
    dst: v.getUint32(16),
    protocol: b[9],
    id: v.getUint16(4),
    ttl: b[8],
    dontFragment: (fragment & 0x4000) !== 0,
    payload: b.subarray(headerLength, total),
  };
}

// ---------------------------------------------------------------------------------------------
// TCP (RFC 9293)

export interface TcpOptions {
  /** Maximum segment size (kind 2), only on SYN segments. */
  mss?: number;
  /** Window-scale shift (kind 3, RFC 7323), only on SYN segments. */
  windowScale?: number;
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  /** The window field as sent (not scaled). */
  window: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/** Sum of the IPv4 pseudo-header (RFC 9293 3.1): addresses, protocol, TCP length. */
function pseudoHeaderSum(src: number, dst: number, tcpLength: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IP_PROTO_TCP + tcpLength;
}

function encodeOptions(o: TcpOptions): Uint8Array {
  if (o.mss === undefined && o.windowScale === undefined) return new Uint8Array(0);
  const bytes: number[] = [];
  if (o.mss !== undefined) bytes.push(2, 4, (o.mss >> 8) & 0xff, o.mss & 0xff);
  if (o.windowScale !== undefined) bytes.push(1, 3, 3, o.windowScale); // NOP pads to 4 bytes
  while (bytes.length % 4 !== 0) bytes.push(0);
  return Uint8Array.from(bytes);
}

/** Builds a TCP segment with its checksum over the pseudo-header of `src` → `dst`. */
export function buildTcp(s: TcpSegment, src: number, dst: number): Uint8Array {
  const options = encodeOptions(s.options);
  const b = new Uint8Array(20 + options.length + s.payload.length);
  writeTcp(b, 0, s, options, src, dst);
  return b;
}

/**
 * Writes a TCP segment (header, `options` encoded, payload) with its checksum at `at` of `b`
 * (whose bytes there are 0); returns its length.
 */
function writeTcp(
  b: Uint8Array,
  at: number,
  s: TcpSegment,
  options: Uint8Array,
  src: number,
  dst: number,
): number {
  const headerLength = 20 + options.length;
  const length = headerLength + s.payload.length;
  const v = view(b);
  v.setUint16(at, s.srcPort);
  v.setUint16(at + 2, s.dstPort);
  v.setUint32(at + 4, s.seq >>> 0);
  v.setUint32(at + 8, s.ack >>> 0);
  b[at + 12] = (headerLength / 4) << 4;
  b[at + 13] = s.flags;
  v.setUint16(at + 14, s.window);
  b.set(options, at + 20);
  b.set(s.payload, at + headerLength);
  const sum = sum16(b, at, at + length, pseudoHeaderSum(src, dst, length));
  v.setUint16(at + 16, foldChecksum(sum));
  return length;
}

function parseOptions(b: Uint8Array, from: number, to: number): TcpOptions | string {
  const o: TcpOptions = {};
  let k = from;
  while (k < to) {
    const kind = b[k];
    if (kind === 0) break; // end of option list
    if (kind === 1) {
      k++;
      continue;
    }
    if (k + 1 >= to) return 'truncated TCP option';
    const len = b[k + 1];
    if (len < 2 || k + len > to) return `bad TCP option length ${len} (kind ${kind})`;
    if (kind === 2 && len === 4) o.mss = (b[k + 2] << 8) | b[k + 3];
    if (kind === 3 && len === 3) o.windowScale = b[k + 2];
    k += len;
  }
  return o;
}

/** Parses a TCP segment and verifies its checksum against the pseudo-header of `src` → `dst`. */
export function parseTcp(b: Uint8Array, src: number, dst: number): TcpSegment | string {
  if (b.length < 20) return `truncated TCP header (${b.length} bytes)`;
  const v = view(b);
  const headerLength = (b[12] >> 4) * 4;
  if (headerLength < 20 || headerLength > b.length) return `bad TCP header length ${headerLength}`;
  if (foldChecksum(sum16(b, 0, b.length, pseudoHeaderSum(src, dst, b.length))) !== 0)
    return 'bad TCP checksum';
  const options = parseOptions(b, 20, headerLength);
  if (typeof options === 'string') return options;
  return {
    srcPort: v.getUint16(0),
    dstPort: v.getUint16(2),
    seq: v.getUint32(4),
    ack: v.getUint32(8),
    flags: b[13] & 0x3f,
    window: v.getUint16(14),
    options,
    payload: b.subarray(headerLength),
  };
}

/** Where a TCP segment travels: the addresses of both ends at each layer. */
export interface Route {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  srcIp: number;
  dstIp: number;
}

/**
 * A whole Ethernet frame (without FCS; with `fcs`, followed by it, as `withFcs` gives it)
 * carrying one TCP segment in an IPv4 packet. PERF: built in one buffer (the client machine
 * builds one per segment it sends), byte for byte what `buildEthernet(…, buildIpv4(…) +
 * buildTcp(…))` gives.
 */
export function buildTcpFrame(route: Route, ipId: number, s: TcpSegment, fcs = false): Uint8Array {
  const options = encodeOptions(s.options);
  const tcpLength = 20 + options.length + s.payload.length;
  const length = Math.max(MIN_FRAME, 14 + 20 + tcpLength);
  const frame = new Uint8Array(fcs ? length + 4 : length);
  frame.set(route.dstMac, 0);
  frame.set(route.srcMac, 6);
  view(frame).setUint16(12, ETHERTYPE_IPV4);
  writeTcp(frame, 34, s, options, route.srcIp, route.dstIp);
  writeIpv4Header(
    frame,
    14,
    {
      src: route.srcIp,
      dst: route.dstIp,
      protocol: IP_PROTO_TCP,
      id: ipId,
      ttl: 64,
      dontFragment: true,
    },
    tcpLength,
  );
  if (fcs) view(frame).setUint32(length, crc32(frame, 0, length), true);
  return frame;
}

/** Describes TCP flags as tcpdump does ("S.", "P.", "F.", "R"). */
export function formatFlags(flags: number): string {
  let s = '';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_ACK) s += '.';
  return s === '' ? 'none' : s;
}
