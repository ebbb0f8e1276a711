/**
 * The local APIC of the machine's one processor, in xAPIC mode (Intel SDM Vol. 3A, chapter 10
 * "Advanced Programmable Interrupt Controller (APIC)"; the Pentium 4's: version 0x14, six LVT
 * entries). The IA32_APIC_BASE MSR (10.4.4) and the CPUID.1:EDX APIC flag, the register page at
 * 0xFEE00000 (10.4.1, table 10-1): ID, version, TPR/APR/PPR, EOI, LDR/DFR, SVR with the software
 * enable, ISR/TMR/IRR, ESR, ICR, the LVTs and the timer.
 *
 * Where the 8259 pair comes in: the PIC's INTR output is wired to LINT0. The machine starts with
 * the APIC as a PC BIOS leaves it for an operating system that uses only the 8259s (virtual wire
 * mode, MP Specification 1.4, 3.6.2.2): globally enabled, software-disabled, LINT0 in ExtINT
 * mode, LINT1 as NMI. In ExtINT mode (or with the APIC globally disabled) the PIC drives the
 * CPU's INTR line exactly as it would without an APIC, and the INTA cycle goes to the PIC; so a
 * kernel that never touches the APIC runs as on a PC without one. QEMU does the same at reset
 * (hw/intc/apic_common.c: "LINT0 delivery mode on CPU #0 is set to ExtInt at initialization
 * time typically by BIOS").
 *
 * Interrupts the APIC accepts itself (its timer, its LVT error entry, LINT0/1 in fixed mode, an
 * IPI the processor sends to itself through the ICR) go through IRR and ISR with the priority
 * rules of 10.8.3: a vector is dispatched when its priority class (bits 7:4) is above the
 * processor priority (PPR, from TPR and the highest in-service vector); EOI retires the highest
 * in-service vector. They take precedence over the 8259's ExtINT (QEMU: cpu_get_pic_interrupt
 * asks the APIC first).
 *
 * The machine has one processor: an IPI to another APIC ID, or with the shorthand "all
 * excluding self", reaches nobody. INIT and SIPI to self are not accepted (the SDM's table of
 * valid ICR combinations, 10.6.1, allows neither with the self shorthand; to its own ID a BSP
 * would reset, which a multiboot kernel has no way to come back from), and are counted.
 *
 * The timer (10.5.4) counts the bus clock: the 200 MHz front-side bus clock of a 2.8 GHz
 * Pentium 4 (a 14× multiplier), divided by the divide configuration register, on the simulated
 * clock; one-shot and periodic modes. TSC-deadline mode (10.5.4.1, CPUID.1:ECX bit 24) fires
 * when the TSC reaches IA32_TSC_DEADLINE (MSR 0x6E0): the TSC is the CPU's cycle count plus its
 * offset, so the deadline is a cycle on the same clock. It is armed against the TSC as it is at
 * the MSR write; a later WRMSR to the TSC does not move it (SDM: the comparison is with the
 * TSC; no test kernel here moves the TSC under an armed deadline).
 */
import type {
  AccessSize,
  BusAccess,
  Clock,
  MmioDevice,
  Registration,
  Stateful,
  Timer,
  TimerState,
} from '../../device.ts';
import { arrayOf, bool, checkState, nullable, num, StateError, timer } from '../../state.ts';
import type { ApicMessage } from './IoApic.ts';

/** IA32_APIC_BASE (SDM Vol. 4, table 2-2, MSR 0x1B). */
export const MSR_APIC_BASE = 0x1b;
/** CPUID.1:EDX bit 9: an on-chip APIC, present and globally enabled (SDM Vol. 2A, CPUID). */
export const CPUID_EDX_APIC = 1 << 9;
/** IA32_TSC_DEADLINE (SDM Vol. 4, table 2-2), and CPUID.1:ECX bit 24 that announces it. */
export const MSR_TSC_DEADLINE = 0x6e0;
export const CPUID_ECX_TSC_DEADLINE = 1 << 24;

