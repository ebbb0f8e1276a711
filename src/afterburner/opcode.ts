/**
 * Sensitive instructions recognised by their machine code, for verify-annotations. This is
 * deliberately independent of the assembly-text classifier (sensitive.ts): a spelling the
 * afterburner does not know still shows up here as an unannotated sensitive instruction.
 * Opcodes from the SDM Vol. 2 (opcode map, Appendix A) for 32-bit code.
 */
import type { SiteKind } from './sensitive.ts';

/** Legacy prefixes (SDM Vol. 2A, 2.1.1): lock, rep, segment overrides, operand/address size. */
const PREFIX = new Set([0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67]);

const ONE_BYTE: ReadonlyMap<number, SiteKind> = new Map<number, SiteKind>([
  [0x06, 'push_seg'], // push es
  [0x07, 'pop_seg'],
  [0x0e, 'push_seg'], // push cs
  [0x16, 'push_seg'],
  [0x17, 'pop_seg'],
  [0x1e, 'push_seg'],
  [0x1f, 'pop_seg'],
  [0x63, 'arpl'],
  [0x6c, 'ins'],
  [0x6d, 'ins'],
  [0x6e, 'outs'],
  [0x6f, 'outs'],
  [0x8c, 'mov_seg'], // mov Sreg -> r/m
  [0x8e, 'mov_seg'], // mov r/m -> Sreg
  [0x9a, 'lcall'],
  [0x9c, 'pushf'],
  [0x9d, 'popf'],
  [0xc4, 'lseg'], // les
  [0xc5, 'lseg'], // lds
  [0xca, 'lret'],
  [0xcb, 'lret'],
  [0xcc, 'int'], // int3
  [0xcd, 'int'],
  [0xce, 'int'], // into
  [0xcf, 'iret'],
  [0xe4, 'in'],
  [0xe5, 'in'],
  [0xe6, 'out'],
  [0xe7, 'out'],
  [0xea, 'ljmp'],
  [0xec, 'in'],
  [0xed, 'in'],
  [0xee, 'out'],
  [0xef, 'out'],
  [0xf1, 'int'], // int1 / icebp
  [0xf4, 'hlt'],
  [0xfa, 'cli'],
  [0xfb, 'sti'],
]);

const TWO_BYTE: ReadonlyMap<number, SiteKind> = new Map<number, SiteKind>([
  [0x02, 'lar'],
  [0x03, 'lsl'],
  [0x05, 'syscall'], // AMD only in 32-bit mode
  [0x06, 'clts'],
  [0x07, 'sysret'],
  [0x08, 'invd'],
  [0x09, 'wbinvd'],
  [0x0b, 'ud'],
  [0x20, 'mov_cr'],
  [0x21, 'mov_dr'],
  [0x22, 'mov_cr'],
  [0x23, 'mov_dr'],
  [0x24, 'mov_tr'],
  [0x26, 'mov_tr'],
  [0x30, 'wrmsr'],
  [0x31, 'rdtsc'],
  [0x32, 'rdmsr'],
  [0x33, 'rdpmc'],
  [0x34, 'sysenter'],
  [0x35, 'sysexit'],
  [0xa0, 'push_seg'], // push fs
  [0xa1, 'pop_seg'],
  [0xa2, 'cpuid'],
  [0xa8, 'push_seg'], // push gs
  [0xa9, 'pop_seg'],
  [0xaa, 'rsm'],
  [0xb2, 'lseg'], // lss
  [0xb4, 'lseg'], // lfs
  [0xb5, 'lseg'], // lgs
  [0xb9, 'ud'], // ud1
  [0xff, 'ud'], // ud0
]);

/** 0F 00 /reg (SDM Vol. 2, Table A-6 group 6). */
const GROUP6: readonly (SiteKind | null)[] = [
  'sldt',
  'str',
  'lldt',
  'ltr',
  'verr',
  'verw',
  null,
  null,
];
/** 0F 01 /reg with a memory operand (group 7). */
const GROUP7_MEM: readonly (SiteKind | null)[] = [
  'sgdt',
  'sidt',
  'lgdt',
  'lidt',
  'smsw',
  null,
  'lmsw',
  'invlpg',
];
/** 0F 01 with mod = 11: the register forms of group 7 that are sensitive. */
const GROUP7_REG: ReadonlyMap<number, SiteKind> = new Map<number, SiteKind>([
  [0xc8, 'monitor'],
  [0xc9, 'mwait'],
  [0xd1, 'xsetbv'],
  [0xdf, 'invlpga'],
  [0xf9, 'rdtscp'],
]);

/** The sensitive kind of the instruction in `bytes` (one whole instruction), or null. */
export function classifyBytes(bytes: readonly number[]): SiteKind | null {
  let i = 0;
  while (i < bytes.length && PREFIX.has(bytes[i]!)) i++;
  const op = bytes[i];
  if (op === undefined) return null;
  if (op !== 0x0f) {
    const kind = ONE_BYTE.get(op);
    if (kind !== undefined) return kind;
    if (op === 0xff) {
      // FF /3 call far m16:32, FF /5 jmp far m16:32 (memory operand only).
      const modrm = bytes[i + 1] ?? 0;
      const reg = (modrm >> 3) & 7;
      if (modrm >> 6 !== 3 && reg === 3) return 'lcall';
      if (modrm >> 6 !== 3 && reg === 5) return 'ljmp';
    }
    return null;
  }
  const op2 = bytes[i + 1];
  if (op2 === undefined) return null;
  const modrm = bytes[i + 2] ?? 0;
  const reg = (modrm >> 3) & 7;
  if (op2 === 0x00) return GROUP6[reg] ?? null;
  if (op2 === 0x01) {
    if (modrm >> 6 !== 3) return GROUP7_MEM[reg] ?? null;
    if (reg === 4) return 'smsw';
    if (reg === 6) return 'lmsw';
    return GROUP7_REG.get(modrm) ?? null;
  }
  return TWO_BYTE.get(op2) ?? null;
}
