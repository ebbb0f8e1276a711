/**
 * System and sensitive instructions (SDM Vol. 2 pages; Vol. 3A 2.8 "System instruction
 * summary", 5.9 "Privileged instructions"). Those that are sensitive but unprivileged — PUSHF,
 * POPF at CPL > IOPL, SGDT, SIDT, SLDT, STR, SMSW, MOV from a segment register — behave exactly as
 * the hardware does, because pre-virtualization exists to deal with them.
 */
import type { Cpu } from '../Cpu.ts';
import { CpuFault, Vector, gp, ud } from '../fault.ts';
import * as F from '../flags.ts';
import type { Instr } from '../instr.ts';
import { CS, SS } from '../segment.ts';
import {
  dplOf,
  isCode,
  isConforming,
  isPresent,
  isSegment,
  loadSegment,
  readDescriptor,
  rwBit,
  systemType,
} from './descriptors.ts';
import { descriptorAttributes, descriptorBase, descriptorLimit } from '../segment.ts';
import { farReturn, farTransfer, iret, setFlagsByPrivilege } from './transfer.ts';
import { CR4_SMAP, CR4_SMEP } from './paging.ts';

/**
 * CR4.UMIP (SDM 3A 2.5): SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 are #GP(0), so that user
 * code cannot read the kernel's table addresses.
 */
const CR4_UMIP = 1 << 11;

function checkUmip(cpu: Cpu): void {
  if ((cpu.cr4 & CR4_UMIP) !== 0 && cpu.cpl > 0) throw gp(0);
}

function requireCpl0(cpu: Cpu): void {
  if (cpu.cpl !== 0) throw gp(0);
}

/** FA: CLI. */
export function cli(cpu: Cpu): void {
  if (cpu.cpl > cpu.iopl) throw gp(0);
  cpu.cycles += cpu.costs.cli - cpu.costs.base;
  cpu.flagsBits &= ~F.IF;
}

/** FB: STI; interrupts stay inhibited until after the next instruction (SDM Vol. 2 STI). */
export function sti(cpu: Cpu): void {
  if (cpu.cpl > cpu.iopl) throw gp(0);
  cpu.cycles += cpu.costs.sti - cpu.costs.base;
  if ((cpu.flagsBits & F.IF) === 0) cpu.interruptShadow = true;
  cpu.flagsBits |= F.IF;
}

/** 9C: PUSHF/PUSHFD: the real IF and IOPL, with VM and RF cleared in the image. */
export function pushf(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.pushf - cpu.costs.base;
  cpu.push(cpu.getEflags() & ~(F.VM | F.RF), i.size);
}

/** 9D: POPF/POPFD. */
export function popf(cpu: Cpu, i: Instr): void {
  cpu.cycles += cpu.costs.popf - cpu.costs.base;
  const v = cpu.pop(i.size);
  setFlagsByPrivilege(cpu, v, i.size, cpu.cpl, cpu.iopl);
}

/** F4: HLT. */
export function hlt(cpu: Cpu): void {
  requireCpl0(cpu);
  cpu.cycles += cpu.costs.hlt - cpu.costs.base;
  cpu.halted = true;
}

function storeTable(cpu: Cpu, i: Instr, t: { base: number; limit: number }): void {
  if (i.mod === 3) throw ud();
  const lin = cpu.eaLinear(i, 6, true);
  cpu.write16(lin, t.limit);
  // With a 16-bit operand size the top byte of the base is stored as 0 (SDM Vol. 2 SGDT).
  cpu.write32(lin + 2, i.size === 2 ? t.base & 0xffffff : t.base);
}

function loadTable(cpu: Cpu, i: Instr): { base: number; limit: number } {
  if (i.mod === 3) throw ud();
  requireCpl0(cpu);
  const lin = cpu.eaLinear(i, 6, false);
  const limit = cpu.read16(lin);
  const base = cpu.read32(lin + 2) >>> 0;
  cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
  return { limit, base: i.size === 2 ? base & 0xffffff : base };
}

