/**
 * The Linux/x86 boot protocol, 32-bit entry (the kernel's Documentation/x86/boot.rst, "32-bit
 * Boot Protocol", and zero-page.rst), the way `qemu-system-i386 -kernel bzImage -initrd FILE
 * -append TEXT` lays a kernel out:
 *
 *   0x10000   the boot parameters ("zero page", struct boot_params: the setup header copied
 *             from the image, the e820 memory map, the loader's fields), where QEMU puts the
 *             real-mode part; the GDT of the boot selectors right after it
 *   0x20000   the command line (QEMU's cmdline_addr)
 *   0xF0000   the MP table, where a BIOS leaves it (mpTable.ts: the APICs and the interrupt
 *             routing, for a kernel built to read it)
 *   0x100000  the protected-mode kernel (a bzImage is "loaded high", at its code32_start)
 *   top       the initrd, page aligned, as high as the header's initrd_addr_max and the memory
 *             allow (QEMU: (initrd_max - size) & ~4095)
 *
 * There is no BIOS and no real-mode setup here: the loader fills in what the setup code would
 * have (the e820 map, the memory sizes) and what the BIOS would have left (the MP table, the I/O
 * APIC's ID), and starts the kernel where the setup code would have
 * jumped, in 32-bit protected mode with paging and interrupts off, CS = __BOOT_CS (0x10) and
 * DS = ES = SS = __BOOT_DS (0x18) from a loaded GDT of 4 GB flat segments, ESI = the boot
 * parameters, EBP = EDI = EBX = 0.
 */
import { APIC_DEFAULT_BASE } from '../machine/devices/apic/LocalApic.ts';
import { IO_APIC_BASE, IoApic } from '../machine/devices/apic/IoApic.ts';
import type { Machine } from '../machine/Machine.ts';
import { cpuidLeaf } from '../x86/system/instructions.ts';
import { LoadError, type ElfImage } from './elf.ts';
import { isLz4Legacy, Lz4Error, lz4LegacyDecode } from './lz4.ts';
import { writeMpTable } from './mpTable.ts';
import type { BootModule } from './multiboot.ts';

export interface LinuxBootRequest {
  kernel: Uint8Array;
  kernelName: string;
  cmdline: string;
  /**
   * The initrd: the files in order, each starting on a 4-byte boundary (the kernel unpacks
   * concatenated cpio archives as one initramfs). Empty: no initrd.
   */
  initrd: BootModule[];
}

/** Where a Linux kernel starts: its 32-bit entry and the boot parameters' address (ESI). */
export interface LinuxStart {
  entry: number;
  bootParams: number;
  gdt: number;
  /** What went where, for tests and `--stats`. */
  layout: { kernel: [number, number]; cmdline: number; initrd?: [number, number] };
}

/** "HdrS" at 0x202: the setup header of boot protocol 2.00 and later. */
const HEADER_MAGIC = 0x53726448;
/** Protocol 2.02 brought the 32-bit command-line pointer this loader needs (boot.rst). */
const MIN_PROTOCOL = 0x0202;

const BOOT_PARAMS = 0x10000;
const GDT = BOOT_PARAMS + 0x1000;
const CMDLINE = 0x20000;
const KERNEL_HIGH = 0x100000;

/** The boot selectors of the protocol. */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;

// Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h, zero-page.rst).
const BP = {
  extMemK: 0x002, // screen_info.ext_mem_k
  altMemK: 0x1e0,
  e820Entries: 0x1e8,
  sentinel: 0x1ef,
  setupSects: 0x1f1,
  bootFlag: 0x1fe,
  jumpEnd: 0x201, // the setup header ends at 0x202 + this byte
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadFlags: 0x211,
  code32Start: 0x214,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  heapEndPtr: 0x224,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  payloadOffset: 0x248,
  payloadLength: 0x24c,
  prefAddress: 0x258,
  initSize: 0x260,
  e820Table: 0x2d0,
} as const;

const LOADED_HIGH = 0x01;
const CAN_USE_HEAP = 0x80;
const XLF_KERNEL_64 = 0x01;
/** boot.rst: "If your boot loader is not listed [...] enter 0xFF here." */
const LOADER_UNDEFINED = 0xff;

