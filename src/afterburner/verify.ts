/**
 * verify-annotations: checks a linked ELF against its annotations. objdump (GNU binutils)
 * splits the executable sections into instructions; each instruction's bytes are classified
 * by opcode (opcode.ts, independent of the afterburner's text classifier), and every sensitive
 * one must begin a `.afterburn` site whose padding is at least the required size and is NOP.
 */
import { spawnSync } from 'node:child_process';
import { PADDING, type SiteKind } from './sensitive.ts';
import { classifyBytes } from './opcode.ts';
import { parseElf32, readPairs, SHF_EXECINSTR } from './elf.ts';

export interface Offender {
  address: number;
  /** Nearest symbol and offset, as objdump prints it (`foo+0x12`). */
  where: string;
  section: string;
  instruction: string;
  kind: SiteKind | null;
  problem: string;
}

export interface VerifyResult {
  file: string;
  /** Sensitive instructions found in executable sections. */
  sensitive: number;
  /** Of those, inside an annotated site with enough padding. */
  annotated: number;
  /** Of those, inside an `.afterburn_noannotate` region (exempt). */
  exempt: number;
  /**
   * 0xCC bytes that no path reaches: after an unconditional jump or return (NOPs between
   * allowed), at no symbol's start and no direct branch's target. Linkers, `.fill` and
   * speculation stops put them there; they are not counted as sensitive instructions.
   */
  fill: number;
  /** Records in `.afterburn`. */
  sites: number;
  /** Records in the header's per-kind sections (`.afterburn.pte_set`, ...), by section. */
  headerSites: Record<string, number>;
  /** Sensitive instructions by kind. */
  byKind: Partial<Record<SiteKind, number>>;
  offenders: Offender[];
}

interface Insn {
  address: number;
  bytes: number[];
  text: string;
  where: string;
  section: string;
}

/** NOP bytes after each annotation-header instruction (AB_PAD in include/afterburn.h). */
const HEADER_PADDING = 12;

const LINE = /^\s*([0-9a-f]+):\t([0-9a-f]{2}(?: [0-9a-f]{2})*)\s*(?:\t(.*))?$/;
const SYMBOL = /^([0-9a-f]+) <(.*)>:$/;
const SECTION = /^Disassembly of section (.*):$/;

/** Runs objdump and returns the instructions of every executable section, in order. */
function disassemble(file: string, objdump: string): Insn[] {
  const run = spawnSync(objdump, ['-d', '--insn-width=16', file], {
    encoding: 'latin1',
    maxBuffer: 1 << 30,
  });
  if (run.error !== undefined) throw new Error(`cannot run ${objdump}: ${run.error.message}`);
  if (run.status !== 0)
    throw new Error(`${objdump} failed: ${run.stderr.trim().split('\n')[0] ?? ''}`);
  const insns: Insn[] = [];
  let section = '';
  let symbol = '';
  let symbolAddr = 0;
  for (const line of run.stdout.split('\n')) {
    const m = LINE.exec(line);
    if (m !== null) {
      const address = parseInt(m[1]!, 16);
      const bytes = m[2]!.split(' ').map((b) => parseInt(b, 16));
      const off = address - symbolAddr;
      insns.push({
        address,
        bytes,
        text: (m[3] ?? '').replace(/\s+/g, ' ').trim(),
        // objdump names a section start with no symbol `<sym+0x...>`; print only the section then.
        where:
          symbol === '' || symbol.includes('+')
            ? ''
            : off === 0
              ? symbol
              : `${symbol}+0x${off.toString(16)}`,
        section,
      });
      continue;
    }
    const s = SYMBOL.exec(line);
    if (s !== null) {
      symbolAddr = parseInt(s[1]!, 16);
      symbol = s[2]!;
      continue;
    }
    const sec = SECTION.exec(line);
    if (sec !== null) {
      section = sec[1]!;
      symbol = '';
    }
  }
  return insns;
}

function isNop(insn: Insn): boolean {
  return /^(\S+ )*nop[wl]?\b/.test(insn.text) || insn.text.startsWith('xchg %ax,%ax');
}