/**
 * 0F 01: SGDT, SIDT, LGDT, LIDT, SMSW, LMSW, INVLPG (group 7), and with a register operand
 * CLAC (0F 01 CA), STAC (0F 01 CB) and RDTSCP (0F 01 F9).
 */
export function group7(cpu: Cpu, i: Instr): void {
  switch (i.reg) {
    case 0:
      if (i.mod !== 3) checkUmip(cpu);
      storeTable(cpu, i, cpu.gdtr);
      return;
    case 1:
      if (i.mod === 3 && (i.rm === 2 || i.rm === 3)) {
        // CLAC / STAC (SDM Vol. 2): CPL 0 only; SMAP is in CPUID leaf 7.
        if (cpu.cpl > 0) throw ud();
        cpu.setAlignmentCheck(i.rm === 3);
        return;
      }
      if (i.mod !== 3) checkUmip(cpu);
      storeTable(cpu, i, cpu.idtr);
      return;
    case 2:
      cpu.gdtr = loadTable(cpu, i);
      return;
    case 3:
      cpu.idtr = loadTable(cpu, i);
      return;
    case 4:
      checkUmip(cpu);
      // SMSW: a register destination of 32 bits receives all of CR0 on P6 and later.
      if (i.mod === 3) cpu.setReg(i.rm, i.size, cpu.cr0);
      else cpu.write16(cpu.eaLinear(i, 2, true), cpu.cr0 & 0xffff);
      return;
    case 6: {
      requireCpl0(cpu);
      const v = i.mod === 3 ? cpu.getReg(i.rm, 2) : cpu.read16(cpu.eaLinear(i, 2, false));
      // LMSW changes PE, MP, EM, TS and cannot clear PE.
      cpu.cr0 = (cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & 1);
      cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
      return;
    }
    case 7:
      if (i.mod === 3 && i.rm === 1) {
        rdtscp(cpu);
        return;
      }
      if (i.mod === 3) throw ud();
      requireCpl0(cpu);
      cpu.counters.invlpg++;
      cpu.cycles += cpu.costs.invlpg - cpu.costs.base;
      cpu.invalidatePage(cpu.segs[i.seg].base + cpu.ea(i));
      return;
    default:
      throw ud();
  }
}

/** 0F 00: SLDT, STR, LLDT, LTR, VERR, VERW (group 6). */
export function group6(cpu: Cpu, i: Instr): void {
  if (cpu.realMode) throw ud(); // SLDT, STR, LLDT, LTR, VERR, VERW: protected mode only
  switch (i.reg) {
    case 0:
    case 1: {
      checkUmip(cpu);
      const sel = i.reg === 0 ? cpu.ldtr.selector : cpu.tr.selector;
      if (i.mod === 3) cpu.setReg(i.rm, i.size, sel);
      else cpu.write16(cpu.eaLinear(i, 2, true), sel);
      return;
    }
    case 2:
    case 3: {
      requireCpl0(cpu);
      const sel = i.mod === 3 ? cpu.getReg(i.rm, 2) : cpu.read16(cpu.eaLinear(i, 2, false));
      cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
      if (i.reg === 2) loadLdt(cpu, sel);
      else loadTr(cpu, sel);
      return;
    }
    case 4:
    case 5: {
      const sel = i.mod === 3 ? cpu.getReg(i.rm, 2) : cpu.read16(cpu.eaLinear(i, 2, false));
      cpu.setFlagBits(F.ZF, verify(cpu, sel, i.reg === 5) ? F.ZF : 0);
      return;
    }
    default:
      throw ud();
  }
}

function loadLdt(cpu: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0) {
    cpu.ldtr.loadNull(sel);
    return;
  }
  if ((sel & 4) !== 0) throw gp(sel & 0xfffc);
  const d = readDescriptor(cpu, sel);
  if (isSegment(d.hi) || systemType(d.hi) !== 2) throw gp(sel & 0xfffc);
  if (!isPresent(d.hi)) throw new CpuFault(Vector.NP, sel & 0xfffc);
  cpu.ldtr.load(
    sel,
    descriptorBase(d.lo, d.hi),
    descriptorLimit(d.lo, d.hi),
    descriptorAttributes(d.hi),
  );
}

