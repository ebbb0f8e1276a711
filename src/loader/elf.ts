/**
 * ELF32 executables for i386 (System V ABI, ELF and i386 supplement): the header and the
 * PT_LOAD program headers. Every problem with the file is a `LoadError` naming the file and the
 * problem in one line; nothing here throws anything else for malformed input.
 */
export class LoadError {
  constructor(readonly message: string) {}
}

export interface Segment {
  /** Where the loader puts it (QEMU and GRUB load ELF multiboot kernels at p_paddr). */
  paddr: number;
  vaddr: number;
  /** Bytes copied from the file; the rest up to `memsz` is zeroed. */
  data: Uint8Array;
  memsz: number;
}

export interface ElfImage {
  entry: number;
  segments: Segment[];
}

const PT_LOAD = 1;

export function parseElf(bytes: Uint8Array, file: string): ElfImage | LoadError {
  const fail = (problem: string): LoadError => new LoadError(`${file}: ${problem}`);
  if (bytes.length === 0) return fail('empty file');
  if (
    bytes.length < 4 ||
    bytes[0] !== 0x7f ||
    bytes[1] !== 0x45 ||
    bytes[2] !== 0x4c ||
    bytes[3] !== 0x46
  ) {
    return fail('not an ELF file (no \\x7fELF magic)');
  }
  if (bytes.length < 52) return fail(`truncated ELF header (${bytes.length} bytes, need 52)`);
  if (bytes[4] !== 1)
    return fail(`ELF class ${bytes[4]} is not ELFCLASS32 (a 64-bit or invalid file)`);
  if (bytes[5] !== 1) return fail('not little-endian (ELFDATA2LSB)');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = v.getUint16(16, true);
  const machine = v.getUint16(18, true);
  if (machine !== 3) return fail(`machine ${machine} is not EM_386 (3)`);
  if (type !== 2) return fail(`ELF type ${type} is not an executable (ET_EXEC)`);
  const entry = v.getUint32(24, true);
  const phoff = v.getUint32(28, true);
  const phentsize = v.getUint16(42, true);
  const phnum = v.getUint16(44, true);
  if (phnum === 0) return fail('no program headers');
  if (phentsize < 32) return fail(`program header size ${phentsize} is too small`);
  if (phoff + phnum * phentsize > bytes.length) return fail('truncated program headers');
  const segments: Segment[] = [];
  for (let k = 0; k < phnum; k++) {
    const ph = phoff + k * phentsize;
    if (v.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = v.getUint32(ph + 4, true);
    const vaddr = v.getUint32(ph + 8, true);
    const paddr = v.getUint32(ph + 12, true);
    const filesz = v.getUint32(ph + 16, true);
    const memsz = v.getUint32(ph + 20, true);
    if (offset + filesz > bytes.length)
      return fail(`truncated segment ${k} (file offset ${offset} + ${filesz} bytes)`);
    if (filesz > memsz) return fail(`segment ${k} has more file bytes than memory bytes`);
    segments.push({ paddr, vaddr, data: bytes.subarray(offset, offset + filesz), memsz });
  }
  if (segments.length === 0) return fail('no loadable (PT_LOAD) segment');
  if (entry === 0) return fail('no entry point (e_entry is 0)');
  return { entry, segments };
}