export const APIC_DEFAULT_BASE = 0xfee00000;
const BASE_BSP = 1 << 8;
const BASE_ENABLE = 1 << 11;
/** The bits IA32_APIC_BASE can hold: BSP (read-only), global enable, base 12–31 (no PAE). */
const BASE_WRITABLE = 0xfffff000 | BASE_ENABLE;

/** The bus clock the timer counts (see above). */
export const APIC_BUS_HZ = 200_000_000;

/** Version register: version 0x14 (an xAPIC), max LVT entry 5 (six entries). */
const VERSION = 0x00050014;

const LVT_MASKED = 1 << 16;
const LVT_DELIVERY_STATUS = 1 << 12;
const LVT_LEVEL = 1 << 15;
const LVT_REMOTE_IRR = 1 << 14;

/** The LVT entries in register order (offsets 0x320–0x370), with the bits each can hold. */
const LVT = { timer: 0, thermal: 1, perf: 2, lint0: 3, lint1: 4, error: 5 } as const;
const LVT_WRITABLE = [
  0x000600ff | LVT_MASKED, // timer: vector, mask, mode
  0x000107ff, // thermal: vector, delivery mode, mask
  0x000107ff, // performance counters
  0x0001a7ff, // LINT0: vector, delivery mode, polarity, trigger mode, mask
  0x0001a7ff, // LINT1
  0x000100ff, // error: vector, mask
];

const DELIVERY_FIXED = 0;
const DELIVERY_LOWEST = 1;
const DELIVERY_SMI = 2;
const DELIVERY_NMI = 4;
const DELIVERY_INIT = 5;
const DELIVERY_STARTUP = 6;
const DELIVERY_EXTINT = 7;

/** ESR bits (10.5.3). */
const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
const ESR_ILLEGAL_REGISTER = 1 << 7;

export interface LocalApicState {
  version: 1;
  /** IA32_APIC_BASE's low word (the high word is 0: no address above 4 GB). */
  base: number;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  /** 256-bit registers as eight 32-bit words, bit n of word k = vector 32k + n. */
  isr: number[];
  tmr: number[];
  irr: number[];
  /** ESR as software last latched it, and the errors seen since. */
  esr: number;
  esrPending: number;
  icrLow: number;
  icrHigh: number;
  lvt: number[];
  timerInitial: number;
  timerDivide: number;
  /** Simulated cycle at which the timer (re)started counting from its initial count. */
  timerStart: number | null;
  /** The timer's next expiry on the clock (null when it is not counting or armed). */
  timerEvent: TimerState | null;
  /** IA32_TSC_DEADLINE: the armed deadline, 0 when disarmed. */
  tscDeadline: number;
  /** The 8259's INTR output as it last drove LINT0. */
  lint0Level: boolean;
  /** Counters: timer expiries, IPIs sent, INIT/SIPI that reached no processor. */
  timerFires: number;
  ipisSent: number;
  ipisDropped: number;
}

const WORDS8 = arrayOf(num, 8);
const STATE = checkState<LocalApicState>('local APIC', 1, {
  base: num,
  id: num,
  tpr: num,
  ldr: num,
  dfr: num,
  svr: num,
  isr: WORDS8,
  tmr: WORDS8,
  irr: WORDS8,
  esr: num,
  esrPending: num,
  icrLow: num,
  icrHigh: num,
  lvt: arrayOf(num, 6),
  timerInitial: num,
  timerDivide: num,
  timerStart: nullable(num),
  timerEvent: nullable(timer),
  tscDeadline: num,
  lint0Level: bool,
  timerFires: num,
  ipisSent: num,
  ipisDropped: num,
});

