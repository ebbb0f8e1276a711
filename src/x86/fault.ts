/**
 * An architectural exception raised while executing an instruction (Intel SDM Vol. 3A, ch. 6).
 * Instruction code throws it; the run loop catches it, restores EIP to the faulting instruction
 * (faults) and delivers it through the IDT or to the attached monitor. It is the only thing that
 * may be thrown across the CPU: anything a guest does ends as one of these, never as a host error.
 */
export class CpuFault {
  constructor(
    readonly vector: number,
    /** Error code pushed with the exception, for the vectors that have one (8, 10–14, 17). */
    readonly errorCode: number | undefined = undefined,
  ) {}
}

/** Exception vectors (SDM Vol. 3A, Table 6-1). */
export const Vector = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
} as const;

/** Convenience constructors, so call sites read like the SDM: `throw gp(0)`. */
export const ud = (): CpuFault => new CpuFault(Vector.UD);
export const gp = (errorCode: number): CpuFault => new CpuFault(Vector.GP, errorCode);
export const ss = (errorCode: number): CpuFault => new CpuFault(Vector.SS, errorCode);
export const np = (errorCode: number): CpuFault => new CpuFault(Vector.NP, errorCode);
export const ts = (errorCode: number): CpuFault => new CpuFault(Vector.TS, errorCode);
export const pf = (errorCode: number): CpuFault => new CpuFault(Vector.PF, errorCode);
