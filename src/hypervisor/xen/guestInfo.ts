/**
 * What a para-virtualized kernel says it is: the NUL-terminated string of comma-separated
 * KEY=VALUE pairs in its `__xen_guest` section, as XenoLinux kernels told Xen's domain builder
 * (`GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,...`). previrt's xen-para kernel carries
 * one (guest/arch/xen-para/entry.S); platforms read it to run a kernel only where it belongs.
 * Read from the ELF section headers (System V ABI, "Sections"); nothing throws for a malformed
 * file: it simply has no such section.
 */

export const XEN_GUEST_SECTION = '__xen_guest';

/** The pairs of the kernel's `__xen_guest` section, or undefined if it has none. */
export function readXenGuestInfo(elf: Uint8Array): Map<string, string> | undefined {
  if (elf.length < 52 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[4] !== 1) return undefined;
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = v.getUint32(32, true);
  const shentsize = v.getUint16(46, true);
  const shnum = v.getUint16(48, true);
  const shstrndx = v.getUint16(50, true);
  if (shnum === 0 || shentsize < 40 || shstrndx >= shnum || shoff + shnum * shentsize > elf.length)
    return undefined;
  const field = (k: number, at: number): number => v.getUint32(shoff + k * shentsize + at, true);
  const text = (from: number, end: number): string => {
    let s = '';
    for (let p = from; p < Math.min(end, elf.length) && elf[p] !== 0; p++)
      s += String.fromCharCode(elf[p]);
    return s;
  };
  const names = field(shstrndx, 16);
  const namesEnd = names + field(shstrndx, 20);
  for (let k = 0; k < shnum; k++) {
    if (text(names + field(k, 0), namesEnd) !== XEN_GUEST_SECTION) continue;
    const offset = field(k, 16);
    const pairs = new Map<string, string>();
    for (const pair of text(offset, offset + field(k, 20)).split(',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) pairs.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return pairs;
  }
  return undefined;
}
