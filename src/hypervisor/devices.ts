/**
 * Direct device access, as every hypervisor here gives it (DESIGN.md decision 10): the pieces a
 * hypervisor interposes between a device it passes through and the machine, whatever its own
 * way of naming the VM's memory. xen (xen/devices.ts) confines DMA through a domain's p2m; l4
 * (l4/devices.ts) to the contiguous region its resource monitor gave a VM.
 *
 * DMA: the device's bus addresses are machine addresses; a `DmaConfinement` (an IOMMU-like
 * hook) translates the VM's own addresses (what its driver writes into descriptors) and refuses
 * anything outside the VM's memory. `confineDma` interposes one on the device's bus-master port
 * (`DmaMemory`, machine/device.ts): a transfer that leaves the VM fails, which the device reports
 * to its driver as a bus error, never a host exception.
 */
import type { DmaMemory } from '../machine/device.ts';

export interface PortRange {
  base: number;
  length: number;
}

export function inRanges(ranges: readonly PortRange[], value: number, length = 1): boolean {
  return ranges.some((r) => value >= r.base && value + length <= r.base + r.length);
}

/** IOMMU-like confinement of a passed-through device's DMA to one VM's memory. */
export interface DmaConfinement {
  /** Machine address for a range of the VM's own addresses, or undefined if it leaves the VM. */
  translate(vmAddress: number, length: number): number | undefined;
  /** True if the machine range lies wholly in the VM's memory. */
  allows(machine: number, length: number): boolean;
  /** Told of each device write to the VM's addresses before it lands (a VMM's watch). */
  beforeWrite?(vmAddress: number, length: number): void;
}

export interface DmaCounters {
  dmaTranslated: number;
  dmaRefused: number;
}

/**
 * The confinement for a VM whose addresses translate through a frame map (`p2m[pfn]` = machine
 * frame; a range must be machine-contiguous, as one DMA buffer is) and whose machine memory is
 * the frames `owns` accepts. `beyond` maps the frames past the end of `p2m` (a domain's grant
 * window), if the VM has any there.
 */
export function frameMapDma(
  p2m: readonly number[],
  owns: (mfn: number) => boolean,
  beyond?: (pfn: number) => number | undefined,
): DmaConfinement {
  const frame = (pfn: number): number | undefined => (pfn < p2m.length ? p2m[pfn] : beyond?.(pfn));
  return {
    translate(vmAddress, length) {
      // GUEST-CONTROLLED: both values come from the guest's DMA descriptors.
      if (length <= 0 || vmAddress < 0) return undefined;
      const first = Math.floor(vmAddress / 4096);
      const last = Math.floor((vmAddress + length - 1) / 4096);
      const base = frame(first);
      if (base === undefined) return undefined;
      for (let pfn = first + 1; pfn <= last; pfn++) {
        if (frame(pfn) !== base + (pfn - first)) return undefined;
      }
      return base * 4096 + (vmAddress % 4096);
    },
    allows(machine, length) {
      if (length <= 0 || machine < 0) return false;
      for (let mfn = Math.floor(machine / 4096); mfn * 4096 < machine + length; mfn++) {
        if (!owns(mfn)) return false;
      }
      return true;
    },
  };
}

/**
 * The confinement for a VM whose memory is one contiguous machine region: VM address `a` is
 * machine address `base + a`, for `a + length <= size`.
 */
export function regionDma(base: number, size: number): DmaConfinement {
  return {
    translate(vmAddress, length) {
      // GUEST-CONTROLLED: both values come from the guest's DMA descriptors.
      if (length <= 0 || vmAddress < 0 || vmAddress + length > size) return undefined;
      return base + vmAddress;
    },
    allows(machine, length) {
      return length > 0 && machine >= base && machine + length <= base + size;
    },
  };
}

/**
 * Interposes a confinement between a device and memory, as an IOMMU would: the device's DMA
 * addresses become the VM's own addresses, translated to machine ones; a transfer that leaves
 * the VM fails (the device reports a bus error to its driver). Returns what takes it away again
 * (the VM is gone and the device goes to another one): the port's own functions come back if
 * this confinement is the outermost, as it is for a device granted to one VM at a time;
 * otherwise the confinement stays in place but lets everything through untranslated, so that
 * whatever was interposed on top of it keeps working.
 */
export function confineDma(
  port: DmaMemory,
  dma: DmaConfinement,
  counters: DmaCounters,
): () => void {
  const originalRead = port.read;
  const originalWrite = port.write;
  const read = port.read.bind(port);
  const write = port.write.bind(port);
  let released = false;
  const confinedRead: DmaMemory['read'] = (address, into) => {
    if (released) return read(address, into);
    const m = dma.translate(address, into.length);
    if (m === undefined || !dma.allows(m, into.length)) {
      counters.dmaRefused++;
      return false;
    }
    counters.dmaTranslated++;
    return read(m, into);
  };
  const confinedWrite: DmaMemory['write'] = (address, from) => {
    if (released) return write(address, from);
    dma.beforeWrite?.(address, from.length);
    const m = dma.translate(address, from.length);
    if (m === undefined || !dma.allows(m, from.length)) {
      counters.dmaRefused++;
      return false;
    }
    counters.dmaTranslated++;
    return write(m, from);
  };
  port.read = confinedRead;
  port.write = confinedWrite;
  return () => {
    released = true;
    if (port.read === confinedRead && port.write === confinedWrite) {
      port.read = originalRead;
      port.write = originalWrite;
    }
  };
}
