/**
 * The load-time rewriter (reference/afterburner.md, "The in-place VMM"): every annotated site
 * of the kernel is overwritten, within its own bytes (instruction plus NOP padding), by
 *
 * - inline x86 that works on the virtual-CPU block for the frequent, simple instructions
 *   (cli, sti, pushf, popf, and moves, pushes and pops of data segment registers), or
 * - a `call` to the VMM's emulation entry, which the CPU binds to TypeScript (DESIGN.md
 *   decision 6); the site table keeps the decoded original instruction for the handler.
 *
 * A replacement that does not fit its site is a load error. The table of what each kind
 * becomes is in src/vmm/README.md.
 */
import { decode } from '../x86/decode.ts';
import type { Instr } from '../x86/instr.ts';
import type { SiteRecord } from './sections.ts';
import {
  ENTRY_EMULATE,
  le32,
  STUB_IRQ_CHECK,
  STUB_POPF,
  STUB_PUSHF,
  Vcpu,
  VCPU_PAGE,
  vcpuSeg,
} from './window.ts';

/** What a site is, as the VMM counts and handles it. */
export type SiteKind =
  | 'cli'
  | 'sti'
  | 'pushf'
  | 'popf'
  | 'push-seg'
  | 'pop-seg'
  | 'mov-to-seg'
  | 'mov-from-seg'
  | 'hlt'
  | 'in'
  | 'out'
  | 'iret'
  | 'int'
  | 'invlpg'
  | 'lgdt'
  | 'lidt'
  | 'sgdt'
  | 'sidt'
  | 'lldt'
  | 'sldt'
  | 'ltr'
  | 'str'
  | 'ljmp'
  | 'mov-to-cr'
  | 'mov-from-cr'
  | 'cpuid'
  | 'rdtsc'
  | 'rdtscp'
  | 'rdmsr'
  | 'wrmsr'
  | 'rdpmc'
  | 'sysexit'
  | 'clts'
  | 'invd'
  | 'wbinvd'
  | 'mov-to-dr'
  | 'mov-from-dr'
  | 'smsw'
  | 'lmsw'
  | 'lseg'
  | 'monitor'
  | 'mwait'
  | 'xsetbv'
  | 'ud'
  | 'verr'
  | 'verw'
  | 'ins'
  | 'outs'
  | 'pte_set'
  | 'pgd_set'
  | 'pte_read'
  | 'pgd_read'
  | 'pte_test_clear'
  | 'mmio_read'
  | 'mmio_write';

/** A site that became a call: the handler finds it by the call's return address. */
export interface CallSite {
  kind: SiteKind;
  start: number;
  end: number;
  /** The original instruction, decoded (operands, size). */
  instr: Instr;
}

export interface Patch {
  at: number;
  bytes: Uint8Array;
}

export interface RewriteResult {
  patches: Patch[];
  /** Call sites by return address (start + 5). */
  calls: Map<number, CallSite>;
  /** Sites by kind, inline and call alike. */
  counts: Record<string, number>;
}

/** Reads the kernel's original bytes at a link address (undefined outside the image). */
export type CodeReader = (linkAddr: number, length: number) => Uint8Array | undefined;

const CALL_LENGTH = 5;
const HEADER_KINDS = new Set([
  'pte_set',
  'pgd_set',
  'pte_read',
  'pgd_read',
  'pte_test_clear',
  'mmio_read',
  'mmio_write',
]);

/**
 * Sites left as they are: their instruction does, de-privileged, what it does in ring 0 — UD2
 * (and UD0, UD1) raise #UD in every ring, and the kernel's handler finds its bug table entry at
 * the instruction's own address.
 */
const KEPT: ReadonlySet<SiteKind> = new Set(['ud']);

