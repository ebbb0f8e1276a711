/**
 * ELF notes (System V ABI, "Note Section"): records of {namesz, descsz, type, name, desc}, name
 * and desc each padded to 4 bytes, in SHT_NOTE sections and PT_NOTE segments. previrt reads one
 * of its own, the para-virtualization note: a kernel ported by hand to one hypervisor's
 * interface says so, as Xen's PV kernels carry XEN_ELFNOTE_* notes for its domain builder.
 *
 *   name "previrt", type 1 (PREVIRT_NOTE_PARAVIRT), desc: the interface's name, NUL-terminated
 *   ("xen"; "l4" for an L4 port)
 *
 * Every platform uses it the same way (src/platforms/createGuest.ts): a kernel with the note
 * runs only on the platform that offers that interface and is refused everywhere else with one
 * line. A kernel without it (native, afterburned) is not para-virtualized. Nothing here throws
 * for a malformed file: a note that cannot be read is not there (parseElf reports what is wrong
 * with the file itself).
 */

/** The owner name of previrt's notes. */
export const PREVIRT_NOTE_NAME = 'previrt';
/** Note type: the kernel is para-virtualized for the interface its desc names. */
export const PREVIRT_NOTE_PARAVIRT = 1;

const PT_NOTE = 4;
const SHT_NOTE = 7;

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

/** Every note of the file: those of PT_NOTE segments, then those of SHT_NOTE sections. */
export function readElfNotes(elf: Uint8Array): ElfNote[] {
  if (elf.length < 52 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[4] !== 1 || elf[5] !== 1)
    return [];
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const notes: ElfNote[] = [];
  /** Entries of a header table whose type field is `type`: their {offset, size} in the file. */
  const scan = (
    table: number,
    entrySize: number,
    count: number,
    fields: { type: number; offset: number; size: number },
    type: number,
  ): void => {
    if (table === 0 || entrySize < fields.size + 4 || table + entrySize * count > elf.length)
      return;
    for (let k = 0; k < count; k++) {
      const entry = table + k * entrySize;
      if (v.getUint32(entry + fields.type, true) !== type) continue;
      const offset = v.getUint32(entry + fields.offset, true);
      const size = v.getUint32(entry + fields.size, true);
      if (offset + size <= elf.length) notes.push(...parseNotes(v, offset, size));
    }
  };
  // e_phoff 28, e_phentsize 42, e_phnum 44; Elf32_Phdr p_type 0, p_offset 4, p_filesz 16.
  const phdr = { type: 0, offset: 4, size: 16 };
  scan(v.getUint32(28, true), v.getUint16(42, true), v.getUint16(44, true), phdr, PT_NOTE);
  // e_shoff 32, e_shentsize 46, e_shnum 48; Elf32_Shdr sh_type 4, sh_offset 16, sh_size 20.
  const shdr = { type: 4, offset: 16, size: 20 };
  scan(v.getUint32(32, true), v.getUint16(46, true), v.getUint16(48, true), shdr, SHT_NOTE);
  return notes;
}

function parseNotes(v: DataView, offset: number, length: number): ElfNote[] {
  const out: ElfNote[] = [];
  const end = offset + length;
  let p = offset;
  while (p + 12 <= end) {
    const namesz = v.getUint32(p, true);
    const descsz = v.getUint32(p + 4, true);
    const type = v.getUint32(p + 8, true);
    const nameAt = p + 12;
    const descAt = nameAt + pad4(namesz);
    if (namesz > length || descsz > length || descAt + descsz > end) break;
    let name = '';
    for (let k = 0; k < namesz && v.getUint8(nameAt + k) !== 0; k++)
      name += String.fromCharCode(v.getUint8(nameAt + k));
    const desc = new Uint8Array(v.buffer, v.byteOffset + descAt, descsz);
    out.push({ name, type, desc });
    p = descAt + pad4(descsz);
  }
  return out;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * The hypervisor interface a para-virtualized kernel was ported to (its previrt note's desc,
 * "xen"), or undefined for a kernel without the note.
 */
export function paraVirtualizedFor(elf: Uint8Array): string | undefined {
  const note = readElfNotes(elf).find(
    (n) => n.name === PREVIRT_NOTE_NAME && n.type === PREVIRT_NOTE_PARAVIRT,
  );
  if (note === undefined) return undefined;
  let s = '';
  for (let k = 0; k < note.desc.length && note.desc[k] !== 0; k++)
    s += String.fromCharCode(note.desc[k]);
  return s;
}
