/**
 * Multiboot v1 (the Multiboot Specification 0.6.96) as QEMU's `-kernel` does it: the header in
 * the first 8 KB, ELF segments loaded at their physical addresses (or the a.out kludge's
 * addresses when header flag 16 is set), modules page-aligned after the kernel, and the
 * information structure (memory sizes, memory map, command line, modules, boot loader name) at
 * 0x9000 in conventional memory, or after the image when the image occupies that memory itself
 * (see `infoPlaces`). The CPU starts as the specification promises: 32-bit flat protected mode,
 * paging off, interrupts off, EAX = 0x2BADB002, EBX = the information structure.
 */
import type { Machine } from '../machine/Machine.ts';
import { LoadError, parseElf, type Segment } from './elf.ts';

export interface BootModule {
  name: string;
  bytes: Uint8Array;
  /** The module's string (QEMU: the file name plus anything after it). */
  string: string;
}

export interface BootRequest {
  kernel: Uint8Array;
  kernelName: string;
  cmdline: string;
  modules: BootModule[];
}

const HEADER_MAGIC = 0x1badb002;
const BOOT_MAGIC = 0x2badb002;
/**
 * Where the information structure, its strings and the memory map go when the image leaves the
 * place free: conventional memory from 0x9000 to the extended BIOS data area, which the memory
 * map reports as reserved from 0x9FC00 to 1 MB (with the ROMs). Nothing may be loaded there.
 */
const INFO_BASE = 0x9000;
const CONVENTIONAL_END = 0x9fc00;
const EXTENDED_BASE = 0x100000;

interface Header {
  flags: number;
  offset: number;
  v: DataView;
}

function findHeader(bytes: Uint8Array): Header | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = Math.min(bytes.length - 12, 8192 - 12);
  for (let o = 0; o <= end; o += 4) {
    if (v.getUint32(o, true) !== HEADER_MAGIC) continue;
    const flags = v.getUint32(o + 4, true);
    if (((HEADER_MAGIC + flags + v.getUint32(o + 8, true)) & 0xffffffff) >>> 0 === 0)
      return { flags, offset: o, v };
  }
  return undefined;
}

/** The kernel's segments by the a.out kludge (header flag 16): load_addr .. load_end_addr. */
function aoutSegments(
  h: Header,
  bytes: Uint8Array,
  file: string,
): { entry: number; segments: Segment[] } | LoadError {
  if (h.offset + 32 > bytes.length) return new LoadError(`${file}: truncated multiboot header`);
  const headerAddr = h.v.getUint32(h.offset + 12, true);
  const loadAddr = h.v.getUint32(h.offset + 16, true);
  const loadEnd = h.v.getUint32(h.offset + 20, true);
  const bssEnd = h.v.getUint32(h.offset + 24, true);
  const entry = h.v.getUint32(h.offset + 28, true);
  const fileStart = h.offset - (headerAddr - loadAddr);
  const size = loadEnd === 0 ? bytes.length - fileStart : loadEnd - loadAddr;
  if (fileStart < 0 || fileStart + size > bytes.length)
    return new LoadError(`${file}: multiboot load addresses lie outside the file`);
  const memsz = bssEnd > 0 ? bssEnd - loadAddr : size;
  return {
    entry,
    segments: [
      {
        paddr: loadAddr,
        vaddr: loadAddr,
        data: bytes.subarray(fileStart, fileStart + size),
        memsz,
      },
    ],
  };
}

/** Loads the kernel and modules into the machine and sets up the CPU. */
export function bootMultiboot(machine: Machine, req: BootRequest): LoadError | undefined {
  const placed = placeMultiboot(machine.ram, req);
  if (placed instanceof LoadError) return placed;
  const cpu = machine.cpu;
  cpu.invalidateAllCode();
  cpu.enterFlatProtectedMode();
  cpu.eip = placed.entry;
  cpu.eax = BOOT_MAGIC;
  cpu.ebx = placed.mbi;
  cpu.esp = 0;
  return undefined;
}

