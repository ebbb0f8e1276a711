import type { CpuCosts } from './cost.ts';
import { CpuFault, Vector, gp, pf } from './fault.ts';
import {
  BUDGET_ALLOWANCE,
  BUDGET_PER_INSTRUCTION,
  Block,
  HOT,
  STACK_BIG,
  compileBlock,
  type BlockContext,
} from './block.ts';
import * as Fast from './ops/fast.ts';
import * as F from './flags.ts';
import * as Lazy from './lazyFlags.ts';
import { shift } from './ops/shift.ts';
import { CodeCache } from './codeCache.ts';
import { PhysicalMemory } from './memory.ts';
import { newCounters, type CpuCounters } from './counters.ts';
import { decode } from './decode.ts';
import { Instr } from './instr.ts';
import { EntryTable, entriesDiffer, hex32, type EntriesState, type Unbind } from './entries.ts';
import type { BoundHandler, Monitor } from './monitor.ts';
import type { CpuPlatform } from './platform.ts';
import { CS, DS, SS, SegmentRegister, checkedLinear } from './segment.ts';
import { CR4_SMAP, CR4_SMEP, walk } from './system/paging.ts';
import { bounce, deliverEvent, type EventKind } from './system/interrupts.ts';
import { saveCpu, restoreCpu, type CpuInternals, type CpuState } from './system/state.ts';
import {
  T_RAM,
  T_RAM_WRITE,
  T_SUPER,
  T_USER,
  T_USER_WRITE,
  T_VALID,
  T_WRITE,
  T_GLOBAL,
  Tlbs,
} from './tlb.ts';

/** `cpu.counters` is part of the Cpu's API (README.md): its type is exported from here too. */
export type { CpuCounters } from './counters.ts';
/** So are snapshots and entry tables (README.md). */
export type { CpuState } from './system/state.ts';
export type { EntriesState, EntryBinding, EntryTable, Unbind } from './entries.ts';

export type RunResult = 'limit' | 'halt' | 'shutdown' | 'stop';

export interface TableRegister {
  base: number;
  limit: number;
}

/**
 * The IA-32 CPU (i686 class, no FPU). Holds the architectural state and runs the
 * fetch–decode–execute loop; its parts are the TLBs (tlb.ts), physical memory (memory.ts), the
 * decoded-instruction cache (codeCache.ts), lazy-flag evaluation (lazyFlags.ts) and compiled
 * blocks (block.ts). Instruction semantics live in ops/, the protected-mode machinery (paging
 * walks, descriptor loads, event delivery, far transfers) in system/. See README.md for the API.
 *
 * PERF: the methods `read*`, `write*`, `fetch` and `run` are the interpreter's hot path; they are
 * kept plain and monomorphic on purpose.
 */
export class Cpu {
  readonly platform: CpuPlatform;
  costs: CpuCosts;
  readonly ram: Uint8Array;
  private readonly view: DataView;

  /** EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI (SDM encoding order). */
  readonly regs = new Int32Array(8);
  eip = 0;
  /** EIP of the instruction being executed (faults restart here). */
  instrEip = 0;

  /** EFLAGS except the status flags named in `lazyMask`, which come from the lazy state. */
  flagsBits = F.FIXED;
  lazyMask = 0;
  lazyOp = 0;
  lazyRes = 0;
  lazyDst = 0;
  lazySrc = 0;
  lazyCin = 0;
  lazySizeMask = 0;

  readonly segs = [
    new SegmentRegister('es'),
    new SegmentRegister('cs'),
    new SegmentRegister('ss'),
    new SegmentRegister('ds'),
    new SegmentRegister('fs'),
    new SegmentRegister('gs'),
  ];
  readonly ldtr = new SegmentRegister('ldtr');
  readonly tr = new SegmentRegister('tr');
  gdtr: TableRegister = { base: 0, limit: 0xffff };
  idtr: TableRegister = { base: 0, limit: 0x3ff };
  private cplValue = 0;

  private cr0Value = 0x60000010;
  cr2 = 0;
  private cr3Value = 0;
  private cr4Value = 0;
  readonly dr = new Int32Array(8);
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  tscOffset = 0;
  /** IA32_MISC_ENABLE and IA32_TSC_AUX (system/instructions.ts). */
  miscEnable = 0x1801; // MISC_ENABLE_RESET: fast strings, BTS and PEBS unavailable
  tscAux = 0;

  cycles = 0;
  idleCycles = 0;
  private haltedState = false;
  counters: CpuCounters = newCounters();
  shutdownReason: string | undefined = undefined;
  monitor: Monitor | null = null;

  /** Read by compiled blocks (block.ts) too. */
  private interruptLine = false;
  /**
   * NMI (SDM 3A 6.7.1): one request latched at the processor, and the blocking that lasts from
   * an NMI's delivery to the next IRET.
   */
  nmiPending = false;
  nmiBlocked = false;
  /** Interrupts are inhibited for one instruction after STI and MOV/POP SS (SDM 3A 6.8.3). */
  interruptShadow = false;
  private stopRequested = false;
  private runLimit = 0;
  /**
   * PERF: the interpreter loop runs while `cycles < sliceEnd`; HLT, requestStop() and a
   * shutdown lower it so the loop needs one test for all of them (run() sorts out which).
   */
  private sliceEnd = 0;

  // Paging and TLBs.
  private paging = false;
  private readonly tlbs = new Tlbs();
  /** PERF: the TLBs' per-linear-page arrays (tlb.ts), read directly by the fast paths. */
  private readonly dtlb = this.tlbs.data;
  private readonly itlb = this.tlbs.code;
  /** Required TLB bits for a read / write at the current CPL (fast path). */
  private readMask = T_VALID | T_RAM;
  private writeMask = T_VALID | T_WRITE | T_RAM_WRITE;

  /** The code page the last fetch used (linear page number), for sequential execution. */
  private fetchPage = -1;
  private fetchCode: (Instr | undefined)[] = [];
  /** The physical page `fetchCode` holds (valid while `fetchPage` is not -1). */
  private fetchPhysical = -1;

  private readonly codeCache: CodeCache;
  /** PERF: the decoded-instruction cache's page table (codeCache.ts), read by the fetch path. */
  private readonly code: ((Instr | undefined)[] | undefined)[];
  private readonly memory: PhysicalMemory;
  /** Every entry table of this CPU by name (entries.ts), the default one included. */
  private readonly entryTables = new Map<string, EntryTable>();
  /** PERF: the last epoch given to an entry table (EntryTable.epoch). */
  private epochs = 0;
  /** The table `bindEntry` binds in; in use until a hypervisor calls `useEntryTable`. */
  readonly defaultEntries = this.createEntryTable('default');
  private entries = this.defaultEntries;
  /** PERF: the handlers of the table in use (`entries.handlers`), looked up before each fetch. */
  private bound = this.defaultEntries.handlers;
  /** The general registers and the flag state at the last bound call, for a fault in it. */
  private readonly boundRegs = new Int32Array(8);
  private readonly boundFlags = new Float64Array(8);
  /**
   * PERF: compiled blocks (block.ts). A physical page's generation counts the writes that
   * retired decoded instructions in it; a block is valid for the generation it was compiled in,
   * and for the current `blockEpoch` (bumped when bound entries change or all code is dropped).
   */
  readonly codeGeneration: Int32Array;
  private blockEpoch = 0;
  /** Compile hot code into blocks (false: interpret every instruction; for tests and checks). */
  blocksEnabled = true;
  /** Runs of an entry point in the interpreter before its block is compiled (tests lower it). */
  blockThreshold = HOT;
  /**
   * The compile budget (block.ts, BUDGET_*): characters of block source the CPU may compile per
   * instruction run inside blocks so far, beyond a first allowance; an entry point that gets hot
   * while the budget is spent waits another `blockThreshold` runs. Infinity: no budget (tests
   * that compile everything at threshold 1 or 2).
   */
  blockBudget = BUDGET_PER_INSTRUCTION;
  /** Characters of block source compiled before the budget applies. */
  blockAllowance = BUDGET_ALLOWANCE;
  /** Characters of block source compiled so far (the budget's spending; diagnostics). */
  blockSource = 0;
  /** Instructions run in compiled blocks so far (what earns the budget; diagnostics). */
  blockInstructions = 0;
  /** Blocks compiled and block runs started (diagnostics, not part of the counters). */
  blocksCompiled = 0;
  blockEntries = 0;
  private lastBlockGeneric = false;
  /**
   * Instructions the loop still interprets in the shadow of a block that was valid but could
   * not run (the slice, the run's instruction budget or an interrupt came first): they heat no
   * entry point. PERF: without it, the instructions after a block's head got hot at every
   * 8192-instruction slice boundary that fell inside the block, and each became the head of a
   * block of its own that almost never ran: bench:cpu's `realcode` compiled 413 blocks (2.6 MB
   * of source, 90% of all) that ran fewer than 1,000 times each, 407 of them inside another block.
   */
  private blockShadow = 0;
  private blockContext: BlockContext | undefined;

