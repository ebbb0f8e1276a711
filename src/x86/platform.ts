/**
 * What the CPU needs from the machine around it. The x86 layer defines this contract and the
 * machine layer implements it, so the CPU core never imports a device (DESIGN.md, layering).
 *
 * Physical addresses below `ram.length` that are not marked MMIO (see `Cpu.markMmio`) are read
 * and written directly in `ram`; every other physical access goes through the mmio callbacks.
 */
export interface CpuPlatform {
  /** Machine memory. Index = physical address. */
  readonly ram: Uint8Array;
  /** A read of `size` bytes at a physical address outside RAM or in an MMIO page. */
  mmioRead(paddr: number, size: 1 | 2 | 4): number;
  /** A write of `size` bytes at a physical address outside RAM or in an MMIO page. */
  mmioWrite(paddr: number, size: 1 | 2 | 4, value: number): void;
  /** IN from an I/O port (after the CPU's IOPL / I/O-bitmap checks passed). */
  ioRead(port: number, size: 1 | 2 | 4): number;
  /** OUT to an I/O port (after the CPU's IOPL / I/O-bitmap checks passed). */
  ioWrite(port: number, size: 1 | 2 | 4, value: number): void;
  /**
   * INTA cycle: the CPU accepted the interrupt the INTR line announced. Returns the vector
   * (0–255) from the interrupt controller, which may be a spurious vector.
   */
  acknowledgeInterrupt(): number;
}
