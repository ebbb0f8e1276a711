/**
 * Cycles the CPU charges to the simulated clock (DESIGN.md decision 3). The figures come from a
 * cost-model preset (../shared/reference/cost-model.md, shipped as `p4-2.8ghz` in
 * src/machine/costModel.ts); the CPU only reads this table.
 *
 * Interpretation shared by the whole project:
 * - A listed instruction costs its figure in total (not base + figure).
 * - `repElement` is charged per element on top of the instruction's `base`.
 * - `tlbMiss` is charged on top of whatever instruction caused the page walk.
 * - `mmioRead`/`mmioWrite` are charged on top of the instruction that touched the device register.
 * - `gateSame`/`gatePrivilege` are charged for every exception, interrupt or INT n delivered
 *   through a gate (for INT n this is the instruction's whole cost). With a monitor attached, an
 *   exit to the monitor costs `gatePrivilege` (the trap into the hypervisor); the monitor charges
 *   the way back itself.
 */
export interface CpuCosts {
  base: number;
  repElement: number;
  mul: number;
  div: number;
  cli: number;
  sti: number;
  pushf: number;
  popf: number;
  segmentLoad: number;
  gateSame: number;
  gatePrivilege: number;
  iretSame: number;
  iretOuter: number;
  movCr3: number;
  invlpg: number;
  tlbMiss: number;
  /** LGDT, LIDT, LLDT, LTR, other MOV to/from CR0/CR2/CR4. */
  systemRegister: number;
  io: number;
  mmioRead: number;
  mmioWrite: number;
  cpuid: number;
  rdtsc: number;
  hlt: number;
}