/** LTR: loads an available TSS and marks its descriptor busy (SDM Vol. 2 LTR). */
function loadTr(cpu: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0 || (sel & 4) !== 0) throw gp(sel & 0xfffc);
  const d = readDescriptor(cpu, sel);
  const type = systemType(d.hi);
  if (isSegment(d.hi) || (type !== 1 && type !== 9)) throw gp(sel & 0xfffc);
  if (!isPresent(d.hi)) throw new CpuFault(Vector.NP, sel & 0xfffc);
  const busy = (d.hi | 0x200) >>> 0;
  cpu.writeLinear(cpu.gdtr.base + (sel & 0xfff8) + 4, 4, busy, true);
  cpu.tr.load(
    sel,
    descriptorBase(d.lo, busy),
    descriptorLimit(d.lo, busy),
    descriptorAttributes(busy),
  );
}

/** Whether a descriptor can be read (or written) at the current CPL and the selector's RPL. */
function verify(cpu: Cpu, sel: number, write: boolean): boolean {
  if ((sel & 0xfffc) === 0) return false;
  let d;
  try {
    d = readDescriptor(cpu, sel);
  } catch (e) {
    if (e instanceof CpuFault && e.vector === Vector.GP) return false;
    throw e;
  }
  if (!isSegment(d.hi)) return false;
  if (!(isCode(d.hi) && isConforming(d.hi)) && dplOf(d.hi) < Math.max(cpu.cpl, sel & 3))
    return false;
  if (write) return !isCode(d.hi) && rwBit(d.hi);
  return !isCode(d.hi) || rwBit(d.hi);
}

/** LAR/LSL: which system descriptor types they accept (SDM Vol. 2 LAR, LSL). */
const LAR_TYPES = new Set([1, 2, 3, 4, 5, 9, 0xb, 0xc]);
const LSL_TYPES = new Set([1, 2, 3, 9, 0xb]);

/** 0F 02 LAR, 0F 03 LSL. */
export function larLsl(cpu: Cpu, i: Instr): void {
  if (cpu.realMode) throw ud();
  const sel = cpu.readRm({ ...i, size: 2 } as Instr) & 0xffff;
  const lsl = i.opcode === 0x103;
  let ok = false;
  let d;
  if ((sel & 0xfffc) !== 0) {
    try {
      d = readDescriptor(cpu, sel);
    } catch (e) {
      if (!(e instanceof CpuFault && e.vector === Vector.GP)) throw e;
    }
  }
  if (d !== undefined) {
    const system = !isSegment(d.hi);
    const typeOk = system ? (lsl ? LSL_TYPES : LAR_TYPES).has(systemType(d.hi)) : true;
    const privOk =
      (isCode(d.hi) && isConforming(d.hi)) || dplOf(d.hi) >= Math.max(cpu.cpl, sel & 3);
    ok = typeOk && privOk;
    if (ok) {
      if (lsl) cpu.setReg(i.reg, i.size, descriptorLimit(d.lo, d.hi));
      else cpu.setReg(i.reg, i.size, d.hi & (i.size === 2 ? 0xff00 : 0x00f0ff00));
    }
  }
  cpu.setFlagBits(F.ZF, ok ? F.ZF : 0);
}

/** 63: ARPL r/m16, r16. */
export function arpl(cpu: Cpu, i: Instr): void {
  if (cpu.realMode) throw ud();
  const w = { ...i, size: 2 } as Instr;
  const dst = cpu.readRm(w);
  const src = cpu.getReg(i.reg, 2);
  if ((dst & 3) < (src & 3)) {
    cpu.writeRm(w, (dst & ~3) | (src & 3));
    cpu.setFlagBits(F.ZF, F.ZF);
  } else {
    cpu.setFlagBits(F.ZF, 0);
  }
}

