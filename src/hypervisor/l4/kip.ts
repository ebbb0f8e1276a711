/**
 * The kernel's shared pages and the CPU's start: the GDT, the TSS (whose only use is the I/O
 * bitmap: with the monitor attached the CPU never reads its stacks), the kernel interface page,
 * and the CPU state every thread runs in (flat ring-3 segments, paging, WP). README.md has the
 * KIP's layout.
 */
import type { Cpu } from '../../x86/Cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../x86/segment.ts';
import {
  API_VERSION,
  GDT_ENTRIES,
  GDT_VIRT,
  Kip,
  KIP_ENTRIES,
  KIP_MAGIC,
  KERNEL_ID,
  MemoryType,
  ROOT_ID,
  Selector,
  SIGMA0_ID,
  Syscall,
  THREAD_ID_SYSTEM_BASE,
  THREAD_ID_USER_BASE,
  THREAD_NUMBER_BITS,
  TSS_VIRT,
  UTCB_AREA,
  UTCB_AREA_SIZE,
} from './abi.ts';

/** The I/O bitmap follows the TSS's page (offset 0x1000); the last 8 ports always trap. */
export const TSS_IOMAP_OFFSET = 0x1000;
export const TSS_LIMIT = TSS_IOMAP_OFFSET + 0x1fff;

/** Ring-3 code and data, and the UTCB segment: descriptor attributes (segment.ts). */
const USER_CODE = 0xc0fb;
const USER_DATA = 0xc0f3;
const UTCB_DATA = 0x40f3;

/** Writes a descriptor into the GDT frame (SDM 3A 3.4.5). */
export function writeDescriptor(
  view: DataView,
  gdt: number,
  index: number,
  base: number,
  limit: number,
  access: number,
  flags: number,
): void {
  const at = gdt * 4096 + index * 8;
  view.setUint32(at, ((base & 0xffff) << 16) | (limit & 0xffff), true);
  view.setUint32(
    at + 4,
    ((base & 0xff000000) |
      ((flags & 0xf) << 20) |
      (limit & 0xf0000) |
      ((access & 0xff) << 8) |
      ((base >>> 16) & 0xff)) >>>
      0,
    true,
  );
}

export function buildGdt(view: DataView, gdt: number, tssBase: number): void {
  writeDescriptor(view, gdt, Selector.KERNEL_CS >> 3, 0, 0xfffff, 0x9b, 0xc);
  writeDescriptor(view, gdt, Selector.KERNEL_DS >> 3, 0, 0xfffff, 0x93, 0xc);
  writeDescriptor(view, gdt, Selector.USER_CS >> 3, 0, 0xfffff, 0xfb, 0xc);
  writeDescriptor(view, gdt, Selector.USER_DS >> 3, 0, 0xfffff, 0xf3, 0xc);
  writeDescriptor(view, gdt, Selector.UTCB >> 3, UTCB_AREA, 0x1ff, 0xf3, 0x4);
  writeDescriptor(view, gdt, Selector.TSS >> 3, tssBase, TSS_LIMIT, 0x8b, 0);
}

export function buildTss(view: DataView, tss: number): void {
  view.setUint16(tss * 4096 + 0x66, TSS_IOMAP_OFFSET, true);
}

export interface KipMemory {
  /** Frames the kernel keeps (the first megabyte and its pool): [0, reservedEnd). */
  reservedEnd: number;
  /** Sigma0's RAM: [reservedEnd, ramEnd). Device memory: [ramEnd, 0xFFC00000). */
  ramEnd: number;
}

export function buildKip(view: DataView, kip: number, memory: KipMemory, hz: number): void {
  const at = kip * 4096;
  const put = (offset: number, v: number): void => view.setUint32(at + offset, v >>> 0, true);
  put(Kip.magic, KIP_MAGIC);
  put(Kip.apiVersion, API_VERSION);
  put(Kip.apiFlags, 0);
  put(Kip.kernelId, KERNEL_ID);
  put(Kip.utcbInfo, (1 << 12) | (9 << 6) | 12);
  put(Kip.kipAreaInfo, 12);
  put(
    Kip.threadInfo,
    THREAD_NUMBER_BITS | (THREAD_ID_SYSTEM_BASE << 8) | (THREAD_ID_USER_BASE << 20),
  );
  put(Kip.clockInfo, 1 | (1 << 16));
  put(Kip.pageInfo, 0x1000 | 7);
  put(Kip.processorInfo, 0);
  put(Kip.utcbAreaBase, UTCB_AREA);
  put(Kip.utcbAreaSize, UTCB_AREA_SIZE);
  put(Kip.sigma0, SIGMA0_ID);
  put(Kip.rootServer, ROOT_ID);
  put(Kip.clockHzLow, hz % 2 ** 32);
  put(Kip.clockHzHigh, Math.floor(hz / 2 ** 32));
  // Memory descriptors (PI kip.h MemoryDesc): type | start >> 10 << 10, then end - 1 | 0x3ff.
  const descriptors: [number, number, number][] = [
    [MemoryType.reserved, 0, memory.reservedEnd * 4096],
    [MemoryType.conventional, memory.reservedEnd * 4096, memory.ramEnd * 4096],
    [MemoryType.dedicated, memory.ramEnd * 4096, 0xffc00000],
  ];
  descriptors.forEach(([type, start, end], k) => {
    put(Kip.memoryDescriptors + k * 8, (start & 0xfffffc00) | type);
    put(Kip.memoryDescriptors + k * 8 + 4, ((end - 1) & 0xfffffc00) | 0x3ff);
  });
  put(Kip.memoryInfo, (Kip.memoryDescriptors << 16) | descriptors.length);
  // System-call entries: each points at `int $vector; ret` in the KIP's stub area.
  KIP_ENTRIES.forEach((name, k) => {
    const stub = Kip.stubs + k * 4;
    put(Kip.entries + k * 4, stub);
    view.setUint8(at + stub, 0xcd);
    view.setUint8(at + stub + 1, Syscall[name]);
    view.setUint8(at + stub + 2, 0xc3);
  });
}

/** The CPU as every thread runs: paging on with CR0.WP, flat ring-3 segments, %gs the UTCB. */
export function setupCpu(cpu: Cpu, cr3: number): void {
  cpu.enterFlatProtectedMode();
  cpu.gdtr = { base: GDT_VIRT, limit: GDT_ENTRIES * 8 - 1 };
  // With the monitor attached the CPU never reads the IDT.
  cpu.idtr = { base: 0, limit: 0 };
  cpu.ldtr.loadNull(0);
  cpu.tr.load(Selector.TSS, TSS_VIRT, TSS_LIMIT, 0x8b);
  cpu.cr4 = 0; // no PSE, no PGE: every space switch flushes the whole TLB
  cpu.cr3 = cr3;
  cpu.cr0 = 0x80010011; // PG, WP, ET, PE
  loadUserSegments(cpu, UTCB_AREA);
  cpu.setCpl(3);
  cpu.regs.fill(0);
  cpu.setEflags(0x202);
  cpu.invalidateAllCode();
}

/** The segments of a thread: flat user code and data, %gs on its UTCB. */
export function loadUserSegments(cpu: Cpu, utcb: number): void {
  cpu.segs[CS].load(Selector.USER_CS, 0, 0xffffffff, USER_CODE);
  for (const s of [SS, DS, ES, FS]) cpu.segs[s].load(Selector.USER_DS, 0, 0xffffffff, USER_DATA);
  cpu.segs[GS].load(Selector.UTCB, utcb >>> 0, 0x1ff, UTCB_DATA);
}
