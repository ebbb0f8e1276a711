/**
 * The sensitive instructions of IA-32 and the NOP padding each one gets.
 *
 * The list is the original afterburner's (asm-parser/Asm.g, rule asmSensitiveInstr; see
 * shared/reference/afterburner.md) plus what it missed and IA-32 still treats as sensitive:
 * verr/verw, far call, sysenter/sysexit, the time-stamp and performance counters, and the
 * ring-0-only cache, monitor and XCR instructions. Padding sizes are the reference table's
 * ("others 8"); the in-place VMM rewrites a site over its instruction and padding.
 */

/** One kind of site; the name is what `--report` and verify-annotations print. */
export type SiteKind =
  | 'pushf'
  | 'popf'
  | 'lgdt'
  | 'sgdt'
  | 'lidt'
  | 'sidt'
  | 'lldt'
  | 'sldt'
  | 'ltr'
  | 'str'
  | 'smsw'
  | 'lmsw'
  | 'ljmp'
  | 'lcall'
  | 'lret'
  | 'iret'
  | 'int'
  | 'lseg'
  | 'clts'
  | 'hlt'
  | 'cli'
  | 'sti'
  | 'in'
  | 'out'
  | 'ins'
  | 'outs'
  | 'invlpg'
  | 'cpuid'
  | 'rdmsr'
  | 'wrmsr'
  | 'ud'
  | 'invd'
  | 'wbinvd'
  | 'arpl'
  | 'lar'
  | 'lsl'
  | 'verr'
  | 'verw'
  | 'rsm'
  | 'sysenter'
  | 'sysexit'
  | 'syscall'
  | 'sysret'
  | 'rdtsc'
  | 'rdtscp'
  | 'rdpmc'
  | 'monitor'
  | 'mwait'
  | 'xsetbv'
  | 'invlpga'
  | 'mov_seg'
  | 'mov_cr'
  | 'mov_dr'
  | 'mov_tr'
  | 'push_seg'
  | 'pop_seg';

/** Bytes of NOP after the instruction, per kind (reference table; unlisted kinds get 8). */
export const PADDING: Readonly<Record<SiteKind, number>> = {
  pushf: 5,
  popf: 21,
  lgdt: 9,
  sgdt: 8,
  lidt: 9,
  sidt: 8,
  lldt: 16,
  sldt: 6,
  ltr: 16,
  str: 9,
  smsw: 8,
  lmsw: 8,
  ljmp: 9,
  lcall: 9,
  lret: 4,
  iret: 4,
  int: 11,
  lseg: 16,
  clts: 14,
  hlt: 6,
  cli: 7,
  sti: 23,
  in: 13,
  out: 16,
  ins: 13,
  outs: 16,
  invlpg: 6,
  cpuid: 8,
  rdmsr: 8,
  wrmsr: 8,
  ud: 8,
  invd: 8,
  wbinvd: 8,
  arpl: 8,
  lar: 8,
  lsl: 8,
  verr: 8,
  verw: 8,
  rsm: 8,
  sysenter: 8,
  sysexit: 8,
  syscall: 8,
  sysret: 8,
  rdtsc: 8,
  rdtscp: 8,
  rdpmc: 8,
  monitor: 8,
  mwait: 8,
  xsetbv: 8,
  invlpga: 8,
  mov_seg: 12,
  mov_cr: 12,
  mov_dr: 12,
  mov_tr: 12,
  push_seg: 5,
  pop_seg: 5,
};

/** What the operands of a mnemonic must look like (checked so nothing is skipped silently). */
type Shape =
  | 'none' // no operands
  | 'memory' // one memory operand (lgdt ...)
  | 'rm' // one register or memory operand (sldt, lldt, verr, smsw ...)
  | 'rm,r' // two operands, the second a register (lar, lsl, lds ...)
  | 'r,rm' // two operands, the first a register (arpl)
  | 'imm?' // optional immediate (lret $n)
  | 'imm' // one immediate (int $n)
  | 'far' // `$seg,$off`, or one memory operand with or without `*` (ljmp, lcall)
  | 'io' // in/out: one or two operands
  | 'string-io' // ins/outs: none or two operands
  | 'any'; // operands vary (monitor, mwait); not checked

