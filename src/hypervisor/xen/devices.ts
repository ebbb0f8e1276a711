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
 * - DMA: the device's bus addresses are machine addresses; `DmaConfinement` (../devices.ts)
 *   translates a domain's pseudo-physical addresses and refuses anything outside its frames.
 *   A grant that names the device's bus-master port (`dma`) gets it confined: from then on the
 *   device's DMA addresses are the domain's pseudo-physical ones (what its driver writes).
 * - PCI configuration: the granted function's configuration space through physdev_op; the
 *   hypervisor placed the BARs, so the domain cannot move them.
 */
import type { DmaMemory } from '../../machine/device.ts';
import { frameMapDma, type DmaConfinement, type PortRange } from '../devices.ts';

// The pieces every hypervisor shares (../devices.ts), under the names xen's callers know.
export {
  confineDma,
  inRanges,
  type DmaConfinement,
  type DmaCounters,
  type PortRange,
} from '../devices.ts';

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
  /**
   * Resets the device when the domain is destroyed and the grant comes back (destroy.ts), as
   * Xen's pciback resets a device it gets back from a domain: nothing the old driver set up
   * runs on.
   */
  reset?: () => void;
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

/**
 * The confinement for one domain: pseudo-physical addresses translate through its p2m (a range
 * must be machine-contiguous, as one DMA buffer is), machine ranges must lie in its own frames.
 * With `window`, the pages past its memory are its grant window (grants.ts): a granted frame it
 * mapped there is reachable too (`owns` then accepts the frames it holds mappings of).
 */
export function domainDma(
  p2m: readonly number[],
  owns: (mfn: number) => boolean,
  window?: (slot: number) => number | undefined,
): DmaConfinement {
  return frameMapDma(
    p2m,
    owns,
    window === undefined ? undefined : (pfn) => window(pfn - p2m.length),
  );
}