/** After these, the next byte is reached only by a branch: jmp (any form), ret, iret, ud0/ud1/ud2. */
const NO_FALL_THROUGH = /^(\S+ )*(jmp[lw]?|ljmp[lw]?|ret[lwq]?|lret[lwq]?|iret[lwd]?|ud[012]b?)\b/;
/** The target of a direct jump, call or loop as objdump prints it (`jne c1000abc <f+0x1>`). */
const DIRECT_BRANCH = /^(\S+ )*(j[a-z]+|call[lw]?|loop[a-z]*) +([0-9a-f]+) </;

/** Addresses that direct branches go to. */
function branchTargets(insns: Insn[]): Set<number> {
  const targets = new Set<number>();
  for (const insn of insns) {
    const m = DIRECT_BRANCH.exec(insn.text);
    if (m !== null) targets.add(parseInt(m[3]!, 16));
  }
  return targets;
}

/**
 * insns[k] is a one-byte int3 that no path reaches: no direct branch goes to it, and the
 * instructions before it in its section, skipping NOPs and other such bytes, end in one without
 * fall-through, or it sits between a call and that call's target just after it (the return-stack
 * filling idiom `call 1f; int3; 1:`, whose return address is never used). A function entered
 * only through a pointer that began with int3 right after another's return would be taken for
 * fill; compilers do not emit one.
 */
function isFill(insns: Insn[], k: number, targets: Set<number>): boolean {
  const insn = insns[k]!;
  if (insn.bytes.length !== 1 || insn.bytes[0] !== 0xcc) return false;
  if (targets.has(insn.address)) return false;
  const previous = insns[k - 1];
  if (previous !== undefined && previous.section === insn.section) {
    const call = DIRECT_BRANCH.exec(previous.text);
    if (call !== null && call[2]!.startsWith('call') && parseInt(call[3]!, 16) === insn.address + 1)
      return true;
  }
  for (let j = k - 1; j >= 0; j--) {
    const before = insns[j]!;
    if (before.section !== insn.section) return false;
    if (targets.has(before.address) && !NO_FALL_THROUGH.test(before.text)) return false;
    if (before.bytes.length === 1 && before.bytes[0] === 0xcc) continue;
    // A NOP that starts a symbol is an entry (a function beginning with alignment NOPs).
    if (isNop(before)) {
      if (before.where !== '' && !before.where.includes('+')) return false;
      continue;
    }
    return NO_FALL_THROUGH.test(before.text);
  }
  return false;
}