/** Rewrites every site; a message for the first one that cannot be handled or does not fit. */
export function rewriteSites(records: SiteRecord[], read: CodeReader): RewriteResult | string {
  const sorted = [...records].sort((a, b) => a.start - b.start);
  const result: RewriteResult = { patches: [], calls: new Map(), counts: {} };
  const decoded: { rec: SiteRecord; instr: Instr; kind: SiteKind }[] = [];
  for (const rec of sorted) {
    const where = `site at 0x${rec.start.toString(16)}${rec.kind ? ` (.afterburn.${rec.kind})` : ''}`;
    const bytes = read(rec.start, rec.end - rec.start);
    if (bytes === undefined) return `${where}: outside the kernel image`;
    const instr = decode(bytes, 0, true);
    if (instr.length === 0) return `${where}: the bytes do not decode to an instruction`;
    const kind = classify(rec.kind, instr);
    if (kind === undefined) {
      const hex = [...bytes.subarray(0, instr.length)].map((b) => b.toString(16).padStart(2, '0'));
      return `${where}: instruction ${hex.join(' ')} is not one the VMM emulates`;
    }
    decoded.push({ rec, instr, kind });
  }
  for (let k = 0; k < decoded.length; k++) {
    const { rec, instr, kind } = decoded[k];
    const next = decoded[k + 1];
    // sti; hlt: the interrupt shadow makes the pair atomic, so the check belongs to the hlt.
    const stiBeforeHlt =
      kind === 'sti' && next !== undefined && next.kind === 'hlt' && next.rec.start === rec.end;
    if (KEPT.has(kind)) {
      result.counts[kind] = (result.counts[kind] ?? 0) + 1;
      continue;
    }
    const code = replacement(kind, instr, rec.start, stiBeforeHlt);
    const room = rec.end - rec.start;
    if (code.length > room) {
      return `site at 0x${rec.start.toString(16)} (${kind}): the replacement needs ${code.length} bytes but the site has ${room} (instruction and padding)`;
    }
    result.patches.push({ at: rec.start, bytes: Uint8Array.from(fill(code, room)) });
    result.counts[kind] = (result.counts[kind] ?? 0) + 1;
    if (code[0] === 0xe8 && code.length === CALL_LENGTH && kind !== 'pushf' && kind !== 'popf') {
      result.calls.set(rec.start + CALL_LENGTH, { kind, start: rec.start, end: rec.end, instr });
    }
  }
  return result;
}

/** The site kind of a decoded instruction (SDM Vol. 2 opcode map), undefined if unsupported. */
export function classify(section: string, i: Instr): SiteKind | undefined {
  if (section !== '') {
    if (!HEADER_KINDS.has(section)) return undefined;
    return section as SiteKind;
  }
  const op = i.opcode;
  switch (op) {
    case 0xfa:
      return 'cli';
    case 0xfb:
      return 'sti';
    case 0x9c:
      return i.size === 4 ? 'pushf' : undefined;
    case 0x9d:
      return i.size === 4 ? 'popf' : undefined;
    case 0xf4:
      return 'hlt';
    case 0xcf:
      return i.size === 4 ? 'iret' : undefined;
    case 0xcc:
    case 0xcd:
      return 'int';
    case 0x06:
    case 0x0e:
    case 0x16:
    case 0x1e:
    case 0x1a0:
    case 0x1a8:
      return i.size === 4 ? 'push-seg' : undefined;
    case 0x07:
    case 0x17:
    case 0x1f:
    case 0x1a1:
    case 0x1a9:
      return i.size === 4 ? 'pop-seg' : undefined;
    case 0x8e:
      return i.reg < 6 && i.reg !== 1 ? 'mov-to-seg' : undefined;
    case 0x8c:
      return i.reg < 6 ? 'mov-from-seg' : undefined;
    case 0xe4:
    case 0xe5:
    case 0xec:
    case 0xed:
      return 'in';
    case 0xe6:
    case 0xe7:
    case 0xee:
    case 0xef:
      return 'out';
    case 0xea:
      return 'ljmp';
    case 0x120:
      return 'mov-from-cr';
    case 0x122:
      return 'mov-to-cr';
    case 0x1a2:
      return 'cpuid';
    case 0x131:
      return 'rdtsc';
    case 0x130:
      return 'wrmsr';
    case 0x132:
      return 'rdmsr';
    case 0x133:
      return 'rdpmc';
    case 0x135:
      return 'sysexit';
    case 0x106:
      return 'clts';
    case 0x108:
      return 'invd';
    case 0x109:
      return 'wbinvd';
    case 0x121:
      return 'mov-from-dr';
    case 0x123:
      return 'mov-to-dr';
    case 0x10b:
    case 0x1b9:
    case 0x1ff:
      return 'ud';
    case 0xc4:
    case 0xc5:
    case 0x1b2:
    case 0x1b4:
    case 0x1b5:
      return i.mod === 3 ? undefined : 'lseg';
    case 0x100:
      return (['sldt', 'str', 'lldt', 'ltr', 'verr', 'verw'] as const)[i.reg];
    case 0x6c:
    case 0x6d:
      return 'ins';
    case 0x6e:
    case 0x6f:
      return 'outs';
    case 0x101:
      if (i.mod === 3) {
        // The register forms of group 7 (SDM Vol. 2 Table A-6): 0F 01 C8 MONITOR, C9 MWAIT,
        // D1 XSETBV, F9 RDTSCP; SMSW and LMSW take a register too.
        const form = (i.reg << 3) | i.rm;
        if (form === 0o10) return 'monitor';
        if (form === 0o11) return 'mwait';
        if (form === 0o21) return 'xsetbv';
        if (form === 0o71) return 'rdtscp';
        return i.reg === 4 ? 'smsw' : i.reg === 6 ? 'lmsw' : undefined;
      }
      return (['sgdt', 'sidt', 'lgdt', 'lidt', 'smsw', undefined, 'lmsw', 'invlpg'] as const)[
        i.reg
      ];
    default:
      return undefined;
  }
}

