/**
 * The annotation sections of an afterburned kernel (src/afterburner/README.md, "A site"):
 * `.afterburn` holds {start, end} pairs of little-endian u32 link addresses, one per sensitive
 * instruction with its NOP padding; `.afterburn.<kind>` holds the same for the annotation
 * header's page-table and MMIO helpers. Read from the ELF section headers (System V ABI, ELF
 * "Sections"); every problem is a one-line message, nothing throws for a malformed file.
 */

/** One annotated site: [start, end) in link addresses; `kind` is '' for `.afterburn`. */
export interface SiteRecord {
  kind: string;
  start: number;
  end: number;
}

export function readSiteRecords(
  elf: Uint8Array,
  file: string,
  /** How to build an afterburned one, for the message when there is no record. */
  howToBuild = 'make -C guest afterburned',
): SiteRecord[] | string {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.length < 52) return `${file}: truncated ELF header`;
  const shoff = v.getUint32(32, true);
  const shentsize = v.getUint16(46, true);
  const shnum = v.getUint16(48, true);
  const shstrndx = v.getUint16(50, true);
  if (shnum === 0 || shentsize < 40 || shoff + shnum * shentsize > elf.length)
    return `${file}: no section headers (cannot look for .afterburn)`;
  if (shstrndx >= shnum) return `${file}: bad section-name table index`;
  const sh = (k: number, field: number): number => v.getUint32(shoff + k * shentsize + field, true);
  const strOff = sh(shstrndx, 16);
  const strSize = sh(shstrndx, 20);
  if (strOff + strSize > elf.length) return `${file}: truncated section-name table`;
  const nameAt = (o: number): string => {
    let s = '';
    for (let p = strOff + o; p < strOff + strSize && elf[p] !== 0; p++)
      s += String.fromCharCode(elf[p]);
    return s;
  };
  const out: SiteRecord[] = [];
  let found = false;
  for (let k = 0; k < shnum; k++) {
    const name = nameAt(sh(k, 0));
    if (name !== '.afterburn' && !name.startsWith('.afterburn.')) continue;
    if (name === '.afterburn_noannotate' || name.startsWith('.afterburn_')) continue;
    const offset = sh(k, 16);
    const size = sh(k, 20);
    if (offset + size > elf.length) return `${file}: section ${name} lies outside the file`;
    if (size % 8 !== 0) return `${file}: section ${name} is not a list of {start, end} pairs`;
    if (name === '.afterburn') found = true;
    const kind = name === '.afterburn' ? '' : name.slice('.afterburn.'.length);
    for (let p = offset; p < offset + size; p += 8) {
      const start = v.getUint32(p, true);
      const end = v.getUint32(p + 4, true);
      if (end <= start || end - start > 64)
        return `${file}: ${name} record at 0x${start.toString(16)} has a bad end (0x${end.toString(16)})`;
      out.push({ kind, start, end });
    }
  }
  if (!found) {
    return `${file}: not an afterburned kernel (no .afterburn section): the in-place VMM needs a kernel built through the afterburner (${howToBuild})`;
  }
  return out;
}