export interface LocalApicWiring {
  clock: Clock;
  buses: BusAccess;
  /** Drives the processor's INTR line. */
  intr: (level: boolean) => void;
  /** The 8259 pair's INTA cycle (an ExtINT interrupt's vector comes from it). */
  acknowledgeExtInt: () => number;
  /** Raises an NMI at the processor (LINT1, an NMI IPI to self). */
  nmi: () => void;
  /** TSC − clock cycles (the CPU's TSC offset); 0 when not given. */
  tscOffset?: () => number;
  /** The EOI of a level-triggered vector, broadcast to the I/O APIC (10.8.5). */
  levelEoi?: (vector: number) => void;
}

export class LocalApic implements MmioDevice, Stateful<LocalApicState> {
  readonly name = 'local-apic';
  private base = APIC_DEFAULT_BASE | BASE_BSP | BASE_ENABLE;
  private id = 0;
  private tpr = 0;
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  private esr = 0;
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(6);
  private timerInitial = 0;
  private timerDivide = 0;
  private timerStart: number | undefined;
  private timerEvent: Timer | undefined;
  private tscDeadline = 0;
  private lint0Level = false;
  private page: Registration | undefined;
  private line = false;
  timerFires = 0;
  ipisSent = 0;
  ipisDropped = 0;

  constructor(private readonly wiring: LocalApicWiring) {
    this.resetRegisters();
    const placed = wiring.buses.registerMmio(APIC_DEFAULT_BASE, 0x1000, this);
    if (typeof placed === 'string') throw new Error(`machine set-up: ${placed}`);
    this.page = placed;
  }