interface Entry {
  kind: SiteKind;
  shape: Shape;
}

/** Adds `base` with each of the size suffixes gas accepts for it. */
function spellings(
  into: Map<string, Entry>,
  bases: string[],
  suffixes: string[],
  kind: SiteKind,
  shape: Shape,
): void {
  for (const base of bases) for (const s of suffixes) into.set(base + s, { kind, shape });
}

function buildTable(): Map<string, Entry> {
  const t = new Map<string, Entry>();
  const wl = ['', 'w', 'l'];
  // `d` suffixes and retf are the Intel-syntax spellings (`.intel_syntax`).
  spellings(t, ['pushf'], [...wl, 'd'], 'pushf', 'none');
  spellings(t, ['popf'], [...wl, 'd'], 'popf', 'none');
  for (const m of ['lgdt', 'sgdt', 'lidt', 'sidt'] as const) spellings(t, [m], wl, m, 'memory');
  for (const m of ['lldt', 'sldt', 'ltr', 'str', 'smsw', 'lmsw', 'verr', 'verw'] as const)
    spellings(t, [m], wl, m, 'rm');
  spellings(t, ['ljmp'], wl, 'ljmp', 'far');
  spellings(t, ['lcall'], wl, 'lcall', 'far');
  spellings(t, ['lret'], wl, 'lret', 'imm?');
  spellings(t, ['retf'], ['', 'w', 'd'], 'lret', 'any');
  spellings(t, ['iret'], [...wl, 'd'], 'iret', 'none');
  t.set('int', { kind: 'int', shape: 'imm' });
  for (const m of ['int3', 'into', 'int1', 'icebp']) t.set(m, { kind: 'int', shape: 'none' });
  spellings(t, ['lds', 'les', 'lfs', 'lgs', 'lss'], wl, 'lseg', 'rm,r');
  spellings(t, ['in'], ['', 'b', 'w', 'l'], 'in', 'io');
  spellings(t, ['out'], ['', 'b', 'w', 'l'], 'out', 'io');
  spellings(t, ['ins'], ['', 'b', 'w', 'l', 'd'], 'ins', 'string-io');
  spellings(t, ['outs'], ['', 'b', 'w', 'l', 'd'], 'outs', 'string-io');
  const simple: [string, SiteKind][] = [
    ['clts', 'clts'],
    ['hlt', 'hlt'],
    ['cli', 'cli'],
    ['sti', 'sti'],
    ['cpuid', 'cpuid'],
    ['rdmsr', 'rdmsr'],
    ['wrmsr', 'wrmsr'],
    ['ud2', 'ud'],
    ['ud2a', 'ud'],
    ['invd', 'invd'],
    ['wbinvd', 'wbinvd'],
    ['wbnoinvd', 'wbinvd'],
    ['rsm', 'rsm'],
    ['sysenter', 'sysenter'],
    ['sysexit', 'sysexit'],
    ['sysexitl', 'sysexit'],
    ['syscall', 'syscall'],
    ['sysret', 'sysret'],
    ['sysretl', 'sysret'],
    ['rdtsc', 'rdtsc'],
    ['rdtscp', 'rdtscp'],
    ['rdpmc', 'rdpmc'],
    ['xsetbv', 'xsetbv'],
  ];
  for (const [m, kind] of simple) t.set(m, { kind, shape: 'none' });
  for (const m of ['ud0', 'ud1', 'ud2b']) t.set(m, { kind: 'ud', shape: 'any' });
  t.set('invlpg', { kind: 'invlpg', shape: 'memory' });
  for (const m of ['monitor', 'monitorl', 'monitorw']) t.set(m, { kind: 'monitor', shape: 'any' });
  t.set('mwait', { kind: 'mwait', shape: 'any' });
  t.set('invlpga', { kind: 'invlpga', shape: 'any' });
  spellings(t, ['arpl'], ['', 'w'], 'arpl', 'r,rm');
  spellings(t, ['lar'], wl, 'lar', 'rm,r');
  spellings(t, ['lsl'], wl, 'lsl', 'rm,r');
  return t;
}