  constructor(platform: CpuPlatform, costs: CpuCosts) {
    this.platform = platform;
    this.costs = costs;
    this.ram = platform.ram;
    this.codeCache = new CodeCache(this.ram, (linear) => this.fetchByte(linear));
    this.memory = new PhysicalMemory(this, platform, this.codeCache);
    this.view = this.memory.view;
    this.code = this.codeCache.pages;
    this.codeGeneration = this.codeCache.generation;
    this.reset();
  }

  /**
   * Power-on state (SDM 3A 9.1.1), except that no BIOS runs at 0xFFFF0: the loader puts the
   * CPU into 32-bit flat protected mode with `enterFlatProtectedMode`, as a boot loader would
   * (a kernel may go back to real mode itself: system/realMode.ts).
   */
  reset(): void {
    this.regs.fill(0);
    this.regs[2] = 0x633; // EDX: family 6, model 3, stepping 3
    this.eip = 0xfff0;
    this.flagsBits = F.FIXED;
    this.lazyMask = 0;
    for (const s of this.segs) s.load(0, 0, 0xffff, 0x93);
    this.segs[CS].load(0xf000, 0xffff0000, 0xffff, 0x9b);
    this.gdtr = { base: 0, limit: 0xffff };
    this.idtr = { base: 0, limit: 0x3ff };
    this.ldtr.load(0, 0, 0xffff, 0x82);
    this.tr.load(0, 0, 0xffff, 0x8b);
    this.cr0Value = 0x60000010;
    this.cr2 = 0;
    this.cr3Value = 0;
    this.cr4Value = 0;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0 | 0;
    this.dr[7] = 0x400;
    this.halted = false;
    this.interruptShadow = false;
    this.nmiPending = false;
    this.nmiBlocked = false;
    this.shutdownReason = undefined;
    this.setCpl(0);
    this.updatePaging();
  }

  /** 32-bit flat protected mode, ring 0, paging off, interrupts off: the multiboot entry state. */
  enterFlatProtectedMode(): void {
    this.cr0Value = (this.cr0Value | 1) & ~0x60000000;
    this.segs[CS].load(0x08, 0, 0xffffffff, 0xc09b);
    for (const i of [0, 2, 3, 4, 5]) this.segs[i].load(0x10, 0, 0xffffffff, 0xc093);
    this.setEflags(F.FIXED);
    this.setCpl(0);
    this.updatePaging();
  }

  // ---- registers -------------------------------------------------------------------------

  get eax(): number {
    return this.regs[0] >>> 0;
  }
  set eax(v: number) {
    this.regs[0] = v;
  }
  get ecx(): number {
    return this.regs[1] >>> 0;
  }
  set ecx(v: number) {
    this.regs[1] = v;
  }
  get edx(): number {
    return this.regs[2] >>> 0;
  }
  set edx(v: number) {
    this.regs[2] = v;
  }
  get ebx(): number {
    return this.regs[3] >>> 0;
  }
  set ebx(v: number) {
    this.regs[3] = v;
  }
  get esp(): number {
    return this.regs[4] >>> 0;
  }
  set esp(v: number) {
    this.regs[4] = v;
  }
  get ebp(): number {
    return this.regs[5] >>> 0;
  }
  set ebp(v: number) {
    this.regs[5] = v;
  }
  get esi(): number {
    return this.regs[6] >>> 0;
  }
  set esi(v: number) {
    this.regs[6] = v;
  }
  get edi(): number {
    return this.regs[7] >>> 0;
  }
  set edi(v: number) {
    this.regs[7] = v;
  }

  /** A general register of `size` bytes; for size 1, r 4–7 are AH, CH, DH, BH. */
  getReg(r: number, size: number): number {
    if (size === 4) return this.regs[r];
    if (size === 2) return this.regs[r] & 0xffff;
    return r < 4 ? this.regs[r] & 0xff : (this.regs[r - 4] >> 8) & 0xff;
  }

  setReg(r: number, size: number, v: number): void {
    if (size === 4) this.regs[r] = v;
    else if (size === 2) this.regs[r] = (this.regs[r] & ~0xffff) | (v & 0xffff);
    else if (r < 4) this.regs[r] = (this.regs[r] & ~0xff) | (v & 0xff);
    else this.regs[r - 4] = (this.regs[r - 4] & ~0xff00) | ((v & 0xff) << 8);
  }

  get cpl(): number {
    return this.cplValue;
  }

  /** Changes the CPL (the system code does, on control transfers) and the TLB access masks. */
  setCpl(cpl: number): void {
    this.cplValue = cpl;
    this.fetchPage = -1;
    this.updateAccessMasks();
  }

  /**
   * The data TLB bits a fast access needs: at CPL 3 the user bits; below, with CR4.SMAP set
   * and EFLAGS.AC clear, T_SUPER too, so that a supervisor access to a user page goes through
   * `translate`, which faults it (SDM 3A 4.6.1). Called when the CPL, CR4 or EFLAGS change.
   */
  private updateAccessMasks(): void {
    const user = this.cplValue === 3;
    const smap = !user && (this.cr4Value & CR4_SMAP) !== 0 && (this.flagsBits & F.AC) === 0;
    this.readMask = T_VALID | T_RAM | (user ? T_USER : smap ? T_SUPER : 0);
    this.writeMask = T_VALID | T_RAM_WRITE | (user ? T_USER_WRITE : T_WRITE | (smap ? T_SUPER : 0));
  }

  // ---- flags -----------------------------------------------------------------------------

  /** Records an arithmetic result for lazy flags. */
  setLazy(op: number, dst: number, src: number, res: number, sizeMask: number, cin = 0): void {
    this.lazyOp = op;
    this.lazyDst = dst;
    this.lazySrc = src;
    this.lazyRes = res;
    this.lazyCin = cin;
    this.lazySizeMask = sizeMask;
    this.lazyMask = F.ARITH;
  }

  /** As `setLazy` but CF keeps its value (INC, DEC). */
  setLazyKeepCarry(op: number, dst: number, src: number, res: number, sizeMask: number): void {
    if ((this.lazyMask & F.CF) !== 0) {
      this.flagsBits = (this.flagsBits & ~F.CF) | (Lazy.lazyCF(this) ? F.CF : 0);
    }
    this.lazyOp = op;
    this.lazyDst = dst;
    this.lazySrc = src;
    this.lazyRes = res;
    this.lazyCin = 0;
    this.lazySizeMask = sizeMask;
    this.lazyMask = F.ARITH & ~F.CF;
  }

  /** The lazy state INC or DEC (`op` ADD or SUB) leaves, with CF given (compiled blocks). */
  setLazyIncDec(op: number, dst: number, res: number, carry: number): void {
    this.flagsBits = (this.flagsBits & ~F.CF) | carry;
    this.lazyOp = op;
    this.lazyDst = dst;
    this.lazySrc = 1;
    this.lazyRes = res;
    this.lazyCin = 0;
    this.lazySizeMask = -1;
    this.lazyMask = F.ARITH & ~F.CF;
  }

  /**
   * Flags after a multiply: CF and OF given, SF, ZF, PF from the result (lazily), AF clear.
   */
  setMulFlags(res: number, sizeMask: number, carry: boolean): void {
    this.flagsBits = (this.flagsBits & ~(F.CF | F.OF)) | (carry ? F.CF | F.OF : 0);
    this.lazyOp = F.LAZY_LOGIC;
    this.lazyRes = res;
    this.lazyDst = 0;
    this.lazySrc = 0;
    this.lazyCin = 0;
    this.lazySizeMask = sizeMask;
    this.lazyMask = F.ZF | F.SF | F.PF | F.AF;
  }

  /**
   * Flags after SHL/SHR/SAR of a 32-bit value by a count of 1–31 (compiled blocks): CF and OF
   * given in `bits` (F.CF, F.OF), SF, ZF, PF from the result (lazily), AF clear, as ops/shift.ts
   * `shift` leaves them.
   */
  setShiftFlags(res: number, bits: number): void {
    this.flagsBits = (this.flagsBits & ~(F.CF | F.OF)) | bits;
    this.lazyOp = F.LAZY_LOGIC;
    this.lazyRes = res;
    this.lazyDst = 0;
    this.lazySrc = 0;
    this.lazyCin = 0;
    this.lazySizeMask = -1;
    this.lazyMask = F.ZF | F.SF | F.PF | F.AF;
  }