/** Where a multiboot kernel starts: its entry point and the information structure's address. */
export interface MultibootStart {
  entry: number;
  mbi: number;
  /** EAX at entry (0x2BADB002). */
  magic: number;
}

/**
 * Places the kernel, its modules and the information structure in `ram`, the physical memory the
 * kernel will see from address 0 (the machine's, or a domain's pseudo-physical memory under a
 * hypervisor); the memory map describes exactly `ram.length` bytes.
 */
export function placeMultiboot(ram: Uint8Array, req: BootRequest): MultibootStart | LoadError {
  const file = req.kernelName;
  const ramSize = ram.length;
  const header = findHeader(req.kernel);
  let image: { entry: number; segments: Segment[] } | LoadError;
  if (header !== undefined && (header.flags & 0x10000) !== 0)
    image = aoutSegments(header, req.kernel, file);
  else image = parseElf(req.kernel, file);
  if (image instanceof LoadError) return image;
  if (header === undefined)
    return new LoadError(`${file}: no multiboot header in the first 8 KB (not a multiboot kernel)`);
  // Bits 3–15 are requirements no loader of this specification version knows (spec 3.1.2); bit 2
  // (a video mode) is a request we may ignore.
  if ((header.flags & 0xfff8) !== 0) {
    return new LoadError(
      `${file}: multiboot header requests unsupported features (flags ${hex(header.flags)})`,
    );
  }

  // Segments: inside memory, above the conventional-memory area we use, not overlapping.
  const sorted = [...image.segments].sort((a, b) => a.paddr - b.paddr);
  let kernelEnd = 0;
  for (let k = 0; k < sorted.length; k++) {
    const s = sorted[k];
    if (s.paddr + s.memsz > ramSize) {
      return new LoadError(
        `${file}: segment at ${hex(s.paddr)} (${s.memsz} bytes) lies outside the machine's ${ramSize >> 20} MB`,
      );
    }
    if (s.paddr < EXTENDED_BASE && s.paddr + s.memsz > CONVENTIONAL_END) {
      return new LoadError(
        `${file}: segment at ${hex(s.paddr)} overlaps the reserved area from ${hex(CONVENTIONAL_END)} to 1 MB (BIOS data and ROMs)`,
      );
    }
    if (k > 0 && s.paddr < sorted[k - 1].paddr + sorted[k - 1].memsz) {
      return new LoadError(
        `${file}: segments at ${hex(sorted[k - 1].paddr)} and ${hex(s.paddr)} overlap`,
      );
    }
    kernelEnd = Math.max(kernelEnd, s.paddr + s.memsz);
  }
  const lowImage = sorted.some((s) => s.paddr < CONVENTIONAL_END && s.paddr + s.memsz > INFO_BASE);
  for (const s of sorted) {
    ram.fill(0, s.paddr, s.paddr + s.memsz);
    ram.set(s.data, s.paddr);
  }

  // Modules, page aligned after the kernel (flag 0 asks for it; we always align).
  let next = align(kernelEnd, 4096);
  const placed: { start: number; end: number; string: string }[] = [];
  for (const m of req.modules) {
    next = skipReserved(next, m.bytes.length);
    if (next + m.bytes.length > ramSize) {
      return new LoadError(
        `${m.name}: module too large (${m.bytes.length} bytes at ${hex(next)} do not fit in ${ramSize >> 20} MB)`,
      );
    }
    ram.set(m.bytes, next);
    placed.push({ start: next, end: next + m.bytes.length, string: m.string });
    next = align(next + m.bytes.length, 4096);
  }

  // The information structure and everything it points to, at the first place it fits.
  let mbi: number | undefined;
  for (const [base, limit] of infoPlaces(lowImage, next, ramSize)) {
    mbi = writeInfo(new InfoWriter(ram, base, limit), req, file, placed, ramSize);
    if (mbi !== undefined) break;
  }
  if (mbi === undefined)
    return new LoadError(`${file}: command line and module strings do not fit in memory`);

  return { entry: image.entry, mbi, magic: BOOT_MAGIC };
}

