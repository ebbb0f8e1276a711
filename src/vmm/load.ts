/**
 * Loading an afterburned kernel for the in-place VMM, the same for every backend: the site
 * records (sections.ts) and the ELF image are read before anything is built, so a kernel that
 * cannot work is refused with one line; then the kernel, its modules and the multiboot
 * information go into the guest's physical memory exactly as the raw PC's boot loader puts
 * them (loader/multiboot.ts), and every site is rewritten in the loaded image (rewriter.ts; the
 * file is never changed). What differs per backend — where the guest's memory is, how the
 * virtual CPU starts — is the backend's.
 */
import { LoadError, parseElf, type ElfImage } from '../loader/elf.ts';
import { placeMultiboot, type BootModule, type MultibootStart } from '../loader/multiboot.ts';
import { rewriteSites, type CallSite } from './rewriter.ts';
import { readSiteRecords, type SiteRecord } from './sections.ts';

/** An afterburned kernel, checked, not yet loaded anywhere. */
export interface AfterburnedKernel {
  bytes: Uint8Array;
  name: string;
  image: ElfImage;
  records: SiteRecord[];
  /** Link address minus load address (the kernel runs at its load address until paging). */
  kernelOffset: number;
}

/** Reads the kernel's annotations and ELF image; a one-line message if it cannot be used. */
export function readAfterburned(bytes: Uint8Array, name: string): AfterburnedKernel | string {
  const records = readSiteRecords(bytes, name);
  if (typeof records === 'string') return records;
  const image = parseElf(bytes, name);
  if (image instanceof LoadError) return image.message;
  const first = image.segments[0];
  return { bytes, name, image, records, kernelOffset: (first.vaddr - first.paddr) >>> 0 };
}

/** The kernel in guest memory, ready for the VMM to start it. */
export interface LoadedKernel extends MultibootStart {
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
  const start = placeMultiboot(ram, {
    kernel: kernel.bytes,
    kernelName: kernel.name,
    cmdline,
    modules,
  });
  if (start instanceof LoadError) return start.message;
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