/** 0F 06: CLTS. */
export function clts(cpu: Cpu): void {
  requireCpl0(cpu);
  cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
  cpu.cr0 = cpu.cr0 & ~8;
}

/** 0F 20 / 0F 22: MOV from / to CR0, CR2, CR3, CR4 (always a register operand). */
export function movCr(cpu: Cpu, i: Instr): void {
  requireCpl0(cpu);
  const toCr = i.opcode === 0x122;
  const n = i.reg;
  if (n === 1 || n > 4) throw ud();
  if (toCr && n === 3) cpu.cycles += cpu.costs.movCr3 - cpu.costs.base;
  else cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
  if (!toCr) {
    const v = n === 0 ? cpu.cr0 : n === 2 ? cpu.cr2 : n === 3 ? cpu.cr3 : cpu.cr4;
    cpu.regs[i.rm] = v;
    return;
  }
  const v = cpu.regs[i.rm] >>> 0;
  if (n === 0) {
    // PG without PE, or NW without CD, is #GP(0) (SDM Vol. 2 MOV CR).
    if ((v & 0x80000001) >>> 0 === 0x80000000 || (v & 0x60000000) === 0x20000000) throw gp(0);
    cpu.cr0 = v;
  } else if (n === 2) cpu.cr2 = v;
  else if (n === 3) cpu.cr3 = v;
  else {
    // Bits the i686 model does not implement (VME, PVI, PAE, PCE, OSFXSR ...) are reserved;
    // UMIP, SMEP and SMAP are there (CPUID leaf 7).
    if ((v & ~(0xb4 | CR4_UMIP | CR4_SMEP | CR4_SMAP)) !== 0) throw gp(0);
    cpu.cr4 = v;
  }
}

/** 0F 21 / 0F 23: MOV from / to DR0–DR7 (DR4/DR5 alias DR6/DR7 with CR4.DE clear). */
export function movDr(cpu: Cpu, i: Instr): void {
  requireCpl0(cpu);
  let n = i.reg;
  if (n === 4 || n === 5) {
    if ((cpu.cr4 & 8) !== 0) throw ud();
    n += 2;
  }
  cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
  if (i.opcode === 0x121) cpu.regs[i.rm] = cpu.dr[n];
  else cpu.dr[n] = cpu.regs[i.rm];
}

/** 0F 08 INVD, 0F 09 WBINVD: no caches to flush here. */
export function cacheFlush(cpu: Cpu): void {
  requireCpl0(cpu);
}

/** 0F 31: RDTSC from the simulated clock; CR4.TSD restricts it to CPL 0. */
export function rdtsc(cpu: Cpu): void {
  if ((cpu.cr4 & 4) !== 0 && cpu.cpl !== 0) throw gp(0);
  cpu.cycles += cpu.costs.rdtsc - cpu.costs.base;
  const tsc = cpu.cycles + cpu.tscOffset;
  cpu.eax = tsc % 0x100000000;
  cpu.edx = Math.floor(tsc / 0x100000000);
}

const MSR_TSC = 0x10;
/**
 * IA32_BIOS_SIGN_ID (SDM Vol. 4, Table 2-2; Vol. 3A 9.11.7.1 "Determining the Signature"): the
 * microcode update signature in EDX after CPUID leaf 1. Software writes 0 to it, executes CPUID
 * and reads it; "if the field remains zero [...] this indicates that no microcode update is
 * loaded". This CPU never has one: writes are ignored and reads give 0, as on a P6 whose BIOS
 * loaded no update. Linux reads it on every family-6 Intel CPU (intel_get_microcode_revision).
 */
