/**
 * Loading an afterburned kernel for the in-place VMM, the same for every backend: the site
 * records (sections.ts) and the ELF image are read before anything is built, so a kernel that
 * cannot work is refused with one line; then the kernel goes into the guest's physical memory
 * by its boot protocol, and every site is rewritten in the loaded image (rewriter.ts; the file
 * is never changed). Two protocols, as on the raw PC:
 *
 *   - multiboot (loader/multiboot.ts): the kernel, its modules and the multiboot information
 *     exactly as the raw PC's boot loader puts them; entered with EAX = the magic, EBX = the
 *     information, CS 0x08 and data 0x10 (the boot loader's GDT);
 *   - a Linux bzImage (loader/linux.ts): the kernel taken out of it as Xen's domain builder does
 *     (`linuxPayload`: the decompressed `vmlinux.bin`, whose `.afterburn` records are the sites),
 *     placed where the bzImage's own decompressor would have put it, the modules as its initrd,
 *     the boot parameters holding the bzImage's setup header; entered at `startup_32` with ESI
 *     = the boot parameters, CS __BOOT_CS and data __BOOT_DS of the loader's GDT.
 *
 * What differs per backend — where the guest's memory is, how the virtual CPU starts — is the
 * backend's.
 */
import { LoadError, parseElf, type ElfImage } from '../loader/elf.ts';
import { BOOT_CS, BOOT_DS, isLinuxKernel, linuxPayload, placeVmlinux } from '../loader/linux.ts';
import { placeMultiboot, type BootModule } from '../loader/multiboot.ts';
import { rewriteSites, type CallSite } from './rewriter.ts';
import { readSiteRecords, type SiteRecord } from './sections.ts';

/** An afterburned kernel, checked, not yet loaded anywhere. */
export interface AfterburnedKernel {
  /** The ELF file: the kernel itself, or what a bzImage holds (then `bzImage` is the file). */
  bytes: Uint8Array;
  name: string;
  /** The file was a Linux bzImage: it, for its setup header. */
  bzImage?: Uint8Array;
  image: ElfImage;
  records: SiteRecord[];
  /** Link address minus load address (the kernel runs at its load address until paging). */
  kernelOffset: number;
}

/** Reads the kernel's annotations and ELF image; a one-line message if it cannot be used. */
export function readAfterburned(file: Uint8Array, name: string): AfterburnedKernel | string {
  let bytes = file;
  let bzImage: Uint8Array | undefined;
  if (isLinuxKernel(file)) {
    const elf = linuxPayload(file, name);
    if (elf instanceof LoadError) return elf.message;
    bytes = elf;
    bzImage = file;
  }
  const records = readSiteRecords(
    bytes,
    bzImage === undefined ? name : `${name} (the kernel inside the bzImage)`,
    bzImage === undefined ? undefined : 'bash guest/linux/build.sh afterburned',
  );
  if (typeof records === 'string') return records;
  const image = parseElf(bytes, name);
  if (image instanceof LoadError) return image.message;
  const first = image.segments[0];
  return {
    bytes,
    name,
    ...(bzImage === undefined ? {} : { bzImage }),
    image,
    records,
    kernelOffset: (first.vaddr - first.paddr) >>> 0,
  };
}

/** How the virtual CPU enters the kernel: its boot protocol's registers and selectors. */
export interface KernelEntry {
  entry: number;
  /** General registers at entry (the rest are 0). */
  registers: { eax: number; ebx: number; esi: number };
  /** The virtual CS and data selectors at entry. */
  codeSelector: number;
  dataSelector: number;
  /** The virtual GDTR at entry, if the loader built a GDT (Linux's boot selectors). */
  gdtr?: { base: number; limit: number };
}

/** The kernel in guest memory, ready for the VMM to start it. */
export interface LoadedKernel extends KernelEntry {
  kernelOffset: number;
  /** The rewritten sites that call the VMM, by return address (the core's site table). */
  calls: Map<number, CallSite>;
}

/**
 * Places the kernel, its modules and the multiboot information in `ram` (the guest's physical
 * memory, index = guest-physical address) and rewrites every site there. A message if the
 * kernel does not fit or a site cannot be rewritten.
 */
export function loadAfterburned(
  ram: Uint8Array,
  kernel: AfterburnedKernel,
  cmdline: string,
  modules: BootModule[],
): LoadedKernel | string {
  const start = placeKernel(ram, kernel, cmdline, modules);
  if (typeof start === 'string') return start;
  const segments = kernel.image.segments;
  const toPhys = (link: number): number | undefined => {
    const s = segments.find((g) => link >= g.vaddr && link < g.vaddr + g.memsz);
    return s === undefined ? undefined : link - s.vaddr + s.paddr;
  };
  const rewritten = rewriteSites(kernel.records, (link, length) => {
    const pa = toPhys(link);
    return pa === undefined || pa + length > ram.length ? undefined : ram.slice(pa, pa + length);
  });
  if (typeof rewritten === 'string') return `${kernel.name}: ${rewritten}`;
  for (const p of rewritten.patches) ram.set(p.bytes, toPhys(p.at)!);
  return { ...start, kernelOffset: kernel.kernelOffset, calls: rewritten.calls };
}

/** The kernel, its modules and its boot information by its protocol (see the file comment). */
function placeKernel(
  ram: Uint8Array,
  kernel: AfterburnedKernel,
  cmdline: string,
  modules: BootModule[],
): KernelEntry | string {
  if (kernel.bzImage !== undefined) {
    const withArgs = modules.find((m) => /\s/.test(m.string.trim()));
    if (withArgs !== undefined)
      return `${withArgs.name}: a Linux initrd takes no arguments (got '${withArgs.string}')`;
    const placed = placeVmlinux(ram, {
      kernel: kernel.bytes,
      kernelName: kernel.name,
      cmdline,
      initrd: modules,
      bzImage: kernel.bzImage,
      image: kernel.image,
    });
    if (placed instanceof LoadError) return placed.message;
    return {
      entry: placed.entry,
      registers: { eax: 0, ebx: 0, esi: placed.bootParams },
      codeSelector: BOOT_CS,
      dataSelector: BOOT_DS,
      gdtr: { base: placed.gdt, limit: 4 * 8 - 1 },
    };
  }
  const start = placeMultiboot(ram, {
    kernel: kernel.bytes,
    kernelName: kernel.name,
    cmdline,
    modules,
  });
  if (start instanceof LoadError) return start.message;
  return {
    entry: start.entry,
    registers: { eax: start.magic, ebx: start.mbi, esi: 0 },
    codeSelector: 0x08,
    dataSelector: 0x10,
  };
}
