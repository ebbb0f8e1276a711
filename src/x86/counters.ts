/** Raw counts every run reports (DESIGN.md decision 4). */
export interface CpuCounters {
  instructions: number;
  /** Exceptions by vector (0–31). */
  exceptions: number[];
  interrupts: number;
  softwareInterrupts: number;
  tlbMisses: number;
  tlbFlushes: number;
  ioReads: number;
  ioWrites: number;
  mmioReads: number;
  mmioWrites: number;
  cr3Loads: number;
  invlpg: number;
  monitorExits: number;
  boundCalls: number;
}

export function newCounters(): CpuCounters {
  return {
    instructions: 0,
    exceptions: new Array<number>(32).fill(0),
    interrupts: 0,
    softwareInterrupts: 0,
    tlbMisses: 0,
    tlbFlushes: 0,
    ioReads: 0,
    ioWrites: 0,
    mmioReads: 0,
    mmioWrites: 0,
    cr3Loads: 0,
    invlpg: 0,
    monitorExits: 0,
    boundCalls: 0,
  };
}