export const MSR_BIOS_SIGN_ID = 0x8b;
const MSR_SYSENTER_CS = 0x174;
const MSR_SYSENTER_ESP = 0x175;
const MSR_SYSENTER_EIP = 0x176;
/**
 * IA32_MISC_ENABLE (SDM Vol. 4, Table 2-2): what this CPU has of it. Bit 0 fast strings
 * (set at reset; REP MOVS/STOS run as they do either way), 3 automatic thermal control, 16
 * enhanced SpeedStep, 18 MONITOR/MWAIT, 22 limit CPUID maxval (the highest basic leaf is 1
 * already, below the limit of 2), 23 xTPR disable, 34 XD disable: read back as written, with
 * nothing behind them on a CPU without thermal control, SpeedStep, MONITOR or XD. Read-only:
 * 7 performance monitoring available (0: no counters), 11 BTS unavailable (1), 12 PEBS
 * unavailable (1). Any other bit is reserved: #GP.
 */
const MSR_MISC_ENABLE = 0x1a0;
/** The bits a write may have set in EAX (the read-only ones included) and in EDX (bit 34). */
const MISC_ENABLE_LOW = 0x1 | 0x8 | 0x80 | 0x800 | 0x1000 | 0x10000 | 0x40000 | 0x400000 | 0x800000;
const MISC_ENABLE_HIGH = 1 << (34 - 32);
const MISC_ENABLE_READ_ONLY = 0x1880;
/** The read-only bits' values: BTS and PEBS unavailable. */
const MISC_ENABLE_FIXED = 0x1800;
/** At reset: fast strings enabled, and the read-only bits. */
export const MISC_ENABLE_RESET = 0x1 | MISC_ENABLE_FIXED;
/**
 * IA32_EFER (SDM Vol. 3A 2.2.1, Vol. 4 Table 2-2): this CPU has none of SCE, LME, LMA or NXE
 * (no SYSCALL, long mode or XD), so it reads 0 and a write of any set bit is #GP. The SDM ties
 * the MSR to CPUID.80000001H:EDX bit 20 or 29; like QEMU (target/i386 helper_rdmsr), previrt
 * answers the read anyway, which is how 32-bit test kernels find out they are not in long mode.
 */
const MSR_EFER = 0xc0000080;
/** IA32_TSC_AUX (SDM Vol. 4 Table 2-2): the 32-bit value RDTSCP returns in ECX. */
const MSR_TSC_AUX = 0xc0000103;

/**
 * 0F 32 RDMSR, 0F 30 WRMSR: the TSC, the microcode signature, the SYSENTER MSRs,
 * IA32_MISC_ENABLE, IA32_EFER and IA32_TSC_AUX, then those of the platform's on-chip devices
 * (IA32_APIC_BASE); any other MSR is #GP(0).
 */
export function msr(cpu: Cpu, i: Instr): void {
  requireCpl0(cpu);
  cpu.cycles += cpu.costs.systemRegister - cpu.costs.base;
  const n = cpu.ecx;
  const write = i.opcode === 0x130;
  const lo = cpu.eax;
  const hi = cpu.edx;
  let v = 0;
  switch (n) {
    case MSR_TSC:
      if (write) cpu.tscOffset = hi * 0x100000000 + lo - cpu.cycles;
      else v = cpu.cycles + cpu.tscOffset;
      break;
    case MSR_BIOS_SIGN_ID:
      break;
    case MSR_SYSENTER_CS:
      if (write) cpu.sysenterCs = lo & 0xffff;
      else v = cpu.sysenterCs;
      break;
    case MSR_SYSENTER_ESP:
      if (write) cpu.sysenterEsp = lo;
      else v = cpu.sysenterEsp;
      break;
    case MSR_SYSENTER_EIP:
      if (write) cpu.sysenterEip = lo;
      else v = cpu.sysenterEip;
      break;
    case MSR_MISC_ENABLE:
      if (!write) v = cpu.miscEnable;
      // GUEST-CONTROLLED: reserved bits are #GP; the read-only ones keep their values.
      else if ((lo & ~MISC_ENABLE_LOW) !== 0 || (hi & ~MISC_ENABLE_HIGH) !== 0) throw gp(0);
      else
        cpu.miscEnable =
          ((lo & MISC_ENABLE_LOW & ~MISC_ENABLE_READ_ONLY) | MISC_ENABLE_FIXED) +
          (hi & MISC_ENABLE_HIGH) * 0x100000000;
      break;
    case MSR_EFER:
      if (write && (lo !== 0 || hi !== 0)) throw gp(0);
      break;
    case MSR_TSC_AUX:
      if (write) {
        if (hi !== 0) throw gp(0);
        cpu.tscAux = lo >>> 0;
      } else v = cpu.tscAux;
      break;
    default: {
      // GUEST-CONTROLLED: n and the value; the device refuses what it does not hold.
      const onChip = cpu.platform.onChip;
      if (onChip === undefined) throw gp(0);
      if (write) {
        if (!onChip.writeMsr(n, hi * 0x100000000 + lo)) throw gp(0);
      } else {
        const read = onChip.readMsr(n);
        if (read === undefined) throw gp(0);
        v = read;
      }
    }
  }
  if (!write) {
    cpu.eax = v % 0x100000000;
    cpu.edx = Math.floor(v / 0x100000000);
  }
}

