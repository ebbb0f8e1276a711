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
 */
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
