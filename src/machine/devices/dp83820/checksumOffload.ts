/**
 * The DP83820's IP/TCP/UDP checksum engine (shared/reference/dp83820.md, sections 2 and 3:
 * VRCR, VTCR, extsts; gem5 ns_gige.cc; Linux ns83820.c, which uses both directions).
 *
 * Transmit: with CFG.EXTSTS_EN and VTCR.PPCHK, a packet whose (first) descriptor's extsts asks
 * for it (IPPKT, TCPPKT, UDPPKT) gets its IPv4 header checksum and its TCP or UDP checksum
 * computed by the chip before it goes on the wire; VTCR.GCHK does it for every IPv4 packet. As
 * gem5 does, the chip computes each checksum from scratch (the field zeroed, the pseudo-header
 * included), so it does not matter what the driver left in the field (Linux leaves the
 * pseudo-header sum there, CHECKSUM_PARTIAL).
 *
 * Receive: with CFG.EXTSTS_EN and VRCR.IPEN the chip reports in extsts that a frame is IPv4
 * (IPPKT) and TCP or UDP (TCPPKT, UDPPKT), with IPERR, TCPERR, UDPERR for a bad checksum. Linux
 * then skips its own verification ("if ((extsts & 0x002a0000) && !(extsts & 0x00540000))"). A
 * fragment has no TCP/UDP status (its checksum covers the whole datagram). The reject bits
 * (VRCR.RIPE, RTCPE, RUDPE) and VLAN tag insertion and stripping are not modelled: no driver
 * previrt runs sets them.
 *
 * Frames here are without their FCS.
 */
export const EXTSTS = {
  VPKT: 0x00010000,
  IPPKT: 0x00020000,
  IPERR: 0x00040000,
  TCPPKT: 0x00080000,
  TCPERR: 0x00100000,
  UDPPKT: 0x00200000,
  UDPERR: 0x00400000,
} as const;

export const VRCR_IPEN = 0x10;
export const VTCR = { GCHK: 0x4, PPCHK: 0x8 } as const;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const PROTO_TCP = 6;
const PROTO_UDP = 17;

/** An IPv4 packet's place in a frame, if the frame holds a whole, sane one. */
interface Ipv4At {
  /** Offset of the IP header and of the TCP/UDP header. */
  ip: number;
  l4: number;
  /** Bytes from the L4 header to the end of the IP datagram. */
  l4Length: number;
  protocol: number;
  fragment: boolean;
}

// GUEST-CONTROLLED (TX) and from the wire (RX): every length is checked against the frame.
function findIpv4(frame: Uint8Array): Ipv4At | undefined {
  let at = 12;
  if (frame.length < at + 2) return undefined;
  let type = (frame[at] << 8) | frame[at + 1];
  if (type === ETHERTYPE_VLAN) {
    at += 4;
    if (frame.length < at + 2) return undefined;
    type = (frame[at] << 8) | frame[at + 1];
  }
  const ip = at + 2;
  if (type !== ETHERTYPE_IPV4 || frame.length < ip + 20 || frame[ip] >> 4 !== 4) return undefined;
  const ihl = (frame[ip] & 0xf) * 4;
  const total = (frame[ip + 2] << 8) | frame[ip + 3];
  if (ihl < 20 || total < ihl || ip + total > frame.length) return undefined;
  const flags = (frame[ip + 6] << 8) | frame[ip + 7];
  return {
    ip,
    l4: ip + ihl,
    l4Length: total - ihl,
    protocol: frame[ip + 9],
    fragment: (flags & 0x3fff) !== 0, // MF or an offset
  };
}

/** The ones'-complement sum (RFC 1071) of frame[start, end), unfolded, added to `acc`. */
function sum16(frame: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let k = start;
  // PERF: eight bytes a step (every received frame is summed when the driver asks for IPEN).
  for (; k + 7 < end; k += 8) {
    s +=
      ((frame[k] << 8) | frame[k + 1]) +
      ((frame[k + 2] << 8) | frame[k + 3]) +
      ((frame[k + 4] << 8) | frame[k + 5]) +
      ((frame[k + 6] << 8) | frame[k + 7]);
  }
  for (; k + 1 < end; k += 2) s += (frame[k] << 8) | frame[k + 1];
  if (k < end) s += frame[k] << 8;
  return s;
}

function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The TCP/UDP pseudo-header's sum: addresses, protocol, L4 length. */
function pseudoSum(frame: Uint8Array, p: Ipv4At): number {
  return sum16(frame, p.ip + 12, p.ip + 20, p.protocol + p.l4Length);
}

/** Where the L4 checksum field is, if the segment is long enough to hold it. */
function l4ChecksumAt(p: Ipv4At): number | undefined {
  const field = p.protocol === PROTO_TCP ? 16 : p.protocol === PROTO_UDP ? 6 : undefined;
  if (field === undefined || p.fragment) return undefined;
  const min = p.protocol === PROTO_TCP ? 20 : 8;
  return p.l4Length >= min ? p.l4 + field : undefined;
}

/**
 * Transmit: puts the checksums `extsts` asks for (all of them with `everyPacket`, VTCR.GCHK)
 * into the frame, in place.
 */
export function insertTxChecksums(frame: Uint8Array, extsts: number, everyPacket = false): void {
  const p = findIpv4(frame);
  if (p === undefined) return;
  const want = (bit: number): boolean => everyPacket || (extsts & bit) !== 0;
  const at = l4ChecksumAt(p);
  if (at !== undefined && want(p.protocol === PROTO_TCP ? EXTSTS.TCPPKT : EXTSTS.UDPPKT)) {
    frame[at] = 0;
    frame[at + 1] = 0;
    let c = ~fold(sum16(frame, p.l4, p.l4 + p.l4Length, pseudoSum(frame, p))) & 0xffff;
    if (p.protocol === PROTO_UDP && c === 0) c = 0xffff; // RFC 768: 0 means "no checksum"
    frame[at] = c >> 8;
    frame[at + 1] = c & 0xff;
  }
  if (want(EXTSTS.IPPKT)) {
    frame[p.ip + 10] = 0;
    frame[p.ip + 11] = 0;
    const c = ~fold(sum16(frame, p.ip, p.l4)) & 0xffff;
    frame[p.ip + 10] = c >> 8;
    frame[p.ip + 11] = c & 0xff;
  }
}

/** Receive: the extsts status bits of a frame. */
export function rxChecksumStatus(frame: Uint8Array): number {
  const p = findIpv4(frame);
  if (p === undefined) return 0;
  let status = EXTSTS.IPPKT;
  if (fold(sum16(frame, p.ip, p.l4)) !== 0xffff) status |= EXTSTS.IPERR;
  const at = l4ChecksumAt(p);
  if (at === undefined) return status;
  const good = fold(sum16(frame, p.l4, p.l4 + p.l4Length, pseudoSum(frame, p))) === 0xffff;
  if (p.protocol === PROTO_TCP) status |= EXTSTS.TCPPKT | (good ? 0 : EXTSTS.TCPERR);
  else {
    const none = frame[at] === 0 && frame[at + 1] === 0; // a UDP sender may send no checksum
    status |= EXTSTS.UDPPKT | (good || none ? 0 : EXTSTS.UDPERR);
  }
  return status;
}