/**
 * 0F 33: RDPMC. This CPU has no performance-monitoring counters (CPUID leaf 0xA is not
 * offered, IA32_MISC_ENABLE bit 7 is 0), so every counter in ECX is invalid: #GP(0) (SDM Vol. 2
 * RDPMC), and so is any RDPMC at CPL > 0 with CR4.PCE clear.
 */
export function rdpmc(_cpu: Cpu): void {
  throw gp(0);
}

/** 0F 01 F9: RDTSCP, RDTSC with IA32_TSC_AUX in ECX (SDM Vol. 2 RDTSCP); CR4.TSD as RDTSC. */
export function rdtscp(cpu: Cpu): void {
  rdtsc(cpu);
  cpu.ecx = cpu.tscAux;
}

/**
 * F3 0F C7 /7 (a register operand): RDPID r32, IA32_TSC_AUX into the register (SDM Vol. 2
 * RDPID); without F3 it is RDSEED, and a memory operand is #UD, as on a CPU without them.
 */
export function rdpid(cpu: Cpu, i: Instr): void {
  if (i.mod !== 3 || i.rep !== 1) throw ud();
  cpu.setReg(i.rm, 4, cpu.tscAux);
}

/** CPUID leaf 1 EDX bits by name (SDM Vol. 2 CPUID, table "Feature Information"). */
export const CPUID_FEATURE = {
  DE: 1 << 2,
  PSE: 1 << 3,
  TSC: 1 << 4,
  MSR: 1 << 5,
  CX8: 1 << 8,
  SEP: 1 << 11,
  PGE: 1 << 13,
  CMOV: 1 << 15,
} as const;

/** The feature bits reported in EDX for leaf 1: all of the above, and no FPU (bit 0 clear). */
const FEATURES = Object.values(CPUID_FEATURE).reduce((a, b) => a | b, 0);

/**
 * What CPUID reports for a leaf, as [EAX, EBX, ECX, EDX]: an i686 without FPU ("GenuineIntel",
 * family 6). The in-place VMM reports the same processor to the guest it runs.
 */
export function cpuidLeaf(leaf: number, subleaf = 0): [number, number, number, number] {
  if (leaf === 0) return [7, 0x756e6547, 0x6c65746e, 0x49656e69]; // "Genu" "ntel" "ineI"
  if (leaf === 1) return [0x633, 0, 0, FEATURES];
  // Leaves 2–6 (caches, MONITOR, power management): nothing to describe, all zero. Leaf 7
  // sub-leaf 0: the structured extended features, no further sub-leaves.
  if (leaf === 7 && subleaf === 0)
    return [
      0,
      CPUID_LEAF7_EBX.SMEP | CPUID_LEAF7_EBX.SMAP,
      CPUID_LEAF7_ECX.UMIP | CPUID_LEAF7_ECX.RDPID,
      0,
    ];
  // The extended leaves: up to 0x80000001, whose EDX has RDTSCP (bit 27) and nothing else.
  if (leaf === 0x80000000) return [0x80000001, 0, 0, 0];
  if (leaf === 0x80000001) return [0, 0, 0, CPUID_EXTENDED_FEATURE.RDTSCP];
  return [0, 0, 0, 0];
}