  /**
   * Sets status flags directly (the listed bits); the others stay as they are, lazy or not.
   * PERF: each lazy flag is computed on its own (lazyFlags.ts), so the rest need not be
   * materialised: SHA-256's rotates (CF and OF only) did that after every ADD or XOR.
   */
  setFlagBits(mask: number, values: number): void {
    this.lazyMask &= ~mask;
    this.flagsBits = (this.flagsBits & ~mask) | (values & mask);
  }

  /** Evaluates condition code `cc` (SDM Vol. 1 Appendix B; lazyFlags.ts). */
  condition(cc: number): boolean {
    return Lazy.condition(this, cc);
  }

  getCF(): boolean {
    return Lazy.getCF(this);
  }
  getZF(): boolean {
    return Lazy.getZF(this);
  }
  getSF(): boolean {
    return Lazy.flag(this, F.SF);
  }
  getOF(): boolean {
    return Lazy.flag(this, F.OF);
  }
  getPF(): boolean {
    return Lazy.flag(this, F.PF);
  }
  getAF(): boolean {
    return Lazy.flag(this, F.AF);
  }

  /** Folds the lazy status flags into `flagsBits`. */
  materialize(): void {
    if (this.lazyMask === 0) return;
    this.flagsBits = Lazy.materializedBits(this);
    this.lazyMask = 0;
  }

  getEflags(): number {
    this.materialize();
    return (this.flagsBits | F.FIXED) >>> 0;
  }

  /** EFLAGS as `getEflags` gives it, leaving the lazy state as it is (snapshots: no change). */
  peekEflags(): number {
    const bits = this.lazyMask === 0 ? this.flagsBits : Lazy.materializedBits(this);
    return (bits | F.FIXED) >>> 0;
  }

  /** Replaces EFLAGS (no privilege rules: callers such as POPF and IRET apply them). */
  setEflags(v: number): void {
    this.lazyMask = 0;
    this.flagsBits = ((v & F.WRITABLE) | F.FIXED) >>> 0;
    if ((this.cr4Value & CR4_SMAP) !== 0) this.updateAccessMasks();
  }

  /** STAC / CLAC: EFLAGS.AC, which SMAP looks at (system/instructions.ts checks CPL and CPUID). */
  setAlignmentCheck(on: boolean): void {
    this.flagsBits = on ? (this.flagsBits | F.AC) >>> 0 : this.flagsBits & ~F.AC;
    this.updateAccessMasks();
  }

  get interruptsEnabled(): boolean {
    return (this.flagsBits & F.IF) !== 0;
  }

  /** An interrupt is waiting and EFLAGS.IF lets it in: the CPU takes it before its next instruction. */
  get interruptPending(): boolean {
    return (this.interruptLine && (this.flagsBits & F.IF) !== 0) || this.nmiDeliverable;
  }

  /** An NMI is latched and not blocked: it is taken before the next instruction, whatever IF. */
  private get nmiDeliverable(): boolean {
    return this.nmiPending && !this.nmiBlocked;
  }

  /**
   * The NMI input (an NMI IPI, LINT1): latches one request, taken at the next instruction
   * boundary unless an NMI handler is still running (blocked until IRET); a second request
   * while one is latched is the same request (SDM 3A 6.7.1).
   */
  raiseNmi(): void {
    this.nmiPending = true;
    if (!this.nmiBlocked) this.sliceEnd = -1;
  }

  /** IRET: NMI blocking ends, and a latched NMI is taken before the next instruction. */
  unblockNmi(): void {
    this.nmiBlocked = false;
    if (this.nmiPending) this.sliceEnd = -1;
  }

  get iopl(): number {
    return (this.flagsBits >> 12) & 3;
  }

  // ---- control registers -----------------------------------------------------------------

  get cr0(): number {
    return this.cr0Value >>> 0;
  }
  /** CR0.PE clear: real-address mode (system/realMode.ts). */
  get realMode(): boolean {
    return (this.cr0Value & 1) === 0;
  }
  /** MOV to CR0: a change of PG, WP or PE flushes the TLBs (SDM 3A 4.10.4.1). */
  set cr0(v: number) {
    const old = this.cr0Value;
    this.cr0Value = (v | 0x10) >>> 0; // ET is hard-wired to 1 on i686
    if (((old ^ this.cr0Value) & 0x80010001) !== 0) this.updatePaging();
  }
  get cr3(): number {
    return this.cr3Value >>> 0;
  }
  /** MOV to CR3 flushes every TLB entry except global pages (SDM 3A 4.10.4.1). */
  set cr3(v: number) {
    this.cr3Value = v >>> 0;
    this.counters.cr3Loads++;
    this.flushTlb(false);
  }
  get cr4(): number {
    return this.cr4Value >>> 0;
  }
  /** A change of PSE, PGE or PAE flushes the TLBs including global pages. */
  set cr4(v: number) {
    const old = this.cr4Value;
    this.cr4Value = v >>> 0;
    // SMEP and SMAP change what a TLB entry allows a supervisor access, as PSE and PGE do.
    if (((old ^ this.cr4Value) & (0xb0 | CR4_SMEP | CR4_SMAP)) !== 0) this.updatePaging();
    this.updateAccessMasks();
  }

  /**
   * For snapshot restores (system/state.ts): CR0, CR3 and CR4 as saved, without the side effects
   * of MOV to a control register (no TLB flush, no count): the restore puts the TLBs back itself.
   */
  loadControlRegisters(cr0: number, cr3: number, cr4: number): void {
    this.cr0Value = cr0 >>> 0;
    this.cr3Value = cr3 >>> 0;
    this.cr4Value = cr4 >>> 0;
    this.paging = (this.cr0Value & 0x80000001) >>> 0 === 0x80000001;
    this.fetchPage = -1;
    this.updateAccessMasks();
  }

  private updatePaging(): void {
    this.paging = (this.cr0Value & 0x80000001) >>> 0 === 0x80000001;
    this.flushTlb(true);
  }

  // ---- TLB -------------------------------------------------------------------------------

  /** Drops TLB entries: all of them, or all but global pages. */
  flushTlb(includeGlobal: boolean): void {
    this.counters.tlbFlushes++;
    this.fetchPage = -1;
    this.tlbs.flush(includeGlobal);
  }

  /** INVLPG: drops the entries for one linear page, global or not. */
  invalidatePage(linear: number): void {
    this.fetchPage = -1;
    this.tlbs.invalidatePage(linear >>> 12);
  }

  /**
   * Translates a linear address, filling the TLB on a miss. `kind`: 0 data read, 1 data write,
   * 2 instruction fetch. `user`: the access is made with user privilege (CPL 3, not an implicit
   * supervisor access to a descriptor table or TSS). Returns the physical address or throws #PF.
   */
  translate(linear: number, kind: number, user: boolean): number {
    const page = linear >>> 12;
    const tlb = kind === 2 ? this.itlb : this.dtlb;
    const e = tlb[page];
    const need =
      kind === 1
        ? user
          ? T_VALID | T_USER_WRITE
          : T_VALID | T_WRITE
        : user
          ? T_VALID | T_USER
          : T_VALID;
    if ((e & need) === need) {
      if (!user && (e & T_SUPER) === 0) this.checkSupervisorAccess(linear, kind);
      return ((e & 0xfffff000) | (linear & 0xfff)) >>> 0;
    }
    return this.fillTlb(linear, kind, user);
  }

  /**
   * A supervisor access to a user page (SDM 3A 4.6.1): with CR4.SMEP an instruction fetch
   * faults; with CR4.SMAP a data access faults unless EFLAGS.AC is set. (Implicit supervisor
   * accesses, to descriptor tables or the TSS, are treated as explicit ones here: AC lets them
   * through too, where the SDM would fault them.) The #PF error code has P set, U/S clear, and
   * I/D set for a fetch (4.7).
   */
  private checkSupervisorAccess(linear: number, kind: number): void {
    const cr4 = this.cr4Value;
    if (
      kind === 2 ? (cr4 & CR4_SMEP) === 0 : (cr4 & CR4_SMAP) === 0 || (this.flagsBits & F.AC) !== 0
    )
      return;
    this.cr2 = linear >>> 0;
    throw pf(1 | (kind === 1 ? 2 : 0) | (kind === 2 ? 0x10 : 0));
  }