/** Verifies `file`. Throws Error with a one-line reason when the file cannot be read as ELF. */
export function verifyAnnotations(
  file: string,
  bytes: Uint8Array,
  objdump = 'objdump',
): VerifyResult {
  const elf = parseElf32(bytes);
  if (elf.type === 1)
    throw new Error(
      'a relocatable object (.o): link it first, the annotation records need final addresses',
    );
  if (elf.machine !== 3) throw new Error('not an IA-32 ELF file (e_machine is not EM_386)');
  const sites = new Map<number, number>();
  const noannotate: { start: number; end: number }[] = [];
  const headerSites: Record<string, number> = {};
  const headerPairs: { section: string; start: number; end: number }[] = [];
  let siteCount = 0;
  for (const section of elf.sections) {
    if (section.name === '.afterburn') {
      for (const p of readPairs(bytes, section)) sites.set(p.start, p.end);
      siteCount += section.size / 8;
    } else if (section.name === '.afterburn_noannotate')
      noannotate.push(...readPairs(bytes, section));
    else if (section.name.startsWith('.afterburn.')) {
      headerSites[section.name] = section.size / 8;
      for (const p of readPairs(bytes, section)) headerPairs.push({ section: section.name, ...p });
    }
  }
  const hasCode = elf.sections.some((s) => (s.flags & SHF_EXECINSTR) !== 0);
  const insns = hasCode ? disassemble(file, objdump) : [];
  const result: VerifyResult = {
    file,
    sensitive: 0,
    annotated: 0,
    exempt: 0,
    fill: 0,
    sites: siteCount,
    headerSites,
    byKind: {},
    offenders: [],
  };
  const used = new Set<number>();
  const targets = branchTargets(insns);
  for (let k = 0; k < insns.length; k++) {
    const insn = insns[k]!;
    const kind = classifyBytes(insn.bytes);
    if (kind === null) continue;
    if (kind === 'int' && !sites.has(insn.address) && isFill(insns, k, targets)) {
      result.fill++;
      continue;
    }
    result.sensitive++;
    result.byKind[kind] = (result.byKind[kind] ?? 0) + 1;
    const offend = (problem: string): void => {
      result.offenders.push({
        address: insn.address,
        where: insn.where,
        section: insn.section,
        instruction: insn.text,
        kind,
        problem,
      });
    };
    if (noannotate.some((r) => insn.address >= r.start && insn.address < r.end)) {
      result.exempt++;
      continue;
    }
    const end = sites.get(insn.address);
    if (end === undefined) {
      // The padding of an enclosing site is checked with that site; an instruction inside
      // another site's range is not its own site.
      offend('not annotated');
      continue;
    }
    used.add(insn.address);
    const padding = end - insn.address - insn.bytes.length;
    if (padding < PADDING[kind]) {
      offend(`padding ${padding} bytes, needs ${PADDING[kind]}`);
      continue;
    }
    let ok = true;
    for (let j = k + 1; j < insns.length && insns[j]!.address < end; j++) {
      if (!isNop(insns[j]!)) {
        offend(`padding holds '${insns[j]!.text}', not NOP`);
        ok = false;
        break;
      }
    }
    if (ok) result.annotated++;
  }
  // Records that point at no sensitive instruction would make the VMM rewrite ordinary code.
  const byAddress = new Map(insns.map((i) => [i.address, i]));
  for (const [start] of sites) {
    if (used.has(start)) continue;
    const insn = byAddress.get(start);
    result.offenders.push({
      address: start,
      where: insn?.where ?? '',
      section: insn?.section ?? '',
      instruction: insn?.text ?? '(no instruction starts here)',
      kind: null,
      problem: 'site does not begin with a sensitive instruction',
    });
  }
  const indexOf = new Map(insns.map((i, k) => [i.address, k]));
  // The header's sites (afterburn.h): one instruction, then AB_PAD (12) bytes of NOP.
  for (const h of headerPairs) {
    const k = indexOf.get(h.start) ?? -1;
    const insn = insns[k];
    const problem =
      insn === undefined
        ? 'header site: no instruction starts here'
        : h.end - h.start - insn.bytes.length < HEADER_PADDING
          ? `header site: padding ${h.end - h.start - insn.bytes.length} bytes, needs ${HEADER_PADDING}`
          : insns.slice(k + 1).find((i) => i.address < h.end && !isNop(i)) !== undefined
            ? 'header site: padding is not all NOP'
            : null;
    if (problem !== null)
      result.offenders.push({
        address: h.start,
        where: insn?.where ?? '',
        section: h.section,
        instruction: insn?.text ?? '',
        kind: null,
        problem,
      });
  }
  result.offenders.sort((a, b) => a.address - b.address);
  return result;
}

/** Human-readable summary and the first `max` offenders. */
export function formatVerify(r: VerifyResult, max: number): string {
  const lines = [
    `${r.file}: ${r.sensitive} sensitive instructions, ${r.annotated} annotated, ${r.exempt} in .afterburn_noannotate regions, ${r.offenders.length} offenders; ${r.sites} sites in .afterburn`,
  ];
  if (r.fill > 0)
    lines.push(
      `  ${r.fill} int3 bytes no path reaches (after a jump or return): fill, not counted`,
    );
  const kinds = Object.entries(r.byKind).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (kinds.length > 0) lines.push(`  by kind: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const header = Object.entries(r.headerSites);
  if (header.length > 0)
    lines.push(`  header sites: ${header.map(([s, n]) => `${s} ${n}`).join(', ')}`);
  for (const o of r.offenders.slice(0, max)) {
    const where = o.where === '' ? o.section : `${o.section} <${o.where}>`;
    lines.push(
      `  0x${o.address.toString(16).padStart(8, '0')} ${where}: ${o.instruction}: ${o.problem}`,
    );
  }
  if (r.offenders.length > max) lines.push(`  ... and ${r.offenders.length - max} more (--max N)`);
  return lines.join('\n');
}