/** CPUID leaf 7 (sub-leaf 0) bits by name (SDM Vol. 2 CPUID, "Structured Extended Feature"). */
export const CPUID_LEAF7_EBX = { SMEP: 1 << 7, SMAP: 1 << 20 } as const;
export const CPUID_LEAF7_ECX = { UMIP: 1 << 2, RDPID: 1 << 22 } as const;

/** CPUID leaf 0x80000001 EDX bits by name (SDM Vol. 2 CPUID). */
export const CPUID_EXTENDED_FEATURE = { RDTSCP: 1 << 27 } as const;

/** 0F A2: CPUID. */
export function cpuid(cpu: Cpu): void {
  cpu.cycles += cpu.costs.cpuid - cpu.costs.base;
  const leaf = cpu.eax;
  const [a, b, c, d] = cpuidLeaf(leaf, cpu.ecx);
  cpu.eax = a;
  cpu.ebx = b;
  cpu.ecx = leaf === 1 ? (c | (cpu.platform.onChip?.cpuidEcx() ?? 0)) >>> 0 : c;
  cpu.edx = leaf === 1 ? (d | (cpu.platform.onChip?.cpuidEdx() ?? 0)) >>> 0 : d;
}

/** 0F 34: SYSENTER to the flat ring-0 segments the MSRs name (SDM Vol. 2 SYSENTER). */
export function sysenter(cpu: Cpu): void {
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0) throw gp(0);
  cpu.cycles += cpu.costs.gatePrivilege - cpu.costs.base;
  cpu.flagsBits &= ~(F.VM | F.IF | F.RF);
  cpu.segs[CS].load(cs, 0, 0xffffffff, 0xc09b);
  cpu.segs[SS].load(cs + 8, 0, 0xffffffff, 0xc093);
  cpu.setCpl(0);
  cpu.esp = cpu.sysenterEsp;
  cpu.eip = cpu.sysenterEip;
}

/** 0F 35: SYSEXIT to ring 3 (EIP = EDX, ESP = ECX). */
export function sysexit(cpu: Cpu): void {
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0 || cpu.cpl !== 0) throw gp(0);
  cpu.cycles += cpu.costs.iretOuter - cpu.costs.base;
  cpu.segs[CS].load((cs + 16) | 3, 0, 0xffffffff, 0xc0fb);
  cpu.segs[SS].load((cs + 24) | 3, 0, 0xffffffff, 0xc0f3);
  cpu.setCpl(3);
  cpu.esp = cpu.ecx;
  cpu.eip = cpu.edx;
}

/** x87, MMX and SSE opcodes on an i686 without FPU: #NM with CR0.EM or CR0.TS, else #UD. */
export function fpu(cpu: Cpu): void {
  if ((cpu.cr0 & 0xc) !== 0) throw new CpuFault(Vector.NM);
  throw ud();
}

/**
 * 0F AE: with a register operand and no prefix, /5 LFENCE, /6 MFENCE, /7 SFENCE — no-ops, since
 * previrt's memory is sequentially consistent (one processor, DMA between instructions), at the
 * base cost (the preset prices no fence). They run although CPUID does not offer SSE2, where the
 * SDM gives #UD: every processor with the TSC-deadline timer, which the local APIC offers, has
 * them, and Linux issues MFENCE before arming that timer (arch/x86/kernel/apic/apic.c,
 * __setup_APIC_LVTT). Every other form (FXSAVE to CLFLUSH, the prefixed ones) is what an i686
 * without those units does: #NM or #UD (`fpu`).
 */