/** Whether `bytes` is a Linux kernel image with a setup header (bzImage or zImage). */
export function isLinuxKernel(bytes: Uint8Array): boolean {
  if (bytes.length < 0x264) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(BP.header, true) === HEADER_MAGIC && v.getUint16(BP.bootFlag, true) === 0xaa55;
}

/** Loads the kernel, command line and initrd into the machine and sets up the CPU. */
export function bootLinux(machine: Machine, req: LinuxBootRequest): LoadError | undefined {
  const placed = placeLinux(machine.ram, req);
  if (placed instanceof LoadError) return placed;
  const cpu = machine.cpu;
  writeBiosTables(machine);
  cpu.invalidateAllCode();
  cpu.enterFlatProtectedMode();
  cpu.gdtr = { base: placed.gdt, limit: 4 * 8 - 1 };
  cpu.segs[1].load(BOOT_CS, 0, 0xffffffff, 0xc09b);
  for (const s of [0, 2, 3, 4, 5]) cpu.segs[s].load(BOOT_DS, 0, 0xffffffff, 0xc093);
  cpu.eip = placed.entry;
  cpu.esi = placed.bootParams;
  cpu.eax = 0;
  cpu.ebx = 0;
  cpu.ecx = 0;
  cpu.edx = 0;
  cpu.ebp = 0;
  cpu.edi = 0;
  cpu.esp = 0;
  return undefined;
}

/** The I/O APIC's ID as the BIOS sets it and the MP table gives it: the one after the CPU's. */
const IO_APIC_ID = 1;

/**
 * What a PC BIOS leaves for the kernel beside the boot parameters: the I/O APIC's ID
 * programmed, and the MP table (mpTable.ts) describing the APICs and the interrupt routing.
 */
function writeBiosTables(machine: Machine): void {
  const ioApic = machine.ioApic;
  ioApic.mmioWrite(0, 4, 1); // IOREGSEL: the version register
  const ioApicVersion = ioApic.mmioRead(0x10, 4) & 0xff;
  ioApic.mmioWrite(0, 4, 0); // the ID register
  ioApic.mmioWrite(0x10, 4, IO_APIC_ID << 24);
  writeMpTable(machine.ram, {
    cpu: {
      apicId: machine.apic.mmioRead(0x20, 4) >>> 24,
      apicVersion: machine.apic.mmioRead(0x30, 4) & 0xff,
      signature: cpuidLeaf(1)[0],
      features: (cpuidLeaf(1)[3] | machine.apic.cpuidEdx()) >>> 0,
    },
    localApicBase: APIC_DEFAULT_BASE,
    ioApic: { id: IO_APIC_ID, version: ioApicVersion, base: IO_APIC_BASE },
    pinOfIsaIrq: (irq) => IoApic.pinOfIsaIrq(irq),
    pciInterrupts: machine.pci.interrupts().map(({ device, pin, line }) => ({ device, pin, line })),
  });
}

/** A bzImage's setup header, checked: what the loaders below read from it. */
interface SetupHeader {
  image: Uint8Array;
  view: DataView;
  version: number;
  /** "2.15": the protocol version as boot.rst writes it. */
  proto: string;
  loadFlags: number;
  /** The boot sector and the setup code: the protected-mode part starts here in the file. */
  setupBytes: number;
  /** Where the setup header ends (the bytes copied into the boot parameters). */
  headerEnd: number;
}