/** Mnemonics that are sensitive whatever their operands, by lower-case spelling. */
export const SENSITIVE: ReadonlyMap<string, Entry> = buildTable();

/** Mnemonics that are sensitive only with some operands (segment, control, debug registers). */
export const OPERAND_DEPENDENT: ReadonlySet<string> = new Set([
  'mov',
  'movl',
  'movw',
  'push',
  'pushl',
  'pushw',
  'pop',
  'popl',
  'popw',
  // `jmp $seg,$off` and `call $seg,$off` are gas's other spelling of ljmp/lcall.
  'jmp',
  'jmpl',
  'jmpw',
  'call',
  'calll',
  'callw',
]);

/** Instruction prefixes gas accepts as words before a mnemonic or as statements of their own. */
export const PREFIXES: ReadonlySet<string> = new Set([
  'rep',
  'repe',
  'repz',
  'repne',
  'repnz',
  'lock',
  'data16',
  'data32',
  'addr16',
  'addr32',
  'cs',
  'ds',
  'es',
  'fs',
  'gs',
  'ss',
  'notrack',
  'bnd',
  'xacquire',
  'xrelease',
]);

const SEGMENT = /^%(cs|ds|es|fs|gs|ss)$/;
const SPECIAL = /^%(cr|db|dr|tr)[0-9]+$/;

/** Kind of a mov/push/pop/jmp/call given its operands, or null when it is not sensitive. */
function operandKind(mnemonic: string, operands: string[]): SiteKind | null {
  const first = mnemonic.charCodeAt(0);
  if (first === 0x6a /* j */ || first === 0x63 /* c */) {
    // Two operands can only be the direct far form `$seg,$off` (SDM Vol. 2A, JMP/CALL ptr16:32).
    if (operands.length !== 2) return null;
    return first === 0x6a ? 'ljmp' : 'lcall';
  }
  let kind: SiteKind | null = null;
  for (const raw of operands) {
    const op = raw.toLowerCase();
    if (SEGMENT.test(op)) {
      kind =
        first === 0x6d /* m */
          ? 'mov_seg'
          : first === 0x70 && mnemonic[1] === 'u'
            ? 'push_seg'
            : 'pop_seg';
    } else if (SPECIAL.test(op)) {
      const r = op.slice(1, 3);
      kind = r === 'cr' ? 'mov_cr' : r === 'tr' ? 'mov_tr' : 'mov_dr';
    }
  }
  return kind;
}

/** Result of classifying one instruction: its kind, or an error message about its operands. */
export type Classification = { kind: SiteKind } | { error: string } | null;

function isImmediate(op: string): boolean {
  return op.startsWith('$');
}
function isRegister(op: string): boolean {
  return op.startsWith('%') && !op.includes(':') && !op.includes('(');
}

/** Checks that the operands have the shape the mnemonic needs; returns an error or null. */
function checkShape(shape: Shape, ops: string[]): string | null {
  const n = ops.length;
  const ok = ((): boolean => {
    switch (shape) {
      case 'none':
        return n === 0;
      case 'memory':
        return n === 1 && !isRegister(ops[0]!) && !isImmediate(ops[0]!);
      case 'rm':
        return n === 1 && !isImmediate(ops[0]!);
      case 'rm,r':
        return n === 2 && !isImmediate(ops[0]!) && isRegister(ops[1]!);
      case 'r,rm':
        return n === 2 && isRegister(ops[0]!) && !isImmediate(ops[1]!);
      case 'imm?':
        return n === 0 || (n === 1 && isImmediate(ops[0]!));
      case 'imm':
        return n === 1 && isImmediate(ops[0]!);
      case 'far':
        return n === 2
          ? isImmediate(ops[0]!) && isImmediate(ops[1]!)
          : n === 1 && !isRegister(ops[0]!) && !isImmediate(ops[0]!);
      case 'io':
        return n === 1 || n === 2;
      case 'string-io':
        return n === 0 || n === 2;
      case 'any':
        return true;
    }
  })();
  return ok ? null : `${n} operand${n === 1 ? '' : 's'} where it needs ${describe(shape)}`;
}

