/**
 * The little of ELF32 that verify-annotations needs: the file type and the section headers
 * (System V ABI, ELF, chapter 4). No Node dependencies; works on the bytes.
 */

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
}

export interface Elf32 {
  /** e_type: 1 relocatable, 2 executable, 3 shared object. */
  type: number;
  machine: number;
  sections: ElfSection[];
}

export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHT_NOBITS = 8;

/** Parses the header and section table; throws Error with a one-line reason on bad input. */
export function parseElf32(bytes: Uint8Array): Elf32 {
  if (
    bytes.length < 52 ||
    bytes[0] !== 0x7f ||
    bytes[1] !== 0x45 ||
    bytes[2] !== 0x4c ||
    bytes[3] !== 0x46
  )
    throw new Error('not an ELF file');
  if (bytes[4] !== 1) throw new Error('not a 32-bit ELF file (ELFCLASS32)');
  if (bytes[5] !== 1) throw new Error('not a little-endian ELF file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number): number => view.getUint16(o, true);
  const u32 = (o: number): number => view.getUint32(o, true);
  const shoff = u32(32);
  const shentsize = u16(46);
  const shnum = u16(48);
  const shstrndx = u16(50);
  if (shoff === 0 || shnum === 0) throw new Error('the ELF file has no section headers');
  if (shentsize < 40 || shoff + shnum * shentsize > bytes.length)
    throw new Error('the ELF section header table lies outside the file');
  const raw = [];
  for (let k = 0; k < shnum; k++) {
    const o = shoff + k * shentsize;
    raw.push({
      nameOff: u32(o),
      type: u32(o + 4),
      flags: u32(o + 8),
      addr: u32(o + 12),
      offset: u32(o + 16),
      size: u32(o + 20),
    });
  }
  const strtab = raw[shstrndx];
  if (strtab === undefined || strtab.offset + strtab.size > bytes.length)
    throw new Error('the ELF section name table lies outside the file');
  const name = (off: number): string => {
    let end = strtab.offset + off;
    while (end < strtab.offset + strtab.size && bytes[end] !== 0) end++;
    return String.fromCharCode(...bytes.subarray(strtab.offset + off, end));
  };
  const sections = raw.map((s) => ({
    name: name(s.nameOff),
    type: s.type,
    flags: s.flags,
    addr: s.addr,
    offset: s.offset,
    size: s.size,
  }));
  for (const s of sections)
    if (s.type !== SHT_NOBITS && s.offset + s.size > bytes.length)
      throw new Error(`section ${s.name} lies outside the file`);
  return { type: u16(16), machine: u16(18), sections };
}

/** The {start, end} pairs of an annotation section (little-endian 32-bit words). */
export function readPairs(
  bytes: Uint8Array,
  section: ElfSection,
): { start: number; end: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset + section.offset, section.size);
  const pairs = [];
  for (let o = 0; o + 8 <= section.size; o += 8)
    pairs.push({ start: view.getUint32(o, true), end: view.getUint32(o + 4, true) });
  return pairs;
}