function readSetupHeader(image: Uint8Array, file: string): SetupHeader | LoadError {
  // GUEST-CONTROLLED (a user's file): every field is checked before it is used.
  if (!isLinuxKernel(image))
    return new LoadError(`${file}: not a Linux kernel image (no "HdrS" setup header at 0x202)`);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const version = view.getUint16(BP.version, true);
  const proto = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < MIN_PROTOCOL)
    return new LoadError(
      `${file}: Linux boot protocol ${proto} is too old (previrt needs 2.02 or later: the 32-bit command-line pointer)`,
    );
  const loadFlags = image[BP.loadFlags];
  if ((loadFlags & LOADED_HIGH) === 0)
    return new LoadError(
      `${file}: a zImage (loaded low, below 640 KB); previrt boots bzImages (make bzImage)`,
    );
  if (version >= 0x020c && (view.getUint16(BP.xloadflags, true) & XLF_KERNEL_64) !== 0)
    return new LoadError(
      `${file}: a 64-bit (x86-64) kernel; previrt's CPU is IA-32 only: build it with ARCH=i386`,
    );
  const setupSects = image[BP.setupSects] === 0 ? 4 : image[BP.setupSects];
  const setupBytes = (setupSects + 1) * 512;
  if (setupBytes >= image.length)
    return new LoadError(
      `${file}: truncated (the setup code claims ${setupBytes} bytes, the file has ${image.length})`,
    );
  // The fields this loader reads must lie inside the header the image says it has.
  const headerEnd = Math.min(0x202 + image[BP.jumpEnd], setupBytes);
  const fieldsEnd = version >= 0x020a ? 0x264 : version >= 0x0206 ? 0x23c : 0x230;
  if (headerEnd < fieldsEnd)
    return new LoadError(
      `${file}: the setup header ends at ${hex(headerEnd)}, too short for boot protocol ${proto}`,
    );
  return { image, view, version, proto, loadFlags, setupBytes, headerEnd };
}

/**
 * Places the kernel, the boot parameters, the command line and the initrd in `ram` (physical
 * memory from address 0); the e820 map describes exactly `ram.length` bytes.
 */
export function placeLinux(ram: Uint8Array, req: LinuxBootRequest): LinuxStart | LoadError {
  const file = req.kernelName;
  const header = readSetupHeader(req.kernel, file);
  if (header instanceof LoadError) return header;
  const { view: iv, version } = header;
  const kernel = header.image.subarray(header.setupBytes);

  // The protected-mode kernel where code32_start says (boot.rst: it "defaults to the load address
  // of the kernel, and can be used by the boot loader to determine the proper load address"):
  // 1 MB for every bzImage `make` builds. The decompressor then needs init_size bytes from where
  // it runs the kernel (pref_address, 16 MB for a default i386 build), 2.10+.
  const code32 = iv.getUint32(BP.code32Start, true);
  const load = code32 === 0 ? KERNEL_HIGH : code32;
  if (load < KERNEL_HIGH)
    return new LoadError(
      `${file}: code32_start ${hex(load)} lies below 1 MB (a bzImage is loaded high)`,
    );
  const kernelEnd = load + kernel.length;
  let needed = kernelEnd;
  if (version >= 0x020a) {
    const pref =
      iv.getUint32(BP.prefAddress, true) + iv.getUint32(BP.prefAddress + 4, true) * 2 ** 32;
    needed = Math.max(needed, Math.max(pref, KERNEL_HIGH) + iv.getUint32(BP.initSize, true));
  }
  const placed = placeBootParams(ram, req, header, needed);
  if (placed instanceof LoadError) return placed;
  ram.fill(0, load, kernelEnd);
  ram.set(kernel, load);
  return {
    // "the 32-bit kernel entry point, which is the start address of loaded 32/64-bit kernel"
    entry: load,
    bootParams: BOOT_PARAMS,
    gdt: GDT,
    layout: { kernel: [load, kernelEnd], cmdline: CMDLINE, initrd: placed.initrd },
  };
}

/**
 * The kernel inside a bzImage, as Xen's domain builder takes it out (it runs no decompressor):
 * the payload (boot protocol 2.08+: payload_offset and payload_length, from the protected-mode
 * code) decompressed — LZ4's legacy frame, Linux's CONFIG_KERNEL_LZ4, the size Linux appends
 * after it — which is `vmlinux.bin`: the kernel's ELF file, symbols stripped, its allocated
 * sections (an afterburned kernel's `.afterburn` records among them) kept.
 */