/**
 * Where the information structure may go, in order of preference. At 0x9000 when the image
 * leaves conventional memory free there (every kernel linked at 1 MB; the figures of their runs
 * depend on this address, since the kernel copies and reads the structure). When the image
 * occupies low memory itself, after the image and its modules, as QEMU puts it
 * (hw/i386/multiboot.c: the image, the modules, then the strings and the structure in one
 * buffer): below the reserved area if it fits there, else from 1 MB on.
 */
function infoPlaces(lowImage: boolean, afterImage: number, ramSize: number): [number, number][] {
  if (!lowImage) return [[INFO_BASE, CONVENTIONAL_END]];
  if (afterImage >= EXTENDED_BASE) return [[afterImage, ramSize]];
  return [
    [afterImage, CONVENTIONAL_END],
    [EXTENDED_BASE, ramSize],
  ];
}

/** `at`, or 1 MB when `length` bytes from `at` would reach into the reserved area. */
function skipReserved(at: number, length: number): number {
  return at < EXTENDED_BASE && at + length > CONVENTIONAL_END ? EXTENDED_BASE : at;
}

/** Writes the information structure; its address, or undefined if it does not fit. */
function writeInfo(
  info: InfoWriter,
  req: BootRequest,
  file: string,
  placed: { start: number; end: number; string: string }[],
  ramSize: number,
): number | undefined {
  const mbi = info.alloc(88);
  const cmdline = info.string(req.cmdline.length > 0 ? `${file} ${req.cmdline}` : file);
  const loaderName = info.string('previrt');
  const modsAddr = info.alloc(16 * placed.length);
  placed.forEach((p, k) => {
    info.u32(modsAddr + k * 16, p.start);
    info.u32(modsAddr + k * 16 + 4, p.end);
    info.u32(modsAddr + k * 16 + 8, info.string(p.string));
  });
  const map: [number, number, number][] = [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x400, 2],
    [0xf0000, 0x10000, 2],
    [0x100000, ramSize - 0x100000, 1],
  ];
  const mmap = info.alloc(24 * map.length);
  map.forEach(([base, length, type], k) => {
    const e = mmap + k * 24;
    info.u32(e, 20); // size of the entry, not counting this field
    info.u32(e + 4, base);
    info.u32(e + 8, 0);
    info.u32(e + 12, length);
    info.u32(e + 16, 0);
    info.u32(e + 20, type);
  });
  if (info.overflow) return undefined;
  // flags: mem (0), cmdline (2), mods (3), mmap (6), boot loader name (9).
  info.u32(mbi, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
  info.u32(mbi + 4, 639);
  info.u32(mbi + 8, (ramSize - 0x100000) >> 10);
  info.u32(mbi + 16, cmdline);
  info.u32(mbi + 20, placed.length);
  info.u32(mbi + 24, modsAddr);
  info.u32(mbi + 44, 24 * map.length);
  info.u32(mbi + 48, mmap);
  info.u32(mbi + 64, loaderName);

  return mbi;
}

class InfoWriter {
  private next: number;
  overflow = false;
  private readonly view: DataView;
  constructor(
    private readonly ram: Uint8Array,
    base: number,
    private readonly limit: number,
  ) {
    this.next = base;
    this.view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  }
  alloc(bytes: number): number {
    const at = align(this.next, 4);
    this.next = at + bytes;
    if (this.next > this.limit) this.overflow = true;
    else this.ram.fill(0, at, at + bytes);
    return at;
  }
  string(s: string): number {
    const bytes = new TextEncoder().encode(s);
    const at = this.alloc(bytes.length + 1);
    if (!this.overflow) this.ram.set(bytes, at);
    return at;
  }
  u32(at: number, v: number): void {
    if (at + 4 <= this.limit) this.view.setUint32(at, v >>> 0, true);
  }
}

function align(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
