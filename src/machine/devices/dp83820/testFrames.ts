/** Frames for the DP83820's tests. */

/** An Ethernet frame with an IPv4 header and a TCP or UDP segment, checksums left as given. */
export function ipFrame(protocol: 6 | 17, payload: number, vlan = false): Uint8Array {
  const l4 = protocol === 6 ? 20 : 8;
  const eth = vlan ? 18 : 14;
  const f = new Uint8Array(eth + 20 + l4 + payload);
  f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], 0);
  if (vlan) f.set([0x81, 0x00, 0x00, 0x05], 12);
  f.set([0x08, 0x00], eth - 2);
  const ip = eth;
  const total = 20 + l4 + payload;
  f.set([0x45, 0, total >> 8, total & 0xff, 0x12, 0x34, 0x40, 0, 64, protocol], ip);
  f.set([10, 0, 2, 15, 10, 0, 2, 2], ip + 12);
  f.set([0x13, 0x89, 0xc0, 0x01], ip + 20); // ports 5001 -> 49153
  if (protocol === 6)
    f[ip + 20 + 12] = 0x50; // data offset 5
  else f.set([(8 + payload) >> 8, (8 + payload) & 0xff], ip + 20 + 4);
  for (let k = ip + 20 + l4; k < f.length; k++) f[k] = (k * 7) & 0xff;
  return f;
}