export function linuxPayload(image: Uint8Array, file: string): Uint8Array | LoadError {
  const header = readSetupHeader(image, file);
  if (header instanceof LoadError) return header;
  if (header.version < 0x0208)
    return new LoadError(
      `${file}: boot protocol ${header.proto} has no payload fields (2.08 or later needed to take the kernel out)`,
    );
  const offset = header.view.getUint32(BP.payloadOffset, true);
  const length = header.view.getUint32(BP.payloadLength, true);
  const start = header.setupBytes + offset;
  if (length < 8 || start + length > image.length)
    return new LoadError(
      `${file}: the payload (${length} bytes at ${hex(start)}) lies outside the file (${image.length} bytes)`,
    );
  const payload = image.subarray(start, start + length);
  if (!isLz4Legacy(payload)) {
    const magic = [...payload.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0'));
    return new LoadError(
      `${file}: the payload is not LZ4-compressed (magic ${magic.join(' ')}); previrt takes the kernel out of a CONFIG_KERNEL_LZ4 bzImage only`,
    );
  }
  const size = new DataView(payload.buffer, payload.byteOffset + length - 4, 4).getUint32(0, true);
  const elf = lz4LegacyDecode(payload.subarray(0, length - 4), size);
  if (elf instanceof Lz4Error) return new LoadError(`${file}: the payload: ${elf.message}`);
  return elf;
}

/** The kernel ELF (linuxPayload) where its program headers say, entered at its 32-bit entry. */
export interface VmlinuxBootRequest extends LinuxBootRequest {
  /** The bzImage the setup header comes from (`kernel` is then the ELF image). */
  bzImage: Uint8Array;
  image: ElfImage;
}

/**
 * Places a decompressed kernel (linuxPayload) as the bzImage's decompressor would have left it:
 * its segments at their physical addresses, entered at `startup_32` (the ELF entry, physical)
 * with ESI = the boot parameters, which hold the bzImage's setup header.
 */
export function placeVmlinux(ram: Uint8Array, req: VmlinuxBootRequest): LinuxStart | LoadError {
  const file = req.kernelName;
  const header = readSetupHeader(req.bzImage, file);
  if (header instanceof LoadError) return header;
  let low = Infinity;
  let high = 0;
  for (const s of req.image.segments) {
    low = Math.min(low, s.paddr);
    high = Math.max(high, s.paddr + s.memsz);
  }
  if (low < KERNEL_HIGH)
    return new LoadError(`${file}: the kernel's segments start at ${hex(low)}, below 1 MB`);
  // The kernel's brk and early page tables follow its image: init_size from its start covers them.
  const needed = Math.max(high, low + header.view.getUint32(BP.initSize, true));
  const placed = placeBootParams(ram, req, header, needed);
  if (placed instanceof LoadError) return placed;
  for (const s of req.image.segments) {
    ram.fill(0, s.paddr, s.paddr + s.memsz);
    ram.set(s.data, s.paddr);
  }
  return {
    entry: req.image.entry,
    bootParams: BOOT_PARAMS,
    gdt: GDT,
    layout: { kernel: [low, high], cmdline: CMDLINE, initrd: placed.initrd },
  };
}

/**
 * The boot parameters (the setup header and the loader's fields), the boot GDT, the command line
 * and the initrd, for a kernel that needs memory up to `needed`.
 */
function placeBootParams(
  ram: Uint8Array,
  req: LinuxBootRequest,
  header: SetupHeader,
  needed: number,
): { initrd?: [number, number] } | LoadError {
  const file = req.kernelName;
  const { view: iv, version, image, headerEnd, loadFlags } = header;
  const ramSize = ram.length;
  const mb = (n: number): string => `${Math.ceil(n / 2 ** 20)} MB`;
  if (needed > ramSize)
    return new LoadError(
      `${file}: the kernel needs ${mb(needed)} of memory to boot, the machine has ${mb(ramSize)}`,
    );

  // The command line: within cmdline_size (2.06+; 255 before).
  const cmdline = new TextEncoder().encode(req.cmdline);
  const cmdlineMax = version >= 0x0206 ? iv.getUint32(BP.cmdlineSize, true) : 255;
  if (cmdline.length > cmdlineMax)
    return new LoadError(
      `${file}: the command line has ${cmdline.length} bytes, the kernel takes at most ${cmdlineMax}`,
    );

  // The initrd: as high as initrd_addr_max (2.03+; 0x37ffffff before) and the memory allow.
  let initrdSize = 0;
  for (const m of req.initrd) initrdSize = align(initrdSize, 4) + m.bytes.length;
  let initrd: [number, number] | undefined;
  if (req.initrd.length > 0) {
    const addrMax = version >= 0x0203 ? iv.getUint32(BP.initrdAddrMax, true) : 0x37ffffff;
    const initrdMax = Math.min(addrMax, ramSize - 1);
    const at = Math.floor((initrdMax + 1 - initrdSize) / 4096) * 4096;
    if (at < needed) {
      const name = req.initrd.map((m) => m.name).join(', ');
      return new LoadError(
        `${name}: the initrd (${initrdSize} bytes) does not fit above the kernel in ${mb(ramSize)} of memory`,
      );
    }
    initrd = [at, at + initrdSize];
  }

  // Everything checked: fill memory.
  ram.fill(0, BOOT_PARAMS, BOOT_PARAMS + 0x1000);
  ram.set(image.subarray(0x1f1, headerEnd), BOOT_PARAMS + 0x1f1);
  ram.fill(0, CMDLINE, CMDLINE + cmdline.length + 1);
  ram.set(cmdline, CMDLINE);
  if (initrd !== undefined) {
    let at = initrd[0];
    for (const m of req.initrd) {
      at = align(at, 4);
      ram.set(m.bytes, at);
      at += m.bytes.length;
    }
  }
  const gdt = new DataView(ram.buffer, ram.byteOffset + GDT, 32);
  // null, unused, __BOOT_CS: base 0, limit 4 GB, code execute/read (accessed); __BOOT_DS: data
  // read/write (accessed). SDM Vol. 3A 3.4.5, "Segment Descriptors".
  for (const [k, access] of [
    [2, 0x9b],
    [3, 0x93],
  ] as const) {
    gdt.setUint32(k * 8, 0x0000ffff, true);
    gdt.setUint32(k * 8 + 4, 0x00cf0000 | (access << 8), true);
  }
  gdt.setUint32(0, 0, true);
  gdt.setUint32(4, 0, true);
  gdt.setUint32(8, 0, true);
  gdt.setUint32(12, 0, true);

  const bp = new DataView(ram.buffer, ram.byteOffset + BOOT_PARAMS, 0x1000);
  // The loader's fields of the setup header (boot.rst, "Details of Header Fields").
  bp.setUint8(BP.typeOfLoader, LOADER_UNDEFINED);
  bp.setUint8(BP.loadFlags, loadFlags | CAN_USE_HEAP);
  bp.setUint16(BP.heapEndPtr, CMDLINE - BOOT_PARAMS - 0x200, true);
  bp.setUint32(BP.cmdLinePtr, CMDLINE, true);
  bp.setUint32(BP.ramdiskImage, initrd?.[0] ?? 0, true);
  bp.setUint32(BP.ramdiskSize, initrdSize, true);
  // The memory map a PC BIOS gives (INT 15h E820), the same as the multiboot loader's: low
  // memory to the EBDA, the EBDA and the BIOS ROM reserved, the rest from 1 MB usable; and the
  // older sizes (KB above 1 MB) for kernels that look at those.
  const map: [number, number, number][] = [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x400, 2],
    [0xf0000, 0x10000, 2],
    [0x100000, ramSize - 0x100000, 1],
  ];
  map.forEach(([base, length, type], k) => {
    const e = BP.e820Table + k * 20;
    bp.setUint32(e, base, true);
    bp.setUint32(e + 4, 0, true);
    bp.setUint32(e + 8, length, true);
    bp.setUint32(e + 12, 0, true);
    bp.setUint32(e + 16, type, true);
  });
  bp.setUint8(BP.e820Entries, map.length);
  bp.setUint32(BP.altMemK, (ramSize - 0x100000) >> 10, true);
  bp.setUint16(BP.extMemK, Math.min((ramSize - 0x100000) >> 10, 0xfc00), true);
  return { initrd };
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}

function align(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}