  private fillTlb(linear: number, kind: number, user: boolean): number {
    const page = linear >>> 12;
    let bits: number;
    let physical: number;
    if (!this.paging) {
      physical = linear >>> 0;
      bits = T_VALID | T_USER | T_WRITE | T_USER_WRITE | T_SUPER;
    } else {
      this.counters.tlbMisses++;
      this.cycles += this.costs.tlbMiss;
      const result = walk(this, linear, kind === 1, user);
      physical = result.physical;
      bits = T_VALID;
      if (result.user) bits |= T_USER;
      else bits |= T_SUPER;
      // A write-enabled entry is cached only once the dirty bit is set, so that the first write
      // to a clean page walks and sets D (SDM 3A 4.8).
      if (result.dirty) {
        if (result.writable) bits |= T_USER_WRITE | T_WRITE;
        else if ((this.cr0Value & 0x10000) === 0) bits |= T_WRITE;
      }
      if (result.global && (this.cr4Value & 0x80) !== 0) bits |= T_GLOBAL;
    }
    const ppage = physical >>> 12;
    if (physical < this.ram.length && this.memory.mmioPages[ppage] === 0) {
      bits |= T_RAM;
      if (this.code[ppage] === undefined) bits |= T_RAM_WRITE;
    }
    const entry = (physical & 0xfffff000) | bits | 0;
    if (kind === 2) {
      if (this.tlbs.insertCode(page, entry) === this.fetchPage) this.fetchPage = -1;
    } else {
      this.tlbs.insertData(page, entry);
    }
    if (!user && (bits & T_SUPER) === 0) this.checkSupervisorAccess(linear, kind);
    return ((physical & 0xfffff000) + (linear & 0xfff)) >>> 0;
  }

  // ---- physical memory -------------------------------------------------------------------

  /** Routes a physical range through `platform.mmio*` (page granular). */
  markMmio(physical: number, length: number): void {
    this.memory.markMmio(physical, length);
    this.flushTlb(true);
  }

  readPhysical(p: number, size: number): number {
    return this.memory.read(p, size);
  }

  writePhysical(p: number, size: number, v: number): void {
    this.memory.write(p, size, v);
  }

  /** Someone wrote guest memory at [p, p+length): drop decoded instructions overlapping it. */
  invalidateCode(p: number, length: number): void {
    this.codeCache.invalidate(p, length);
  }

  /** Drops every decoded instruction and flushes the TLBs (after the loader rewrote memory). */
  invalidateAllCode(): void {
    this.dropCode();
    this.flushTlb(true);
  }

  /** Drops the caches made from memory contents: decoded instructions, links, blocks. */
  private dropCode(): void {
    this.codeCache.clear();
    for (const t of this.entryTables.values()) t.epoch = ++this.epochs;
    this.blockEpoch = this.entries.epoch;
    this.blockContext = undefined;
    this.fetchPage = -1;
  }

  // ---- linear memory (through paging) ----------------------------------------------------

  /** Implicit supervisor accesses (descriptor tables, TSS) ignore the CPL (SDM 3A 5.6). */
  readLinear(linear: number, size: number, supervisor = false): number {
    linear = linear >>> 0;
    const user = !supervisor && this.cplValue === 3;
    if ((linear & 0xfff) + size > 0x1000) return this.readSplit(linear, size, user);
    return this.readPhysical(this.translate(linear, 0, user), size);
  }

  writeLinear(linear: number, size: number, v: number, supervisor = false): void {
    linear = linear >>> 0;
    const user = !supervisor && this.cplValue === 3;
    if ((linear & 0xfff) + size > 0x1000) {
      this.writeSplit(linear, size, v, user);
      return;
    }
    this.writePhysical(this.translate(linear, 1, user), size, v);
  }

  private readSplit(linear: number, size: number, user: boolean): number {
    // Translate both pages before reading, so a #PF on the second leaves no side effect.
    const p0 = this.translate(linear, 0, user);
    const p1 = this.translate((linear + size - 1) >>> 0, 0, user);
    let v = 0;
    for (let k = 0; k < size; k++) {
      const a = (linear + k) >>> 0;
      const p = (a & 0xfff) >= (linear & 0xfff) ? p0 + k : (p1 & ~0xfff) + (a & 0xfff);
      v |= this.readPhysical(p, 1) << (8 * k);
    }
    return v >>> 0;
  }

  private writeSplit(linear: number, size: number, v: number, user: boolean): void {
    const p0 = this.translate(linear, 1, user);
    const p1 = this.translate((linear + size - 1) >>> 0, 1, user);
    for (let k = 0; k < size; k++) {
      const a = (linear + k) >>> 0;
      const p = (a & 0xfff) >= (linear & 0xfff) ? p0 + k : (p1 & ~0xfff) + (a & 0xfff);
      this.writePhysical(p, 1, (v >>> (8 * k)) & 0xff);
    }
  }

  // PERF: the fast paths below serve nearly every memory access: one TLB array lookup and a
  // typed-array access. Everything else (misses, page crossings, MMIO, code pages) is slow path.

