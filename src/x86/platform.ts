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
  /** The parts of the processor chip the machine models beside the core (the local APIC). */
  readonly onChip?: OnChipDevices;
}

/**
 * On-chip devices with a face in the CPU's own instructions: the MSRs they own and the CPUID
 * flags that announce them (the local APIC: IA32_APIC_BASE and IA32_TSC_DEADLINE; CPUID.1:EDX
 * bit 9 and ECX bit 24).
 */
export interface OnChipDevices {
  /** CPUID.1:EDX bits to add now (the APIC's flag follows its global enable). */
  cpuidEdx(): number;
  /** CPUID.1:ECX bits to add now (the APIC's TSC-deadline timer). */
  cpuidEcx(): number;
  /** RDMSR of an MSR the core does not know: its 64-bit value, or undefined for #GP(0). */
  readMsr(index: number): number | undefined;
  /** WRMSR likewise (`value` = EDX × 2^32 + EAX): false for #GP(0). */
  writeMsr(index: number, value: number): boolean;
}