function describe(shape: Shape): string {
  switch (shape) {
    case 'none':
      return 'none';
    case 'memory':
      return 'one memory operand';
    case 'rm':
      return 'one register or memory operand';
    case 'rm,r':
      return 'a register or memory operand and a register';
    case 'r,rm':
      return 'a register and a register or memory operand';
    case 'imm?':
      return 'none or one immediate';
    case 'imm':
      return 'one immediate';
    case 'far':
      return '$segment,$offset or one memory operand';
    case 'io':
      return 'one or two operands';
    case 'string-io':
      return 'none or two operands';
    case 'any':
      return 'any operands';
  }
}

/**
 * Classifies an instruction by lower-case mnemonic (prefixes and `.s`-style suffixes removed)
 * and its operands split at top-level commas. Returns null for non-sensitive instructions.
 */
export function classify(mnemonic: string, operands: string[]): Classification {
  const entry = SENSITIVE.get(mnemonic);
  if (entry !== undefined) {
    const error = checkShape(entry.shape, operands);
    return error === null ? { kind: entry.kind } : { error };
  }
  if (!OPERAND_DEPENDENT.has(mnemonic)) return null;
  const kind = operandKind(mnemonic, operands);
  if (kind === null) return null;
  if (kind === 'ljmp' || kind === 'lcall') {
    return isImmediate(operands[0]!) && isImmediate(operands[1]!)
      ? { kind }
      : { error: `far ${kind === 'ljmp' ? 'jmp' : 'call'} needs $segment,$offset` };
  }
  const wanted = mnemonic.startsWith('mov') ? 2 : 1;
  if (operands.length !== wanted)
    return { error: `${operands.length} operands where it needs ${wanted}` };
  return { kind };
}

const INTEL_SEGMENT = /^%?(cs|ds|es|fs|gs|ss)$/;
const INTEL_SPECIAL = /^%?(cr|db|dr|tr)[0-9]+$/;

/**
 * Kind of a mov/push/pop/jmp/call in Intel syntax (`.intel_syntax [no]prefix`), or null. Far
 * transfers are `jmp far ...`, `jmp fword ptr ...` or a direct `jmp sel:off`; registers may lack
 * the `%`. Operand shapes are not checked in this mode.
 */
export function classifyIntel(mnemonic: string, operands: string[]): SiteKind | null {
  const first = mnemonic.charCodeAt(0);
  if (first === 0x6a /* j */ || first === 0x63 /* c */) {
    const far = operands.some((raw) => {
      const op = raw.toLowerCase();
      if (/\b(far|fword)\b/.test(op)) return true;
      const colon = /^([^:[]+):/.exec(op);
      return colon !== null && !INTEL_SEGMENT.test(colon[1]!.trim());
    });
    return far || operands.length === 2 ? (first === 0x6a ? 'ljmp' : 'lcall') : null;
  }
  for (const raw of operands) {
    const op = raw.trim().toLowerCase();
    if (INTEL_SEGMENT.test(op))
      return first === 0x6d ? 'mov_seg' : mnemonic.startsWith('pu') ? 'push_seg' : 'pop_seg';
    const special = INTEL_SPECIAL.exec(op);
    if (special !== null)
      return special[1] === 'cr' ? 'mov_cr' : special[1] === 'tr' ? 'mov_tr' : 'mov_dr';
  }
  return null;
}