  /**
   * The registers as after power-up (SDM 10.4.7.1), then as the firmware leaves them (see the
   * file comment): LINT0 ExtINT, LINT1 NMI. Also the state after a global re-enable.
   */
  private resetRegisters(): void {
    this.stopTimer();
    this.id = 0;
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_MASKED);
    this.lvt[LVT.lint0] = DELIVERY_EXTINT << 8;
    this.lvt[LVT.lint1] = DELIVERY_NMI << 8;
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.tscDeadline = 0;
  }

  private get globallyEnabled(): boolean {
    return (this.base & BASE_ENABLE) !== 0;
  }

  private get softwareEnabled(): boolean {
    return this.globallyEnabled && (this.svr & 0x100) !== 0;
  }

  /** CPUID.1:EDX bits: the APIC flag, which follows the global enable (SDM 10.4.3). */
  cpuidEdx(): number {
    return this.globallyEnabled ? CPUID_EDX_APIC : 0;
  }

  /** CPUID.1:ECX bits: the TSC-deadline timer, with the APIC. */
  cpuidEcx(): number {
    return this.globallyEnabled ? CPUID_ECX_TSC_DEADLINE : 0;
  }

  readDeadlineMsr(): number {
    return this.tscDeadline;
  }

  /**
   * WRMSR IA32_TSC_DEADLINE (10.5.4.1): in TSC-deadline mode a non-zero value arms the timer
   * (a deadline already past fires at once), 0 disarms it; in the other modes the write is
   * ignored.
   */
  // GUEST-CONTROLLED: value (any 64-bit number; the CPU gives EDX × 2^32 + EAX).
  writeDeadlineMsr(value: number): boolean {
    if (!this.deadlineMode) return true;
    this.stopTimer();
    this.tscDeadline = value;
    if (value !== 0) this.armDeadline();
    return true;
  }

  private get deadlineMode(): boolean {
    return ((this.lvt[LVT.timer] >> 17) & 3) === 2;
  }

  private armDeadline(): void {
    const clock = this.wiring.clock;
    const cycle = Math.max(clock.now(), this.tscDeadline - (this.wiring.tscOffset?.() ?? 0));
    this.timerEvent = clock.at(cycle, () => this.deadlineReached(), 'local-apic.timer');
  }

  private deadlineReached(): void {
    this.timerEvent = undefined;
    this.tscDeadline = 0;
    this.timerFires++;
    this.localInterrupt(LVT.timer);
    this.update();
  }

  readBaseMsr(): number {
    return this.base >>> 0;
  }

  /**
   * WRMSR IA32_APIC_BASE. Returns false (#GP) for reserved bits or a page that overlaps another
   * device. Clearing the global enable makes the processor one without an APIC (SDM 10.4.3): the
   * 8259 drives INTR directly; setting it again starts the APIC from its reset state.
   */
  // GUEST-CONTROLLED: value (checked here: reserved bits, the page's new place).
  writeBaseMsr(value: number): boolean {
    if (value < 0 || value > 0xffffffff || (value & ~(BASE_WRITABLE | BASE_BSP)) !== 0)
      return false;
    if (!this.placePage(value)) return false;
    const wasEnabled = this.globallyEnabled;
    this.base = (value & BASE_WRITABLE) | BASE_BSP;
    if (wasEnabled !== this.globallyEnabled) this.resetRegisters();
    this.update();
    return true;
  }

  /** Moves the register page to `base`'s page; false if another device holds that range. */
  private placePage(base: number): boolean {
    const page = (base & 0xfffff000) >>> 0;
    if (page === (this.base & 0xfffff000) >>> 0) return true;
    const placed = this.wiring.buses.registerMmio(page, 0x1000, this);
    if (typeof placed === 'string') return false;
    this.page?.remove();
    this.page = placed;
    return true;
  }

  // --- the processor's side -----------------------------------------------------------------

  /** LINT0: the 8259 pair's INTR output. */
  setExtIntLine(level: boolean): void {
    const rising = level && !this.lint0Level;
    this.lint0Level = level;
    if (rising) this.localInterrupt(LVT.lint0);
    this.update();
  }

  /** Whether the 8259's INTR reaches the processor as it is (no APIC, or LINT0 in ExtINT). */
  private get passesExtInt(): boolean {
    const lint0 = this.lvt[LVT.lint0];
    return (
      !this.globallyEnabled ||
      ((lint0 & LVT_MASKED) === 0 && ((lint0 >> 8) & 7) === DELIVERY_EXTINT)
    );
  }

  /**
   * The INTA cycle: the highest deliverable vector moves from IRR to ISR; failing that, an
   * ExtINT interrupt is the 8259's; failing both (the request went away), the spurious vector
   * (10.9), which is not put in service.
   */
  acknowledge(): number {
    const v = this.deliverable();
    if (v >= 0) {
      clearBit(this.irr, v);
      setBit(this.isr, v);
      this.update();
      return v;
    }
    if (this.passesExtInt && this.lint0Level) return this.wiring.acknowledgeExtInt();
    this.update();
    return this.svr & 0xff;
  }

  /** The highest vector in IRR whose priority class is above PPR's, or -1. */
  private deliverable(): number {
    if (!this.softwareEnabled) return -1;
    const v = highest(this.irr);
    if (v < 0 || (v & 0xf0) <= (this.ppr() & 0xf0)) return -1;
    return v;
  }

  /** Processor priority (10.8.3.1). */
  private ppr(): number {
    const isrv = Math.max(highest(this.isr), 0);
    return (this.tpr & 0xf0) >= (isrv & 0xf0) ? this.tpr & 0xff : isrv & 0xf0;
  }

  private update(): void {
    const level = this.deliverable() >= 0 || (this.passesExtInt && this.lint0Level);
    if (level !== this.line) {
      this.line = level;
      this.wiring.intr(level);
    }
  }

  /** Accepts a fixed interrupt (10.8.1): vectors 0–15 are illegal and only flag an error. */
  private accept(vector: number, level: boolean): void {
    if (vector < 16) {
      this.error(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    if (!this.softwareEnabled) return;
    setBit(this.irr, vector);
    if (level) setBit(this.tmr, vector);
    else clearBit(this.tmr, vector);
  }

  /** An LVT entry's event (timer expiry, a LINT edge, an error). */
  private localInterrupt(index: number): void {
    const entry = this.lvt[index];
    if ((entry & LVT_MASKED) !== 0) return;
    const mode = index === LVT.timer || index === LVT.error ? DELIVERY_FIXED : (entry >> 8) & 7;
    if (mode === DELIVERY_FIXED) this.accept(entry & 0xff, false);
    else if (mode === DELIVERY_NMI) this.wiring.nmi();
    // ExtINT is the 8259's own INTR path (passesExtInt); SMI and INIT have no receiver here.
  }

  /**
   * An error (10.5.3): recorded for the next ESR write, and the LVT error entry's interrupt.
   * An error already recorded raises nothing again, which also ends the chain of an error entry
   * that holds an illegal vector itself.
   */
  private error(bits: number): void {
    if ((this.esrPending & bits) === bits) return;
    this.esrPending |= bits;
    this.localInterrupt(LVT.error);
  }

  // --- the register page ----------------------------------------------------------------------

  // GUEST-CONTROLLED: offset and size (any access in the page; registers are 32-bit words at
  // 16-byte steps; a narrower read gives the word's bytes, SDM 10.4.1 leaves it undefined).
  mmioRead(offset: number, size: AccessSize): number {
    if ((offset & 0xc) !== 0) return 0;
    const v = this.read(offset & 0xff0) >>> ((offset & 3) * 8);
    return size === 4 ? v >>> 0 : size === 2 ? v & 0xffff : v & 0xff;
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    // Only aligned 32-bit writes reach a register; others are dropped (SDM 10.4.1: "must be
    // accessed using 128-bit aligned 32-bit loads or stores").
    if (size !== 4 || (offset & 0xf) !== 0) return;
    this.write(offset & 0xff0, value >>> 0);
  }

  private read(reg: number): number {
    switch (reg) {
      case 0x20:
        return this.id;
      case 0x30:
        return VERSION;
      case 0x80:
        return this.tpr;
      case 0x90:
        return 0; // APR: arbitration priority, meaningful only on the P6's 3-wire bus
      case 0xa0:
        return this.ppr();
      case 0xb0:
        return 0; // EOI is write-only
      case 0xc0:
        return 0; // remote read: not supported by an xAPIC
      case 0xd0:
        return this.ldr;
      case 0xe0:
        return this.dfr;
      case 0xf0:
        return this.svr;
      case 0x280:
        return this.esr;
      case 0x300:
        return this.icrLow;
      case 0x310:
        return this.icrHigh;
      case 0x380:
        return this.timerInitial;
      case 0x390:
        return this.currentCount();
      case 0x3e0:
        return this.timerDivide;
    }
    if (reg >= 0x100 && reg < 0x180) return this.isr[(reg - 0x100) >> 4];
    if (reg >= 0x180 && reg < 0x200) return this.tmr[(reg - 0x180) >> 4];
    if (reg >= 0x200 && reg < 0x280) return this.irr[(reg - 0x200) >> 4];
    if (reg >= 0x320 && reg < 0x380) return this.lvt[(reg - 0x320) >> 4];
    if (this.globallyEnabled) this.error(ESR_ILLEGAL_REGISTER);
    return 0;
  }

  private write(reg: number, value: number): void {
    switch (reg) {
      case 0x20:
        this.id = value & 0xff000000;
        return;
      case 0x80:
        this.tpr = value & 0xff;
        this.update();
        return;
      case 0xb0:
        this.eoi();
        return;
      case 0xd0:
        this.ldr = value & 0xff000000;
        return;
      case 0xe0:
        this.dfr = (value | 0x0fffffff) >>> 0;
        return;
      case 0xf0:
        this.writeSvr(value);
        return;
      case 0x280:
        // A write latches the errors seen since the last one (10.5.3).
        this.esr = this.esrPending;
        this.esrPending = 0;
        return;
      case 0x300:
        this.icrLow = value & 0x000ccfff;
        this.sendIpi();
        return;
      case 0x310:
        this.icrHigh = value & 0xff000000;
        return;
      case 0x380:
        if (this.deadlineMode) return; // ignored in TSC-deadline mode (10.5.4.1)
        this.timerInitial = value;
        this.startTimer();
        return;
      case 0x3e0:
        this.timerDivide = value & 0xb;
        if (this.timerStart !== undefined) this.restartAtCurrentCount();
        return;
    }
    if (reg >= 0x320 && reg < 0x380) {
      this.writeLvt((reg - 0x320) >> 4, value);
      return;
    }
    // Read-only or reserved registers: writes are ignored; the reserved ones flag an error.
    const readOnly = reg === 0x30 || reg === 0x90 || reg === 0xa0 || reg === 0xc0 || reg === 0x390;
    const vectors = reg >= 0x100 && reg < 0x280;
    if (!readOnly && !vectors) this.error(ESR_ILLEGAL_REGISTER);
  }

  /**
   * EOI (10.8.5): the highest in-service vector is done; for a level-triggered one (its TMR bit
   * set) the EOI goes on to the I/O APIC.
   */
  private eoi(): void {
    const v = highest(this.isr);
    if (v < 0) return;
    clearBit(this.isr, v);
    const level = (this.tmr[v >> 5] & (1 << (v & 31))) !== 0;
    clearBit(this.tmr, v);
    this.update();
    if (level) this.wiring.levelEoi?.(v);
  }

  /**
   * An interrupt message from the I/O APIC (10.6, 10.8.1): fixed and lowest-priority ones
   * whose destination is this APIC go into IRR, NMI to the processor; the others reach nothing.
   */
  receive(message: ApicMessage): void {
    if (!this.globallyEnabled) return;
    if (!this.matchesDestination(message.destination, message.logical)) return;
    if (message.mode === DELIVERY_FIXED || message.mode === DELIVERY_LOWEST) {
      this.accept(message.vector, message.level);
      this.update();
    } else if (message.mode === DELIVERY_NMI) this.wiring.nmi();
  }

  /**
   * SVR (10.9): bits 0–7 the spurious vector (0–3 hardwired to 1 on P6 and Pentium 4, 10.9),
   * bit 8 the software enable, bit 9 focus checking (meaningless with one processor). Clearing
   * the enable masks every LVT entry (10.4.7.2).
   */
  private writeSvr(value: number): void {
    this.svr = (value & 0x3f0) | 0xf;
    if ((this.svr & 0x100) === 0) for (let k = 0; k < 6; k++) this.lvt[k] |= LVT_MASKED;
    this.update();
  }

  private writeLvt(index: number, value: number): void {
    let v =
      (value & LVT_WRITABLE[index]) | (this.lvt[index] & (LVT_REMOTE_IRR | LVT_DELIVERY_STATUS));
    // Software-disabled: the mask bits stay set (10.4.7.2).
    if (!this.softwareEnabled) v |= LVT_MASKED;
    // LINT1 is edge-triggered only; only LINT0 can be level (10.5.1, trigger mode note).
    if (index === LVT.lint1) v &= ~LVT_LEVEL;
    const wasDeadline = this.deadlineMode;
    this.lvt[index] = v >>> 0;
    if (index === LVT.timer && wasDeadline !== this.deadlineMode) {
      // Into or out of TSC-deadline mode: the timer is disarmed (10.5.4.1).
      this.stopTimer();
      this.tscDeadline = 0;
      this.timerInitial = 0;
    } else if (index === LVT.timer && this.timerStart !== undefined) {
      // The timer's mode decides its next expiry (a one-shot count past its end has none).
      this.timerEvent?.cancel();
      this.timerEvent = undefined;
      this.scheduleTimer();
    }
    this.update();
  }

  /** ICR (10.6.1): a write of the low word sends the IPI at once; delivery status is idle. */
  private sendIpi(): void {
    const low = this.icrLow;
    const vector = low & 0xff;
    const mode = (low >> 8) & 7;
    const shorthand = (low >> 18) & 3;
    const level = (low & (1 << 14)) !== 0;
    const trigger = (low & LVT_LEVEL) !== 0;
    let toSelf: boolean;
    if (shorthand === 1 || shorthand === 2) toSelf = true;
    else if (shorthand === 3) toSelf = false;
    else toSelf = this.matchesDestination(this.icrHigh >>> 24, (low & (1 << 11)) !== 0);
    this.ipisSent++;
    if ((mode === DELIVERY_FIXED || mode === DELIVERY_LOWEST) && vector < 16) {
      this.error(ESR_SEND_ILLEGAL_VECTOR);
      if (toSelf) this.error(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    // With one processor, an IPI not for this one is for nobody.
    if (!toSelf) {
      this.ipisDropped++;
      return;
    }
    switch (mode) {
      case DELIVERY_FIXED:
      case DELIVERY_LOWEST:
        this.accept(vector, trigger);
        this.update();
        return;
      case DELIVERY_NMI:
        this.wiring.nmi();
        return;
      case DELIVERY_INIT:
      case DELIVERY_STARTUP:
      case DELIVERY_SMI:
      default:
        // An INIT level de-assert is a bus synchronisation message, not an IPI (10.6.1).
        if (!(mode === DELIVERY_INIT && !level && trigger)) this.ipisDropped++;
        return;
    }
  }

  /** Whether this APIC is a destination (10.6.2): physical ID or 0xFF, logical flat or cluster. */
  private matchesDestination(dest: number, logical: boolean): boolean {
    if (!logical) return dest === 0xff || dest === this.id >>> 24;
    const mine = this.ldr >>> 24;
    if (dest === 0xff) return true;
    if (this.dfr >>> 28 === 0xf) return (mine & dest) !== 0;
    return mine >> 4 === dest >> 4 && (mine & dest & 0xf) !== 0;
  }

  // --- the timer ------------------------------------------------------------------------------

  private get divisor(): number {
    const d = ((this.timerDivide & 8) >> 1) | (this.timerDivide & 3);
    return d === 7 ? 1 : 2 << d;
  }

  /** Simulated cycles per timer count. */
  private get cyclesPerCount(): number {
    return (this.wiring.clock.hz / APIC_BUS_HZ) * this.divisor;
  }

  private get periodic(): boolean {
    return ((this.lvt[LVT.timer] >> 17) & 3) === 1;
  }

  private stopTimer(): void {
    this.timerEvent?.cancel();
    this.timerEvent = undefined;
    this.timerStart = undefined;
  }

  /** A write of the initial count starts counting from it; 0 stops the timer (10.5.4). */
  private startTimer(): void {
    this.stopTimer();
    if (this.timerInitial === 0) return;
    this.timerStart = this.wiring.clock.now();
    this.scheduleTimer();
  }

  /** The divide configuration changed: go on from the current count at the new rate. */
  private restartAtCurrentCount(): void {
    const current = this.currentCount();
    if (current === 0) return;
    const now = this.wiring.clock.now();
    this.stopTimer();
    this.timerStart = now - (this.timerInitial - current) * this.cyclesPerCount;
    this.scheduleTimer();
  }

  private countsSinceStart(): number {
    if (this.timerStart === undefined) return 0;
    return Math.floor((this.wiring.clock.now() - this.timerStart) / this.cyclesPerCount);
  }

  private currentCount(): number {
    if (this.timerStart === undefined || this.deadlineMode) return 0;
    const elapsed = this.countsSinceStart();
    if (this.periodic) return this.timerInitial - (elapsed % this.timerInitial);
    return Math.max(this.timerInitial - elapsed, 0);
  }

  private scheduleTimer(): void {
    if (this.timerStart === undefined) return;
    const elapsed = this.countsSinceStart();
    const periods = Math.floor(elapsed / this.timerInitial) + 1;
    if (!this.periodic && periods > 1) return;
    const at = this.timerStart + Math.ceil(periods * this.timerInitial * this.cyclesPerCount);
    this.timerEvent = this.wiring.clock.at(at, () => this.timerExpired(), 'local-apic.timer');
  }

  private timerExpired(): void {
    this.timerEvent = undefined;
    this.timerFires++;
    this.localInterrupt(LVT.timer);
    if (this.periodic) this.scheduleTimer();
    else this.timerStart = undefined;
    this.update();
  }

  // --- snapshots ------------------------------------------------------------------------------

  save(): LocalApicState {
    return {
      version: 1,
      base: this.base >>> 0,
      id: this.id >>> 0,
      tpr: this.tpr,
      ldr: this.ldr >>> 0,
      dfr: this.dfr >>> 0,
      svr: this.svr,
      isr: Array.from(this.isr),
      tmr: Array.from(this.tmr),
      irr: Array.from(this.irr),
      esr: this.esr,
      esrPending: this.esrPending,
      icrLow: this.icrLow,
      icrHigh: this.icrHigh >>> 0,
      lvt: Array.from(this.lvt),
      timerInitial: this.timerInitial >>> 0,
      timerDivide: this.timerDivide,
      timerStart: this.timerStart ?? null,
      timerEvent:
        this.timerEvent === undefined
          ? null
          : { cycle: this.timerEvent.cycle, seq: this.timerEvent.seq },
      tscDeadline: this.tscDeadline,
      lint0Level: this.lint0Level,
      timerFires: this.timerFires,
      ipisSent: this.ipisSent,
      ipisDropped: this.ipisDropped,
    };
  }

  /** The registers again, the timer's expiry at its saved place on the (restored) clock. */
  restore(state: LocalApicState, path = 'local-apic'): void {
    STATE(state, path);
    if (!this.placePage(state.base))
      throw new StateError(`${path}.base: the page overlaps another device`);
    this.stopTimer();
    this.base = state.base;
    this.id = state.id;
    this.tpr = state.tpr;
    this.ldr = state.ldr;
    this.dfr = state.dfr;
    this.svr = state.svr;
    this.isr.set(state.isr);
    this.tmr.set(state.tmr);
    this.irr.set(state.irr);
    this.esr = state.esr;
    this.esrPending = state.esrPending;
    this.icrLow = state.icrLow;
    this.icrHigh = state.icrHigh;
    this.lvt.set(state.lvt);
    this.timerInitial = state.timerInitial;
    this.timerDivide = state.timerDivide;
    this.timerStart = state.timerStart ?? undefined;
    this.tscDeadline = state.tscDeadline;
    const expiry = this.deadlineMode ? () => this.deadlineReached() : () => this.timerExpired();
    this.timerEvent =
      state.timerEvent === null
        ? undefined
        : this.wiring.clock.restoreAt(state.timerEvent, expiry, 'local-apic.timer');
    this.lint0Level = state.lint0Level;
    this.timerFires = state.timerFires;
    this.ipisSent = state.ipisSent;
    this.ipisDropped = state.ipisDropped;
    this.line = this.deliverable() >= 0 || (this.passesExtInt && this.lint0Level);
  }
}

function highest(bits: Uint32Array): number {
  for (let k = 7; k >= 0; k--) if (bits[k] !== 0) return k * 32 + 31 - Math.clz32(bits[k]);
  return -1;
}

function setBit(bits: Uint32Array, v: number): void {
  bits[v >> 5] |= 1 << (v & 31);
}

function clearBit(bits: Uint32Array, v: number): void {
  bits[v >> 5] &= ~(1 << (v & 31));
}