export function fenceGroup(cpu: Cpu, i: Instr): void {
  const prefixed = i.rep !== 0 || i.size !== (i.codeBig ? 4 : 2);
  if (i.mod !== 3 || i.reg < 5 || prefixed) fpu(cpu);
}

/** 9B: WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set, else a no-op. */
export function fwait(cpu: Cpu): void {
  if ((cpu.cr0 & 0xa) === 0xa) throw new CpuFault(Vector.NM);
}

/** 8E: MOV Sreg, r/m16 (CS is #UD). */
export function movSregRm(cpu: Cpu, i: Instr): void {
  if (i.reg === CS || i.reg > 5) throw ud();
  const sel = i.mod === 3 ? cpu.getReg(i.rm, 2) : cpu.read16(cpu.eaLinear(i, 2, false));
  loadSegment(cpu, i.reg, sel);
}

/** 8C: MOV r/m16, Sreg (a 32-bit register destination is zero-extended). */
export function movRmSreg(cpu: Cpu, i: Instr): void {
  if (i.reg > 5) throw ud();
  const sel = cpu.segs[i.reg].selector;
  if (i.mod === 3) cpu.setReg(i.rm, i.size, sel);
  else cpu.write16(cpu.eaLinear(i, 2, true), sel);
}

/** The segment register a PUSH/POP sreg opcode names. */
function sregOf(opcode: number): number {
  if (opcode === 0x1a0 || opcode === 0x1a1) return 4;
  if (opcode === 0x1a8 || opcode === 0x1a9) return 5;
  return (opcode >> 3) & 3;
}

/**
 * 06 0E 16 1E, 0F A0, 0F A8: PUSH Sreg. With a 32-bit operand size, ESP moves by 4 but only the
 * low word is written, as current Intel processors do.
 */
export function pushSreg(cpu: Cpu, i: Instr): void {
  const sel = cpu.segs[sregOf(i.opcode)].selector;
  if (i.size === 2) {
    cpu.push(sel, 2);
    return;
  }
  const esp = cpu.segs[SS].big ? (cpu.regs[4] - 4) >>> 0 : (cpu.regs[4] - 4) & 0xffff;
  cpu.write16(cpu.linear(SS, esp, 4, true), sel);
  cpu.adjustSp(-4);
}

/** 07 17 1F, 0F A1, 0F A9: POP Sreg. */
export function popSreg(cpu: Cpu, i: Instr): void {
  const sel = cpu.peek(i.size, 0) & 0xffff;
  loadSegment(cpu, sregOf(i.opcode), sel);
  cpu.adjustSp(i.size);
}

/** C4 LES, C5 LDS, 0F B2 LSS, 0F B4 LFS, 0F B5 LGS: load a far pointer. */
export function loadFarPointer(cpu: Cpu, i: Instr): void {
  if (i.mod === 3) throw ud();
  const seg =
    i.opcode === 0xc4
      ? 0
      : i.opcode === 0xc5
        ? 3
        : i.opcode === 0x1b2
          ? 2
          : i.opcode === 0x1b4
            ? 4
            : 5;
  const lin = cpu.eaLinear(i, i.size + 2, false);
  const offset = cpu.readSized(lin, i.size);
  const sel = cpu.read16(lin + i.size);
  loadSegment(cpu, seg, sel);
  cpu.setReg(i.reg, i.size, offset);
}

/** EA: JMP ptr16:16/32; 9A: CALL ptr16:16/32. */
export function farDirect(cpu: Cpu, i: Instr): void {
  farTransfer(cpu, i.imm2, i.imm >>> 0, i.size, i.opcode === 0x9a);
}

/** FF /3 CALL m16:16/32, FF /5 JMP m16:16/32. */
export function farIndirect(cpu: Cpu, i: Instr): void {
  if (i.mod === 3) throw ud();
  const lin = cpu.eaLinear(i, i.size + 2, false);
  const offset = cpu.readSized(lin, i.size);
  const sel = cpu.read16(lin + i.size);
  farTransfer(cpu, sel, offset, i.size, i.reg === 3);
}

export { farReturn, iret };
