/**
 * The domain builder: a para-virtual ELF32 kernel into a new domain, laid out as Xen's start of
 * day (xen.h, "start-of-day memory layout"): one contiguous virtual region from the kernel's 4 MB
 * aligned base, holding in order, each page aligned,
 *   the kernel image, the pseudo-physical to machine list (mfn_list), start_info, the console
 *   ring page, the bootstrap page tables (one L2, then the L1s), the bootstrap stack,
 * then at least 512 KB of mapped padding, the region ending on a 4 MB boundary. Pseudo-physical
 * frame n is mapped at virt_base + n * 4096. Everything is mapped writable except the page
 * tables (read-only). The L2 is validated and pinned through the same checks as the guest's own
 * updates, and the domain starts in ring 1 with ESI = start_info.
 */
import type { ElfImage } from '../../loader/elf.ts';
import { CS, DS, ES, FS, GS, SS } from '../../x86/segment.ts';
import {
  GDT_VIRT,
  HYPERVISOR_VIRT_START,
  INVALID_P2M_ENTRY,
  MAX_GUEST_CMDLINE,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_RW,
  PTE_US,
  Selector,
  SharedInfo,
  START_INFO_MAGIC,
  StartInfo,
} from './abi.ts';
import { Domain } from './domain.ts';
import { FrameType } from './frames.ts';
import type { XenHypervisor } from './Xen.ts';

export interface DomainConfig {
  /** Domain memory in MB (pseudo-physical frames). */
  memoryMb: number;
  cmdline?: string;
}

/** Where the builder put things, in the guest's virtual addresses (tests and tools read it). */
export interface DomainLayout {
  virtBase: number;
  virtEnd: number;
  mfnList: number;
  startInfo: number;
  console: number;
  pageTables: number;
  nrPtFrames: number;
  stackTop: number;
}

const MB4 = 0x400000;

/** Builds a domain from a parsed kernel; a message when it cannot (too little memory, layout). */
export function buildDomain(
  xen: XenHypervisor,
  image: ElfImage,
  config: DomainConfig,
): { domain: Domain; layout: DomainLayout } | string {
  const nrPages = config.memoryMb * 256;
  let virtBase = 0xffffffff;
  let kernelEnd = 0;
  for (const s of image.segments) {
    virtBase = Math.min(virtBase, s.vaddr);
    kernelEnd = Math.max(kernelEnd, s.vaddr + s.memsz);
  }
  virtBase = (virtBase & ~(MB4 - 1)) >>> 0;
  kernelEnd = pageUp(kernelEnd);
  if (image.entry < virtBase || image.entry >= kernelEnd) {
    return `kernel entry 0x${image.entry.toString(16)} is outside its image`;
  }

  const mfnList = kernelEnd;
  const startInfo = mfnList + pageUp(nrPages * 4);
  const consolePage = startInfo + 4096;
  const pageTables = consolePage + 4096;
  let nrL1 = 1;
  let virtEnd: number;
  for (;;) {
    virtEnd = roundUp(pageTables + (1 + nrL1) * 4096 + 4096 + 0x80000, MB4);
    const needed = (virtEnd - virtBase) / MB4;
    if (needed <= nrL1) break;
    nrL1 = needed;
  }
  const stackTop = pageTables + (2 + nrL1) * 4096;
  if (virtEnd > HYPERVISOR_VIRT_START) return 'kernel image reaches the hypervisor window';
  const mappedPages = (virtEnd - virtBase) / 4096;
  if (mappedPages > nrPages) {
    return `domain memory (${config.memoryMb} MB) is smaller than the start-of-day region (${(virtEnd - virtBase) >> 20} MB)`;
  }

  const id = xen.domains.length;
  const frames = xen.frames.allocate(id, nrPages + 1);
  if (frames === undefined) return `not enough free machine memory for ${config.memoryMb} MB`;
  const sharedInfoMfn = frames.pop()!;
  const dom = new Domain(id, frames);
  const ram = xen.machine.ram;
  for (const mfn of [...frames, sharedInfoMfn]) ram.fill(0, mfn * 4096, mfn * 4096 + 4096);
  frames.forEach((mfn, pfn) => xen.setM2p(mfn, pfn));
  xen.setM2p(sharedInfoMfn, INVALID_P2M_ENTRY);
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const pfnOf = (va: number): number => (va - virtBase) >>> 12;
  const maddrOf = (va: number): number => frames[pfnOf(va)] * 4096 + (va & 0xfff);
  const put32 = (va: number, v: number): void => view.setUint32(maddrOf(va), v >>> 0, true);

  // The kernel image.
  for (const s of image.segments) {
    for (let k = 0; k < s.data.length; k++) ram[maddrOf(s.vaddr + k)] = s.data[k];
  }
  // mfn_list: the domain's pseudo-physical to machine map.
  frames.forEach((mfn, pfn) => put32(mfnList + pfn * 4, mfn));

  // start_info.
  for (let k = 0; k < START_INFO_MAGIC.length; k++) {
    ram[maddrOf(startInfo + k)] = START_INFO_MAGIC.charCodeAt(k);
  }
  const consolePort = dom.allocatePort({ kind: 'console' })!;
  put32(startInfo + StartInfo.nr_pages, nrPages);
  put32(startInfo + StartInfo.shared_info, sharedInfoMfn * 4096);
  put32(startInfo + StartInfo.console_mfn, frames[pfnOf(consolePage)]);
  put32(startInfo + StartInfo.console_evtchn, consolePort);
  put32(startInfo + StartInfo.pt_base, pageTables);
  put32(startInfo + StartInfo.nr_pt_frames, 1 + nrL1);
  put32(startInfo + StartInfo.mfn_list, mfnList);
  const cmdline = (config.cmdline ?? '').slice(0, MAX_GUEST_CMDLINE - 1);
  for (let k = 0; k < cmdline.length; k++) {
    ram[maddrOf(startInfo + StartInfo.cmd_line + k)] = cmdline.charCodeAt(k) & 0xff;
  }

  // Frames the hypervisor writes into are never page tables.
  dom.sharedInfoMfn = sharedInfoMfn;
  dom.consoleMfn = frames[pfnOf(consolePage)];
  xen.frames.noPageTable[sharedInfoMfn] = 1;
  xen.frames.noPageTable[dom.consoleMfn] = 1;

  // Bootstrap page tables: the whole region mapped, the tables themselves read-only.
  const l2 = frames[pfnOf(pageTables)];
  const firstTable = pfnOf(pageTables);
  for (let pfn = 0; pfn < mappedPages; pfn++) {
    const l1Va = pageTables + (1 + (pfn >>> 10)) * 4096;
    const isTable = pfn >= firstTable && pfn <= firstTable + nrL1;
    const pte = (frames[pfn] << 12) | PTE_P | PTE_A | (isTable ? 0 : PTE_RW | PTE_D);
    put32(l1Va + (pfn & 0x3ff) * 4, pte);
  }
  for (let k = 0; k < nrL1; k++) {
    const l1 = frames[firstTable + 1 + k];
    const slot = (virtBase >>> 22) + k;
    view.setUint32(
      l2 * 4096 + slot * 4,
      ((l1 << 12) | PTE_P | PTE_RW | PTE_US | PTE_A) >>> 0,
      true,
    );
  }
  xen.domains.push(dom);
  const pinned = xen.frames.pin(dom, l2, FrameType.l2);
  const based = pinned === 0 ? xen.frames.getType(dom, l2, FrameType.l2) : pinned;
  if (based !== 0) return `builder: bootstrap page tables failed validation (${based})`;
  dom.baseMfn = l2;

  // shared info: events masked until the guest is ready (as Xen starts a vCPU), time scale.
  view.setUint8(sharedInfoMfn * 4096 + SharedInfo.upcall_mask, 1);
  const { mul, shift } = timeScale(xen.machine.costModel.hz);
  view.setUint32(sharedInfoMfn * 4096 + SharedInfo.tsc_to_system_mul, mul, true);
  view.setInt8(sharedInfoMfn * 4096 + SharedInfo.tsc_shift, shift);

  dom.virtBase = virtBase;
  dom.startInfoVirt = startInfo;
  return {
    domain: dom,
    layout: {
      virtBase,
      virtEnd,
      mfnList,
      startInfo,
      console: consolePage,
      pageTables,
      nrPtFrames: 1 + nrL1,
      stackTop,
    },
  };
}

