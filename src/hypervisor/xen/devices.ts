/**
 * Direct device access for a domain (the seed's netperf setup gave the guest the DP83820): the
 * hooks the hypervisor checks. A grant names what the domain may reach; everything else stays
 * the hypervisor's.
 *
 * - I/O ports: the guest kernel runs in ring 1 with IOPL 0 and no I/O bitmap, so IN/OUT raise
 *   #GP; the hypervisor emulates the access when the port is granted (as Xen's
 *   emulate_privileged_op does) and bounces the #GP otherwise.
 * - MMIO: L1 entries may map machine frames beyond RAM that lie in a granted range (no type
 *   tracking: they are not memory).
 * - IRQs: a granted line is bound with EVTCHNOP_bind_pirq; the hardware interrupt is acknowledged
 *   by the hypervisor and raised on that port.
 * - DMA: the device's bus addresses are machine addresses; `DmaConfinement` (an IOMMU-like hook)
 *   translates a domain's pseudo-physical addresses and refuses anything outside its frames.
 *   A grant that names the device's bus-master port (`dma`) gets it confined: from then on the
 *   device's DMA addresses are the domain's pseudo-physical ones (what its driver writes).
 * - PCI configuration: the granted function's configuration space through physdev_op; the
 *   hypervisor placed the BARs, so the domain cannot move them.
 */
import type { DmaMemory } from '../../machine/device.ts';

export interface PortRange {
  base: number;
  length: number;
}

export interface DeviceGrant {
  /** What the grant is for, for messages ("dp83820"). */
  name: string;
  ioPorts: PortRange[];
  /** Machine-address ranges of device registers (page granular). */
  ioMemory: PortRange[];
  /** Interrupt request lines of the machine's PIC. */
  irqs: number[];
  /** The device's PCI function, for physdev_op configuration access. */
  pci?: PciConfigAccess;
  /** The device's bus-master port; the grant confines it to the domain (confineDma). */
  dma?: DmaMemory;
}

/** Configuration space of one PCI function (the machine's device, reached by the hypervisor). */
export interface PciConfigAccess {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/**
 * Configuration writes a domain may make: the command register's I/O, memory and bus-master
 * enables, the cache line size, latency timer and interrupt line. BARs and the expansion ROM
 * are the hypervisor's (it placed them); everything else is read-only or device-specific. A
 * dword write that covers a writable register reaches just that register. Returns the write to
 * make, or undefined.
 */
export function allowedConfigWrite(
  offset: number,
  size: 1 | 2 | 4,
  value: number,
): { offset: number; size: 1 | 2 | 4; value: number } | undefined {
  const writable: [number, 1 | 2][] = [
    [0x04, 2],
    [0x0c, 2],
    [0x3c, 1],
  ];
  for (const [at, n] of writable) {
    if (offset > at || offset + size < at + n) {
      if (offset >= at && offset + size <= at + n) return { offset, size, value };
      continue;
    }
    const shift = (at - offset) * 8;
    return { offset: at, size: n, value: (value >>> shift) & (n === 2 ? 0xffff : 0xff) };
  }
  return undefined;
}

/** IOMMU-like confinement of a granted device's DMA to one domain's frames. */
export interface DmaConfinement {
  /** Machine address for a domain pseudo-physical range, or undefined if it leaves the domain. */
  translate(pseudoPhysical: number, length: number): number | undefined;
  /** True if the machine range lies wholly in frames the domain owns. */
  allows(machine: number, length: number): boolean;
}

export function inRanges(ranges: readonly PortRange[], value: number, length = 1): boolean {
  return ranges.some((r) => value >= r.base && value + length <= r.base + r.length);
}

/**
 * The confinement for one domain: pseudo-physical addresses translate through its p2m (a range
 * must be machine-contiguous, as one DMA buffer is), machine ranges must lie in its own frames.
 */
export function domainDma(p2m: readonly number[], owns: (mfn: number) => boolean): DmaConfinement {
  return {
    translate(pseudoPhysical, length) {
      // GUEST-CONTROLLED: both values come from the guest's DMA descriptors.
      if (length <= 0 || pseudoPhysical < 0) return undefined;
      const first = Math.floor(pseudoPhysical / 4096);
      const last = Math.floor((pseudoPhysical + length - 1) / 4096);
      if (last >= p2m.length) return undefined;
      for (let pfn = first + 1; pfn <= last; pfn++) {
        if (p2m[pfn] !== p2m[first] + (pfn - first)) return undefined;
      }
      return p2m[first] * 4096 + (pseudoPhysical % 4096);
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
 * Interposes a confinement between a device and memory, as an IOMMU would: the device's DMA
 * addresses become the domain's pseudo-physical addresses, translated to machine ones; a
 * transfer that leaves the domain fails (the device reports a bus error to its driver).
 */
export function confineDma(port: DmaMemory, dma: DmaConfinement, counters: DmaCounters): void {
  const read = port.read.bind(port);
  const write = port.write.bind(port);
  port.read = (address, into) => {
    const m = dma.translate(address, into.length);
    if (m === undefined || !dma.allows(m, into.length)) {
      counters.dmaRefused++;
      return false;
    }
    counters.dmaTranslated++;
    return read(m, into);
  };
  port.write = (address, from) => {
    const m = dma.translate(address, from.length);
    if (m === undefined || !dma.allows(m, from.length)) {
      counters.dmaRefused++;
      return false;
    }
    counters.dmaTranslated++;
    return write(m, from);
  };
}

export interface DmaCounters {
  dmaTranslated: number;
  dmaRefused: number;
}