/** The segment register an instruction pushes, pops or moves (0 ES … 5 GS). */
export function segmentOperand(i: Instr): number {
  switch (i.opcode) {
    case 0x06:
    case 0x07:
      return 0;
    case 0x0e:
      return 1;
    case 0x16:
    case 0x17:
      return 2;
    case 0x1e:
    case 0x1f:
      return 3;
    case 0x1a0:
    case 0x1a1:
      return 4;
    case 0x1a8:
    case 0x1a9:
      return 5;
    default:
      return i.reg;
  }
}

function replacement(kind: SiteKind, i: Instr, at: number, stiBeforeHlt: boolean): number[] {
  const vifHigh = le32(VCPU_PAGE + Vcpu.vif + 1);
  const callTo = (target: number): number[] => [0xe8, ...le32(target - (at + CALL_LENGTH))];
  switch (kind) {
    // A MOV to the virtual IF's own byte: no flag changes, as CLI and STI change only IF.
    case 'cli':
      return [0xc6, 0x05, ...vifHigh, 0x00]; // movb $0, vif+1
    case 'sti': {
      const set = [0xc6, 0x05, ...vifHigh, 0x02]; // movb $2, vif+1 (flag-neutral check after)
      if (stiBeforeHlt) return set;
      return [...set, 0xe8, ...le32(STUB_IRQ_CHECK - (at + set.length + CALL_LENGTH))];
    }
    // The real arithmetic flags with the virtual IF and IOPL (stubs in window.ts).
    case 'pushf':
      return callTo(STUB_PUSHF);
    case 'popf':
      return callTo(STUB_POPF);
    case 'push-seg':
      return [0xff, 0x35, ...le32(vcpuSeg(segmentOperand(i)))]; // pushl vseg
    case 'pop-seg':
      return [0x8f, 0x05, ...le32(vcpuSeg(segmentOperand(i)))]; // popl vseg
    case 'mov-to-seg':
      // movw %r16, vseg (register source only; a memory source becomes a call).
      if (i.mod !== 3) return callTo(ENTRY_EMULATE);
      return [0x66, 0x89, 0x05 | (i.rm << 3), ...le32(vcpuSeg(i.reg))];
    case 'mov-from-seg':
      if (i.mod !== 3) return callTo(ENTRY_EMULATE);
      // movzwl vseg, %r32, or movw vseg, %r16 with an operand-size prefix.
      if (i.size === 2) return [0x66, 0x8b, 0x05 | (i.rm << 3), ...le32(vcpuSeg(i.reg))];
      return [0x0f, 0xb7, 0x05 | (i.rm << 3), ...le32(vcpuSeg(i.reg))];
    default:
      return callTo(ENTRY_EMULATE);
  }
}

/**
 * Pads a replacement to the site's length: a short jump over what is left, or NOPs. The bytes
 * jumped over are INT3, not NOPs: a kernel that rewrites NOP runs in place (Linux's
 * alternatives, optimize_nops) would otherwise merge them with the NOPs after the site into one
 * long NOP, and the jump would land inside it.
 */
function fill(code: number[], room: number): number[] {
  const left = room - code.length;
  if (left === 0) return code;
  if (left === 1) return [...code, 0x90];
  if (left === 2) return [...code, 0x66, 0x90];
  return [...code, 0xeb, left - 2, ...new Array<number>(left - 2).fill(0xcc)];
}