/** Puts the CPU into the domain's start-of-day state and makes it the running domain. */
export function enterDomain(
  xen: XenHypervisor,
  dom: Domain,
  entry: number,
  layout: DomainLayout,
): void {
  const cpu = xen.cpu;
  // First, so that a domain already running keeps its virtual CPU (scheduler.ts).
  xen.switchTo(dom);
  cpu.enterFlatProtectedMode();
  cpu.gdtr = { base: GDT_VIRT, limit: 7 * 8 - 1 };
  // With the monitor attached the CPU never reads the IDT; no TSS: ring 1 has no I/O bitmap.
  cpu.idtr = { base: 0, limit: 0 };
  cpu.ldtr.loadNull(0);
  cpu.tr.loadNull(0);
  cpu.cr4 = 0; // no PSE, no PGE
  cpu.cr3 = dom.baseMfn! * 4096;
  cpu.cr0 = 0x80010011; // PG, WP (read-only binds ring 1 too), ET, PE
  cpu.segs[CS].load(Selector.RING1_CS, 0, 0xffffffff, 0xc0bb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.segs[s].load(Selector.RING1_DS, 0, 0xffffffff, 0xc0b3);
  cpu.setCpl(1);
  cpu.regs.fill(0);
  cpu.setEflags(0x202); // IF stays set: ring 1 with IOPL 0 cannot clear it
  cpu.eip = entry;
  cpu.esp = layout.stackTop;
  cpu.esi = layout.startInfo;
  cpu.invalidateAllCode();
  dom.startCycle = cpu.cycles;
  xen.updateTime(dom);
  cpu.attachMonitor(xen);
}

/** vcpu_time_info scale: ns = ((tsc delta) << shift) * mul >> 32 (Xen's convention). */
export function timeScale(hz: number): { mul: number; shift: number } {
  let ratio = 1e9 / hz;
  let shift = 0;
  while (ratio >= 1) {
    ratio /= 2;
    shift++;
  }
  while (ratio < 0.5) {
    ratio *= 2;
    shift--;
  }
  return { mul: Math.floor(ratio * 2 ** 32) >>> 0, shift };
}

function pageUp(v: number): number {
  return roundUp(v, 4096);
}

function roundUp(v: number, to: number): number {
  return Math.ceil(v / to) * to;
}