  read8(linear: number): number {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.readMask) === this.readMask) return this.ram[(e & 0xfffff000) | (linear & 0xfff)];
    return this.readLinear(linear, 1);
  }

  read16(linear: number): number {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.readMask) === this.readMask && (linear & 0xfff) <= 0xffe) {
      return this.view.getUint16((e & 0xfffff000) | (linear & 0xfff), true);
    }
    return this.readLinear(linear, 2);
  }

  read32(linear: number): number {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.readMask) === this.readMask && (linear & 0xfff) <= 0xffc) {
      return this.view.getInt32((e & 0xfffff000) | (linear & 0xfff), true);
    }
    return this.readLinear(linear, 4) | 0;
  }

  write8(linear: number, v: number): void {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.writeMask) === this.writeMask) {
      this.ram[(e & 0xfffff000) | (linear & 0xfff)] = v;
      return;
    }
    this.writeLinear(linear, 1, v & 0xff);
  }

  write16(linear: number, v: number): void {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.writeMask) === this.writeMask && (linear & 0xfff) <= 0xffe) {
      this.view.setUint16((e & 0xfffff000) | (linear & 0xfff), v, true);
      return;
    }
    this.writeLinear(linear, 2, v & 0xffff);
  }

  write32(linear: number, v: number): void {
    const e = this.dtlb[linear >>> 12];
    if ((e & this.writeMask) === this.writeMask && (linear & 0xfff) <= 0xffc) {
      this.view.setInt32((e & 0xfffff000) | (linear & 0xfff), v, true);
      return;
    }
    this.writeLinear(linear, 4, v >>> 0);
  }

  /**
   * PERF (REP MOVS/STOS): the RAM offset of `linear` if a data access there may take the fast
   * path now (TLB entry cached with the rights the CPL needs, ordinary RAM, for a write no
   * decoded code in the page), else -1. It only looks: no walk, no fault.
   */
  fastAddress(linear: number, write: boolean): number {
    const e = this.dtlb[linear >>> 12];
    const m = write ? this.writeMask : this.readMask;
    return (e & m) === m ? (e & 0xfffff000) | (linear & 0xfff) : -1;
  }

  readSized(linear: number, size: number): number {
    if (size === 4) return this.read32(linear);
    if (size === 2) return this.read16(linear);
    return this.read8(linear);
  }

  writeSized(linear: number, size: number, v: number): void {
    if (size === 4) this.write32(linear, v);
    else if (size === 2) this.write16(linear, v);
    else this.write8(linear, v);
  }

  /**
   * Checks a segment access (SDM 3A 5.3 limit checking, 5.4 type checking) and returns the
   * linear address. Flat segments skip the checks.
   */
  linear(seg: number, offset: number, size: number, write: boolean): number {
    const s = this.segs[seg];
    if (write ? s.flatWrite : s.flatRead) return offset | 0;
    return checkedLinear(s, seg === SS, offset >>> 0, size, write);
  }

  /** Effective address (offset) of a decoded memory operand. */
  ea(i: Instr): number {
    if (i.addr32) {
      let v = i.disp;
      if (i.base >= 0) v += this.regs[i.base];
      if (i.index >= 0) v += this.regs[i.index] << i.scale;
      return v | 0;
    }
    let v = i.disp;
    if (i.base >= 0) v += this.regs[i.base] & 0xffff;
    if (i.index >= 0) v += this.regs[i.index] & 0xffff;
    return v & 0xffff;
  }

  /** Linear address of a decoded memory operand of `size` bytes. */
  eaLinear(i: Instr, size: number, write: boolean): number {
    return this.linear(i.seg, this.ea(i), size, write);
  }

  /** The r/m operand (register or memory) at the instruction's operand size. */
  readRm(i: Instr): number {
    if (i.mod === 3) return this.getReg(i.rm, i.size);
    return this.readSized(this.eaLinear(i, i.size, false), i.size);
  }

  writeRm(i: Instr, v: number): void {
    if (i.mod === 3) this.setReg(i.rm, i.size, v);
    else this.writeSized(this.eaLinear(i, i.size, true), i.size, v);
  }

  // ---- stack -----------------------------------------------------------------------------

  /** Pushes with the stack's address size (SS.B) and the given operand size. */
  push(v: number, size: number): void {
    const ssReg = this.segs[SS];
    if (ssReg.big) {
      const esp = (this.regs[4] - size) >>> 0;
      this.writeSized(this.linear(SS, esp, size, true), size, v);
      this.regs[4] = esp;
    } else {
      const sp = (this.regs[4] - size) & 0xffff;
      this.writeSized(this.linear(SS, sp, size, true), size, v);
      this.regs[4] = (this.regs[4] & ~0xffff) | sp;
    }
  }

  pop(size: number): number {
    const v = this.peek(size, 0);
    this.adjustSp(size);
    return v;
  }

  /** Reads the stack at ESP + `offset` without popping. */
  peek(size: number, offset: number): number {
    const ssReg = this.segs[SS];
    const sp = ssReg.big ? (this.regs[4] + offset) >>> 0 : (this.regs[4] + offset) & 0xffff;
    return this.readSized(this.linear(SS, sp, size, false), size) >>> 0;
  }

  adjustSp(delta: number): void {
    if (this.segs[SS].big) this.regs[4] = this.regs[4] + delta;
    else this.regs[4] = (this.regs[4] & ~0xffff) | ((this.regs[4] + delta) & 0xffff);
  }

  // ---- code fetch ------------------------------------------------------------------------

  /** Reads instruction bytes for the decoder (fetch access: #PF with the fetch's rights). */
  fetchByte(linear: number): number {
    const p = this.translate(linear >>> 0, 2, this.cplValue === 3);
    return this.readPhysical(p, 1);
  }

  private instructionAt(eip: number): Instr {
    const cs = this.segs[CS];
    const linear = (cs.base + eip) >>> 0;
    // PERF: sequential execution stays in one page: no TLB or cache-page lookup.
    if (linear >>> 12 === this.fetchPage && eip <= cs.limit) {
      const cached = this.fetchCode[linear & 0xfff];
      if (cached !== undefined && cached.codeBig === cs.big) return cached;
    }
    if (eip > cs.limit) throw gp(0);
    const e = this.itlb[linear >>> 12];
    const need =
      this.cplValue === 3
        ? T_VALID | T_USER | T_RAM
        : T_VALID | T_RAM | ((this.cr4Value & CR4_SMEP) !== 0 ? T_SUPER : 0);
    let physical: number;
    if ((e & need) === need) physical = ((e & 0xfffff000) | (linear & 0xfff)) >>> 0;
    else {
      physical = this.translate(linear, 2, this.cplValue === 3);
      if (physical >= this.ram.length || this.memory.mmioPages[physical >>> 12] === 1) {
        return this.codeCache.decodeUncached(linear, cs.big);
      }
    }
    const ppage = physical >>> 12;
    let page = this.code[ppage];
    if (page !== undefined) {
      this.fetchPage = linear >>> 12;
      this.fetchCode = page;
      this.fetchPhysical = ppage;
      const instr = page[physical & 0xfff];
      if (instr !== undefined && instr.codeBig === cs.big) return instr;
    }
    if ((linear & 0xfff) > 0xff0) return this.codeCache.decodeUncached(linear, cs.big);
    const instr = decode(this.ram, physical, cs.big);
    if (instr.length === 0 || (physical & 0xfff) + instr.length > 0x1000) {
      return this.codeCache.decodeUncached(linear, cs.big);
    }
    if (page === undefined) {
      page = this.codeCache.addPage(ppage);
      this.tlbs.protectCodePage(ppage);
    }
    page[physical & 0xfff] = instr;
    return instr;
  }

  /** Compiles the block starting at `instr` (hot, 32-bit code, cached in RAM), if any. */
  private compileAt(instr: Instr, eip: number, csBase: number): Block | undefined {
    const linear = (csBase + eip) | 0;
    const e = this.itlb[linear >>> 12];
    if ((e & (T_VALID | T_RAM)) !== (T_VALID | T_RAM)) return undefined;
    const physical = (e & 0xfffff000) | (linear & 0xfff);
    if (this.code[physical >>> 12]?.[physical & 0xfff] !== instr) return undefined;
    if (this.bound.has(linear >>> 0)) return undefined; // the loop calls the handler there
    this.blockContext ??= {
      cpu: this,
      regs: this.regs,
      view: this.view,
      ram: this.ram,
      dtlb: this.dtlb,
      counters: this.counters,
      gp,
      shift,
    };
    return compileBlock(
      this.blockContext,
      instr,
      eip,
      physical,
      csBase,
      this.codeGeneration[physical >>> 12],
      this.blockEpoch,
      (p) => this.codeCache.decodedAt(p),
      (l) => this.bound.has(l >>> 0),
    );
  }

  /**
   * For compiled blocks, after a slow memory path or a generic handler: the loop must run next
   * (an interrupt is deliverable, the block's code page was written, bound entries changed, or
   * the slice would end before the block's last instruction: `before` more instructions, of
   * which `multiplies` cost costs.mul).
   */
  blockMustLeave(
    page: number,
    generation: number,
    epoch: number,
    before: number,
    multiplies: number,
  ): boolean {
    const costs = this.costs;
    return (
      (this.interruptLine && (this.flagsBits & F.IF) !== 0) ||
      this.codeGeneration[page] !== generation ||
      this.blockEpoch !== epoch ||
      this.cycles + before * costs.base + multiplies * (costs.mul - costs.base) >= this.sliceEnd
    );
  }

  /**
   * For compiled blocks: charges `n` more instructions at the base cost (none if `n` <= 0), to
   * bring the clock up to date before a slow path, a handler or an exit. One call in place of
   * the arithmetic written out at every such place keeps blocks' source small.
   */
  blockSync(n: number): void {
    if (n > 0) {
      this.cycles += n * this.costs.base;
      this.counters.instructions += n;
    }
  }

  /** Segment registers the blocks' inline memory paths may use now (block.ts STACK_BIG). */
  private flatSegments(): number {
    let mask = 0;
    for (let s = 0; s < 6; s++) if (this.segs[s].flatRead && this.segs[s].flatWrite) mask |= 1 << s;
    if (this.segs[SS].big) mask |= STACK_BIG;
    return mask;
  }

  // ---- bound entries, interrupts, running -------------------------------------------------

  /**
   * Binds a TypeScript handler to a linear address in the default entry table (DESIGN.md
   * decision 6); `name` (default: the address) is what messages and snapshot audits call it.
   * Code written before entry tables existed calls this; a VM's VMM binds in its own table
   * (`createEntryTable`). Throws if the address is bound already in the default table: entry
   * addresses are the host code's choice, never the guest's, so a second binding is a bug in
   * that code, and this signature (kept as it was) has no room for a refusal.
   */
  bindEntry(linear: number, handler: BoundHandler, name?: string): Unbind {
    const r = this.defaultEntries.bind(linear, name ?? `entry@${hex32(linear)}`, handler);
    if (typeof r === 'string') throw new Error(r);
    return r;
  }

  /**
   * A new, empty entry table for one VM or address space, named for messages and snapshots
   * (the name is unique per CPU: a second table of the same name is refused with an Error).
   * Binding in it takes effect when it is in use (`useEntryTable`).
   */
  createEntryTable(name: string): EntryTable {
    if (this.entryTables.has(name)) throw new Error(`entry table '${name}' exists already`);
    const table = new EntryTable(name, (t) => {
      t.epoch = ++this.epochs;
      if (t === this.entries) this.entriesChanged();
    });
    table.epoch = ++this.epochs;
    this.entryTables.set(name, table);
    return table;
  }

  /** This CPU's entry table of that name, if any (after a restore: `state.entries.active`). */
  entryTable(name: string): EntryTable | undefined {
    return this.entryTables.get(name);
  }

  /** The entry table the CPU consults now. */
  get activeEntryTable(): EntryTable {
    return this.entries;
  }

  /**
   * Makes `table` (one of this CPU's) the one consulted before each fetch: a hypervisor calls
   * it when it switches to another VM. Compiled blocks are dropped as by a new binding.
   */
  useEntryTable(table: EntryTable): void {
    if (this.entryTables.get(table.name) !== table) {
      throw new Error(`entry table '${table.name}' does not belong to this CPU`);
    }
    if (table === this.entries) return;
    this.entries = table;
    this.bound = table.handlers;
    this.entriesChanged();
  }

  /**
   * The bound entries changed: compiled blocks may run past an address that is bound now (they
   * stop before bound addresses known when compiled), and the run loop tests once per slice
   * whether any entry is bound, so the slice ends here and the next one looks again.
   */
  private entriesChanged(): void {
    this.blockEpoch = this.entries.epoch;
    this.sliceEnd = -1;
  }

  /**
   * After a restore, once the owners bound their handlers again and selected their table: the
   * saved bindings nobody bound again, bindings that were not saved, or another table in use,
   * as one message; undefined when the entries are as saved (like the clock's `unrestored`).
   */
  unrestoredEntries(saved: CpuState): string | undefined {
    return entriesDiffer(saved.entries, this.saveEntries());
  }

  /** Every entry table and the one in use, as a snapshot holds them (system/state.ts). */
  saveEntries(): EntriesState {
    return {
      active: this.entries.name,
      tables: [...this.entryTables.values()].map((t) => t.save()),
    };
  }

  attachMonitor(monitor: Monitor | null): void {
    this.monitor = monitor;
  }

  /**
   * For monitors: delivers an event into a guest-level handler with a hardware-like frame
   * (system/interrupts.ts `bounce`). Raises the architectural fault if the handler or stack is
   * not usable.
   */
  bounce(
    vector: number,
    errorCode: number | undefined,
    handler: { cs: number; eip: number },
    options: { stack?: { ss: number; esp: number }; clearIf?: boolean } = {},
  ): void {
    bounce(this, vector, errorCode, handler, options);
  }

  /** The INTR line from the interrupt controller; sampled at instruction boundaries. */
  setInterruptLine(level: boolean): void {
    this.interruptLine = level;
  }

  /**
   * Something scheduled work at `cycle` (a device event): a run in progress returns 'limit' by
   * then instead of running on to the limit it was given.
   */
  shortenRun(cycle: number): void {
    if (cycle < this.runLimit) this.runLimit = cycle;
    if (cycle < this.sliceEnd) this.sliceEnd = cycle;
  }

  requestStop(): void {
    this.stopRequested = true;
    this.sliceEnd = -1;
  }

  /** HLT state: the CPU waits for an interrupt (monitors may set it for a blocked guest). */
  get halted(): boolean {
    return this.haltedState;
  }

  set halted(value: boolean) {
    this.haltedState = value;
    if (value) this.sliceEnd = -1;
  }

  /** The monitor or a VMM charges its own work to the simulated clock. */
  charge(cycles: number): void {
    this.cycles += cycles;
  }

  /** Executes exactly one instruction or one event delivery. */
  step(): RunResult {
    return this.run(this.cycles + 1, 1);
  }

  /**
   * Runs until `cycles >= untilCycle`, HLT, shutdown, or `requestStop()`. `maxInstructions`
   * bounds the number of instructions (for stepping and tests).
   */
  run(untilCycle: number, maxInstructions = Infinity): RunResult {
    this.runLimit = untilCycle;
    this.stopRequested = false;
    let budget = maxInstructions;
    while (true) {
      if (this.shutdownReason !== undefined) return 'shutdown';
      if (this.stopRequested) return 'stop';
      // An NMI wakes HLT and is taken whatever IF, but not inside a MOV SS shadow: the
      // instruction after it runs first (a slice of one).
      const nmi = this.nmiDeliverable;
      if (this.halted) {
        if ((this.interruptLine && (this.flagsBits & F.IF) !== 0) || nmi) this.halted = false;
        else return 'halt';
      }
      if (this.cycles >= this.runLimit || budget <= 0) return 'limit';
      if (nmi && !this.interruptShadow) {
        this.nmiPending = false;
        this.nmiBlocked = true;
        this.instrEip = this.eip;
        this.raise(Vector.NMI, undefined, 'interrupt');
        budget--;
        continue;
      }
      try {
        // PERF: the inner loop runs in slices, so V8 re-optimizes it after a deoptimization
        // instead of staying in on-stack-replaced baseline code for the whole run.
        const slice = nmi ? 1 : Math.min(budget, 8192);
        this.sliceEnd = this.runLimit;
        budget -= slice - this.runInner(slice);
      } catch (e) {
        if (!(e instanceof CpuFault)) throw e;
        this.eip = this.instrEip;
        this.raise(e.vector, e.errorCode, 'exception');
        budget--;
      }
    }
  }

  private runInner(budget: number): number {
    const costs = this.costs;
    const counters = this.counters;
    // The CS register object is loaded in place, never replaced: safe to hoist. Its fields can
    // change only in a generic handler, an event delivery or a bound entry, after which they are
    // read again; the inline forms below never touch CS.
    // PERF: the four places that read them again are written out; one `stale` flag tested at
    // the top of the loop instead measured 8% slower for the interpreter (bench:cpu A/B).
    const cs = this.segs[CS];
    let csBase = cs.base;
    let csBig = cs.big;
    let csLimit = cs.limit;
    const bound = this.bound.size !== 0;
    const regs = this.regs;
    // The data TLB's fast path inline for the commonest loads and stores; the access masks depend
    // on the CPL, which changes only where CS is read again.
    const dtlb = this.dtlb;
    const view = this.view;
    const ram = this.ram;
    let readMask = this.readMask;
    let writeMask = this.writeMask;
    const blocks = this.blocksEnabled;
    const threshold = this.blockThreshold;
    const generation = this.codeGeneration;
    let flat = -1; // the blocks' flat-segment mask (flatSegments), -1 until a block needs it
    // PERF: the instruction the last one linked to (Instr.next/target), if any, and the one whose
    // link the next cache lookup should fill in. Links stay inside one code page, are made only
    // between cache hits, and are followed only while nothing but inline forms ran: CS, paging
    // and the fetch page change only in generic handlers and event delivery, which reset both.
    let predicted: Instr | undefined;
    let linkFrom: Instr | undefined;
    let linkTarget = false;
    let linkPage = -1; // the linear page linkFrom was fetched from: links never leave it
    while (budget > 0 && this.cycles < this.sliceEnd) {
      if (this.interruptLine && (this.flagsBits & F.IF) !== 0 && !this.interruptShadow) {
        this.instrEip = this.eip;
        const vector = this.platform.acknowledgeInterrupt() & 0xff;
        this.raise(vector, undefined, 'interrupt');
        budget--;
        csBase = cs.base;
        csBig = cs.big;
        csLimit = cs.limit;
        readMask = this.readMask;
        writeMask = this.writeMask;
        flat = -1;
        predicted = linkFrom = undefined;
        continue;
      }
      if (this.interruptShadow) this.interruptShadow = false;
      const eip = this.eip;
      this.instrEip = eip;
      if (bound && this.callBound(eip)) {
        budget--;
        csBase = cs.base;
        csBig = cs.big;
        csLimit = cs.limit;
        readMask = this.readMask;
        writeMask = this.writeMask;
        flat = -1;
        predicted = linkFrom = undefined;
        continue;
      }
      let instr = predicted;
      if (instr === undefined || instr.dead || eip > csLimit) {
        // The common case inline: same code page as the last fetch, instruction decoded.
        const linear = (csBase + eip) | 0;
        instr = linear >>> 12 === this.fetchPage ? this.fetchCode[linear & 0xfff] : undefined;
        if (instr === undefined || instr.codeBig !== csBig || eip > csLimit) {
          instr = this.instructionAt(eip);
        } else if (
          linkFrom !== undefined &&
          linear >>> 12 === linkPage &&
          linkFrom.codeBig === csBig
        ) {
          if (linkTarget) linkFrom.target = instr;
          else linkFrom.next = instr;
        }
        linkFrom = undefined;
      }
      if (blocks) {
        if (this.blockShadow > 0) {
          this.blockShadow--;
        } else if (instr.block === undefined && ++instr.heat === threshold && csBig) {
          if (this.blockSource >= this.blockAllowance + this.blockInstructions * this.blockBudget) {
            // The budget is spent: hot again later, it may be compiled then.
            instr.heat = 0;
          } else {
            // Compiled now, and run from this very entry (so threshold 1 runs all code as blocks).
            instr.block = this.compileAt(instr, eip, csBase);
            if (instr.block !== undefined) {
              this.blocksCompiled++;
              this.blockSource += instr.block.size;
            }
          }
        }
        const block = instr.block;
        if (block === undefined) {
          // Interpreted (not hot yet, or nothing to compile here).
        } else if (
          (flat >= 0 || (flat = this.flatSegments()) >= 0) &&
          this.blockReady(block, eip, csBase, csLimit, flat, budget)
        ) {
          budget = this.runBlocks(block, budget, readMask, writeMask, csBase, csLimit, flat);
          predicted = linkFrom = undefined;
          if (this.lastBlockGeneric) {
            // The last instruction went through its handler: it may have changed anything.
            csBase = cs.base;
            csBig = cs.big;
            csLimit = cs.limit;
            readMask = this.readMask;
            writeMask = this.writeMask;
            flat = -1;
          }
          continue;
        } else if (block.generation !== generation[block.page] || block.epoch !== this.blockEpoch) {
          // Its code changed, or bound entries did: compile again when hot again.
          block.after0 = block.after1 = undefined;
          instr.block = undefined;
          instr.heat = 0;
        } else {
          // Valid, but not now: its instructions run here this once (blockShadow).
          this.blockShadow = block.count - 1;
        }
      }
      this.eip = csBig ? (eip + instr.length) >>> 0 : (eip + instr.length) & 0xffff;
      this.cycles += costs.base;
      counters.instructions++;
      budget--;
      // Falling through to the next instruction is the rule; jumps and generic handlers change it.
      predicted = instr.next;
      if (predicted === undefined) {
        linkFrom = instr;
        linkTarget = false;
        linkPage = ((csBase + eip) | 0) >>> 12;
      }
      // PERF: the most frequent forms inline (ops/fast.ts names the handler each case mirrors).
      switch (instr.fast) {
        case Fast.FAST_NONE:
        default:
          instr.exec(this, instr);
          csBase = cs.base;
          csBig = cs.big;
          csLimit = cs.limit;
          readMask = this.readMask;
          writeMask = this.writeMask;
          flat = -1;
          predicted = linkFrom = undefined;
          break;
        case Fast.FAST_MOV_RR:
          regs[instr.dst] = regs[instr.src];
          break;
        case Fast.FAST_MOV_LOAD: {
          // ops/fast.ts ea32, written out: as a call it measured about 6% slower here.
          let ea = instr.disp;
          if (instr.base >= 0) ea += regs[instr.base];
          if (instr.index >= 0) ea += regs[instr.index] << instr.scale;
          const lin = this.linear(instr.seg, ea | 0, 4, false);
          const e = dtlb[lin >>> 12];
          regs[instr.reg] =
            (e & readMask) === readMask && (lin & 0xfff) <= 0xffc
              ? view.getInt32((e & 0xfffff000) | (lin & 0xfff), true)
              : this.read32(lin);
          break;
        }
        case Fast.FAST_MOV_STORE: {
          let ea = instr.disp;
          if (instr.base >= 0) ea += regs[instr.base];
          if (instr.index >= 0) ea += regs[instr.index] << instr.scale;
          const lin = this.linear(instr.seg, ea | 0, 4, true);
          const e = dtlb[lin >>> 12];
          if ((e & writeMask) === writeMask && (lin & 0xfff) <= 0xffc)
            view.setInt32((e & 0xfffff000) | (lin & 0xfff), regs[instr.reg], true);
          else this.write32(lin, regs[instr.reg]);
          break;
        }
        case Fast.FAST_MOV_IMM:
          regs[instr.dst] = instr.imm;
          break;
        case Fast.FAST_LEA: {
          let ea = instr.disp;
          if (instr.base >= 0) ea += regs[instr.base];
          if (instr.index >= 0) ea += regs[instr.index] << instr.scale;
          regs[instr.reg] = ea | 0;
          break;
        }
        case Fast.FAST_JCC:
          if (this.condition(instr.opcode & 15)) {
            const target = (this.eip + instr.imm) >>> 0;
            if (target > csLimit) throw gp(0);
            this.eip = target;
            predicted = instr.target;
            linkFrom = predicted === undefined ? instr : undefined;
            linkTarget = true;
            linkPage = ((csBase + eip) | 0) >>> 12;
          }
          break;
        case Fast.FAST_JMP: {
          const target = (this.eip + instr.imm) >>> 0;
          if (target > csLimit) throw gp(0);
          this.eip = target;
          predicted = instr.target;
          linkFrom = predicted === undefined ? instr : undefined;
          linkTarget = true;
          linkPage = ((csBase + eip) | 0) >>> 12;
          break;
        }
        case Fast.FAST_CMP_RR: {
          const d = regs[instr.dst];
          const s = regs[instr.src];
          this.setLazy(F.LAZY_SUB, d, s, (d - s) | 0, -1);
          break;
        }
        case Fast.FAST_ADD_RR: {
          const d = regs[instr.dst];
          const s = regs[instr.src];
          const r = (d + s) | 0;
          this.setLazy(F.LAZY_ADD, d, s, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_TEST_RR:
          this.setLazy(F.LAZY_LOGIC, 0, 0, regs[instr.dst] & regs[instr.src], -1);
          break;
        case Fast.FAST_CMP_RI: {
          const d = regs[instr.dst];
          this.setLazy(F.LAZY_SUB, d, instr.imm, (d - instr.imm) | 0, -1);
          break;
        }
        case Fast.FAST_ADD_RI: {
          const d = regs[instr.dst];
          const r = (d + instr.imm) | 0;
          this.setLazy(F.LAZY_ADD, d, instr.imm, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_INC: {
          const v = regs[instr.dst];
          const r = (v + 1) | 0;
          this.setLazyKeepCarry(F.LAZY_ADD, v, 1, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_DEC: {
          const v = regs[instr.dst];
          const r = (v - 1) | 0;
          this.setLazyKeepCarry(F.LAZY_SUB, v, 1, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_XOR_RR: {
          const r = regs[instr.dst] ^ regs[instr.src];
          this.setLazy(F.LAZY_LOGIC, 0, 0, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_SUB_RR: {
          const d = regs[instr.dst];
          const s = regs[instr.src];
          const r = (d - s) | 0;
          this.setLazy(F.LAZY_SUB, d, s, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_SUB_RI: {
          const d = regs[instr.dst];
          const r = (d - instr.imm) | 0;
          this.setLazy(F.LAZY_SUB, d, instr.imm, r, -1);
          regs[instr.dst] = r;
          break;
        }
        case Fast.FAST_MOVZX8_LOAD: {
          let ea = instr.disp;
          if (instr.base >= 0) ea += regs[instr.base];
          if (instr.index >= 0) ea += regs[instr.index] << instr.scale;
          const lin = this.linear(instr.seg, ea | 0, 1, false);
          const e = dtlb[lin >>> 12];
          regs[instr.reg] =
            (e & readMask) === readMask ? ram[(e & 0xfffff000) | (lin & 0xfff)] : this.read8(lin);
          break;
        }
        case Fast.FAST_IMUL_RRI: {
          this.cycles += costs.mul - costs.base;
          const a = regs[instr.src];
          const low = Math.imul(a, instr.imm);
          regs[instr.dst] = low;
          this.setMulFlags(low, -1, a * instr.imm !== low);
          break;
        }
        case Fast.FAST_CALL: {
          const target = (this.eip + instr.imm) >>> 0;
          this.push(this.eip, 4);
          if (target > csLimit) throw gp(0);
          this.eip = target;
          predicted = linkFrom = undefined;
          break;
        }
        case Fast.FAST_RET: {
          const target = this.peek(4, 0);
          if (target > csLimit) throw gp(0);
          this.eip = target;
          this.adjustSp(4);
          predicted = linkFrom = undefined;
          break;
        }
        case Fast.FAST_PUSH:
          this.push(regs[instr.dst], 4);
          break;
        case Fast.FAST_POP:
          regs[instr.dst] = this.pop(4);
          break;
      }
    }
    return budget;
  }

  /**
   * The block may run now, as the interpreter would run it: compiled for this EIP and CS base,
   * its code unchanged, its segments flat, enough budget, inside CS, the slice not ending before
   * its last instruction, and no interrupt waiting (after STI or MOV SS it waits one
   * instruction, not a whole block).
   */
  private blockReady(
    block: Block,
    eip: number,
    csBase: number,
    csLimit: number,
    flat: number,
    budget: number,
  ): boolean {
    return (
      block.eip === eip &&
      block.csBase === csBase &&
      block.generation === this.codeGeneration[block.page] &&
      block.epoch === this.blockEpoch &&
      (block.segments & ~flat) === 0 &&
      budget >= block.count &&
      block.lastByte <= csLimit &&
      block.fits(this.cycles, this.sliceEnd, this.costs) &&
      !(this.interruptLine && (this.flagsBits & F.IF) !== 0)
    );
  }

  /**
   * Runs `first` and the blocks that follow it while each next one is ready at once (same code
   * page, compiled, nothing for the loop to do in between); returns the budget left.
   * `lastBlockGeneric` tells the loop that the last one ended in a generic handler.
   */
  private runBlocks(
    first: Block,
    budget: number,
    readMask: number,
    writeMask: number,
    csBase: number,
    csLimit: number,
    flat: number,
  ): number {
    let block = first;
    for (;;) {
      this.blockEntries++;
      const ran = block.code(readMask, writeMask, csLimit, budget);
      budget -= ran;
      this.blockInstructions += ran;
      this.lastBlockGeneric = block.generic;
      if (block.generic || budget <= 0 || this.cycles >= this.sliceEnd) return budget;
      if (this.interruptLine && (this.flagsBits & F.IF) !== 0) return budget;
      // A bound entry is never the head of a valid block (compileAt, bindEntry's epoch).
      const eip = this.eip;
      const next = this.blockAfter(block, (csBase + eip) | 0, eip);
      if (next === undefined) return budget;
      if (!this.blockReady(next, eip, csBase, csLimit, flat, budget)) return budget;
      block = next;
    }
  }

  /**
   * The block `blockAt` finds at `linear` (EIP `eip`) after `block` ran. PERF: the block
   * remembers the last two blocks that followed it, and one of them is the one blockAt would
   * find when it heads this EIP in the fetch page's physical page, if it is valid (blockReady
   * tells): a valid block is always its head instruction's block (a write there retires the
   * instruction and bumps the generation; dropCode bumps the epoch). blockAt's chain of loads
   * (the page's instructions, the Instr, its Block) missed the data cache at each step.
   */
  private blockAfter(block: Block, linear: number, eip: number): Block | undefined {
    if (linear >>> 12 === this.fetchPage) {
      const a = block.after0;
      if (a !== undefined && a.eip === eip && a.page === this.fetchPhysical) return a;
      const b = block.after1;
      if (b !== undefined && b.eip === eip && b.page === this.fetchPhysical) return b;
    }
    const next = this.blockAt(linear);
    if (next !== undefined && next !== block.after0) {
      block.after1 = block.after0;
      block.after0 = next;
    }
    return next;
  }

  /**
   * The block headed at `linear` (32-bit code), as the loop's fetch would find it without a page
   * walk: in the fetch page, or in another page whose translation is in the code TLB with the
   * rights a fetch needs at this CPL (instructionAt on a code-TLB hit, which makes that page the
   * fetch page, as here). A miss returns undefined and leaves the walk, its counters and its
   * faults to the loop. PERF: blocks used to follow each other only inside one page; a CALL, RET
   * or JMP to another page went back to the loop, which was 98% of the loop's block entries in
   * bench:cpu's `realcode` (1.75 M of 1.79 M) and 82-89% in a 16 MB netperf row (native,
   * xen-pre). In turn with the commit before, on a loaded machine, the busiest thread's CPU
   * time: a 256 MB native row 11.2 and 11.9 s against 14.0 s, a 64 MB xen-pre row 3.85 and
   * 4.04 s against 4.33 and 4.38 s (src/x86/README.md, "Blocks across pages").
   */
  private blockAt(linear: number): Block | undefined {
    if (linear >>> 12 === this.fetchPage) return this.fetchCode[linear & 0xfff]?.block;
    const e = this.itlb[linear >>> 12];
    const need =
      this.cplValue === 3
        ? T_VALID | T_USER | T_RAM
        : T_VALID | T_RAM | ((this.cr4Value & CR4_SMEP) !== 0 ? T_SUPER : 0);
    if ((e & need) !== need) return undefined;
    const page = this.code[e >>> 12];
    if (page === undefined) return undefined;
    this.fetchPage = linear >>> 12;
    this.fetchCode = page;
    this.fetchPhysical = e >>> 12;
    return page[linear & 0xfff]?.block;
  }

  /**
   * Calls the handler bound at CS:`eip`, if any, then returns as a near RET would (the guest
   * reached the entry with a near CALL). The call and its return act as one instruction at the
   * entry: a CpuFault in either puts the general registers (ESP included) and EFLAGS back as
   * they were at the call and is delivered as a fault at the entry (EIP = the entry), so that
   * the handler runs again from the start once the fault is dealt with (monitor.ts,
   * `BoundHandler`). Everything else the handler did stays: memory it wrote, other registers it
   * loaded, cycles it charged, counters (this call's `boundCalls` too), CR2 and TLB fills.
   * PERF: the copy below is all the rule costs when nothing faults (two small typed arrays, no
   * allocation); the try/catch is free on the normal path.
   */
  private callBound(eip: number): boolean {
    const handler = this.bound.get((this.segs[CS].base + eip) >>> 0);
    if (handler === undefined) return false;
    this.counters.boundCalls++;
    this.boundRegs.set(this.regs);
    const flags = this.boundFlags;
    flags[0] = this.flagsBits;
    flags[1] = this.lazyMask;
    flags[2] = this.lazyOp;
    flags[3] = this.lazyRes;
    flags[4] = this.lazyDst;
    flags[5] = this.lazySrc;
    flags[6] = this.lazyCin;
    flags[7] = this.lazySizeMask;
    try {
      handler();
      // The guest reached the entry with a near CALL: return to it (pop EIP).
      this.eip = this.pop(this.segs[CS].big ? 4 : 2);
    } catch (e) {
      if (e instanceof CpuFault) this.undoBoundCall(eip);
      throw e;
    }
    return true;
  }

  /** A bound call faulted: registers and flags as at the call, EIP at the entry. */
  private undoBoundCall(eip: number): void {
    this.regs.set(this.boundRegs);
    const flags = this.boundFlags;
    this.flagsBits = flags[0];
    this.lazyMask = flags[1];
    this.lazyOp = flags[2];
    this.lazyRes = flags[3];
    this.lazyDst = flags[4];
    this.lazySrc = flags[5];
    this.lazyCin = flags[6];
    this.lazySizeMask = flags[7];
    this.eip = eip;
    this.instrEip = eip;
  }

  /**
   * Delivers an exception, interrupt or INT n: to the monitor if one is attached, else through
   * the IDT (system/interrupts.ts). Double and triple faults are handled there.
   */
  raise(vector: number, errorCode: number | undefined, kind: EventKind): void {
    if (kind === 'exception' && vector < 32) this.counters.exceptions[vector]++;
    else if (kind === 'interrupt') this.counters.interrupts++;
    else if (kind === 'software') this.counters.softwareInterrupts++;
    if (vector === Vector.PF && kind === 'exception') {
      /* CR2 was set by the page walk. */
    }
    this.halted = false;
    deliverEvent(this, vector, errorCode, kind);
  }

  /** Triple fault: the CPU stops; the machine reports the reason (SDM 3A 6.15, #DF). */
  shutdown(reason: string): void {
    this.shutdownReason = reason;
    this.sliceEnd = -1;
  }

  /** Segment base + EIP of the next instruction. */
  get linearEip(): number {
    return (this.segs[CS].base + this.eip) >>> 0;
  }

  /** Data segment default for string sources and the like. */
  get defaultSeg(): number {
    return DS;
  }

  /**
   * The CPU's state between instructions (system/state.ts: what is in it and why the rest need
   * not be): plain JSON data. Saving changes nothing in the CPU.
   */
  save(): CpuState {
    return saveCpu(this, this.internals());
  }

  /**
   * Puts a saved state back (the same RAM contents are the machine's to restore); the CPU then
   * runs on exactly as the saved one would have. Caches are dropped, not counted as a TLB flush.
   * Entry tables are left as they are: their owners bind their handlers again and select the
   * table in use, and `unrestoredEntries(state)` checks that they did. Throws an Error for a
   * state of another version or a malformed one.
   */
  restore(state: CpuState): void {
    restoreCpu(this, state, this.internals());
    this.dropCode();
  }

  private internals(): CpuInternals {
    return { tlbs: this.tlbs, memory: this.memory, interruptLine: this.interruptLine };
  }
}
